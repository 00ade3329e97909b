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

import re
import unicodedata

# Invisible characters that never change what prose says. ZWJ and ZWNJ are kept in stored text:
# they shape Indic and Persian script and emoji sequences.
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_QUOTES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
})


def clean(text: str) -> str:
    """The text in NFC without meaningless invisible characters (see the module docstring)."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFC", text))


def ascii_quotes(text: str) -> str:
    """Typographic quotes and apostrophes as ASCII ones (the model sees "O'Dowd's" whichever
    way a question or an article wrote it)."""
    return text.translate(_QUOTES)


def fold(text: str) -> str:
    """The text as compared: NFKC, no format characters, ASCII quotes, casefolded."""
    normal = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
    if not normal.isascii():
        normal = "".join(ch for ch in normal if unicodedata.category(ch) != "Cf")
    return ascii_quotes(normal).casefold()
