"""Choosing the sentences that answer a question, and deciding when nothing does."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from index.models import Span
from index.text import stem, stem_set

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


def term_weights(
    terms: Sequence[str], doc_counts: Mapping[str, int], n_docs: int
) -> dict[str, float]:
    """IDF weight of each query term's stem (rare words count more): BM25's IDF,
    log(1 + (N − df + 0.5) / (df + 0.5)) (Robertson and Zaragoza, "The Probabilistic
    Relevance Framework: BM25 and Beyond", 2009)."""
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
    present = stem_set(text)
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
