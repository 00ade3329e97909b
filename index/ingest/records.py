"""Turning one record's fields (JSON, CSV, front matter, HTML, plain text) into an article."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from dateutil import parser as date_parser

from index.ingest.ids import url_host
from index.ingest.sanitize import sanitize, storable_date
from index.models import ParsedArticle, SkippedItem
from index.text import clean, visible

log = logging.getLogger(__name__)

TEXT_FIELDS = ("text", "body", "content")
DATE_FIELDS = ("publish_date", "published", "date")
# A run of non-space characters this long is data (base64, minified code), not prose.
MAX_WORD_CHARS = 10_000

_LONG_WORD = re.compile(rf"\S{{{MAX_WORD_CHARS + 1},}}")
_NAME_SEPARATORS = re.compile(r"[,;]")
_EPOCH_DIGITS = re.compile(r"-?\d{9,}(\.\d+)?")
# Two unlikely defaults: a field that differs between the two parses was absent from the text.
_DEFAULT_A = datetime(2000, 1, 1)
_DEFAULT_B = datetime(2001, 2, 2)
# How much of an unreadable date value a note quotes.
NOTE_VALUE_CHARS = 40
# What spreadsheets, pandas and databases write for a missing value; as a field's whole value
# it means "no value", never a title, an outlet or a link (and never an id).
MISSING_VALUES = frozenset({
    "nan", "-nan", "na", "n/a", "#n/a", "none", "null", "nil", "undefined", "inf", "-inf",
    "+inf", "infinity", "-infinity", "+infinity", "-", "--", "–", "—", "?",
})


def clean_text(text: str) -> str:
    """Normalise newlines to '\\n' and Unicode as `index.text.clean` does, strip the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return clean(text).strip()


def not_prose_reason(text: str) -> str | None:
    """Why the text cannot be prose (a NUL or an endless 'word'), or None when it can be."""
    if "\x00" in text:
        return "text contains NUL characters (binary data)"
    long_word = _LONG_WORD.search(text)
    if long_word:
        return (
            f"has a {len(long_word.group()):,}-character run without spaces "
            f"(over {MAX_WORD_CHARS:,}): not prose"
        )
    return None


def _from_epoch(seconds: float) -> date | None:
    """The UTC date of an epoch timestamp, given in seconds or milliseconds."""
    if abs(seconds) > 1e11:  # beyond year 5138 in seconds: it must be milliseconds
        seconds /= 1000
    try:
        return storable_date(datetime.fromtimestamp(seconds, tz=UTC).date())
    except (OverflowError, OSError, ValueError):
        return None


def parse_date(value: object) -> date | None:
    """A publication date from a date, datetime, epoch number or any common date string.

    Needs at least a year and a month ('January 2023' is 2023-01-01); slashed numeric dates
    are read month first ('05/01/2023' is May 1). Anything unreadable, or out of the years an
    article can have (`storable_date`), gives None; no value raises.
    """
    try:
        return _parse_date(value)
    except (ValueError, ArithmeticError, TypeError, RecursionError):
        # A number too big for a float (a 400-digit integer), or dateutil failing on a
        # string in a way it does not document: no date, and the record still counts.
        return None


def _parse_date(value: object) -> date | None:
    """`parse_date` without its guard: may raise on values nobody foresaw."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return storable_date(value.date())
    if isinstance(value, date):
        return storable_date(value)
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if _EPOCH_DIGITS.fullmatch(text):
        return _from_epoch(float(text))
    first = date_parser.parse(text, default=_DEFAULT_A)
    second = date_parser.parse(text, default=_DEFAULT_B)
    if first.year != second.year or first.month != second.month:
        return None
    return storable_date(first.date())


def _published(value: Any, origin: str) -> date | None:
    """The record's date, or None with a note in the log naming the value it could not use."""
    day = parse_date(value)
    if day is None:
        try:
            shown = value if isinstance(value, str) else repr(value)
        except ValueError:  # an integer past Python's 4,300-digit limit for str()
            shown = f"(an {type(value).__name__} too long to show)"
        if len(shown) > NOTE_VALUE_CHARS:
            shown = f"{shown[:NOTE_VALUE_CHARS]}… ({len(shown):,} characters)"
        log.info("%s: date %s is unreadable or out of range; stored undated", origin, shown)
    return day


def is_missing(value: Any) -> bool:
    """True for None, a blank string, NaN/±Infinity and placeholders such as 'N/A' or 'null'."""
    if value is None:
        return True
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        text = value.strip()
        return not visible(text) or text.casefold() in MISSING_VALUES
    return False


def scalar_text(value: Any) -> str:
    """A string field's value, a number as text, or '' for anything else or a missing value."""
    if is_missing(value):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _one_line(value: Any) -> str:
    """A scalar field as one line of clean text (titles carry no layout); '' when nothing of
    it is visible."""
    line = " ".join(clean(scalar_text(value)).split())
    return line if visible(line) else ""


def _names(value: Any) -> tuple[str, ...]:
    """Names from a list, or from a string separated by commas or semicolons; deduplicated."""
    if isinstance(value, str):
        items: Iterable[Any] = _NAME_SEPARATORS.split(value)
    elif isinstance(value, list | tuple):
        items = (item.get("name") if isinstance(item, Mapping) else item for item in value)
    else:
        items = ()
    names = (_one_line(item) for item in items)
    return tuple(dict.fromkeys(name for name in names if name))


def _labels(value: Any) -> tuple[str, ...]:
    """Labels as lowercase names, deduplicated in order, so filters match whatever the case."""
    return tuple(dict.fromkeys(label.lower() for label in _names(value)))


def _first_present(fields: Mapping[str, Any], keys: Iterable[str]) -> tuple[str, Any] | None:
    """The first (key, value) among keys whose value is not missing (see `is_missing`)."""
    for key in keys:
        value = fields.get(key)
        if is_missing(value):
            continue
        return key, value
    return None


def make_article(record: Mapping[Any, Any], origin: str) -> ParsedArticle | SkippedItem:
    """Build an article from a record's fields, or say why the record cannot be one.

    Field names are matched case-insensitively. The body is the first non-blank of text, body,
    content; every other field is optional and a bad one is dropped, not fatal. A body or name
    with nothing visible (`index.text.visible`) is blank. Every value passes `sanitize` on the
    way out; a failure nobody foresaw costs this record (a SkippedItem), never the file.
    """
    try:
        return sanitize(_make_article(record, origin))
    except Exception as error:
        log.debug("reading the record %s failed", origin, exc_info=True)
        message = str(error).strip().split("\n")[0]
        return sanitize(SkippedItem(origin, f"cannot read this record: "
                                            f"{type(error).__name__}: {message}"))


def _make_article(record: Mapping[Any, Any], origin: str) -> ParsedArticle | SkippedItem:
    """`make_article` without its guard and sanitiser."""
    fields = {str(key).strip().lower(): value for key, value in record.items() if key is not None}
    found = _first_present(fields, TEXT_FIELDS)
    if found is None:
        if any(key in fields for key in TEXT_FIELDS):
            return SkippedItem(origin, "empty body")
        return SkippedItem(origin, "no text field (expected text, body or content)")
    key, body = found
    if not isinstance(body, str):
        return SkippedItem(origin, f"field '{key}' is not a string (got {type(body).__name__})")
    text = clean_text(body)
    if not visible(text):
        return SkippedItem(origin, "empty body")
    reason = not_prose_reason(text)
    if reason:
        return SkippedItem(origin, reason)
    url = scalar_text(fields.get("url"))
    date_field = _first_present(fields, DATE_FIELDS)
    return ParsedArticle(
        text=text,
        origin=origin,
        title=_one_line(fields.get("title")),
        source=_one_line(fields.get("source")) or url_host(url),
        url=url,
        published=_published(date_field[1], origin) if date_field else None,
        authors=_names(fields.get("authors") or fields.get("author")),
        labels=_labels(fields.get("labels") or fields.get("label")),
    )
