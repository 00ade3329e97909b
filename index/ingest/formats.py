"""One parser per article format, each turning decoded text into articles and skipped items.

Whole-file parsers take the file's text; line parsers (JSONL, CSV) take numbered lines, so
big files stream. A record inside a file gets the origin 'path:N', N being the 1-based line
(JSONL, and CSV where it is the record's first line) or the record's position (JSON array).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import frontmatter
import trafilatura
import yaml

from index.ingest.records import TEXT_FIELDS, make_article, scalar_text
from index.models import ParsedArticle, SkippedItem

# trafilatura logs its own parse failures ("lxml parsing failed", "empty HTML tree") as ERROR;
# each comes back here as a page with no main text, which is named once with its file.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)

Item = ParsedArticle | SkippedItem
Line = tuple[int, str]  # (1-based line number, decoded line)
WholeFileParser = Callable[[str, str], Iterator[Item]]
LineParser = Callable[[Iterable[Line | SkippedItem], str], Iterator[Item]]

# A trailing line of one token like this is a label ('truenews'), not body text.
_LABEL_LINE = re.compile(r"[A-Za-z0-9_-]{1,30}")
# A first line longer than this is a paragraph, not a title.
MAX_TITLE_CHARS = 300
_ATX_HEADING = re.compile(r"#\s+(.+?)(?:\s+#+)?\s*")
# Large enough for any body under the default file limit; the csv module's 128 KiB is not.
_CSV_FIELD_LIMIT = 256 * 2**20
_CSV_DELIMITERS = (",", ";", "\t")


def _split_trailing_labels(body: str) -> tuple[str, tuple[str, ...]]:
    """Split label lines off the end of a body; a body that is only such lines keeps them."""
    lines = body.split("\n")
    end = len(lines)
    found: list[str] = []
    while end > 0:
        line = lines[end - 1].strip()
        if line and not _LABEL_LINE.fullmatch(line):
            break
        if line:
            found.append(line)
        end -= 1
    rest = "\n".join(lines[:end]).strip()
    if not rest:
        return body, ()
    return rest, tuple(reversed(found))


def parse_plain_text(text: str, origin: str) -> Iterator[Item]:
    """Plain text: the first non-empty line is the title, then the body, then label lines."""
    head, _, rest = text.strip().partition("\n")
    title = head.strip()
    if len(title) > MAX_TITLE_CHARS:
        title, rest = "", text
    body, labels = _split_trailing_labels(rest.strip())
    yield make_article({"title": title, "text": body, "labels": list(labels)}, origin)


def _drop_heading(content: str, title: str) -> tuple[str, str]:
    """Take the title from a leading '# heading' (when none is given) and drop that heading."""
    head, _, rest = content.strip().partition("\n")
    heading = _ATX_HEADING.fullmatch(head.strip())
    if heading and (not title or heading.group(1).strip() == title):
        return heading.group(1).strip(), rest
    return title, content


class _DatesAsTextLoader(yaml.SafeLoader):
    """YAML as SafeLoader reads it, but dates stay text for `parse_date` to read: a date that
    does not exist (2024-13-45, year 0) then leaves its article undated, as in every other
    format, instead of failing the whole front matter."""


_DatesAsTextLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _FrontMatter(frontmatter.YAMLHandler):
    """python-frontmatter's YAML handler with `_DatesAsTextLoader`."""

    def load(self, fm: str, **kwargs: object) -> Any:
        return yaml.load(fm, Loader=_DatesAsTextLoader)  # a SafeLoader: no Python objects


def parse_markdown(text: str, origin: str) -> Iterator[Item]:
    """Markdown with optional YAML front matter for the metadata; title may be the first '#'."""
    try:
        post = frontmatter.loads(text, handler=_FrontMatter())
    except (yaml.YAMLError, ValueError) as error:
        yield SkippedItem(origin, f"invalid front matter: {first_line(error)}")
        return
    metadata = post.metadata if isinstance(post.metadata, dict) else {}
    fields = {key: value for key, value in metadata.items() if key not in TEXT_FIELDS}
    title, body = _drop_heading(post.content, scalar_text(fields.get("title")))
    yield make_article({**fields, "title": title, "text": body}, origin)


def parse_html(text: str, origin: str) -> Iterator[Item]:
    """HTML: main text and metadata extracted offline with trafilatura."""
    document = trafilatura.bare_extraction(
        text, include_comments=False, with_metadata=True, include_tables=True
    )
    if document is None or not (document.text or "").strip():
        yield SkippedItem(origin, "no main text found in the HTML")
        return
    paragraphs = [line.strip() for line in document.text.split("\n") if line.strip()]
    title = (document.title or "").strip()
    if title and paragraphs and paragraphs[0] == title:
        paragraphs = paragraphs[1:]  # the headline repeated as the first block
    # One block per line in trafilatura's output; blank lines mark them as paragraphs here.
    record = {
        "title": title,
        "text": "\n\n".join(paragraphs),
        "url": document.url,
        "source": document.sitename,
        "date": document.date,
        "authors": (document.author or "").split(";"),
    }
    yield make_article(record, origin)


def _json_type(value: Any) -> str:
    """JSON's name for a decoded value's type."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def first_line(error: Exception) -> str:
    """An exception's message, cut to its first line."""
    return str(error).strip().split("\n")[0]


def parse_json(text: str, origin: str) -> Iterator[Item]:
    """JSON: one article object, or an array of them (origin 'path:N' for the N-th)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        yield SkippedItem(
            origin, f"invalid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        )
        return
    except (ValueError, RecursionError) as error:
        yield SkippedItem(origin, f"invalid JSON: {first_line(error) or 'nested too deeply'}")
        return
    if isinstance(value, dict):
        yield make_article(value, origin)
    elif isinstance(value, list):
        for number, record in enumerate(value, start=1):
            record_origin = f"{origin}:{number}"
            if isinstance(record, dict):
                yield make_article(record, record_origin)
            else:
                yield SkippedItem(record_origin, f"not a JSON object (got {_json_type(record)})")
    else:
        yield SkippedItem(
            origin, f"JSON must be an object or an array of objects (got {_json_type(value)})"
        )


def parse_jsonl(lines: Iterable[Line | SkippedItem], origin: str) -> Iterator[Item]:
    """JSON Lines: one article object a line; blank lines are ignored, bad lines skipped."""
    for line in lines:
        if isinstance(line, SkippedItem):
            yield line
            continue
        number, text = line
        text = text.strip()
        if not text:
            continue
        record_origin = f"{origin}:{number}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            yield SkippedItem(record_origin, f"invalid JSON: {error.msg} (column {error.colno})")
            continue
        except (ValueError, RecursionError) as error:
            reason = first_line(error) or "nested too deeply"
            yield SkippedItem(record_origin, f"invalid JSON: {reason}")
            continue
        if isinstance(value, dict):
            yield make_article(value, record_origin)
        else:
            yield SkippedItem(record_origin, f"not a JSON object (got {_json_type(value)})")


# A carriage return that ends a line by itself (classic Mac OS line endings), not one of CRLF.
_BARE_CR = re.compile(r"(?<=\r)(?!\n)")


class _LineFeed:
    """Decoded lines for csv.reader; keeps the last line number and sets unreadable lines aside.

    Lines come split at LF only; a line holding bare CRs is split at them too, as the csv
    module reads a file opened with newline="" (otherwise it refuses the CR inside a field).
    The lines handed out since `start_record` are kept, so a record found broken can give
    back all but its first line to be read again (`unread`).
    """

    def __init__(self, lines: Iterable[Line | SkippedItem]) -> None:
        self._lines = iter(lines)
        self._pending: deque[Line] = deque()
        self.record: list[Line] = []
        self.last = 0
        self.skipped: list[SkippedItem] = []

    def __iter__(self) -> _LineFeed:
        """The feed is its own iterator."""
        return self

    def __next__(self) -> str:
        """The next readable line's text."""
        if not self._pending:
            self._read_line()
        line = self._pending.popleft()
        self.last = line[0]
        self.record.append(line)
        return line[1]

    def _read_line(self) -> None:
        """Queue the next readable line (its pieces, when it holds bare CRs)."""
        for line in self._lines:
            if isinstance(line, SkippedItem):
                self.skipped.append(line)
                continue
            number, text = line
            pieces = [piece for piece in _BARE_CR.split(text) if piece] if "\r" in text else [text]
            self._pending.extend((number, piece) for piece in pieces)
            return
        raise StopIteration

    def start_record(self) -> int:
        """Forget the lines handed out so far; the number of the next record's first line."""
        self.record = []
        return self._pending[0][0] if self._pending else self.last + 1

    def unread(self, lines: list[Line]) -> None:
        """Hand these lines out again, before any line not yet read."""
        self._pending.extendleft(reversed(lines))

    def drain_skipped(self) -> list[SkippedItem]:
        """The lines set aside since the last call."""
        skipped, self.skipped = self.skipped, []
        return skipped


def _quote_left_open(record: list[Line], delimiter: str) -> int | None:
    """How many lines a quote left open made a record run on over, or None when it did not.

    csv.reader (not strict) lets a quote that is never closed swallow every later line into
    one field, to the end of the file or to the next quote, which then closes it: rows merged
    into one article's text under its title. A field quoted over several lines on purpose
    (paragraphs) reads the same with strict=True; a record strict reading refuses ('unexpected
    end of data', "',' expected after '\"'") did not close its quote where it should have.
    """
    if len(record) < 2:
        return None
    try:
        for _ in csv.reader((text for _, text in record), delimiter=delimiter, strict=True):
            pass
    except csv.Error:
        pass
    else:
        return None
    return len(record) - 1  # lines, or pieces of a line with classic Mac line endings


def _run_on(lines: int, first: int, last: int) -> str:
    """How a quote left open ran on, for messages."""
    where = f", to line {last}" if last > first else ""
    return f"a quote opened in this row is left open (it ran on over the next {lines:,} " \
           f"line{'s' if lines > 1 else ''}{where})"


def _delimiter(header_line: str) -> str:
    """The likeliest delimiter of a CSV file, judged from its header line."""
    return max(_CSV_DELIMITERS, key=header_line.count) if header_line.strip() else ","


def parse_csv(lines: Iterable[Line | SkippedItem], origin: str) -> Iterator[Item]:
    """CSV with a header row naming the fields (comma, semicolon or tab separated)."""
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    feed = _LineFeed(lines)
    first = next((line for line in feed if line.strip()), None)
    yield from feed.drain_skipped()
    if first is None:
        yield SkippedItem(origin, "empty file")
        return

    # The reader takes lines from the feed itself, which can hand out lines again after it
    # ran dry (a generator could not); the header line first.
    feed.unread([(feed.last, first)])
    delimiter = _delimiter(first)
    reader = csv.reader(feed, delimiter=delimiter)
    feed.start_record()
    try:
        header = [name.strip().lower() for name in next(reader)]
    except csv.Error as error:
        yield from feed.drain_skipped()
        yield SkippedItem(origin, f"CSV error in the header row: {error}")
        return
    run_on = _quote_left_open(feed.record, delimiter)
    if run_on:
        yield from feed.drain_skipped()
        run_on_text = _run_on(run_on, feed.record[0][0], feed.last)
        yield SkippedItem(origin, f"header row: {run_on_text}; no row can be told from the next")
        return
    if not any(name in TEXT_FIELDS for name in header):
        yield SkippedItem(origin, "no text, body or content column in the CSV header row")
        return
    while True:
        start = feed.start_record()
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            yield from feed.drain_skipped()
            yield SkippedItem(f"{origin}:{start}", f"CSV error: {error}")
            continue
        yield from feed.drain_skipped()
        run_on = _quote_left_open(feed.record, delimiter)
        if run_on:
            # Skip the line the quote opened on; the lines it swallowed are read again, so
            # the rows after it are kept (a later open quote costs its own row in turn).
            run_on_text = _run_on(run_on, start, feed.last)
            yield SkippedItem(f"{origin}:{start}", f"{run_on_text}; the row is skipped and "
                                                   "those lines read as rows")
            feed.unread(feed.record[1:])
            continue
        if row:
            yield make_article(dict(zip(header, row, strict=False)), f"{origin}:{start}")
    yield from feed.drain_skipped()


WHOLE_FILE_PARSERS: dict[str, WholeFileParser] = {
    ".txt": parse_plain_text,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
    ".json": parse_json,
}
LINE_PARSERS: dict[str, LineParser] = {
    ".jsonl": parse_jsonl,
    ".csv": parse_csv,
}
