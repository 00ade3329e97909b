"""Text normalisation shared by ingest, search and duplicate detection.

Two levels:

- `clean`: what is stored. Unicode NFC (canonically equal text becomes the same code points)
  and no invisible characters that carry no meaning in prose (zero-width space, soft hyphen,
  word joiner, BOM, bidirectional controls). Stored text is what quotes are sliced from, so
  it stays what a reader sees; nothing visible changes.
- `fold`: what is compared. `clean`, then NFKC (ligatures, full-width forms), every other
  format character removed, typographic quotes and apostrophes as ASCII, casefolded. Words,
  BM25, coverage and duplicate detection compare folded text.

`visible` says whether text holds anything a reader can see: a body or a title of only
invisible characters (zero-width, Hangul fillers, odd spaces) is empty, whatever `clean` kept.

The embedding model reads chunks and questions with ASCII quotes (`ascii_quotes`): a straight
or a curly apostrophe in a question must not move its vector.

The analyser — the one way text becomes index terms, shared by BM25, sentence scoring,
coverage, follow-ups and story grouping — follows the keyword index (SQLite FTS5's
`porter unicode61`; the PostgreSQL store's configuration splits the same way):

- `tokens`: folded text split at every character that is not a letter or a digit (underscore
  too), diacritics removed as unicode61 removes them;
- `STOP_WORDS`: words too common to help a match (dropped from questions, not from the index);
- `stem`: Porter's algorithm (M. F. Porter, "An algorithm for suffix stripping", 1980) through
  PyStemmer's Snowball build of it, the algorithm FTS5's `porter` tokenizer and our PostgreSQL
  dictionary (`snowball`, `LANGUAGE = porter`) use, so a term counts the same in the index and
  in scoring. Stems are memoised per word: a question stems the words of ~60 passages, and a
  dictionary look-up is ~20x cheaper than the stemmer.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections.abc import Sequence

import regex
import Stemmer

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


# A character a reader can see: not white space (Unicode's White_Space, NBSP and U+3000
# included), not a default-ignorable code point (Unicode's list of what renders as nothing:
# zero-width and format characters, Hangul fillers, variation selectors, tags), not a control,
# and not U+2800, the braille pattern blank that renders as a space and is used as one.
_VISIBLE = regex.compile(r"[^\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cc}\u2800]")


def visible(text: str) -> bool:
    """True when the text has a character a reader can see (`clean` keeps ZWJ, a text of
    only invisible characters is still empty to a reader)."""
    return _VISIBLE.search(text) is not None


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


# Letters and digits: `\w` less the underscore, as FTS5's unicode61 tokenizer splits.
TOKEN = re.compile(r"[^\W_]+")


# Combining diacritical marks (U+0300-U+036F), what unicode61's remove_diacritics drops from
# Latin letters; removed in C by a regex (a per-character test cost ~5 ms a question).
_COMBINING = re.compile("[\u0300-\u036f]")


def _without_diacritics(text: str) -> str:
    """Text without combining diacritics ("café" → "cafe"), as FTS5's unicode61 indexes it;
    recomposed afterwards, so scripts that NFD splits otherwise (Hangul) are unchanged."""
    decomposed = unicodedata.normalize("NFD", text)
    if not _COMBINING.search(decomposed):
        return text
    return unicodedata.normalize("NFC", _COMBINING.sub("", decomposed))


@functools.lru_cache(maxsize=8192)
def tokens(text: str) -> tuple[str, ...]:
    """The text's words as the keyword index reads them: folded (`fold`), without
    diacritics, split at everything but letters and digits; in order, repeats kept.

    Memoised like `fold` (a passage is tokenised for BM25 and again for sentence scoring);
    the result is a tuple so the cached value cannot be changed by a caller.
    """
    folded = fold(text)
    if not folded.isascii():
        folded = _without_diacritics(folded)
    return tuple(TOKEN.findall(folded))


# One list for questions, coverage and story grouping: function words, question words, and a
# few words that are in almost every news question ("week", "new").
STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in into
    is it its itself just me more most my myself new no nor not now of off on once only or other
    our ours out over own same she should so some such than that the their theirs them then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves week weeks"""
    .split()
)

_STEMMER = Stemmer.Stemmer("porter")
_STEMMER_LOCK = threading.Lock()  # a PyStemmer object is not safe to share between threads
_STEMS: dict[str, str] = {}
MAX_REMEMBERED_STEMS = 1 << 20  # ~100 MB at most; a news year has ~150k distinct words


def stem(token: str) -> str:
    """The Porter stem of one token from `tokens` ("voted", "voting", "votes" → "vote")."""
    stemmed = _STEMS.get(token)
    if stemmed is None:
        with _STEMMER_LOCK:
            stemmed = _STEMMER.stemWord(token)
        if len(_STEMS) >= MAX_REMEMBERED_STEMS:
            _STEMS.clear()
        _STEMS[token] = stemmed
    return stemmed


def stems(words: Sequence[str]) -> list[str]:
    """The stem of each token, in order: memo look-ups in bulk, the stemmer only for new words
    (BM25 stems ~100 distinct words of each of ~60 candidates a question)."""
    found = list(map(_STEMS.get, words))
    if None in found:
        found = [stemmed if stemmed is not None else stem(word)
                 for word, stemmed in zip(words, found, strict=True)]
    return found  # type: ignore[return-value]


def terms(text: str) -> list[str]:
    """The distinct tokens of a text that are not stop words, in order (a question's terms)."""
    return [token for token in dict.fromkeys(tokens(text)) if token not in STOP_WORDS]


def stem_set(text: str) -> frozenset[str]:
    """The stems of a text's tokens (what coverage and overlap compare)."""
    return frozenset(stems(list(set(tokens(text)))))
