"""The feeds file: one feed a line, with an optional outlet name and labels.

    # comments and blank lines are ignored
    https://example.com/news/rss
    https://example.org/atom.xml | Example Org | politics, europe

The outlet names the articles' source (default: the feed's own title); the labels are added to
every article of the feed (lower-cased, as ingest stores labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


class FeedListError(ValueError):
    """The feeds file cannot be read or has a bad line; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class FeedSource:
    """A feed to follow."""

    url: str
    outlet: str = ""
    labels: tuple[str, ...] = ()


def parse_feed_line(line: str) -> FeedSource | None:
    """One line of the feeds file; None for a comment or blank line. Raises FeedListError."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    url, _, rest = (part.strip() for part in text.partition("|"))
    outlet, _, labels = (part.strip() for part in rest.partition("|"))
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:  # 'http://[::1/feed': a bracket left open, a port out of range
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise FeedListError(f"not an http(s) URL: {url[:100]!r}")
    names = tuple(dict.fromkeys(
        label.strip().lower() for label in labels.split(",") if label.strip()))
    return FeedSource(url=url, outlet=" ".join(outlet.split()), labels=names)


def read_feed_list(path: Path) -> list[FeedSource]:
    """Every feed of the file, in order, each URL once. Raises FeedListError."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FeedListError(f"cannot read the feeds file {path}: {exc}") from exc
    feeds: dict[str, FeedSource] = {}
    for number, line in enumerate(lines, start=1):
        try:
            feed = parse_feed_line(line)
        except FeedListError as exc:
            raise FeedListError(f"{path}:{number}: {exc}") from None
        if feed is not None:
            feeds.setdefault(feed.url, feed)
    return list(feeds.values())
