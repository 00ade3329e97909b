"""Feeds against a web server of our own on 127.0.0.1: new items in, unchanged feeds cost 304s,
edited pages update, removed items stay, and every kind of bad feed is named and skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.config import Settings
from index.engine import Engine, EngineError
from index.feeds import Fetcher, FetchError, FetchPolicy
from index.feeds.fetch import check_host
from index.feeds.sources import FeedListError, parse_feed_line, read_feed_list
from tests.index.fakes import HashingEmbedder
from tests.index.feeds.conftest import Page, Web, article_page, atom, rss

STORIES = {
    "tram": ("Kestle opens its first tram line",
             ["The first tram line in Kestle opened on Monday after four years of building work.",
              "Trams will run every eight minutes between the harbour and the university.",
              "The council expects twelve thousand passengers a day by the summer."]),
    "ferry": ("Ferry service to Oslen resumes",
              ["The ferry between Kestle and Oslen sailed again on Tuesday after storm repairs.",
               "Crews replaced the landing ramp that the January storm had torn away.",
               "Tickets sold out within an hour of the first crossing being announced."]),
    "comet": ("Teacher spots a new comet",
              ["A retired teacher in Varrow found a new comet with a backyard telescope.",
               "The comet will be brightest in late March, just visible without binoculars.",
               "The observatory confirmed the discovery and named the comet after her."]),
}


def serve_story(web: Web, key: str, charset: str = "utf-8") -> str:
    title, paragraphs = STORIES[key]
    web.routes[f"/news/{key}"] = Page(article_page(title, paragraphs, charset),
                                      f"text/html; charset={charset}")
    return web.url(f"/news/{key}")


@pytest.fixture
def feed_settings(tmp_path: Path, web: Web) -> Settings:
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(f"# our test feeds\n{web.url('/rss')} | Kestle Post | local, transport\n"
                     f"{web.url('/atom')}\n", encoding="utf-8")
    (tmp_path / "articles").mkdir()
    return Settings(_env_file=None, index_dir=tmp_path / "index",
                    article_dirs=[tmp_path / "articles"], model="test-hashing",
                    feeds_file=feeds, feeds_dir=tmp_path / "fetched",
                    fetch_allow_private=True, fetch_host_delay_seconds=0,
                    fetch_timeout_seconds=2.0,  # generous: CI machines are busy
                    min_answer_score=0.0)  # hashing vectors: the question is about the feeds


@pytest.fixture
def engine(feed_settings: Settings) -> Engine:
    return Engine.open(feed_settings, create=True, embedder=HashingEmbedder())


def publish(web: Web, build: str = "1", rss_keys=("tram", "ferry"), atom_keys=("comet",)):
    web.routes["/rss"] = Page(rss([(f"guid-{k}", serve_story(web, k), STORIES[k][0])
                                   for k in rss_keys], build=build),
                              "application/rss+xml")
    web.routes["/atom"] = Page(atom([(f"urn:{k}", serve_story(web, k), STORIES[k][0])
                                     for k in atom_keys]), "application/atom+xml")


def test_new_items_are_added_with_outlet_labels_and_dates(web: Web, engine: Engine):
    publish(web)
    report = engine.sync_feeds()
    assert [(r.status, r.new) for r in report.feeds] == [("ok", 2), ("ok", 1)]
    assert report.ingest is not None and report.ingest.added == 3
    answer = engine.ask("How often will the Kestle trams run?")
    top = answer.quotes[0].article
    assert "every eight minutes" in answer.quotes[0].text
    assert (top.source, top.labels, str(top.published)) == (
        "Kestle Post", ("local", "transport"), "2023-03-06")
    comet = engine.ask("Who found the new comet?").quotes[0].article
    assert comet.source == "Varrow Herald"  # the feed's own title when none is given


def test_an_unchanged_sync_costs_only_304s(web: Web, engine: Engine):
    publish(web)
    engine.sync_feeds()
    before = len(web.seen)
    report = engine.sync_feeds()
    assert web.statuses(before) == [304, 304]  # one conditional request per feed, nothing else
    assert [r.status for r in report.feeds] == ["unchanged", "unchanged"]
    assert report.ingest is None and report.not_modified == 2


def test_an_edited_page_updates_its_article(web: Web, engine: Engine):
    publish(web)
    engine.sync_feeds()
    title, paragraphs = STORIES["tram"]
    web.routes["/news/tram"] = Page(article_page(title, [*paragraphs[:1],
        "Trams will now run every five minutes at peak hours, the operator said."]))
    web.routes["/rss"] = Page(rss([("guid-tram", web.url("/news/tram"), title),
                                   ("guid-ferry", web.url("/news/ferry"), STORIES["ferry"][0])],
                                  build="2"), "application/rss+xml")
    report = engine.sync_feeds()
    assert (report.feeds[0].updated, report.feeds[0].unchanged) == (1, 1)
    assert report.ingest is not None and report.ingest.updated == 1
    # The edited text is what is served (which sentence a reader puts first is not the point).
    quotes = engine.ask("How often do the Kestle trams run?").quotes
    assert any("every five minutes" in quote.text for quote in quotes)


def test_an_item_that_leaves_its_feed_stays(web: Web, engine: Engine, feed_settings: Settings):
    publish(web)
    engine.sync_feeds()
    publish(web, build="2", rss_keys=("ferry",))  # the tram story dropped out of the feed
    engine.sync_feeds()
    assert engine.count_articles() == 3
    assert engine.reindex().removed == 0  # a reindex keeps fetched articles too
    assert engine.reindex(rebuild=True).added == 3  # and finds them again on a rebuild


def test_a_page_in_a_declared_legacy_charset_is_read(web: Web, engine: Engine):
    title, paragraphs = STORIES["ferry"]
    text = "Паром между Кестлом и Ослен снова ходит после ремонта причала. " * 3
    web.routes["/news/ru"] = Page(article_page(title, [text, *paragraphs], "windows-1251"),
                                  "text/html")  # no charset in the header: the page's own
    web.routes["/rss"] = Page(rss([("guid-ru", web.url("/news/ru"), title)]),
                              "application/rss+xml")
    web.routes["/atom"] = Page(atom([]), "application/atom+xml")
    engine.sync_feeds()
    detail = engine.article(title)
    assert detail is not None and "Паром" in detail.opening


BAD = {
    "malformed": (Page(b"<rss><channel><item><title>cut off", "application/rss+xml"),
                  "unparsable"),
    "html": (Page(b"<html><body><p>Not a feed at all.</p></body></html>"), "not a feed"),
    "error500": (Page(b"down", "text/plain", status=500), "http 500"),
    "missing": (None, "http 404"),
    "slow": (Page(rss([]), "application/rss+xml", delay=4.0), "timeout"),
    "loop": (Page(status=302, location="/loop"), "too-many-redirects"),
    "huge": (Page(b"<rss>" + b" " * (2 * 2**20) + b"</rss>", "application/rss+xml"),
             "too-large"),
}


def test_every_bad_feed_is_named_and_the_good_one_still_syncs(
    web: Web, feed_settings: Settings, tmp_path: Path
):
    publish(web)
    lines = [web.url("/rss")]
    for name, (page, _) in BAD.items():
        if page is not None:
            web.routes[f"/{name}"] = page
        lines.append(web.url(f"/{name}"))
    feeds = tmp_path / "many.txt"
    feeds.write_text("\n".join(lines), encoding="utf-8")
    settings = feed_settings.model_copy(update={"feeds_file": feeds, "fetch_max_mb": 1.0})
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    report = engine.sync_feeds()
    kinds = {r.url.rsplit("/", 1)[1]: r.error_kind for r in report.feeds if r.status == "error"}
    assert kinds == {name: kind for name, (_, kind) in BAD.items()}
    assert report.feeds[0].new == 2 and engine.count_articles() == 2
    states = {feed.url.rsplit("/", 1)[1]: state for feed, state in engine.feed_states()}
    assert states["error500"].status == "error" and states["error500"].error == "HTTP 500"
    assert states["rss"].articles == 2 and states["rss"].last_fetch


def test_a_500_is_retried_and_a_404_is_not(web: Web):
    web.routes["/flaky"] = Page(b"down", "text/plain", status=500)
    fetcher = Fetcher(FetchPolicy(allow_private=True, host_delay_seconds=0, backoff_seconds=0.01))
    with pytest.raises(FetchError):
        fetcher.get(web.url("/flaky"))
    with pytest.raises(FetchError):
        fetcher.get(web.url("/nothing-here"))
    assert [status for path, status in web.seen] == [500, 500, 500, 404]


def test_a_feed_on_a_private_address_is_refused_by_default(web: Web, engine: Engine,
                                                          feed_settings: Settings):
    publish(web)
    closed = Engine.open(feed_settings.model_copy(update={"fetch_allow_private": False}),
                         create=True, embedder=HashingEmbedder())
    report = closed.sync_feeds()
    assert {r.error_kind for r in report.feeds} == {"private"}
    assert web.seen == []  # not a single request reached the server
    for url in ("http://10.0.0.1/feed", "http://169.254.169.254/latest", "http://[::1]/x",
                "file:///etc/passwd", "gopher://example.com/"):
        with pytest.raises(FetchError):
            check_host(url, allow_private=False)


def test_a_redirect_to_a_private_address_is_refused(web: Web, monkeypatch):
    web.routes["/hop"] = Page(status=302, location="http://169.254.169.254/latest/meta-data")
    fetcher = Fetcher(FetchPolicy(allow_private=False, host_delay_seconds=0))
    monkeypatch.setattr("index.feeds.fetch.check_host",
                        lambda url, allow: None if "127.0.0.1" in url else check_host(url, False))
    with pytest.raises(FetchError) as refused:
        fetcher.get(web.url("/hop"))
    assert refused.value.kind == "private"


def test_robots_txt_is_respected_and_the_feeds_text_used(web: Web, engine: Engine):
    publish(web, atom_keys=())
    web.routes["/robots.txt"] = Page(b"User-agent: *\nDisallow: /news/\n", "text/plain")
    report = engine.sync_feeds()
    assert report.feeds[0].new == 2
    assert all("robots.txt disallows" in line for line in report.feeds[0].skipped)
    assert not any(path.startswith("/news/") for path, _ in web.seen)
    assert "Summary of Kestle opens its first tram line" in engine.article(
        "Kestle opens its first tram line").opening


def test_a_single_page_is_fetched_and_ingested(web: Web, engine: Engine):
    url = serve_story(web, "comet")
    report = engine.fetch_pages([url, web.url("/missing")])
    assert [(r.status, r.error_kind) for r in report.feeds] == [("ok", ""), ("error", "http 404")]
    assert report.ingest is not None and report.ingest.added == 1
    assert engine.ask("Who found the comet?").quotes


def test_the_feeds_file_is_read_and_bad_lines_named(tmp_path: Path):
    assert parse_feed_line("  # a comment") is None
    feed = parse_feed_line("https://example.com/rss | Example  News | Politics, UK ,")
    assert (feed.url, feed.outlet, feed.labels) == ("https://example.com/rss", "Example News",
                                                    ("politics", "uk"))
    bad = tmp_path / "feeds.txt"
    bad.write_text("https://example.com/rss\nftp://example.com/feed\n", encoding="utf-8")
    with pytest.raises(FeedListError, match=r"feeds.txt:2: not an http\(s\) URL"):
        read_feed_list(bad)


def test_a_bad_feeds_file_is_one_engine_error(feed_settings: Settings, tmp_path: Path):
    broken = tmp_path / "broken.txt"
    broken.write_text("not a url\n", encoding="utf-8")
    engine = Engine.open(feed_settings.model_copy(update={"feeds_file": broken}), create=True,
                         embedder=HashingEmbedder())
    with pytest.raises(EngineError, match=r"broken\.txt:1"):
        engine.sync_feeds()


def test_the_cli_names_each_failed_feed_and_sums_up(web: Web, engine: Engine, monkeypatch,
                                                    capsys):
    import sys

    from articlebot import cli

    publish(web)
    del web.routes["/atom"]
    monkeypatch.setattr(cli, "_engine", lambda *args, **kwargs: engine)
    monkeypatch.setattr(sys, "argv", ["articlebot", "sync-feeds"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [f"failed {web.url('/atom')}: http 404: HTTP 404"]
    assert out.splitlines()[0] == ("feeds: 2 (0 unchanged, 1 failed); items: new 2, updated 0; "
                                   "requests 5 (0 not modified)")  # feeds, robots.txt, 2 pages
    assert out.splitlines()[1].startswith("added 2, updated 0")


def test_an_rss_1_0_feed_is_read(web: Web, engine: Engine, feed_settings: Settings,
                                 tmp_path: Path):
    link = serve_story(web, "comet")
    web.routes["/rdf"] = Page((
        '<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        ' xmlns="http://purl.org/rss/1.0/"><channel rdf:about="http://example.test/">'
        "<title>Oslen Weekly</title><link>http://example.test/</link>"
        "<description>d</description></channel>"
        f'<item rdf:about="{link}"><title>{STORIES["comet"][0]}</title><link>{link}</link>'
        "</item></rdf:RDF>").encode(), "application/rdf+xml")
    feeds = tmp_path / "rdf.txt"
    feeds.write_text(web.url("/rdf") + "\n", encoding="utf-8")
    rdf = Engine.open(feed_settings.model_copy(update={"feeds_file": feeds}), create=True,
                      embedder=HashingEmbedder())
    report = rdf.sync_feeds()
    assert (report.feeds[0].status, report.feeds[0].new) == ("ok", 1)
    assert rdf.ask("Who found the new comet?").quotes[0].article.source == "Oslen Weekly"


def test_items_whose_ingest_failed_go_in_at_the_next_sync(web: Web, engine: Engine,
                                                         monkeypatch):
    publish(web)
    ingest = engine.ingest

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine, "ingest", full_disk)
    with pytest.raises(OSError):
        engine.sync_feeds()  # the files are written, their ingest fails
    monkeypatch.setattr(engine, "ingest", ingest)
    report = engine.sync_feeds()  # the feeds answer 304: nothing new is written
    assert [r.status for r in report.feeds] == ["unchanged", "unchanged"]
    assert report.ingest is not None and report.ingest.added == 3
    assert engine.count_articles() == 3
    assert engine.sync_feeds().ingest is None  # done: nothing pending any more
