"""Text normalisation shared by ingest, search and duplicate detection.

Two levels:

- `clean`: what is stored. Unicode NFC (canonically equal text becomes the same code points)
  and no invisible characters that carry no meaning in prose (zero-width space, soft hyphen,
  word joiner, BOM, bidirectional controls). Stored text is what quotes are sliced from, so
  it stays what a reader sees; nothing visible changes.
- `fold`: what is compared. `clean`, then NFKC (ligatures, full-width forms), every other
  format character removed, typographic quotes and apostrophes as ASCII, casefolded. Words,
  BM25, coverage and duplicate detection compare folded text.

The embedding model reads chunks and questions with ASCII quotes (`ascii_quotes`): a straight
or a curly apostrophe in a question must not move its vector.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Bidirectional controls: embeddings and overrides (U+202A-U+202E), isolates (U+2066-U+2069)
# and the LRM, RLM and ALM marks. Any of them reorders the text after it, so a title could make
# "exe.gpj" read "jpg.exe". They are dropped rather than isolated: a dropped control cannot be
# closed early by another, and Unicode's bidi algorithm still shows right-to-left scripts in
# their order without them.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_BIDI_CONTROLS = re.compile(f"[{_BIDI}]")
# Invisible characters that never change what prose says. ZWJ and ZWNJ are kept in stored text:
# they shape Indic and Persian script and emoji sequences.
_INVISIBLE = re.compile(f"[\u00ad\u180e\u200b\u2060-\u2064\ufeff{_BIDI}]")
_QUOTE_CHARS = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
}


def strip_bidi(text: str) -> str:
    """Text without bidirectional controls (everything the bot renders goes through it)."""
    return _BIDI_CONTROLS.sub("", text)


def clean(text: str) -> str:
    """The text in NFC without meaningless invisible characters (see the module docstring)."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFC", text))


def ascii_quotes(text: str) -> str:
    """Typographic quotes and apostrophes as ASCII ones (the model sees "O'Dowd's" whichever
    way a question or an article wrote it)."""
    if text.isascii():
        return text
    for quote in set(text).intersection(_QUOTE_CHARS):  # in C: a translate table is 5x slower
        text = text.replace(quote, _QUOTE_CHARS[quote])
    return text


@functools.cache
def _format_characters() -> frozenset[str]:
    """Every format character (category Cf) this Python's Unicode tables know.

    They all lie below U+30000 or in the tag block U+E0000-U+E0FFF; scanning those takes
    ~15 ms, so it happens at the first text that needs it, not at every process start.
    """
    ranges = (range(0x30000), range(0xE0000, 0xE1000))
    return frozenset(chr(cp) for block in ranges for cp in block
                     if unicodedata.category(chr(cp)) == "Cf")



@functools.lru_cache(maxsize=8192)
def fold(text: str) -> str:
    """The text as compared: NFKC, no format characters, ASCII quotes, casefolded.

    Memoised: a question folds the same passages for BM25, sentence scores and coverage.
    """
    normal = unicodedata.normalize("NFKC", text)
    if not normal.isascii():
        # Set operations and str.replace run in C: a regex class of every format character
        # cost ~120 µs a passage, ten times this.
        format_characters = _format_characters()
        if not format_characters.isdisjoint(normal):
            normal = "".join(ch for ch in normal if ch not in format_characters)
        normal = ascii_quotes(normal)
    return normal.casefold()
