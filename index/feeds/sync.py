"""Syncing feeds: new and changed items become article files, which ingest like any other.

Each item is written as one JSON article (title, text, url, source, date, authors, labels) to
`<feeds_dir>/<feed host>/<hash of the item id>.json`, atomically, and only when it changed; the
caller ingests the files written. Files are never deleted: an item that leaves its feed stays
in the collection (news does not vanish because a feed moved on), and `reindex --rebuild`
finds every article again in the folder.

Per feed, the state kept in the store (named value `feed:<url>`): the feed's ETag and
Last-Modified, when it was last fetched, how that went, and for each item seen its page's
validators and the file it went to. An unchanged feed costs one 304; when a feed changes,
each of its items' pages is asked for conditionally, so only new or edited pages are read.

The article text is the page's main text (trafilatura), else the feed item's own content when
the page cannot be fetched, is refused by robots.txt or has no main text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import xml.sax
from collections.abc import Callable
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
_SLUG = re.compile(r"[^a-z0-9.-]+")


@dataclass(slots=True)
class ItemState:
    """What is kept of an item seen: its page, the page's validators, the file written."""

    url: str = ""
    file: str = ""
    etag: str | None = None
    last_modified: str | None = None


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
    skipped: list[str] = field(default_factory=list)  # "item url: why"
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
        return (f"feeds: {len(self.feeds)} ({unchanged} unchanged, {errors} failed); items: "
                f"new {new}, updated {updated}; requests {self.requests} "
                f"({self.not_modified} not modified)")


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


def _entry_date(entry: Any) -> str | None:
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed:
            return date(parsed[0], parsed[1], parsed[2]).isoformat()
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


@dataclass
class FeedSyncer:
    """Syncs feeds into `out_dir` with one fetcher, keeping state in a StateStore."""

    fetcher: Fetcher
    state: StateStore
    out_dir: Path
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def sync(self, feeds: list[FeedSource]) -> FeedSyncReport:
        """Sync every feed (several at once); one bad feed never stops the others."""
        before = (self.fetcher.requests, self.fetcher.not_modified)
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
        if len(state.items) > MAX_ITEMS_KEPT:
            for key in list(state.items)[: len(state.items) - MAX_ITEMS_KEPT]:
                del state.items[key]
        self.state.set_value(feed_state_key(feed.url), state.to_json())
        return result

    def _sync(self, feed: FeedSource, state: FeedState) -> FeedResult:
        fetched = self.fetcher.get(feed.url, etag=state.etag, last_modified=state.last_modified)
        if fetched.status == 304:
            return FeedResult(feed.url, "unchanged")
        parsed = feedparser.parse(fetched.body, response_headers={
            "content-type": fetched.content_type or "application/xml"})
        problem = getattr(parsed, "bozo_exception", None)
        if not parsed.version and not parsed.entries:
            return FeedResult(feed.url, "error", "not a feed",
                              f"not a feed: no RSS or Atom in the response ({problem or 'empty'})")
        if isinstance(problem, xml.sax.SAXException):
            # Not well-formed: what feedparser's loose parser salvages may be cut or mixed up.
            return FeedResult(feed.url, "error", "unparsable", f"unparsable: {problem}"[:300])
        state.etag, state.last_modified = fetched.etag, fetched.last_modified
        state.title = " ".join(str(parsed.feed.get("title", "")).split())
        result = FeedResult(feed.url, "ok")
        for entry in parsed.entries:
            self._item(feed, state, entry, result)
        return result

    def _item(self, feed: FeedSource, state: FeedState, entry: Any, result: FeedResult) -> None:
        key = item_id(entry)
        known = state.items.get(key) or ItemState()
        link = str(entry.get("link", "") or "")
        page: ParsedArticle | None = None
        if link:
            try:
                if self.fetcher.allowed_by_robots(link):
                    fetched = self.fetcher.get(link, etag=known.etag,
                                               last_modified=known.last_modified)
                    if fetched.status == 304 and known.file:
                        result.unchanged += 1
                        return
                    page = self._page(fetched)
                    known.etag, known.last_modified = fetched.etag, fetched.last_modified
                    link = fetched.url
                else:
                    result.skipped.append(f"{link}: robots.txt disallows it; the feed's text used")
            except FetchError as exc:
                result.skipped.append(f"{link}: {exc}; the feed's text used")
        record = self._record(feed, state, entry, page, link)
        if record is None:
            result.skipped.append(f"{link or key}: no text in the page or the feed item")
            return
        path = self.out_dir / _SLUG.sub("-", (urlsplit(feed.url).hostname or "feed").lower()) / (
            hashlib.sha256(key.encode()).hexdigest()[:16] + ".json")
        changed = _write_atomically(path, json.dumps(record, ensure_ascii=False, indent=1))
        if changed:
            result.written.append(path)
            if known.file:
                result.updated += 1
            else:
                result.new += 1
        else:
            result.unchanged += 1
        known.url, known.file = link, str(path)
        state.items.pop(key, None)
        state.items[key] = known  # most recently seen last

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
