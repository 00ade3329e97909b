"""Walking files and folders safely and reading each file, by format, into articles."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import logging
import re
import stat
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import BinaryIO

import charset_normalizer
from w3lib.encoding import html_body_declared_encoding

from index.ingest.formats import LINE_PARSERS, WHOLE_FILE_PARSERS, Item, Line, first_line
from index.ingest.records import clean_text
from index.ingest.sanitize import sanitize
from index.models import SkippedItem
from index.text import visible

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50 * 2**20
# Every readable file name ending; each format may also be gzip-compressed ('.jsonl.gz').
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(
    suffix + compression
    for compression in ("", ".gz")
    for suffix in (*WHOLE_FILE_PARSERS, *LINE_PARSERS)
)
# How much of a file's start is inspected for binary content.
SNIFF_BYTES = 8192
# Where an HTML page's <meta charset> or XML declaration must be (the HTML standard's prescan
# reads 1,024 bytes; some pages put a long <head> first).
DECLARATION_BYTES = 4096
HTML = frozenset({".html", ".htm"})
# Bad records named one by one per file; beyond this they are counted in one more item.
MAX_SKIPPED_PER_FILE = 20
_CONTROL_CHARS = re.compile(r"[\x01-\x08\x0e-\x1a\x1c-\x1f\x7f]")
# Share of control characters above which decoded text is taken for binary data.
_MAX_CONTROL_SHARE = 0.01


class _Unreadable(ValueError):
    """A file that cannot be read as text; the message is the reason shown to the user."""


@dataclass(slots=True)
class _Walk:
    """What one `iter_articles` call needs along its walk."""

    max_bytes: int
    roots: tuple[Path, ...] | None
    seen: set[Path] = field(default_factory=set)


def _megabytes(size: int) -> str:
    """A byte count as a short 'N MB' for messages."""
    return f"{size / 2**20:.3g} MB"


def _uncompressed_over(limit: int) -> _Unreadable:
    """The error for a compressed file that holds more than `limit` bytes."""
    return _Unreadable(f"uncompressed size is over the {_megabytes(limit)} limit ({limit:,} bytes)")


def _over_limit(size: int, limit: int) -> str:
    """'file is 52,428,801 bytes, over the 50 MB limit': exact, so a few bytes over shows."""
    return f"{size:,} bytes, over the {_megabytes(limit)} limit ({limit:,} bytes)"


def _format_of(path: Path) -> tuple[str, bool]:
    """The format suffix of a file name (lowercase, '.gz' removed) and whether it is gzipped."""
    name = path.name.lower()
    compressed = name.endswith(".gz")
    return PurePath(name.removesuffix(".gz") if compressed else name).suffix, compressed


def _open(path: Path, compressed: bool) -> BinaryIO:
    """The file's bytes, decompressed on the fly when it is gzipped."""
    return gzip.open(path, "rb") if compressed else path.open("rb")


def _check_start(head: bytes) -> None:
    """Refuse data whose first bytes show it is not 8-bit text."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _Unreadable("UTF-16 text is not supported: save the file as UTF-8")
    if b"\x00" in head[:SNIFF_BYTES]:
        raise _Unreadable("binary file (contains NUL bytes)")


def guess_encoding(data: bytes) -> str:
    """The encoding of text that is not UTF-8 and declares none (a Python codec name).

    cp1252 (Western European, what most such files are) whenever charset-normalizer finds it
    plausible, else charset-normalizer's best guess (cp1251 for Russian, say). Its own ranking
    is not used first: on short Western samples it picked cp775 for French ('Café' read as
    'Cafķ'). The cost: undeclared Central European text (iso-8859-2) that also decodes
    plausibly as cp1252 is read as cp1252. Raises _Unreadable when no encoding gives text.
    """
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        raise _Unreadable("not text in any known encoding")
    if any("cp1252" in match.could_be_from_charset for match in matches):
        return "cp1252"
    return best.encoding


def decode_html(data: bytes, charset: str | None = None) -> str:
    """A web page's text: the charset the server sent, else the one the page declares
    (<meta charset>, XML declaration), else UTF-8, else a guess. Raises ValueError (a subclass)
    when the bytes are binary or decode to no text."""
    declared = charset or html_body_declared_encoding(data[:DECLARATION_BYTES])
    return clean_text(_decode_text(data, declared))


def _decode_text(data: bytes, declared: str | None = None) -> str:
    """Decode a whole file: a BOM, else the charset it declares, else UTF-8, else a guess.

    Raises _Unreadable for binary data and bytes that decode to no text.
    """
    _check_start(data)
    text: str | None = None
    encodings = ["utf-8-sig"] if data.startswith(codecs.BOM_UTF8) else [declared, "utf-8"]
    for encoding in encodings:
        if encoding is None:
            continue
        try:
            text = data.decode(encoding)
            break
        except (UnicodeDecodeError, LookupError):
            continue
    if text is None:
        text = data.decode(guess_encoding(data), errors="replace")
    sample = text[:SNIFF_BYTES]
    if len(_CONTROL_CHARS.findall(sample)) > _MAX_CONTROL_SHARE * len(sample):
        raise _Unreadable("binary file (control characters)")
    return text


def _numbered_lines(stream: BinaryIO, origin: str, limit: int) -> Iterator[Line | SkippedItem]:
    """Decoded lines with their 1-based numbers; a line over `limit` bytes is skipped unread.

    Lines are UTF-8; the first line that is not fixes the file's other encoding (guessed
    from that line), so a legacy-encoded file is guessed once, not line by line.
    """
    number = 0
    fallback: str | None = None
    while raw := stream.readline(limit + 1):
        number += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            # Consume the rest of the line in bounded pieces, never holding it whole.
            while (rest := stream.readline(2**20)) and not rest.endswith(b"\n"):
                pass
            yield SkippedItem(f"{origin}:{number}", f"line is over the {_megabytes(limit)} limit")
            continue
        try:
            yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            continue
        except UnicodeDecodeError:
            pass
        try:
            fallback = fallback or guess_encoding(raw)
            yield number, raw.decode(fallback, errors="replace")
        except _Unreadable as problem:
            yield SkippedItem(f"{origin}:{number}", str(problem))


def _read_whole(path: Path, compressed: bool, suffix: str, limit: int) -> Iterator[Item]:
    """Read a file into memory (at most `limit` bytes uncompressed) and parse it."""
    with _open(path, compressed) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise _uncompressed_over(limit)
    declared = None
    if suffix in HTML:
        declared = html_body_declared_encoding(data[:DECLARATION_BYTES])
    text = clean_text(_decode_text(data, declared))
    if not visible(text):
        raise _Unreadable("empty file")
    yield from WHOLE_FILE_PARSERS[suffix](text, str(path))


def _check_uncompressed_size(path: Path, limit: int) -> None:
    """Raise _Unreadable when a gzipped file holds more than `limit` bytes (a gzip bomb).

    Reads the whole stream once in 1 MiB blocks, holding none of it: the check must come
    before the first record, so an oversized file adds nothing rather than its first part.
    """
    total = 0
    with gzip.open(path, "rb") as stream, contextlib.suppress(EOFError, zlib.error):
        # A truncated file is not refused here: its good records before the cut still count,
        # and the reading pass reports the damage where it meets it.
        while block := stream.read(2**20):
            total += len(block)
            if total > limit:
                raise _uncompressed_over(limit)


def _read_streamed(path: Path, compressed: bool, suffix: str, limit: int) -> Iterator[Item]:
    """Parse a file line by line, so files of any length stream in bounded memory."""
    if compressed:
        _check_uncompressed_size(path, limit)
    with _open(path, compressed) as stream:
        head = stream.read(SNIFF_BYTES)
        if not head:
            raise _Unreadable("empty file")
        _check_start(head)
        stream.seek(0)
        yield from LINE_PARSERS[suffix](_numbered_lines(stream, str(path), limit), str(path))


def _read_file(path: Path, size: int, max_bytes: int) -> Iterator[Item]:
    """Articles from one regular file, or skipped items saying what was wrong with it."""
    origin = str(path)
    suffix, compressed = _format_of(path)
    if suffix in LINE_PARSERS:
        read = _read_streamed
    elif suffix in WHOLE_FILE_PARSERS:
        read = _read_whole
    else:
        shown = suffix + (".gz" if compressed else "")
        yield SkippedItem(origin, f"unsupported file type {shown or '(no extension)'}")
        return
    if size == 0:
        yield SkippedItem(origin, "empty file")
        return
    if size > max_bytes:
        yield SkippedItem(origin, f"file is {_over_limit(size, max_bytes)}")
        return
    yielded = False
    skipped = 0
    try:
        for item in read(path, compressed, suffix, max_bytes):
            yielded = True
            if isinstance(item, SkippedItem):
                skipped += 1
                if skipped > MAX_SKIPPED_PER_FILE:
                    continue  # counted, not kept: a file of a million bad lines stays cheap
            yield item
        if skipped > MAX_SKIPPED_PER_FILE:
            yield SkippedItem(
                origin, f"{skipped - MAX_SKIPPED_PER_FILE:,} more bad records not listed")
    except _Unreadable as problem:
        yield SkippedItem(origin, str(problem))
    except PermissionError:
        yield SkippedItem(origin, "cannot read: permission denied")
    except gzip.BadGzipFile:
        yield SkippedItem(origin, "not a valid gzip file")
    except (EOFError, zlib.error):
        yield SkippedItem(origin, "gzip data is truncated or corrupt; the rest was not read")
    except OSError as error:
        yield SkippedItem(origin, f"cannot read: {error.strerror or error}")
    except Exception as error:
        # A parser's own failure on input nobody foresaw (a csv.Error out of a header row did
        # once) costs that file, never the ingest; the traceback is logged at DEBUG.
        log.debug("parsing %s failed", origin, exc_info=True)
        yield SkippedItem(origin, f"cannot parse: {type(error).__name__}: {first_line(error)}; "
                                  "the rest of the file was not read")
    else:
        if not yielded:
            yield SkippedItem(origin, "no articles in the file")


def _walk(path: Path, walk: _Walk, ancestors: frozenset[Path]) -> Iterator[Item]:
    """Articles under one path: a file, or a folder walked recursively in name order."""
    origin = str(path)
    try:
        status = path.stat()
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        broken = path.is_symlink()
        yield SkippedItem(origin, "broken symbolic link" if broken else "no such file or folder")
        return
    except PermissionError:
        yield SkippedItem(origin, "cannot access: permission denied")
        return
    except (OSError, RuntimeError) as error:
        yield SkippedItem(origin, f"cannot access: {getattr(error, 'strerror', None) or error}")
        return
    if walk.roots is not None and not any(resolved.is_relative_to(root) for root in walk.roots):
        yield SkippedItem(origin, f"outside the allowed folders (resolves to {resolved})")
        return
    if stat.S_ISDIR(status.st_mode):
        if resolved in ancestors:
            yield SkippedItem(origin, "symbolic link loop")
            return
        try:
            entries = sorted(path.iterdir(), key=lambda entry: entry.name)
        except OSError as error:
            yield SkippedItem(origin, f"cannot list folder: {error.strerror or error}")
            return
        for entry in entries:
            if not entry.name.startswith("."):
                yield from _walk(entry, walk, ancestors | {resolved})
    elif stat.S_ISREG(status.st_mode):
        if resolved not in walk.seen:  # reached twice (overlapping paths, links): read once
            walk.seen.add(resolved)
            yield from _read_file(path, status.st_size, walk.max_bytes)
    else:
        yield SkippedItem(origin, "not a regular file")


def iter_articles(
    paths: Sequence[Path],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allowed_roots: Sequence[Path] | None = None,
) -> Iterator[Item]:
    """Every article in these files and folders, and a SkippedItem for each bad file or record.

    Folders are walked recursively in name order, hidden entries ('.name') ignored; the format
    comes from the extension (see SUPPORTED_SUFFIXES). Files over `max_bytes` on disk are
    skipped unread; JSONL and CSV stream, with `max_bytes` as the limit per line, so big
    compressed corpora read fine. With `allowed_roots`, each path is resolved (links followed)
    and refused when it lies outside all of them. Bad input never raises.

    Every item passes `sanitize`: its values are storable in any store, and a file name that is
    not UTF-8 reads as the same escaped origin ('caf\\xe9.txt') on every run.
    """
    roots = None if allowed_roots is None else tuple(Path(root).resolve() for root in allowed_roots)
    walk = _Walk(max_bytes=max_bytes, roots=roots)
    for path in paths:
        for item in _walk(Path(path), walk, frozenset()):
            yield sanitize(item)
