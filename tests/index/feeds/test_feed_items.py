"""Feed items against a web server of our own on 127.0.0.1, each test one kind of item that
once went wrong: a GUID shared by two feeds or repeated in one, an impossible date, an empty
answer, a feed far too long for one sync, and a sync cut short."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.config import Settings
from index.engine import Engine
from index.feeds import FeedSource, FeedState, FeedSyncer, Fetcher, FetchPolicy, feed_state_key
from index.feeds import sync as feed_sync
from index.feeds.sync import ItemState
from index.store.local.state import LocalStateStore
from tests.index.fakes import HashingEmbedder
from tests.index.feeds.conftest import Page, Web, article_page, rss


def _syncer(tmp_path: Path, **changes) -> FeedSyncer:
    fetcher = Fetcher(FetchPolicy(allow_private=True, host_delay_seconds=0, attempts=1,
                                  timeout_seconds=2.0))
    return FeedSyncer(fetcher, LocalStateStore(tmp_path / "state"), tmp_path / "out", **changes)


def _records(tmp_path: Path) -> list[dict]:
    files = sorted((tmp_path / "out").rglob("*.json"))
    return [json.loads(path.read_text(encoding="utf-8")) for path in files]


def _page(web: Web, name: str, sentence: str) -> str:
    web.routes[f"/news/{name}"] = Page(article_page(name.title(), [
        sentence, "It was reported on Monday by our own correspondent in Kestle.",
        "Further details are expected later in the week, the council said."]))
    return web.url(f"/news/{name}")


def test_two_feeds_sharing_a_guid_keep_their_own_items(web: Web, tmp_path: Path):
    web.routes["/true"] = Page(rss([("1", _page(web, "tram", "The tram line opened."),
                                     "Tram line opens")]), "application/rss+xml")
    web.routes["/fake"] = Page(rss([("1", _page(web, "moon", "The moon is made of cheese."),
                                     "Moon made of cheese")]), "application/rss+xml")
    syncer = _syncer(tmp_path)
    report = syncer.sync([FeedSource(web.url("/true"), "True News", ("truenews",)),
                          FeedSource(web.url("/fake"), "Fake News", ("fakenews",))])
    assert [r.new for r in report.feeds] == [1, 1] and len(report.written) == 2
    kept = {record["title"]: (record["source"], record["labels"])
            for record in _records(tmp_path)}
    assert kept == {"Tram line opens": ("True News", ["truenews"]),
                    "Moon made of cheese": ("Fake News", ["fakenews"])}


def test_a_file_shared_by_two_feeds_under_the_earlier_naming_is_parted(web: Web,
                                                                       tmp_path: Path):
    """Before items were known by feed, both feeds' GUID "1" went to one file (the fake one won
    it); now each feed writes its own, and the shared file goes once it holds neither."""
    true_link = _page(web, "tram", "The tram line opened.")
    fake_link = _page(web, "moon", "The moon is made of cheese.")
    web.routes["/true"] = Page(rss([("1", true_link, "Tram line opens")]), "application/rss+xml")
    web.routes["/fake"] = Page(rss([("1", fake_link, "Moon made of cheese")]),
                               "application/rss+xml")
    feeds = [FeedSource(web.url("/true"), "True News", ("truenews",)),
             FeedSource(web.url("/fake"), "Fake News", ("fakenews",))]
    syncer = _syncer(tmp_path)
    shared = syncer._item_path(feeds[0], "1", legacy=True)
    assert shared == syncer._item_path(feeds[1], "1", legacy=True)
    shared.parent.mkdir(parents=True)
    shared.write_text(json.dumps({"title": "Moon made of cheese", "text": "The moon is cheese.",
                                  "url": fake_link, "source": "Fake News",
                                  "labels": ["fakenews"]}), encoding="utf-8")
    for feed in feeds:  # each feed's state names the shared file, with its page's validators
        state = FeedState(items={"1": ItemState(url=feed.url, file=str(shared), etag='"x"')})
        syncer.state.set_value(feed_state_key(feed.url), state.to_json())
    report = syncer.sync(feeds)
    assert [r.new for r in report.feeds] == [0, 0] and [r.updated for r in report.feeds] == [1, 1]
    assert not shared.exists()
    kept = {record["title"]: (record["source"], record["labels"])
            for record in _records(tmp_path)}
    assert kept == {"Tram line opens": ("True News", ["truenews"]),
                    "Moon made of cheese": ("Fake News", ["fakenews"])}


def test_a_guid_repeated_in_one_feed_loses_nothing_silently(web: Web, tmp_path: Path):
    web.routes["/rss"] = Page(rss([
        ("same", _page(web, "ferry", "The ferry sailed again."), "Ferry sails"),
        ("same", _page(web, "comet", "A teacher found a comet."), "Comet found"),  # another story
        ("same", web.url("/news/ferry"), "Ferry sails (repeated)"),  # the first one again
    ]), "application/rss+xml")
    report = _syncer(tmp_path).sync([FeedSource(web.url("/rss"))])
    assert sorted(record["title"] for record in _records(tmp_path)) == ["Comet found",
                                                                         "Ferry sails"]
    assert report.feeds[0].new == 2
    assert report.feeds[0].skipped == [
        f"{web.url('/news/ferry')}: repeats the guid and link of an earlier item of the feed; "
        "the first kept"]


IMPOSSIBLE_DATES = ["0000-01-01T00:00:00Z", "0000-06-15"]


@pytest.mark.parametrize("published", IMPOSSIBLE_DATES)
def test_an_impossible_date_leaves_its_item_undated_and_the_feed_whole(
    web: Web, tmp_path: Path, published: str
):
    body = rss([("good", _page(web, "tram", "The tram line opened."), "Tram line opens"),
                ("bad", _page(web, "ferry", "The ferry sailed again."), "Ferry sails")])
    body = body.replace(b"<pubDate>Mon, 06 Mar 2023 10:00:00 GMT</pubDate><description>Summary "
                        b"of Ferry", f"<pubDate>{published}</pubDate><description>Summary of "
                        "Ferry".encode())
    web.routes["/rss"] = Page(body, "application/rss+xml")
    syncer = _syncer(tmp_path)
    report = syncer.sync([FeedSource(web.url("/rss"))])
    assert (report.feeds[0].status, report.feeds[0].new) == ("ok", 2)
    dates = {record["title"]: record["date"] for record in _records(tmp_path)}
    assert dates["Tram line opens"] == "2023-03-06" and dates["Ferry sails"] is None
    assert report.feeds[0].skipped == [
        f"{web.url('/news/ferry')}: its date is impossible; kept undated"]


def test_validators_are_kept_only_once_the_items_are_written(web: Web, tmp_path: Path,
                                                            monkeypatch):
    web.routes["/rss"] = Page(rss([("a", _page(web, "tram", "The tram line opened."),
                                    "Tram line opens")]), "application/rss+xml")
    syncer = _syncer(tmp_path)
    write = feed_sync._write_atomically

    def full_disk(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(feed_sync, "_write_atomically", full_disk)
    failed = syncer.sync([FeedSource(web.url("/rss"))]).feeds[0]
    assert failed.status == "error" and "No space left on device" in failed.error
    monkeypatch.setattr(feed_sync, "_write_atomically", write)
    again = syncer.sync([FeedSource(web.url("/rss"))]).feeds[0]  # a 200, not a 304
    assert (again.status, again.new) == ("ok", 1)
    assert syncer.sync([FeedSource(web.url("/rss"))]).feeds[0].status == "unchanged"


def test_an_item_that_fails_is_named_and_tried_again(web: Web, tmp_path: Path, monkeypatch):
    web.routes["/rss"] = Page(rss([
        ("good", _page(web, "tram", "The tram line opened."), "Tram line opens"),
        ("bad", _page(web, "ferry", "The ferry sailed again."), "Ferry sails")]),
        "application/rss+xml")
    syncer = _syncer(tmp_path)
    record = FeedSyncer._record

    def broken_on_the_ferry(feed, state, entry, page, link):
        if "ferry" in link:
            raise ValueError("a bug met on this item")
        return record(feed, state, entry, page, link)

    monkeypatch.setattr(FeedSyncer, "_record", staticmethod(broken_on_the_ferry))
    first = syncer.sync([FeedSource(web.url("/rss"))]).feeds[0]
    assert (first.status, first.new) == ("ok", 1)
    assert first.skipped == [f"{web.url('/news/ferry')}: failed (ValueError: a bug met on this "
                             "item); tried again at the next sync"]
    monkeypatch.setattr(FeedSyncer, "_record", staticmethod(record))
    second = syncer.sync([FeedSource(web.url("/rss"))]).feeds[0]  # not a 304: one item is owed
    assert (second.status, second.new, second.skipped) == ("ok", 1, [])
    assert syncer.sync([FeedSource(web.url("/rss"))]).feeds[0].status == "unchanged"


@pytest.mark.parametrize("body", [b"", b"   \n", b"\xef\xbb\xbf", b"{}", b"<html></html>"],
                         ids=["empty", "blank", "bom", "json", "html"])
def test_an_empty_or_foreign_answer_is_not_a_feed(web: Web, tmp_path: Path, body: bytes):
    web.routes["/rss"] = Page(body, "application/rss+xml")
    result = _syncer(tmp_path).sync([FeedSource(web.url("/rss"))]).feeds[0]
    assert (result.status, result.error_kind) == ("error", "not a feed")
    assert result.error.startswith("no RSS or Atom in the response")  # the kind says the rest


def _long_feed(web: Web, count: int, pages: bool = True) -> None:
    items = []
    for number in range(count):
        link = (_page(web, f"story{number}", f"Story number {number} happened in Kestle.")
                if pages else web.url(f"/gone/{number}"))
        items.append((f"guid-{number}", link, f"Story {number}"))
    web.routes["/rss"] = Page(rss(items), "application/rss+xml")


def test_a_long_feed_is_capped_and_its_notes_counted(web: Web, tmp_path: Path):
    _long_feed(web, 30, pages=False)  # every page is a 404: each item falls back to its text
    report = _syncer(tmp_path, max_items_per_feed=20).sync([FeedSource(web.url("/rss"))])
    result = report.feeds[0]
    assert result.new == 20 and len(_records(tmp_path)) == 20
    assert result.skipped == [
        "10 more items past the cap of 20 a feed (ARTICLEBOT_FEEDS_MAX_ITEMS_PER_FEED) not read",
        f"HTTP 404; the feed's text used: 20 items ({web.url('/gone/0')}, "
        f"{web.url('/gone/1')}, {web.url('/gone/2')}, …)"]


def test_a_sync_past_its_cap_resumes_where_it_stopped(web: Web, tmp_path: Path):
    _long_feed(web, 20)
    feeds = [FeedSource(web.url("/rss"))]
    syncer = _syncer(tmp_path, max_items_per_sync=8)
    first = syncer.sync(feeds)
    assert (first.feeds[0].new, first.feeds[0].left) == (8, 12)
    assert first.summary().endswith("; 12 items left for the next sync")
    before = len(web.seen)
    second = syncer.sync(feeds)
    assert (second.feeds[0].new, second.feeds[0].left) == (8, 4)
    pages = [path for path, _ in web.seen[before:] if path.startswith("/news/")]
    assert pages == [f"/news/story{n}" for n in range(8, 16)]  # the first 8 not asked again
    third = syncer.sync(feeds)
    assert (third.feeds[0].new, third.feeds[0].left) == (4, 0)
    assert len(_records(tmp_path)) == 20
    assert syncer.sync(feeds).feeds[0].status == "unchanged"


def test_an_interrupted_sync_resumes_from_its_last_save(web: Web, tmp_path: Path,
                                                       monkeypatch):
    _long_feed(web, 12)
    feeds = [FeedSource(web.url("/rss"))]
    write = feed_sync._write_atomically
    calls = []

    def killed_at_the_seventh(path: Path, text: str) -> bool:
        calls.append(path)
        if len(calls) == 7:
            raise KeyboardInterrupt  # as a stopped process: nothing after this point runs
        return write(path, text)

    monkeypatch.setattr(feed_sync, "_write_atomically", killed_at_the_seventh)
    with pytest.raises(KeyboardInterrupt):
        _syncer(tmp_path, save_every=5).sync(feeds)
    monkeypatch.setattr(feed_sync, "_write_atomically", write)
    state = FeedState.from_json(LocalStateStore(tmp_path / "state").get_value(
        feed_state_key(feeds[0].url)))
    assert state.etag is None and len(state.items) == 5  # saved after 5 items, no validators
    before = len(web.seen)
    report = _syncer(tmp_path, save_every=5).sync(feeds)
    pages = [path for path, _ in web.seen[before:] if path.startswith("/news/")]
    assert pages == [f"/news/story{n}" for n in range(5, 12)]
    assert len(report.written) == 12  # the 5 done before are ingested again, in case they were not
    assert report.feeds[0].new == 7 and len(_records(tmp_path)) == 12


def test_the_caps_come_from_the_settings(tmp_path: Path):
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", model="test-hashing",
                        article_dirs=[], feeds_dir=tmp_path / "fetched",
                        feeds_max_items_per_feed=7, feeds_max_items_per_sync=9)
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    with engine._syncer() as syncer:
        assert (syncer.max_items_per_feed, syncer.max_items_per_sync) == (7, 9)
