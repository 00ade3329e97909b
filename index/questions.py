"""The question pipeline: period, hybrid retrieval, fusion, time boosts, caps, quotes, caveats.

Pure of storage details: everything is read from a `Snapshot`, and the result is facts
(`Answer`, with `NotAnswered`/`Caveat` reasons); the CLI and the bot word them for people.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from index import answer as answering
from index import followup
from index import text as analysis
from index.answertype import unmentioned_name
from index.config import Settings
from index.embedding import Embedder
from index.models import (
    FILTER_NAMES,
    Answer,
    ArticleHit,
    ArticleInfo,
    Caveat,
    Confidence,
    NotAnswered,
    OutsideFilters,
    Quote,
    SearchFilters,
)
from index.reading import Reader, reader_for
from index.retrieve import (
    ScoredChunk,
    article_ranking,
    boost_by_time,
    cap_per_article,
    hybrid_search,
)
from index.store import ChunkRow, KeywordStatistics, Snapshot
from index.timeparse import parse_question_time, recency_weight

QUOTED_CHUNKS = 5  # the best chunks after the per-article cap whose sentences may be quoted


def answer_question(
    snapshot: Snapshot,
    embedder: Embedder,
    settings: Settings,
    question: str,
    filters: SearchFilters,
    as_of: date,
    context: followup.Conversation | None = None,
    observe: SentenceObserver | None = None,
) -> Answer:
    """Answer with verbatim quotes, or abstain when nothing is relevant enough.

    Time words in the question ("last week", "in March") become a period relative to `as_of`
    that lifts passages published in it; they are left out of the text used for retrieval.
    With `context` (a follow-up in a conversation, index.followup), a question that leans on
    it borrows the earlier questions' key terms, and the articles quoted before are drawn in
    and preferred. `observe`, when given, sees every candidate sentence with its ranker
    features (how bench/answers.py trains the sentence ranker).
    """
    started = time.perf_counter()
    clean = " ".join(question.split())
    parsed = parse_question_time(clean, as_of) if settings.time_handling else None
    window = parsed.window if parsed else None
    text = parsed.text if parsed and window is not None else clean
    period = (window.since, window.until) if window and (window.since or window.until) else None
    period_filters = narrow(filters, period)
    base = Answer(
        question=question, quotes=(), results=(), answered=False, confidence=Confidence.NONE,
        coverage=snapshot.coverage(period_filters), filters=filters,
        collection=snapshot.coverage(),
        period_since=period[0] if period else None,
        period_until=period[1] if period else None,
        period_phrase=window.phrase if window else "",
    )
    if not any(ch.isalnum() for ch in text):
        return replace(base, reason=NotAnswered.NO_WORDS, elapsed_ms=_ms(started))
    query = Query.of(snapshot, embedder, text, followup.borrowed_terms(text, context))
    ranked, rows = retrieve(snapshot, query, settings,
                            (filters, period_filters) if period is not None else (filters,))
    ranked, rows = followup.search_in_context(
        snapshot, query.vector, query.terms, query.statistics, ranked, rows, context,
        filters=filters, bm25_weight=settings.bm25_weight,
    )
    ranked = boost_by_time(
        ranked,
        {chunk_id: row.published for chunk_id, row in rows.items()},
        window=period,
        window_boost=settings.time_window_boost,
        recency=lambda day: recency_weight(
            day, as_of, half_life_days=settings.recency_half_life_days
        ),
        recency_boost=settings.recency_boost if settings.time_handling else 0.0,
    )
    article_of = {chunk_id: row.article_key for chunk_id, row in rows.items()}
    capped = cap_per_article(ranked, article_of, settings.max_chunks_per_article)
    ranking = article_ranking(capped, article_of)[: settings.results]
    asked = query.analysis()
    if not ranking:
        reason, outside = why_unanswered(snapshot, query, settings, filters, asked)
        return replace(base, reason=reason, outside=outside, elapsed_ms=_ms(started))
    infos = snapshot.articles([key for key, _ in ranking])
    results = tuple(
        ArticleHit(infos[key], round(chunk.score, 4), chunk.chunk_id, rows[chunk.chunk_id].text,
                   relevant=chunk.dense >= settings.min_score)
        for key, chunk in ranking
    )
    # Retrieval still ran, so the articles nearest to the question are listed.
    unmentioned = unmentioned_name(
        text, lambda words: snapshot.keyword_statistics(words).doc_counts)
    if unmentioned:
        return replace(base, results=results, reason=NotAnswered.NOT_MENTIONED,
                       unmentioned=unmentioned, elapsed_ms=_ms(started))
    top = capped[:QUOTED_CHUNKS]
    reading = read(snapshot, asked, top, rows, settings, observe=observe)
    # After the best sentence, quotes come only from its chunk and from chunks relevant on
    # their own (min_score): a sentence the ranker likes in an unrelated passage is not
    # offered as a further answer.
    quotable = {c.chunk_id for c in top if c.dense >= settings.min_score}
    if reading.scored:
        quotable.add(reading.scored[0].candidate.chunk_id)
    quotes = (quotes_for(snapshot, asked, reading.candidates,
                         [s for s in reading.scored if s.candidate.chunk_id in quotable], rows,
                         settings.max_quotes, reader_for(settings).calibration.quote_min_ratio)
              if reading.confidence is not Confidence.NONE else [])
    if not quotes:
        reason, outside = why_unanswered(snapshot, query, settings, filters, asked)
        return replace(base, results=results, reason=reason, outside=outside,
                       elapsed_ms=_ms(started))
    days = [q.article.published for q in quotes if q.article.published]
    newest = max(days) if days else None
    return replace(
        base, quotes=tuple(quotes), results=answer_first(results, quotes), answered=True,
        confidence=reading.confidence,
        caveat=caveat_of(days, period, as_of, settings.stale_after_days), newest=newest,
        elapsed_ms=_ms(started),
    )


def answer_first(results: Sequence[ArticleHit], quotes: Sequence[Quote]) -> tuple[ArticleHit, ...]:
    """The ranking with the article of the reader's best quote first, the rest in their order.

    A passage whose sentence answers makes a better first article than one that only matches
    the question's words: with the ensemble reader, SQuAD v1.1 dev recall@1 0.811 → 0.831
    and MRR@10 0.875 → 0.887 (all 10,570 questions; docs/quality.md, "A reader of our own").
    """
    if not quotes:
        return tuple(results)
    best = max(quotes, key=lambda quote: quote.score).article.id
    return tuple(sorted(results, key=lambda hit: hit.article.id != best))  # stable


def why_unanswered(
    snapshot: Snapshot,
    query: Query,
    settings: Settings,
    filters: SearchFilters,
    asked: answering.QuestionAnalysis,
) -> tuple[NotAnswered, OutsideFilters | None]:
    """Why a question abstained: FILTERED when its filters left out articles that may answer.

    Without filters, NOTHING_RELEVANT at no cost. With them, one retrieval without filters:
    when the unfiltered question would pass the abstention bar (as `answer_question` decides
    it, by `read`), the articles it finds with a passage at or above min_score that the
    filters exclude are counted.
    """
    if filters.is_empty():
        return NotAnswered.NOTHING_RELEVANT, None
    ranked, rows = retrieve(snapshot, query, settings)
    article_of = {chunk_id: row.article_key for chunk_id, row in rows.items()}
    top = top_chunks(ranked, rows, settings)
    if not top or read(snapshot, asked, top, rows, settings).confidence is Confidence.NONE:
        return NotAnswered.NOTHING_RELEVANT, None
    keys = list(dict.fromkeys(article_of[c.chunk_id] for c in ranked
                              if c.dense >= settings.min_score))
    left_out = [(info, left_out_by(info, filters))
                for info in snapshot.articles(keys).values()]
    left_out = [(info, failed) for info, failed in left_out if failed]
    if not left_out:
        return NotAnswered.NOTHING_RELEVANT, None
    return NotAnswered.FILTERED, OutsideFilters(
        n_articles=len(left_out),
        n_undated=sum(1 for info, _ in left_out if info.published is None),
        excluded_by=tuple(name for name in FILTER_NAMES
                          if any(name in failed for _, failed in left_out)),
    )


def left_out_by(article: ArticleInfo, filters: SearchFilters) -> tuple[str, ...]:
    """The filters an article fails, among FILTER_NAMES and in their order (() when none).

    As the stores apply them: `index.store.filters` is the reference their queries are
    checked against (outlets and labels match exactly, an undated article fails any since
    or until).
    """
    from index.store.filters import failed

    return failed(article, filters)


def caveat_of(
    days: Sequence[date], period: tuple[date | None, date | None] | None, as_of: date,
    stale_after_days: int,
) -> Caveat | None:
    """Whether the quoted articles (published on `days`) lie outside the period, or are old."""
    if not days:
        return None
    if period is not None:
        since, until = period
        if not any((since is None or d >= since) and (until is None or d <= until)
                   for d in days):
            return Caveat.OUTSIDE_PERIOD
    if (as_of - max(days)).days > stale_after_days:
        return Caveat.STALE
    return None


SentenceObserver = Callable[[Sequence[answering.SentenceCandidate], np.ndarray], None]


# --- the two stages every path shares: retrieval, then reading


@dataclass(frozen=True, slots=True)
class Query:
    """A question as retrieval and the reader take it.

    `text`: the question as asked (spaces collapsed, time words out): what the reader reads.
    `borrowed`: key terms a conversation lends it (`followup.borrowed_terms`), which retrieval
    adds to the question's own; never part of the text. `vector`: float32 (dim,), the query
    embedding of the text and the borrowed terms. `terms`: the keyword terms, the question's
    own first. `statistics`: the snapshot's counts of those terms.
    """

    text: str
    borrowed: tuple[str, ...]
    vector: np.ndarray
    terms: tuple[str, ...]
    statistics: KeywordStatistics

    @classmethod
    def of(
        cls, snapshot: Snapshot, embedder: Embedder, text: str, borrowed: Sequence[str] = ()
    ) -> Query:
        """Embed the question (with what it borrows) and count its terms in the snapshot."""
        borrowed = tuple(borrowed)
        terms = tuple(dict.fromkeys([*analysis.terms(text), *borrowed]))
        vector = embedder.encode_query(" ".join((text, *borrowed)))
        return cls(text, borrowed, vector, terms, snapshot.keyword_statistics(list(terms)))

    def analysis(self) -> answering.QuestionAnalysis:
        """What the reader needs: the text as asked and the terms' IDF weights."""
        weights = answering.term_weights(self.terms, self.statistics.doc_counts,
                                         self.statistics.n_chunks)
        return answering.QuestionAnalysis.of(self.text, weights)


def retrieve(
    snapshot: Snapshot,
    query: Query,
    settings: Settings,
    filters: Sequence[SearchFilters | None] = (None,),
    candidates: int | None = None,
) -> tuple[list[ScoredChunk], dict[int, ChunkRow]]:
    """The retrieval stage: fused candidates, best first, and their rows (`hybrid_search`
    with the settings' weight; `candidates` defaults to the settings')."""
    return hybrid_search(
        snapshot, query.vector, query.terms, query.statistics,
        candidates=candidates or settings.candidates, bm25_weight=settings.bm25_weight,
        filters=filters,
    )


def top_chunks(
    ranked: Sequence[ScoredChunk], rows: dict[int, ChunkRow], settings: Settings
) -> list[ScoredChunk]:
    """The chunks whose sentences are read: the best QUOTED_CHUNKS after the per-article cap."""
    article_of = {chunk_id: row.article_key for chunk_id, row in rows.items()}
    return cap_per_article(ranked, article_of, settings.max_chunks_per_article)[:QUOTED_CHUNKS]


@dataclass(frozen=True, slots=True)
class Reading:
    """The reading stage's result: every candidate sentence, the same by the reader's
    probability (best first), the answer score and the confidence it gives."""

    candidates: list[answering.SentenceCandidate]
    scored: list[answering.ScoredSentence]
    answer_score: float
    confidence: Confidence


def read(
    snapshot: Snapshot,
    question: answering.QuestionAnalysis,
    top: Sequence[ScoredChunk],
    rows: dict[int, ChunkRow],
    settings: Settings,
    *,
    observe: SentenceObserver | None = None,
) -> Reading:
    """The reading stage: the settings' reader scores every sentence of `top` and says how
    sure an answer would be (`answer_score_of` against `abstention_threshold`)."""
    reader = reader_for(settings)
    candidates = sentence_candidates(snapshot, top, rows)
    if observe is not None:
        observe(candidates, answering.sentence_features(candidates, question))
    scored = answering.score_sentences(candidates, question, reader)
    score = answer_score_of(top, scored, reader)
    return Reading(candidates, scored, score, answering.confidence(
        score, abstention_threshold(settings, reader), reader.calibration))


def answer_score_of(
    top: Sequence[ScoredChunk], scored: Sequence[answering.ScoredSentence], reader: Reader
) -> float:
    """The abstention signal (`ReaderCalibration.answer_score`) of the top chunks and their
    sentences as the reader scored them."""
    best_cosine = max((chunk.dense for chunk in top), default=0.0)
    probabilities = np.array([s.score for s in scored])
    return reader.calibration.answer_score(best_cosine, reader.answer_probability(probabilities))


def abstention_threshold(settings: Settings, reader: Reader) -> float:
    """`min_answer_score` when set, else the reader's own calibrated threshold."""
    if settings.min_answer_score is not None:
        return settings.min_answer_score
    return reader.calibration.min_answer_score


def quotes_for(
    snapshot: Snapshot,
    question: answering.QuestionAnalysis,
    candidates: Sequence[answering.SentenceCandidate],
    scored: Sequence[answering.ScoredSentence],
    rows: dict[int, ChunkRow],
    max_quotes: int,
    min_ratio: float,
) -> list[Quote]:
    """The sentences most likely to hold the answer, as quotes (`rank_sentences` scored them);
    none below `min_ratio` × the first's probability.

    A story told by several articles is quoted once; the others are listed with it.
    """
    picked = answering.pick_quotes(
        scored,
        max_quotes,
        min_ratio=min_ratio,
        group_of=lambda c: (rows[c.chunk_id].story_id, rows[c.chunk_id].article_key),
    )
    return as_quotes(snapshot, picked, rows, candidates, question)


def sentence_candidates(
    snapshot: Snapshot, top: Sequence[ScoredChunk], rows: dict[int, ChunkRow],
    *, ranked: bool = True,
) -> list[answering.SentenceCandidate]:
    """Every sentence of the given chunks, with its chunk's score and rank (0 unless ranked)."""
    spans = snapshot.sentence_spans([chunk.chunk_id for chunk in top])
    candidates: list[answering.SentenceCandidate] = []
    for position, chunk in enumerate(top):
        rank = position if ranked else 0
        row = rows[chunk.chunk_id]
        for span in spans[chunk.chunk_id]:
            sentence = row.text[span.start - row.start : span.end - row.start]
            candidates.append(
                answering.SentenceCandidate(chunk.chunk_id, rank, chunk.score, span, sentence)
            )
    return candidates


def as_quotes(
    snapshot: Snapshot,
    picked: Sequence[answering.ScoredSentence],
    rows: dict[int, ChunkRow],
    candidates: Sequence[answering.SentenceCandidate] = (),
    question: answering.QuestionAnalysis | None = None,
) -> list[Quote]:
    """Quotes with their articles and the other articles of the same story.

    With the `candidates` the sentences were picked from, a sentence that does not stand
    alone (`answering.stands_alone`) is quoted with the sentence before it in its chunk,
    unless that one is quoted already: still one verbatim slice of the article. With the
    `question`, the answer it asks for is marked in each quote (`Quote.answer`).
    """
    keys = list({rows[s.candidate.chunk_id].article_key for s in picked})
    infos = snapshot.articles(keys)
    stories = snapshot.story_members(list({rows[s.candidate.chunk_id].story_id for s in picked}))
    before = {(c.chunk_id, c.span.start): b for b, c in itertools.pairwise(candidates)
              if b.chunk_id == c.chunk_id}
    quoted = {(s.candidate.chunk_id, s.candidate.span.start) for s in picked}
    quotes = []
    for sentence in picked:
        candidate = sentence.candidate
        row = rows[candidate.chunk_id]
        previous = before.get((candidate.chunk_id, candidate.span.start))
        if previous is not None and (previous.chunk_id, previous.span.start) in quoted:
            previous = None
        span, answer = (answering.quoted_span(candidate, previous, question)
                        if question is not None else (candidate.span, None))
        also = tuple(a for a in stories.get(row.story_id, []) if a.id != row.article_key)
        quotes.append(Quote(
            text=row.text[span.start - row.start : span.end - row.start],
            article=infos[row.article_key],
            chunk_id=candidate.chunk_id,
            start=span.start,
            end=span.end,
            score=round(sentence.score, 4),
            also=also,
            answer=answer,
        ))
    return quotes


def timeline(
    snapshot: Snapshot,
    embedder: Embedder,
    settings: Settings,
    topic: str,
    since: date | None,
    until: date | None,
    limit: int,
) -> list[Quote]:
    """How a story developed: the best quote of each matching story, oldest first."""
    text = " ".join(topic.split())
    if not any(ch.isalnum() for ch in text):
        return []
    query = Query.of(snapshot, embedder, text)
    scored, rows = retrieve(snapshot, query, settings,
                            (SearchFilters(since=since, until=until),), max(100, limit * 5))
    ranked = [c for c in scored if c.dense >= settings.min_score]
    best_per_story: dict[str, ScoredChunk] = {}
    for chunk in ranked:  # best first, so the first chunk seen of a story is its best
        best_per_story.setdefault(rows[chunk.chunk_id].story_id, chunk)
    chosen = list(best_per_story.values())[:limit]
    question = query.analysis()
    # Each story's chunk is read on its own (rank 0): no story is penalised for the stories
    # ranked before it, and the reader compares a story's sentences with each other only.
    # Their sentences are fetched in one call.
    candidates = sentence_candidates(snapshot, chosen, rows, ranked=False)
    reader = reader_for(settings)
    picked = []
    for chunk in chosen:
        scored = answering.score_sentences(
            [c for c in candidates if c.chunk_id == chunk.chunk_id], question, reader)
        if scored:
            picked.append(scored[0])
    quotes = as_quotes(snapshot, picked, rows)
    # Oldest first; an undated story has no place in time, so it comes after the dated ones.
    return sorted(quotes, key=lambda q: (q.article.published is None,
                                         q.article.published or date.min, q.start))


def narrow(
    filters: SearchFilters, period: tuple[date | None, date | None] | None
) -> SearchFilters:
    """The filters further limited to a period."""
    if period is None:
        return filters
    since, until = period
    if filters.since and (since is None or filters.since > since):
        since = filters.since
    if filters.until and (until is None or filters.until < until):
        until = filters.until
    return replace(filters, since=since, until=until)


def _ms(started: float) -> float:
    """Milliseconds since a perf_counter reading."""
    return round((time.perf_counter() - started) * 1000.0, 2)
