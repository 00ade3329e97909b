"""The engine facade: one object the CLI, the bot and the benchmarks talk to."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path

import faiss

from index import answer as answering
from index.config import Settings
from index.embedding import Embedder, EmbeddingError, make_embedder
from index.models import (
    Answer,
    ArticleDetail,
    ArticleInfo,
    Coverage,
    Follow,
    IndexStats,
    IngestReport,
    Progress,
    Quote,
    SearchFilters,
    Story,
)
from index.models import ArticleHit as Hit
from index.retrieve import (
    ScoredChunk,
    article_ranking,
    boost_by_time,
    cap_per_article,
    hybrid_search,
    keyword_statistics,
)
from index.state import StateStore
from index.store import db, generations
from index.store.generations import Generation, GenerationError, IdentityMismatch
from index.store.vectors import reconstruct
from index.timeparse import parse_question_time, recency_weight

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]


class EngineError(Exception):
    """A failure with a message fit to show a user as one line."""


class IndexMissingError(EngineError):
    """No usable index exists yet at the configured place."""


class IndexMismatchError(EngineError):
    """The index was built with another model, dimension or settings."""


class ReindexInProgressError(EngineError):
    """A reindex is already running."""


class Engine:
    """Answers questions from an index and keeps that index in sync with article files.

    Thread-safe: questions may run in several threads while one reindex builds a new
    generation; the new generation replaces the old one atomically when complete.
    """

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        """Create an engine; nothing is loaded until `load` or the first use."""
        self.settings = settings
        self._embedder: Embedder | None = embedder
        self._generation: Generation | None = None
        self._state: StateStore | None = None
        self._load_lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.last_report: IngestReport | None = None

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        create: bool = False,
        repair: bool = False,
        embedder: Embedder | None = None,
    ) -> Engine:
        """Load the model and the current index generation (blocking; call off the event loop).

        Without `create`, a missing index is an error that says how to build one. With
        `repair` (a rebuild is about to run), a damaged index or one built with another model
        is set aside instead of refused.
        """
        engine = cls(settings, embedder=embedder)
        engine.load(create=create, repair=repair)
        return engine

    def load(self, *, create: bool = False, repair: bool = False) -> None:
        """Load the embedder and the best good generation; clean up half-built ones."""
        index_dir = self.settings.index_dir
        if index_dir.is_dir():
            for path in generations.remove_leftovers(index_dir):
                log.warning("removed half-built index generation %s", path.name)
        missing = IndexMissingError(
            f"no index in {index_dir}; build one with: articlebot reindex "
            "(or articlebot ingest PATH)"
        )
        if not create and not generations.complete_generations(index_dir):
            raise missing  # before loading the model: nothing to serve anyway
        # One FAISS thread: faster and steadier for single queries, and no contention with the
        # embedding runtime's own threads (see docs/performance.md).
        faiss.omp_set_num_threads(1)
        embedder = self.embedder
        try:
            generation = generations.open_best(index_dir, embedder.identity())
        except GenerationError as exc:
            if not repair:
                error = IndexMismatchError if isinstance(exc, IdentityMismatch) else EngineError
                raise error(str(exc)) from exc
            log.warning("setting the current index aside for a rebuild: %s", exc)
            generation = None
        if generation is None and not create:
            raise missing
        if generation is not None:
            self._swap(generation)

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use."""
        if self._embedder is None:
            with self._load_lock:
                if self._embedder is None:
                    try:
                        self._embedder = make_embedder(
                            self.settings.model,
                            self.settings.embed_backend,
                            cache_dir=self.settings.index_dir / "models",
                        )
                    except EmbeddingError as exc:
                        raise EngineError(str(exc)) from exc
        return self._embedder

    @property
    def state(self) -> StateStore:
        """The store of votes, opened on first use."""
        if self._state is None:
            with self._load_lock:
                if self._state is None:
                    self._state = StateStore(self.settings.index_dir)
        return self._state

    @contextmanager
    def _reading(self) -> Iterator[Generation]:
        """Hold the serving generation for one call; a reindex may replace it meanwhile."""
        with self._swap_lock:
            generation = self._generation
            if generation is None:
                raise IndexMissingError(
                    f"the index in {self.settings.index_dir} is empty; add articles with: "
                    "articlebot ingest PATH (or articlebot reindex)"
                )
            generation.acquire()
        try:
            yield generation
        finally:
            generation.release()

    def _swap(self, generation: Generation) -> None:
        """Serve a new generation; the old one closes once its last reader is done."""
        with self._swap_lock:
            old, self._generation = self._generation, generation
        if old is not None:
            old.retire()

    # --- questions
    def ask(
        self, question: str, filters: SearchFilters | None = None, *, as_of: date | None = None
    ) -> Answer:
        """Answer a question with verbatim quotes, or abstain when nothing is relevant.

        Time words in the question ("last week", "in March") become a period, relative to
        `as_of` (today by default), that lifts passages published in it; they are left out
        of the text used for retrieval.
        """
        started = time.perf_counter()
        filters = filters or SearchFilters()
        as_of = as_of or date.today()
        with self._reading() as generation:
            return self._answer(generation, question, filters, as_of, started)

    def _answer(
        self,
        generation: Generation,
        question: str,
        filters: SearchFilters,
        as_of: date,
        started: float,
    ) -> Answer:
        """The body of `ask`, on a generation held by the caller."""
        conn = generation.conn()
        clean = " ".join(question.split())
        settings = self.settings
        parsed = parse_question_time(clean, as_of) if settings.time_handling else None
        window = parsed.window if parsed else None
        text = parsed.text if parsed and window is not None else clean
        period = (window.since, window.until) if window and (window.since or window.until) else None
        period_filters = _narrow(filters, period)
        cover = _coverage(generation, period_filters)
        base = Answer(
            question=question, quotes=(), results=(), answered=False, confidence="none",
            coverage=cover, filters=filters, collection=_coverage(generation),
            period_since=period[0] if period else None,
            period_until=period[1] if period else None,
            period_phrase=window.phrase if window else "",
        )
        if not any(ch.isalnum() for ch in text):
            return replace(base, note="the question has no words", elapsed_ms=_ms(started))
        query_vector = self.embedder.encode_query(text)
        terms = db.query_terms(text)
        ranked, rows = hybrid_search(
            generation, query_vector, terms, candidates=settings.candidates,
            bm25_weight=settings.bm25_weight,
            filters=(filters, period_filters) if period is not None else (filters,),
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
        if not ranking:
            return replace(base, note=self._not_found(base), elapsed_ms=_ms(started))
        infos = db.articles_by_key(conn, [key for key, _ in ranking])
        results = tuple(
            Hit(infos[key], round(chunk.score, 4), chunk.chunk_id, rows[chunk.chunk_id].text)
            for key, chunk in ranking
        )
        top = capped[:5]
        level = answering.confidence(max(c.dense for c in top), settings.min_score)
        quotes = self._quotes(generation, terms, top, rows) if level != "none" else []
        if not quotes:
            return replace(
                base, results=results, note=self._not_found(base),
                elapsed_ms=_ms(started),
            )
        return replace(
            base, quotes=tuple(quotes), results=results, answered=True, confidence=level,
            note=self._caveat(quotes, period, as_of), elapsed_ms=_ms(started),
        )

    def _not_found(self, answer: Answer) -> str:
        """Say that nothing answers, for the period asked, and what the collection spans."""
        whole = answer.collection or answer.coverage
        spans = ""
        if whole.first and whole.last:
            spans = f"; the collection spans {_day_text(whole.first)} – {_day_text(whole.last)}"
        if answer.period_since or answer.period_until:
            period = _span_text(answer.period_since, answer.period_until)
            return f"no article {period} answers this{spans}"
        return f"no article answers this{spans}"

    def _caveat(
        self, quotes: Sequence[Quote], period: tuple[date | None, date | None] | None,
        as_of: date,
    ) -> str:
        """Warn when the evidence lies outside the period asked about, or is old."""
        days = [q.article.published for q in quotes if q.article.published]
        if not days:
            return ""
        newest = max(days)
        if period is not None:
            since, until = period
            if not any((since is None or d >= since) and (until is None or d <= until)
                       for d in days):
                return (f"no article {_span_text(since, until)} answers this; "
                        f"these are the closest, the latest from {_day_text(newest)}")
        if (as_of - newest).days > self.settings.stale_after_days:
            return f"the latest article on this is from {_day_text(newest)}"
        return ""

    def _quotes(
        self,
        generation: Generation,
        terms: Sequence[str],
        top: Sequence[ScoredChunk],
        rows: dict[int, db.ChunkRow],
    ) -> list[Quote]:
        """Pick the sentences of the top chunks that most directly answer the question.

        A story told by several articles is quoted once; the others are listed with it.
        """
        conn = generation.conn()
        candidates = self._sentence_candidates(conn, top, rows)
        doc_counts, n_chunks, _ = keyword_statistics(generation, terms)
        weights = answering.term_weights(terms, doc_counts, n_chunks)
        picked = answering.pick_quotes(
            answering.score_sentences(candidates, weights),
            self.settings.max_quotes,
            group_of=lambda c: (rows[c.chunk_id].story_id, rows[c.chunk_id].article_key),
        )
        return self._as_quotes(conn, picked, rows)

    @staticmethod
    def _sentence_candidates(
        conn: sqlite3.Connection, top: Sequence[ScoredChunk], rows: dict[int, db.ChunkRow]
    ) -> list[answering.SentenceCandidate]:
        """Every sentence of the given chunks, with its chunk's rank and score."""
        candidates: list[answering.SentenceCandidate] = []
        for rank, chunk in enumerate(top):
            row = rows[chunk.chunk_id]
            for span in db.sentences_in(conn, row.article_rowid, row.start, row.end):
                sentence = row.text[span.start - row.start : span.end - row.start]
                candidates.append(
                    answering.SentenceCandidate(chunk.chunk_id, rank, chunk.score, span, sentence)
                )
        return candidates

    @staticmethod
    def _as_quotes(
        conn: sqlite3.Connection,
        picked: Sequence[answering.ScoredSentence],
        rows: dict[int, db.ChunkRow],
    ) -> list[Quote]:
        """Quotes with their articles and the other articles of the same story."""
        keys = list({rows[s.candidate.chunk_id].article_key for s in picked})
        infos = db.articles_by_key(conn, keys)
        stories = db.story_members(conn, list({rows[s.candidate.chunk_id].story_id
                                               for s in picked}))
        quotes = []
        for sentence in picked:
            row = rows[sentence.candidate.chunk_id]
            also = tuple(a for a in stories.get(row.story_id, []) if a.id != row.article_key)
            quotes.append(Quote(
                text=sentence.candidate.text,
                article=infos[row.article_key],
                chunk_id=sentence.candidate.chunk_id,
                start=sentence.candidate.span.start,
                end=sentence.candidate.span.end,
                score=round(sentence.score, 4),
                also=also,
            ))
        return quotes

    # --- news
    def timeline(
        self, topic: str, since: date | None = None, until: date | None = None,
        *, limit: int = 15,
    ) -> list[Quote]:
        """How a story developed: the best quote of each matching story, oldest first."""
        with self._reading() as generation:
            return self._timeline(generation, topic, since, until, limit)

    def _timeline(
        self,
        generation: Generation,
        topic: str,
        since: date | None,
        until: date | None,
        limit: int,
    ) -> list[Quote]:
        """The body of `timeline`, on a generation held by the caller."""
        conn = generation.conn()
        text = " ".join(topic.split())
        if not any(ch.isalnum() for ch in text):
            return []
        query_vector = self.embedder.encode_query(text)
        terms = db.query_terms(text)
        scored, rows = hybrid_search(
            generation, query_vector, terms, candidates=max(100, limit * 5),
            bm25_weight=self.settings.bm25_weight,
            filters=(SearchFilters(since=since, until=until),),
        )
        ranked = [c for c in scored if c.dense >= self.settings.min_score]
        best_per_story: dict[str, ScoredChunk] = {}
        for chunk in ranked:  # best first, so the first chunk seen of a story is its best
            best_per_story.setdefault(rows[chunk.chunk_id].story_id, chunk)
        chosen = list(best_per_story.values())[:limit]
        doc_counts, n_chunks, _ = keyword_statistics(generation, terms)
        weights = answering.term_weights(terms, doc_counts, n_chunks)
        picked = []
        for chunk in chosen:
            scored = answering.score_sentences(
                self._sentence_candidates(conn, [chunk], rows), weights
            )
            if scored:
                picked.append(scored[0])
        quotes = self._as_quotes(conn, picked, rows)
        return sorted(quotes, key=lambda q: (q.article.published or date.min, q.start))

    def whatsnew(self, since: date | None = None, *, limit: int = 10) -> list[Story]:
        """The newest stories (grouped across outlets) published since a date.

        Without a date: the articles the latest reindex brought in.
        """
        with self._reading() as generation:
            conn = generation.conn()
            ingested_since = None if since else db.get_meta(conn).get("build_started")
            rows = db.articles_since(
                conn, published_since=since, ingested_since=ingested_since, limit=limit * 10
            )
            order: list[str] = []
            for _, story_id in rows:
                if story_id not in order:
                    order.append(story_id)
            members = db.story_members(conn, order[:limit])
            stories = []
            for story_id in order[:limit]:
                articles = sorted(members.get(story_id, []),
                                  key=lambda a: a.published or date.min, reverse=True)
                if articles:
                    stories.append(Story(article=articles[0], also=tuple(articles[1:])))
            return stories

    # --- follows (kept outside generations, like feedback)
    def add_follow(
        self, topic: str, *, channel_id: int, user_id: int, guild_id: int | None = None
    ) -> Follow:
        """Follow a topic in a channel."""
        return self.state.add_follow(topic, channel_id=channel_id, user_id=user_id,
                                     guild_id=guild_id)

    def remove_follow(self, follow_id: int) -> bool:
        """Stop following; False if there was no such follow."""
        return self.state.remove_follow(follow_id)

    def follows(
        self, *, guild_id: int | None = None, channel_id: int | None = None
    ) -> list[Follow]:
        """Followed topics, optionally of one guild or channel."""
        return self.state.list_follows(guild_id=guild_id, channel_id=channel_id)

    def follow_matches(self, article_ids: Sequence[str]) -> list[tuple[Follow, list[Hit]]]:
        """For each followed topic, the given (new) articles that match it well enough."""
        follows = self.state.list_follows()
        if not follows or not article_ids:
            return []
        with self._reading() as generation:
            conn = generation.conn()
            chunk_ids = db.chunk_ids_of_articles(conn, article_ids)
            if not chunk_ids:
                return []
            matrix = reconstruct(generation.index, chunk_ids)
            rows = db.chunk_rows(conn, chunk_ids)
            topics = self.embedder.encode([f.topic for f in follows], batch_size=32)
            matches = []
            for follow, topic_vector in zip(follows, topics, strict=True):
                best: dict[str, tuple[float, int]] = {}
                for chunk_id, score in zip(chunk_ids, matrix @ topic_vector, strict=True):
                    key = rows[chunk_id].article_key
                    good = score >= self.settings.follow_min_score
                    if good and score > best.get(key, (-1.0, 0))[0]:
                        best[key] = (float(score), chunk_id)
                if best:
                    infos = db.articles_by_key(conn, list(best))
                    hits = sorted(
                        (Hit(infos[key], round(score, 4), cid, rows[cid].text)
                         for key, (score, cid) in best.items()),
                        key=lambda h: -h.score,
                    )
                    matches.append((follow, hits))
            return matches

    # --- browsing
    def recent_articles(
        self, limit: int = 10, offset: int = 0, source: str | None = None
    ) -> list[ArticleInfo]:
        """Articles newest first (by published date, then ingest order)."""
        with self._reading() as generation:
            return db.recent_articles(generation.conn(), limit, offset, source)

    def count_articles(self, source: str | None = None) -> int:
        """How many articles (of one source) the index holds."""
        with self._reading() as generation:
            return db.count_articles(generation.conn(), source)

    def article(self, id_or_title: str) -> ArticleDetail | None:
        """One article by id (or unique id prefix), else by exact or closest title."""
        with self._reading() as generation:
            found = db.find_article(generation.conn(), id_or_title)
        if found is None:
            return None
        info, text = found
        return ArticleDetail(article=info, opening=_opening(text))

    def search_titles(self, text: str, limit: int = 25) -> list[ArticleInfo]:
        """Articles whose title contains the text, for autocomplete."""
        with self._reading() as generation:
            return db.search_titles(generation.conn(), text, limit)

    def sources(self) -> list[str]:
        """The outlets in the index, most articles first."""
        with self._reading() as generation:
            return [source for source, _ in db.sources(generation.conn())]

    def coverage(self, filters: SearchFilters | None = None) -> Coverage:
        """How many articles, and from when to when, the (filtered) collection spans."""
        with self._reading() as generation:
            return _coverage(generation, filters)

    def stats(self) -> IndexStats:
        """Figures about the serving index."""
        with self._reading() as generation:
            conn = generation.conn()
            manifest = generation.manifest
            cover = _coverage(generation)
            files = manifest.get("files", {})
            return IndexStats(
                n_articles=cover.n_articles,
                n_chunks=db.count_chunks(conn),
                sources=tuple(db.sources(conn)),
                first=cover.first,
                last=cover.last,
                model=str(manifest.get("embedding", {}).get("model", "")),
                dim=int(manifest.get("embedding", {}).get("dim", 0)),
                index_type=str(manifest.get("index_type", "")),
                index_bytes=sum(int(meta["bytes"]) for meta in files.values()),
                generation=generation.name,
                built_at=str(manifest.get("built_at", "")),
                build_seconds=float(manifest.get("build_seconds", 0.0)),
            )

    # --- writing
    def ingest(
        self, paths: Sequence[Path], progress: ProgressCallback | None = None
    ) -> IngestReport:
        """Add or update the articles found in these files or folders."""
        return self._build(list(paths), sync=False, progress=progress)

    def reindex(
        self, progress: ProgressCallback | None = None, *, rebuild: bool = False
    ) -> IngestReport:
        """Sync the index with the configured article folders: new, changed, removed."""
        return self._build(
            list(self.settings.article_dirs), sync=True, progress=progress, rebuild=rebuild
        )

    def _build(
        self, paths: list[Path], *, sync: bool, progress: ProgressCallback | None,
        rebuild: bool = False,
    ) -> IngestReport:
        """Build a new generation and switch to it; the old one serves until then."""
        from index.build import Builder

        if not self._write_lock.acquire(blocking=False):
            raise ReindexInProgressError("a reindex is already running")
        try:
            with self._holding_current() as current:
                try:
                    report, path = Builder(self.settings, self.embedder).run(
                        paths, current, sync=sync, rebuild=rebuild, progress=progress
                    )
                except generations.WriterBusy as exc:
                    raise ReindexInProgressError(str(exc)) from exc
            if path is not None:
                self._swap(generations.open_generation(path, self.embedder.identity()))
            self.last_report = report
            return report
        finally:
            self._write_lock.release()

    @contextmanager
    def _holding_current(self) -> Iterator[Generation | None]:
        """The serving generation held for a build (None when there is none yet)."""
        if self._generation is None:
            yield None
            return
        with self._reading() as generation:
            yield generation

    @property
    def reindexing(self) -> bool:
        """True while an ingest or reindex is building a new generation."""
        return self._write_lock.locked()

    # --- feedback (kept outside index generations, so it survives reindexing)
    def record_feedback(
        self, question: str, chunk_ids: Sequence[int], vote: int, user_hash: str
    ) -> None:
        """Store a 👍 (+1) or 👎 (-1) on an answer."""
        self.state.record_feedback(question, chunk_ids, vote, user_hash)

    def feedback_counts(self) -> dict[str, int]:
        """Counts of votes: {'up': n, 'down': m}."""
        return self.state.feedback_counts()

    def close(self) -> None:
        """Release files (questions still running finish on the generation they hold)."""
        with self._swap_lock:
            generation, self._generation = self._generation, None
        if generation is not None:
            generation.retire()
        if self._state is not None:
            self._state.close()


def _coverage(generation: Generation, filters: SearchFilters | None = None) -> Coverage:
    """What the (filtered) collection spans; the whole collection's is memoised per generation."""
    if filters is not None and not filters.is_empty():
        return db.coverage(generation.conn(), filters)
    # A generation never changes once sealed, and counting its articles scans the table.
    cached = generation.memo.get("coverage")
    if cached is None:
        cached = generation.memo["coverage"] = db.coverage(generation.conn())
    return cached


def _ms(started: float) -> float:
    """Milliseconds since a perf_counter reading."""
    return round((time.perf_counter() - started) * 1000.0, 2)


def _opening(text: str, limit: int = 600) -> str:
    """The article's first paragraph, cut at a word boundary past `limit` characters."""
    paragraph = text.strip().split("\n\n", 1)[0].strip()
    if len(paragraph) <= limit:
        return paragraph
    return paragraph[:limit].rsplit(" ", 1)[0] + "…"


def _narrow(
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


def _day_text(day: date) -> str:
    """'12 March 2023'."""
    return f"{day.day} {day:%B %Y}"


def _span_text(first: date | None, last: date | None) -> str:
    """'between 1 and 7 March 2023', 'since 2 January 2023', 'until …' or ''."""
    if first and last:
        if first == last:
            return f"on {_day_text(first)}"
        return f"between {_day_text(first)} and {_day_text(last)}"
    if first:
        return f"since {_day_text(first)}"
    if last:
        return f"until {_day_text(last)}"
    return ""
