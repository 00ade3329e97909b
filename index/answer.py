"""Choosing the sentences that answer a question, and deciding when nothing does."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from index.models import Span
from index.text import fold

_WORD = re.compile(r"\w+", re.UNICODE)
# Score margins relative to the abstention threshold that name how sure an answer is.
HIGH_MARGIN = 0.20
MEDIUM_MARGIN = 0.08


@dataclass(frozen=True, slots=True)
class SentenceCandidate:
    """A sentence of a retrieved chunk, with what is needed to score it."""

    chunk_id: int
    chunk_rank: int
    chunk_score: float
    span: Span
    text: str


@dataclass(frozen=True, slots=True)
class ScoredSentence:
    """A sentence and its answer score."""

    candidate: SentenceCandidate
    score: float


STEM_SUFFIXES = ("ing", "ed", "es", "s")


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A light stem so 'elections' matches 'election' (the keyword index stems the same way)."""
    for suffix in STEM_SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    """The text's words, folded (`index.text.fold`: Unicode form, invisible characters and
    case do not matter), in order."""
    return _WORD.findall(fold(text))


# Words too common to help a keyword match; kept short on purpose (BM25's IDF does the rest).
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself yourselves week weeks""".split()
)


def query_terms(text: str) -> list[str]:
    """The distinct non-stop words of a text, casefolded, in order."""
    terms: list[str] = []
    for word in words(text):
        if word not in STOP_WORDS and word not in terms:
            terms.append(word)
    return terms


@functools.lru_cache(maxsize=256)
def stem_forms(stems: tuple[str, ...]) -> dict[str, str]:
    """Every word that stems to one of these stems, mapped to its stem.

    `stem` only ever strips one suffix, so the stem itself and the stem plus each suffix are
    all the candidates: counting these words in a text counts its stems exactly, without
    stemming every word of it (this is on the ask path, for every candidate passage). Cached:
    one question scores many passages and sentences with the same stems; do not mutate.
    """
    return {
        form: base
        for base in stems
        for form in (base, *(base + suffix for suffix in STEM_SUFFIXES))
        if stem(form) == base
    }


def term_weights(
    terms: Sequence[str], doc_counts: Mapping[str, int], n_docs: int
) -> dict[str, float]:
    """IDF weight of each query term (rare words count more)."""
    weights = {}
    for term in terms:
        df = doc_counts.get(term, 0)
        weights[stem(term)] = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
    return weights


def coverage_score(text: str, weights: Mapping[str, float]) -> float:
    """Share of the question's IDF weight whose terms the text contains (0..1)."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    found = set(words(text))
    present = {base for form, base in stem_forms(tuple(weights)).items() if form in found}
    return sum(weight for term, weight in weights.items() if term in present) / total


def score_sentences(
    candidates: Sequence[SentenceCandidate],
    weights: Mapping[str, float],
    *,
    lexical_weight: float = 0.5,
    rank_penalty: float = 0.02,
) -> list[ScoredSentence]:
    """Score sentences by their chunk's score plus how much of the question they cover."""
    scored = []
    for candidate in candidates:
        lexical = coverage_score(candidate.text, weights)
        score = (
            candidate.chunk_score
            + lexical_weight * lexical
            - rank_penalty * candidate.chunk_rank
        )
        scored.append(ScoredSentence(candidate, score))
    scored.sort(key=lambda s: -s.score)
    return scored


def pick_quotes(
    scored: Sequence[ScoredSentence],
    max_quotes: int,
    *,
    min_ratio: float = 0.85,
    group_of: Callable[[SentenceCandidate], tuple[str, str]] | None = None,
) -> list[ScoredSentence]:
    """The best sentences: at most max_quotes, no repeats, none far below the best.

    With `group_of` (sentence → (story id, article id)), a story is quoted from one article
    only: the same story from another outlet would repeat the first quote.
    """
    picked: list[ScoredSentence] = []
    seen_text: set[str] = set()
    story_article: dict[str, str] = {}
    for sentence in scored:
        if len(picked) >= max_quotes:
            break
        if picked and sentence.score < picked[0].score * min_ratio:
            break
        normalized = " ".join(sentence.candidate.text.casefold().split())
        if normalized in seen_text:
            continue
        if group_of is not None:
            story, article = group_of(sentence.candidate)
            if story_article.setdefault(story, article) != article:
                continue
        seen_text.add(normalized)
        picked.append(sentence)
    return picked


def confidence(best_score: float, threshold: float) -> str:
    """Name how sure an answer is from its best passage score."""
    if best_score < threshold:
        return "none"
    if best_score >= threshold + HIGH_MARGIN:
        return "high"
    if best_score >= threshold + MEDIUM_MARGIN:
        return "medium"
    return "low"
