"""Syncing feeds: new and changed items become article files, which ingest like any other.

Each item is written as one JSON article (title, text, url, source, date, authors, labels) to
`<feeds_dir>/<feed host>/<hash of the feed URL and the item id>.json`, atomically, and only
when it changed; the caller ingests the files written. An item is known by its feed and its
id: two feeds that reuse a GUID keep their own files, and a GUID repeated within one feed
keeps its first item (a later one with another link is kept too, known by GUID and link).
Files are never deleted: an item that leaves its feed stays in the collection (news does not
vanish because a feed moved on), and `reindex --rebuild` finds every article again in the
folder. (A file of the earlier naming, by item id alone, moves to its item's new name.)

Per feed, the state kept in the store (named value `feed:<url>`): the feed's ETag and
Last-Modified, when it was last fetched, how that went, and for each item seen its page's
validators and the file it went to. An unchanged feed costs one 304; when a feed changes,
each of its items' pages is asked for conditionally, so only new or edited pages are read.
The feed's validators are kept only once every item of that version is written; until then
the state is saved every `save_every` items, so a sync cut short (a kill, or the per-sync cap)
resumes with the items not yet done.

A bad item costs only itself: an impossible date leaves it undated, an error skips it by name
and it is tried again at the next sync. Notes on items are counted per reason, with a few
items named, not one line an item.

The article text is the page's main text (trafilatura), else the feed item's own content when
the page cannot be fetched, is refused by robots.txt or has no main text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import xml.sax
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser

from index.feeds.fetch import Fetched, Fetcher, FetchError
from index.feeds.sources import FeedSource
from index.ingest.formats import parse_html
from index.ingest.reader import decode_html
from index.models import IngestReport, ParsedArticle
from index.store.base import StateStore

log = logging.getLogger(__name__)

STATE_PREFIX = "feed:"
# Items remembered per feed (their validators and files); the oldest are forgotten first.
MAX_ITEMS_KEPT = 2000
FEED_THREADS = 4
# Items between two saves of a feed's state: each save writes the whole state (up to
# MAX_ITEMS_KEPT items, ~0.3 MB), so 2,000 items cost 40 saves, and a cut-short sync redoes at
# most this many.
SAVE_EVERY = 50
# Items named as examples in a note; the rest are counted.
EXAMPLES_PER_NOTE = 3
_SLUG = re.compile(r"[^a-z0-9.-]+")


@dataclass(slots=True)
class ItemState:
    """What is kept of an item seen: its page, the page's validators, the file written."""

    url: str = ""
    file: str = ""
    etag: str | None = None
    last_modified: str | None = None
    done_in: str = ""  # hash of the feed version whose pass last handled this item


@dataclass(slots=True)
class FeedState:
    """What is kept of a feed between syncs."""

    title: str = ""
    etag: str | None = None
    last_modified: str | None = None
    last_fetch: str = ""  # ISO time of the last attempt
    status: str = "new"  # new, ok, unchanged, error
    error_kind: str = ""  # dns, timeout, http 404, private, not a feed, unparsable, …
    error: str = ""
    articles: int = 0  # files written for this feed, ever
    partial: str = ""  # hash of the feed version whose items are not all done yet
    items: dict[str, ItemState] = field(default_factory=dict)

    def to_json(self) -> str:
        """The state as JSON text."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> FeedState:
        """The state from JSON text; a fresh one for None or damaged text."""
        try:
            data = json.loads(text) if text else {}
            items = {key: ItemState(**value) for key, value in data.pop("items", {}).items()}
            return cls(**data, items=items)
        except (ValueError, TypeError):
            return cls()


@dataclass(slots=True)
class FeedResult:
    """How one feed's sync went."""

    url: str
    status: str  # ok, unchanged, error
    error_kind: str = ""
    error: str = ""
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    left: int = 0  # items left for the next sync (the per-sync cap)
    skipped: list[str] = field(default_factory=list)  # "item url: why", or "why: n items (…)"
    written: list[Path] = field(default_factory=list)


@dataclass(slots=True)
class FeedSyncReport:
    """Every feed's result; `written` are the article files to ingest."""

    feeds: list[FeedResult]
    requests: int = 0
    not_modified: int = 0
    ingest: IngestReport | None = None  # set by Engine.sync_feeds once the files are ingested

    @property
    def written(self) -> list[Path]:
        """Article files written by this sync, for ingest."""
        return [path for result in self.feeds for path in result.written]

    def summary(self) -> str:
        """One line: feeds by outcome and items by fate."""
        errors = sum(1 for r in self.feeds if r.status == "error")
        unchanged = sum(1 for r in self.feeds if r.status == "unchanged")
        new = sum(r.new for r in self.feeds)
        updated = sum(r.updated for r in self.feeds)
        left = sum(r.left for r in self.feeds)
        return (f"feeds: {len(self.feeds)} ({unchanged} unchanged, {errors} failed); items: "
                f"new {new}, updated {updated}; requests {self.requests} "
                f"({self.not_modified} not modified)"
                + (f"; {left:,} items left for the next sync" if left else ""))


@dataclass(slots=True)
class _Notes:
    """What befell a feed's items, counted per reason with the first few items named."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, item: str = "") -> None:
        """Count `item` under `reason` (no item: a note about the feed)."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if item and len(shown) < EXAMPLES_PER_NOTE:
            shown.append(item)

    def lines(self) -> list[str]:
        """One line a reason: 'item: reason' for one item, else 'reason: n items (a, b, c, …)'."""
        lines = []
        for reason, count in self.counts.items():
            shown = self.examples[reason]
            if not shown:
                lines.append(reason)
            elif count == 1:
                lines.append(f"{shown[0]}: {reason}")
            else:
                more = ", …" if count > len(shown) else ""
                lines.append(f"{reason}: {count:,} items ({', '.join(shown)}{more})")
        return lines


def feed_state_key(url: str) -> str:
    """The named value holding a feed's state."""
    return STATE_PREFIX + url


def item_id(entry: Any) -> str:
    """An item's stable id: its guid, else its link, else a hash of its title and summary."""
    for key in ("id", "link"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    material = f"{entry.get('title', '')}\n{entry.get('summary', '')}"
    return "sha256:" + hashlib.sha256(material.encode()).hexdigest()


_DATE_KEYS = ("published_parsed", "updated_parsed")


def _entry_date(entry: Any) -> str | None:
    """The item's date (ISO), published else updated; None when it has none or only impossible
    ones (feedparser passes year 0 through)."""
    for key in _DATE_KEYS:
        # dict.get: feedparser's own get answers updated_parsed with published_parsed (deprecated)
        parsed = dict.get(entry, key)
        if parsed:
            try:
                return date(parsed[0], parsed[1], parsed[2]).isoformat()
            except (ValueError, TypeError, IndexError, OverflowError):
                continue
    return None


def _entry_content(entry: Any) -> str:
    """The item's own HTML (full content when the feed has it, else the summary)."""
    contents = entry.get("content") or []
    if contents and isinstance(contents[0], dict) and contents[0].get("value"):
        return str(contents[0]["value"])
    return str(entry.get("summary", "") or "")


def _extract(html: str, origin: str) -> ParsedArticle | None:
    """The main text and metadata of an HTML page or fragment (None when there is none)."""
    for item in parse_html(html, origin):
        if isinstance(item, ParsedArticle):
            return item
    return None


def _article_record(page: ParsedArticle, **fields: Any) -> dict[str, Any]:
    """An article file's record: the extracted page's fields, with `fields` taking precedence."""
    return {
        "title": page.title, "text": page.text, "url": page.url, "source": page.source,
        "date": page.published.isoformat() if page.published else None,
        "authors": list(page.authors), "labels": list(page.labels),
    } | fields


def _write_atomically(path: Path, text: str) -> bool:
    """Write when the content differs; True when the file changed."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return True


def _drop_if_moved(old: Path, legacy: Path, url: str) -> None:
    """Remove an item's file of the earlier naming (`legacy`) once the item is at its new name,
    when the file still holds that item: two feeds that shared a GUID shared the file, and the
    other feed's item stays until its own feed moves it."""
    if old != legacy or not url:
        return
    try:
        held = json.loads(old.read_text(encoding="utf-8")).get("url")
    except (OSError, ValueError, AttributeError):
        return
    if held == url:
        old.unlink(missing_ok=True)


@dataclass
class FeedSyncer:
    """Syncs feeds into `out_dir` with one fetcher, keeping state in a StateStore.

    `max_items_per_feed`: items read from one feed (the first, as the feed lists them; the rest
    are counted in a note). `max_items_per_sync`: items handled by one `sync`, all feeds
    together; the rest wait for the next sync. `save_every`: items between two saves of a
    feed's state (SAVE_EVERY).
    """

    fetcher: Fetcher
    state: StateStore
    out_dir: Path
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    max_items_per_feed: int = MAX_ITEMS_KEPT
    max_items_per_sync: int | None = None
    save_every: int = SAVE_EVERY

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._turns_left = self.max_items_per_sync

    def sync(self, feeds: list[FeedSource]) -> FeedSyncReport:
        """Sync every feed (several at once); one bad feed never stops the others."""
        before = (self.fetcher.requests, self.fetcher.not_modified)
        with self._lock:
            self._turns_left = self.max_items_per_sync
        with ThreadPoolExecutor(max_workers=FEED_THREADS, thread_name_prefix="feed") as pool:
            results = list(pool.map(self.sync_one, feeds))
        return FeedSyncReport(results, requests=self.fetcher.requests - before[0],
                              not_modified=self.fetcher.not_modified - before[1])

    def sync_one(self, feed: FeedSource) -> FeedResult:
        """Fetch one feed and write its new and changed items; failures go in the result."""
        state = FeedState.from_json(self.state.get_value(feed_state_key(feed.url)))
        state.last_fetch = self.clock().isoformat(timespec="seconds")
        try:
            result = self._sync(feed, state)
        except FetchError as exc:
            result = FeedResult(feed.url, "error", exc.kind, str(exc))
        except Exception as exc:
            log.exception("feed %s failed", feed.url)
            result = FeedResult(feed.url, "error", "error", f"{type(exc).__name__}: {exc}")
        state.status, state.error_kind, state.error = (
            result.status, result.error_kind, result.error[:500])
        state.articles += result.new
        self._save(feed, state)
        return result

    def _save(self, feed: FeedSource, state: FeedState) -> None:
        """Keep the feed's state (its MAX_ITEMS_KEPT most recently seen items)."""
        if len(state.items) > MAX_ITEMS_KEPT:
            for key in list(state.items)[: len(state.items) - MAX_ITEMS_KEPT]:
                del state.items[key]
        self.state.set_value(feed_state_key(feed.url), state.to_json())

    def _take_turn(self) -> bool:
        """One item's share of the per-sync cap; False once it is spent."""
        with self._lock:
            if self._turns_left is None:
                return True
            if self._turns_left <= 0:
                return False
            self._turns_left -= 1
            return True

    def _sync(self, feed: FeedSource, state: FeedState) -> FeedResult:
        fetched = self.fetcher.get(feed.url, etag=state.etag, last_modified=state.last_modified)
        if fetched.status == 304:
            return FeedResult(feed.url, "unchanged")
        parsed = feedparser.parse(fetched.body, response_headers={
            "content-type": fetched.content_type or "application/xml"})
        # .get throughout: an empty body gives a result without even a version
        problem = parsed.get("bozo_exception")
        entries = list(parsed.get("entries") or [])
        if not parsed.get("version") and not entries:
            return FeedResult(feed.url, "error", "not a feed",
                              f"no RSS or Atom in the response ({problem or 'empty'})")
        if isinstance(problem, xml.sax.SAXException):
            # Not well-formed: what feedparser's loose parser salvages may be cut or mixed up.
            return FeedResult(feed.url, "error", "unparsable", f"unparsable: {problem}"[:300])
        state.title = " ".join(str((parsed.get("feed") or {}).get("title", "")).split())
        version = hashlib.sha256(fetched.body).hexdigest()[:16]
        resuming = state.partial == version
        state.partial = version
        result, notes = FeedResult(feed.url, "ok"), _Notes()
        if len(entries) > self.max_items_per_feed:
            notes.add(f"{len(entries) - self.max_items_per_feed:,} more items past the cap of "
                      f"{self.max_items_per_feed:,} a feed (ARTICLEBOT_FEEDS_MAX_ITEMS_PER_FEED) "
                      "not read")
            entries = entries[: self.max_items_per_feed]
        failed, handled = False, 0
        for key, entry in self._identities(entries, notes):
            known = state.items.get(key)
            if resuming and known is not None and known.done_in == version:
                # Done by the pass that was cut short; listed again in case its ingest never ran.
                if known.file and Path(known.file).is_file():
                    result.written.append(Path(known.file))
                result.unchanged += 1
                continue
            if not self._take_turn():
                result.left += 1
                continue
            try:
                self._item(feed, state, key, entry, version, result, notes)
            except OSError:
                raise  # the folder failed (a full disk), not the item: so does the feed
            except Exception as exc:  # one bad item never fails its feed; tried again next sync
                failed = True
                notes.add(f"failed ({type(exc).__name__}: {exc}); tried again at the next sync",
                          str(entry.get("link", "") or key))
                log.warning("feed %s: item %s failed: %s: %s", feed.url, key,
                            type(exc).__name__, exc)
            handled += 1
            if handled % self.save_every == 0:
                self._save(feed, state)
        if not failed and not result.left:
            # Every item of this version is written: only now may a 304 stand for all of them.
            state.etag, state.last_modified, state.partial = (
                fetched.etag, fetched.last_modified, "")
        result.skipped = notes.lines()
        return result

    @staticmethod
    def _identities(entries: list[Any], notes: _Notes) -> Iterator[tuple[str, Any]]:
        """Each entry with its id within the feed; an entry repeating an earlier one's id and
        link is skipped (noted), one with the same id but another link is known by both."""
        links: dict[str, str] = {}
        for entry in entries:
            key, link = item_id(entry), str(entry.get("link", "") or "")
            if key in links:
                if not link or link == links[key] or f"{key} {link}" in links:
                    notes.add("repeats the guid and link of an earlier item of the feed; the "
                              "first kept", link or key)
                    continue
                key = f"{key} {link}"
            links[key] = link
            yield key, entry

    def _item_path(self, feed: FeedSource, key: str, *, legacy: bool = False) -> Path:
        """The file of a feed's item (`legacy`: its name before items were known by feed)."""
        folder = self.out_dir / _SLUG.sub("-", (urlsplit(feed.url).hostname or "feed").lower())
        material = key if legacy else f"{feed.url}\n{key}"
        return folder / (hashlib.sha256(material.encode()).hexdigest()[:16] + ".json")

    def _item(self, feed: FeedSource, state: FeedState, key: str, entry: Any, version: str,
              result: FeedResult, notes: _Notes) -> None:
        path = self._item_path(feed, key)
        known = state.items.get(key) or ItemState()
        # The page's validators stand only for a file of this item at its own name.
        current = known.file == str(path) and path.is_file()
        link = str(entry.get("link", "") or "")
        page: ParsedArticle | None = None
        if link:
            try:
                if self.fetcher.allowed_by_robots(link):
                    fetched = self.fetcher.get(
                        link, etag=known.etag if current else None,
                        last_modified=known.last_modified if current else None)
                    if fetched.status == 304 and current:
                        result.unchanged += 1
                        self._seen(state, key, known, version)
                        return
                    page = self._page(fetched)
                    known.etag, known.last_modified = fetched.etag, fetched.last_modified
                    link = fetched.url
                else:
                    notes.add("robots.txt disallows it; the feed's text used", link)
            except FetchError as exc:
                notes.add(f"{exc}; the feed's text used", link)
        if any(dict.get(entry, name) for name in _DATE_KEYS) and _entry_date(entry) is None:
            notes.add("its date is impossible; kept undated", link or key)
        record = self._record(feed, state, entry, page, link)
        if record is None:
            notes.add("no text in the page or the feed item", link or key)
            self._seen(state, key, known, version)
            return
        text = json.dumps(record, ensure_ascii=False, indent=1)
        if _write_atomically(path, text) or not current:
            # A file of an item this state does not know as written may never have been ingested.
            result.written.append(path)
            if known.file:
                result.updated += 1
            else:
                result.new += 1
        else:
            result.unchanged += 1
        if known.file and known.file != str(path):
            _drop_if_moved(Path(known.file), self._item_path(feed, key, legacy=True),
                           record["url"])
        known.url, known.file = link, str(path)
        self._seen(state, key, known, version)

    @staticmethod
    def _seen(state: FeedState, key: str, known: ItemState, version: str) -> None:
        """Remember an item handled in this version's pass, as the most recently seen."""
        known.done_in = version
        state.items.pop(key, None)
        state.items[key] = known

    def fetch_pages(self, urls: list[str]) -> FeedSyncReport:
        """Fetch single article pages (`articlebot fetch URL…`) into `<out_dir>/pages/`.

        Each page is one result (status ok or error, its kind named); robots.txt is
        respected and a page with no main text is skipped by name.
        """
        before = (self.fetcher.requests, self.fetcher.not_modified)
        results = []
        for url in urls:
            result = FeedResult(url, "ok")
            try:
                if not self.fetcher.allowed_by_robots(url):
                    raise FetchError("robots", "robots.txt disallows it")
                fetched = self.fetcher.get(url)
                page = self._page(fetched)
                if page is None:
                    raise FetchError("no text", "no main text found in the page")
                path = self.out_dir / "pages" / (
                    hashlib.sha256(url.encode()).hexdigest()[:16] + ".json")
                record = _article_record(page, url=fetched.url, source=page.source or (
                    urlsplit(fetched.url).hostname or ""))
                if _write_atomically(path, json.dumps(record, ensure_ascii=False, indent=1)):
                    result.written.append(path)
                    result.new += 1
                else:
                    result.unchanged += 1
            except FetchError as exc:
                result = FeedResult(url, "error", exc.kind, str(exc))
            results.append(result)
        return FeedSyncReport(results, requests=self.fetcher.requests - before[0],
                              not_modified=self.fetcher.not_modified - before[1])

    @staticmethod
    def _page(fetched: Fetched) -> ParsedArticle | None:
        """The page's article, or None when it is not HTML with a main text."""
        if fetched.status != 200:
            return None
        try:
            html = decode_html(fetched.body, fetched.charset)
        except ValueError:
            return None
        return _extract(html, fetched.url)

    @staticmethod
    def _record(feed: FeedSource, state: FeedState, entry: Any, page: ParsedArticle | None,
                link: str) -> dict[str, Any] | None:
        """The article as a JSON record, from the page, else from the feed item."""
        if page is None:
            content = _entry_content(entry)
            page = _extract(f"<html><body><article>{content}</article></body></html>", link)
        if page is None or not page.text.strip():
            return None
        title = " ".join(str(entry.get("title", "") or "").split()) or page.title
        authors = [str(a.get("name", "")) for a in entry.get("authors", []) if a.get("name")]
        return _article_record(
            page, title=title, url=link or page.url,
            source=feed.outlet or state.title or page.source,
            date=_entry_date(entry) or (page.published.isoformat() if page.published else None),
            authors=authors or list(page.authors),
            labels=list(dict.fromkeys([*feed.labels, *page.labels])),
        )
