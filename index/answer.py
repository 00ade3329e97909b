"""Choosing the sentences that answer a question, and deciding when nothing does."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from index.answertype import (
    AnswerType,
    EntityKind,
    answer_entity,
    answers_type,
    counted_noun,
    expected_type,
    new_entities,
)
from index.models import Confidence, Span
from index.text import stem, stem_set, tokens

if TYPE_CHECKING:
    from index.reading.base import Reader, ReaderCalibration


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


@dataclass(frozen=True, slots=True)
class QuestionAnalysis:
    """What sentence scoring needs to know about a question."""

    tokens: frozenset[str]  # the question's tokens (index.text.tokens), for "not in the question"
    wanted: AnswerType
    weights: Mapping[str, float]  # IDF weight of each question stem (`term_weights`)
    counted: str = ""  # what a "how many" question counts (`counted_noun`), else ''
    text: str = ""  # the question as asked, time words out (what a cross-encoder reads)

    @classmethod
    def of(cls, question: str, weights: Mapping[str, float]) -> QuestionAnalysis:
        """Analyse a question (as asked, time words out) with its stems' weights."""
        return cls(frozenset(tokens(question)), expected_type(question), dict(weights),
                   counted_noun(question), question)


# Words that make a sentence lean on the one before it ("He said...", "This was...").
LEANING_WORDS = frozenset(
    "he she it they his her its their this that these those there such which".split()
)
# A sentence shorter than this (characters) rarely says enough on its own: quoted with the one
# before it, as is a sentence that opens with a LEANING_WORD. A reading choice, not tuned: the
# longer quotes add 0.3 point to SQuAD's test-half quote_hit@1 (0.682 → 0.685), none on our set.
SHORT_SENTENCE_CHARS = 60


def stands_alone(sentence: str) -> bool:
    """Whether a sentence can be quoted without the one before it (long enough, and not
    opening with a word that points back: "He said...", "This was...")."""
    first = tokens(sentence)[:1]
    return len(sentence) >= SHORT_SENTENCE_CHARS and not (first and first[0] in LEANING_WORDS)


def quoted_span(
    sentence: SentenceCandidate, before: SentenceCandidate | None, question: QuestionAnalysis
) -> tuple[Span, Span | None]:
    """What to quote for a chosen sentence, and where the answer lies in it (pure).

    Returns the article offsets of the quote — the sentence, with `before` (the sentence before
    it in its chunk, None when it is quoted already or there is none) when the sentence does
    not stand alone — and the answer's offsets within the quote: the first entity of the kind
    the question asks for that the question lacks, or None.
    """
    start = sentence.span.start
    if before is not None and not stands_alone(sentence.text):
        start = before.span.start
    entity = answer_entity(sentence.text, question.wanted, question.tokens, question.counted)
    offset = sentence.span.start - start
    answer = None if entity is None else Span(offset + entity.start, offset + entity.end)
    return Span(start, sentence.span.end), answer


# Sentence features the ranker weighs, in the order of its coefficients.
FEATURES = (
    "passage_score",   # the chunk's fused (and time-boosted) score
    "passage_rank",    # the chunk's rank among the quoted ones (0 = best)
    "coverage",        # share of the question's IDF weight present (coverage_score)
    "type_match",      # an entity of the expected answer type that the question lacks
    "typed_question",  # the question expects an entity type at all (not why/how)
    "new_names",       # names the question lacks, capped at 3
    "new_numbers",     # numbers and amounts the question lacks, capped at 3
    "new_dates",       # dates the question lacks, capped at 3
    "opens_article",   # the article's first sentence (a news lede)
    "leans_back",      # starts with a word that points back (he, this, they...)
    "log_length",      # ln(characters)
    "neighbour_coverage",  # the best coverage of the sentences before and after it
    # Whether the question is restated anywhere: SQuAD-like questions reuse their sentence's
    # words and coverage finds the answer; news questions rarely do, and there the answer type
    # must. Relative to the question's best candidate, so one model serves both.
    "coverage_gap",    # the best coverage among the candidates minus this one's
    "type_match_unrestated",  # type_match × (1 − the best coverage)
    "best_coverage",   # the best coverage among the candidates
)


def sentence_features(
    candidates: Sequence[SentenceCandidate], question: QuestionAnalysis
) -> np.ndarray:
    """Features of each candidate sentence for the ranker: float64 array (n, len(FEATURES)).

    Neighbours are the candidates before and after in the same chunk (candidates come in
    article order within each chunk, as `sentence_candidates` makes them).
    """
    features = np.zeros((len(candidates), len(FEATURES)), dtype=np.float64)
    cover = [coverage_score(c.text, question.weights) for c in candidates]
    best = max(cover, default=0.0)
    typed = question.wanted is not AnswerType.OTHER
    for row, candidate in enumerate(candidates):
        found = new_entities(candidate.text, question.tokens)
        kinds = [entity.kind for entity in found]
        neighbours = [cover[i] for i in (row - 1, row + 1)
                      if 0 <= i < len(candidates) and candidates[i].chunk_id == candidate.chunk_id]
        first = tokens(candidate.text)[:1]
        type_match = float(any(answers_type(entity, question.wanted) for entity in found))
        features[row] = (
            candidate.chunk_score,
            candidate.chunk_rank,
            cover[row],
            type_match,
            float(typed),
            min(3, kinds.count(EntityKind.NAME)),
            min(3, kinds.count(EntityKind.NUMBER)),
            min(3, kinds.count(EntityKind.DATE)),
            float(candidate.span.start == 0),
            float(bool(first) and first[0] in LEANING_WORDS),
            math.log(max(len(candidate.text), 1)),
            max(neighbours, default=0.0),
            best - cover[row],
            type_match * (1.0 - best),
            best,
        )
    return features


def score_sentences(
    candidates: Sequence[SentenceCandidate],
    question: QuestionAnalysis,
    reader: Reader,
) -> list[ScoredSentence]:
    """Score sentences by how likely each holds the answer (the reader's probability), best
    first."""
    if not candidates:
        return []
    probabilities = reader.probabilities(question, candidates)
    scored = [ScoredSentence(c, float(p)) for c, p in zip(candidates, probabilities, strict=True)]
    scored.sort(key=lambda s: -s.score)
    return scored


def pick_quotes(
    scored: Sequence[ScoredSentence],
    max_quotes: int,
    *,
    min_ratio: float,
    group_of: Callable[[SentenceCandidate], tuple[str, str]] | None = None,
) -> list[ScoredSentence]:
    """The best sentences: at most max_quotes, no repeats, none below `min_ratio` × the best's
    score (the reader's `quote_min_ratio`).

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


def confidence(
    best_score: float, threshold: float, calibration: ReaderCalibration
) -> Confidence:
    """How sure an answer is from its answer score (`ReaderCalibration.answer_score`), the
    abstention threshold and the reader's margins."""
    if best_score < threshold:
        return Confidence.NONE
    if best_score >= threshold + calibration.high_margin:
        return Confidence.HIGH
    if best_score >= threshold + calibration.medium_margin:
        return Confidence.MEDIUM
    return Confidence.LOW
