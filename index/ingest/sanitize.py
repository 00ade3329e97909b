"""The one sanitiser every value passes on its way from the ingest layer into a store.

A store writes UTF-8 text (SQLite refuses a lone surrogate, PostgreSQL a NUL too), so nothing
it receives may hold either, whichever backend it is:

- text, titles, names, URLs (`store_text`): a lone surrogate — JSON's `"\\ud800"` decodes to
  one — becomes U+FFFD, as the decoders here write undecodable bytes; an escaped pair
  (`"\\ud83d\\ude00"` read as two halves) becomes the one character it encodes; NUL is dropped;
- paths and origins (`store_path`): a file name that is not UTF-8 comes from the OS with its
  bytes as surrogates (PEP 383's surrogateescape); they are stored as backslash escapes
  (`caf\\xe9.txt`), readable, and the same from one reindex to the next, so the file's
  articles are found again rather than added anew;
- dates (`sanitize`): a date outside the years an article can have is no date.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from datetime import date
from typing import TypeVar

from index.models import ParsedArticle, SkippedItem

# The publication years an article can plausibly have; a date outside them is a bad value.
MIN_YEAR, MAX_YEAR = 1800, 2200
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
Item = TypeVar("Item", ParsedArticle, SkippedItem)


def store_text(text: str) -> str:
    """The text with every lone surrogate as U+FFFD, surrogate pairs joined, NULs dropped."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    if _UNSTORABLE.search(text) is None:
        return text
    # UTF-16 is the one codec where two halves of a pair make their character back.
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return joined.replace("\x00", "")


def store_path(path: str) -> str:
    """A path or origin as stored: bytes the OS gave that are not UTF-8 as '\\xNN' escapes.

    Any other surrogate (not from the OS) is replaced as `store_text` does. Idempotent: an
    escaped path is plain ASCII there, so it is stored the same on every reindex.
    """
    if _UNSTORABLE.search(path) is None:
        return path
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:  # a surrogate surrogateescape never writes: not a name's byte
        return store_text(path)
    return store_text(raw.decode(sys.getfilesystemencoding(), "backslashreplace"))


def storable_date(day: date | None) -> date | None:
    """The date, or None when its year is outside MIN_YEAR..MAX_YEAR."""
    return day if day is not None and MIN_YEAR <= day.year <= MAX_YEAR else None


def sanitize(item: Item) -> Item:
    """The item with every value storable: `store_text` for text and names, `store_path`
    for its origin (and a skip's reason, which may quote a path), `storable_date`."""
    if isinstance(item, SkippedItem):
        origin, reason = store_path(item.origin), store_path(item.reason)
        if (origin, reason) == (item.origin, item.reason):
            return item
        return SkippedItem(origin, reason)
    fields = {
        "text": store_text(item.text),
        "origin": store_path(item.origin),
        "title": store_text(item.title),
        "source": store_text(item.source),
        "url": store_text(item.url),
        "published": storable_date(item.published),
        "authors": tuple(dict.fromkeys(filter(None, map(store_text, item.authors)))),
        "labels": tuple(dict.fromkeys(filter(None, map(store_text, item.labels)))),
    }
    if all(getattr(item, name) == value for name, value in fields.items()):
        return item
    return dataclasses.replace(item, **fields)
