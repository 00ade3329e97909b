"""The fetcher's limits, each against the kind of input that once got past it: addresses that
hide a private IPv4 address inside an IPv6 one, and servers that answer too slowly to finish."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from index.feeds import FeedSource, FeedSyncer, Fetcher, FetchError, FetchPolicy
from index.feeds.fetch import is_public_address
from index.store.local.state import LocalStateStore
from tests.index.feeds.conftest import Page, Web, rss


@pytest.mark.parametrize("address", [
    "169.254.169.254", "10.0.0.1", "127.0.0.1", "::1", "fe80::1%eth0", "ff02::1",
    "64:ff9b::a9fe:a9fe",  # NAT64 (RFC 6052) of 169.254.169.254
    "64:ff9b::10.0.0.1",
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 (RFC 8215)
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:127.0.0.1",
    "::169.254.169.254",  # IPv4-compatible (deprecated, still routed by some stacks)
    "::10.0.0.1",
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254
])
def test_an_address_that_is_or_hides_a_private_one_is_refused(address: str):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", [
    "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::8.8.8.8", "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
])
def test_a_public_address_passes_in_every_form(address: str):
    assert is_public_address(address)


# A server dripping a byte every DRIP seconds keeps each read short, so only a deadline for the
# whole request stops it; the body takes DRIP * len(SLOW_BODY) = 24 s to finish, the fetch is
# allowed 0.5 s and must give up before the drip ends. The bound is the drip itself, the least
# a fetch without that deadline takes however fast the machine, not a guess at how long a
# busy machine takes to give up (0.7 s on one running two other jobs at full load).
DRIP = 0.1
SLOW_BODY = rss([]) + b" " * (240 - len(rss([])))
GIVE_UP_WITHIN = DRIP * len(SLOW_BODY)


def _policy(**changes) -> FetchPolicy:
    return FetchPolicy(**({"allow_private": True, "host_delay_seconds": 0, "attempts": 1,
                           "timeout_seconds": 0.5, "respect_robots": True} | changes))


@pytest.mark.parametrize("drip_headers", [False, True], ids=["body", "headers"])
def test_a_dripping_server_times_out_as_one_request(web: Web, drip_headers: bool):
    web.routes["/slow"] = Page(SLOW_BODY, "application/rss+xml", drip=DRIP,
                               drip_headers=drip_headers)
    fetcher = Fetcher(_policy())
    started = time.monotonic()
    with pytest.raises(FetchError) as failed:
        fetcher.get(web.url("/slow"))
    assert time.monotonic() - started < GIVE_UP_WITHIN
    assert failed.value.kind == "timeout"
    assert str(failed.value) == "timed out: no complete answer within 0.5 s"


def test_every_http_path_of_a_sync_has_the_deadline(web: Web, tmp_path: Path):
    """The feed itself, robots.txt and an article page: each gives up in time and is named."""
    web.routes["/slow-feed"] = Page(SLOW_BODY, "application/rss+xml", drip=DRIP)
    web.routes["/robots.txt"] = Page(b"User-agent: *\n" + b"#" * 240, "text/plain", drip=DRIP)
    web.routes["/news/slow"] = Page(b"<html>" + b" " * 240, drip=DRIP)
    web.routes["/rss"] = Page(rss([("guid-slow", web.url("/news/slow"), "A slow page")]),
                              "application/rss+xml")
    fetcher = Fetcher(_policy())
    syncer = FeedSyncer(fetcher, LocalStateStore(tmp_path / "state"), tmp_path / "out")
    started = time.monotonic()
    report = syncer.sync([FeedSource(web.url("/slow-feed")), FeedSource(web.url("/rss"))])
    pages = syncer.fetch_pages([web.url("/news/slow")])
    assert time.monotonic() - started < GIVE_UP_WITHIN  # any one path without it takes that
    assert [(r.status, r.error_kind) for r in report.feeds] == [("error", "timeout"), ("ok", "")]
    assert report.feeds[1].new == 1  # the page timed out: the feed's own text was used
    assert any("timed out" in line for line in report.feeds[1].skipped)
    assert [(r.status, r.error_kind) for r in pages.feeds] == [("error", "timeout")]


@pytest.mark.parametrize("url", ["http://[::1/feed.xml", "http://[::1", "http://example.com:99999/"])
def test_a_url_the_parser_refuses_is_one_clear_error_everywhere(url: str) -> None:
    from index.feeds.fetch import check_host
    from index.feeds.sources import FeedListError, parse_feed_line

    with pytest.raises(FeedListError, match="not an http"):
        parse_feed_line(f"{url} | Outlet")
    with pytest.raises(FetchError) as refused:
        check_host(url, allow_private=True)
    assert refused.value.kind == "scheme"
    fetcher = Fetcher(FetchPolicy(timeout_seconds=1))
    try:
        with pytest.raises(FetchError):
            fetcher.get(url)
        assert fetcher.allowed_by_robots(url)  # not a URL: the fetch itself refuses it
    finally:
        fetcher.close()
