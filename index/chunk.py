"""Sentence-aware chunking that keeps character offsets, bounded by the model's token limit."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import sentencex

from index.models import ChunkSpan, Span

# Counts tokens of many texts at once (without special tokens), e.g. Embedder.token_counts.
TokenCounter = Callable[[Sequence[str]], list[int]]
# Character offsets of each token of one text, e.g. Embedder.token_offsets.
TokenOffsets = Callable[[str], list[tuple[int, int]]]


# Abbreviations sentencex (1.0.32) ends a sentence at, found by probing it with common news
# abbreviations and by reading its cuts in the news corpus (`python -m bench.quality
# sentences`). Compared casefolded; "then-Sen." counts as "Sen.".
# Before a number: "approx. 61 percent", "est. 1921", "Vol. 2".
NUMBER_ABBREVIATIONS = frozenset({
    "approx", "est", "vol", "no", "nos", "avg", "ca", "fig", "figs", "ed", "eds", "tel", "pct",
    "misc", "max", "min", "vs", "cf", "pp", "ch", "sec", "art", "para", "ref", "nr",
})
# Before a name: "Gov. Kim Reynolds", "Ms. McDowell".
TITLE_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "gov", "sen", "rep", "gen", "lt", "col", "sgt", "capt",
    "cmdr", "adm", "maj", "supt", "insp", "det", "rev", "hon", "pres", "sens", "reps",
})
# Never the end of a sentence, whatever follows: "Tarantino vs. Everybody".
JOINING_ABBREVIATIONS = frozenset({"vs", "approx", "cf", "viz"})
_LAST_WORD = re.compile(r"(\w+)\.[\"'\u2019\u201d)\]]*\Z")
_FIRST_WORD = re.compile(r"[\"'\u2018\u201c(\[]*(\S+)")


def _continues(previous: str, following: str) -> bool:
    """True when a boundary between two pieces is no sentence end, only an abbreviation's dot.

    No sentence starts with a lower-case word ("was approx. the same"; links and domains
    aside), a title is followed by a name ("Gov. Kim Reynolds"), an abbreviation that counts
    by a number ("approx. 61 percent", "est. 1921"), and some never end one ("vs.").
    """
    last = _LAST_WORD.search(previous)
    first = _FIRST_WORD.match(following)
    if last is None or first is None:
        return False
    word, abbreviation = first.group(1), last.group(1).casefold()
    if abbreviation in JOINING_ABBREVIATIONS:
        return True
    if word[0].isdigit():
        return abbreviation in NUMBER_ABBREVIATIONS
    if word[0].isupper():
        return abbreviation in TITLE_ABBREVIATIONS
    looks_like_link = "://" in word or "." in word.rstrip(".,;:!?")
    return word.islower() and not looks_like_link


def split_sentences(text: str, language: str = "en") -> list[Span]:
    """Sentence spans of the text, trimmed of surrounding whitespace, in order.

    sentencex's boundaries, less those after an abbreviation (see `_continues`).
    """
    spans: list[Span] = []
    for boundary in sentencex.get_sentence_boundaries(language, text):
        start, end = boundary["start_index"], boundary["end_index"]
        piece = text[start:end]
        stripped = piece.strip()
        if not stripped:
            continue
        start += len(piece) - len(piece.lstrip())
        if (spans and "\n" not in text[spans[-1].end : start]  # a paragraph ends a sentence
                and _continues(text[spans[-1].start : spans[-1].end], stripped)):
            spans[-1] = Span(spans[-1].start, start + len(stripped))
        else:
            spans.append(Span(start, start + len(stripped)))
    return spans


def split_long_span(
    text: str, span: Span, max_tokens: int, token_offsets: TokenOffsets
) -> list[Span]:
    """Cut a sentence longer than the token budget at token boundaries into pieces that fit."""
    offsets = token_offsets(text[span.start : span.end])
    pieces: list[Span] = []
    for first in range(0, len(offsets), max_tokens):
        window = offsets[first : first + max_tokens]
        start = span.start + window[0][0]
        end = span.start + window[-1][1]
        pieces.append(Span(start, end))
    return pieces or [span]


def pack_chunks(
    sentences: Sequence[Span], token_counts: Sequence[int], max_tokens: int, overlap: int
) -> list[ChunkSpan]:
    """Pack consecutive sentences into chunks of at most max_tokens, sharing `overlap` sentences.

    Every sentence must already fit the budget on its own.
    """
    chunks: list[ChunkSpan] = []
    first = 0
    total = len(sentences)
    while first < total:
        last = first
        used = token_counts[first]
        while last + 1 < total and used + token_counts[last + 1] <= max_tokens:
            last += 1
            used += token_counts[last]
        members = tuple(sentences[first : last + 1])
        chunks.append(ChunkSpan(members[0].start, members[-1].end, members, used))
        if last + 1 >= total:
            break
        # Step back by the overlap, but always move forward so the loop ends.
        first = max(last + 1 - overlap, first + 1)
    return chunks


def chunk_text(
    text: str,
    *,
    max_tokens: int,
    overlap: int,
    count_tokens: TokenCounter,
    token_offsets: TokenOffsets,
) -> list[ChunkSpan]:
    """Split text into sentence-aligned chunks whose token count never exceeds max_tokens."""
    sentences = split_sentences(text)
    if not sentences:
        return []
    counts = count_tokens([text[s.start : s.end] for s in sentences])
    fitted: list[Span] = []
    fitted_counts: list[int] = []
    for span, count in zip(sentences, counts, strict=True):
        if count <= max_tokens:
            fitted.append(span)
            fitted_counts.append(count)
            continue
        pieces = split_long_span(text, span, max_tokens, token_offsets)
        fitted.extend(pieces)
        fitted_counts.extend(count_tokens([text[p.start : p.end] for p in pieces]))
    chunks = pack_chunks(fitted, fitted_counts, max_tokens, overlap)
    return _enforce_budget(text, chunks, max_tokens, count_tokens)


def _enforce_budget(
    text: str, chunks: list[ChunkSpan], max_tokens: int, count_tokens: TokenCounter
) -> list[ChunkSpan]:
    """Re-count each multi-sentence chunk as one text and split any that a tokenizer packs larger.

    Sums of sentence counts are exact for whitespace-splitting tokenizers (WordPiece);
    others may merge across a boundary, so the joined text is checked, never trusted.
    """
    multi = [i for i, c in enumerate(chunks) if len(c.sentences) > 1 or c.n_tokens == 0]
    if not multi:
        return chunks
    exact = count_tokens([text[chunks[i].start : chunks[i].end] for i in multi])
    fixed = list(chunks)
    for i, count in zip(reversed(multi), reversed(exact), strict=True):
        chunk = chunks[i]
        if count <= max_tokens:
            fixed[i] = ChunkSpan(chunk.start, chunk.end, chunk.sentences, count)
            continue
        if len(chunk.sentences) == 1:  # a lone sentence was already cut to fit
            fixed[i] = ChunkSpan(chunk.start, chunk.end, chunk.sentences, count)
            continue
        middle = len(chunk.sentences) // 2
        halves = [chunk.sentences[:middle], chunk.sentences[middle:]]
        replacement = []
        for half in halves:
            sub = ChunkSpan(half[0].start, half[-1].end, tuple(half), 0)
            replacement.extend(_enforce_budget(text, [sub], max_tokens, count_tokens))
        fixed[i : i + 1] = replacement
    return fixed
