"""The engine facade: one object the CLI, the bot and the benchmarks talk to."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from index import answer as answering
from index.config import Settings
from index.embedding import Embedder, EmbeddingError, make_embedder
from index.models import (
    Answer,
    ArticleDetail,
    ArticleInfo,
    Coverage,
    IndexStats,
    IngestReport,
    Progress,
    Quote,
    SearchFilters,
)
from index.models import ArticleHit as Hit
from index.retrieve import ScoredChunk, article_ranking, cap_per_article, hybrid_search
from index.state import StateStore
from index.store import db, generations
from index.store.generations import Generation, GenerationError, IdentityMismatch

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
        self._write_lock = threading.Lock()
        self.last_report: IngestReport | None = None

    @classmethod
    def open(
        cls, settings: Settings, *, create: bool = False, embedder: Embedder | None = None
    ) -> Engine:
        """Load the model and the current index generation (blocking; call off the event loop).

        Without `create`, a missing index is an error that says how to build one.
        """
        engine = cls(settings, embedder=embedder)
        engine.load(create=create)
        return engine

    def load(self, *, create: bool = False) -> None:
        """Load the embedder and the best good generation; clean up half-built ones."""
        index_dir = self.settings.index_dir
        if index_dir.is_dir():
            for path in generations.remove_leftovers(index_dir):
                log.warning("removed half-built index generation %s", path.name)
        embedder = self.embedder
        try:
            generation = generations.open_best(index_dir, embedder.identity())
        except IdentityMismatch as exc:
            raise IndexMismatchError(str(exc)) from exc
        except GenerationError as exc:
            raise EngineError(str(exc)) from exc
        if generation is None and not create:
            raise IndexMissingError(
                f"no index in {index_dir}; build one with: articlebot reindex "
                "(or articlebot ingest PATH)"
            )
        self._generation = generation

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

    def _current(self) -> Generation:
        """The serving generation (the reference is read once per call: swaps are atomic)."""
        generation = self._generation
        if generation is None:
            raise IndexMissingError(
                f"the index in {self.settings.index_dir} is empty; add articles with: "
                "articlebot ingest PATH (or articlebot reindex)"
            )
        return generation

    # --- questions
    def ask(self, question: str, filters: SearchFilters | None = None) -> Answer:
        """Answer a question with verbatim quotes, or abstain when nothing is relevant."""
        started = time.perf_counter()
        filters = filters or SearchFilters()
        generation = self._current()
        conn = generation.conn()
        text = " ".join(question.split())
        cover = db.coverage(conn, filters)
        if not db.query_terms(text) and not any(ch.isalnum() for ch in text):
            return self._empty_answer(
                question, filters, cover, started, "the question has no words"
            )
        settings = self.settings
        query_vector = self.embedder.encode_query(text)
        ranked = hybrid_search(
            generation, query_vector, text, candidates=settings.candidates,
            bm25_weight=settings.bm25_weight, filters=filters,
        )
        rows = db.chunk_rows(conn, [c.chunk_id for c in ranked])
        article_of = {chunk_id: row.article_key for chunk_id, row in rows.items()}
        capped = cap_per_article(ranked, article_of, settings.max_chunks_per_article)
        ranking = article_ranking(capped, article_of)[: settings.results]
        if not ranking:
            return self._empty_answer(question, filters, cover, started, "no article matches")
        infos = db.articles_by_key(conn, [key for key, _ in ranking])
        results = tuple(
            Hit(infos[key], round(chunk.score, 4), chunk.chunk_id, rows[chunk.chunk_id].text)
            for key, chunk in ranking
        )
        relevance = max(chunk.dense for chunk in capped[:5])
        level = answering.confidence(relevance, settings.min_score)
        if level == "none":
            return Answer(
                question=question, quotes=(), results=results, answered=False,
                confidence="none", coverage=cover, filters=filters,
                elapsed_ms=_ms(started), note="no article answers this",
            )
        quotes = self._quotes(generation, text, capped[:5], rows)
        return Answer(
            question=question, quotes=tuple(quotes), results=results, answered=bool(quotes),
            confidence=level if quotes else "none", coverage=cover, filters=filters,
            elapsed_ms=_ms(started),
        )

    def _quotes(
        self,
        generation: Generation,
        text: str,
        top: Sequence[ScoredChunk],
        rows: dict[int, db.ChunkRow],
    ) -> list[Quote]:
        """Pick the sentences of the top chunks that most directly answer the question."""
        conn = generation.conn()
        candidates: list[answering.SentenceCandidate] = []
        for rank, chunk in enumerate(top):
            row = rows[chunk.chunk_id]
            for span in db.sentences_in(conn, row.article_rowid, row.start, row.end):
                sentence = row.text[span.start - row.start : span.end - row.start]
                candidates.append(
                    answering.SentenceCandidate(chunk.chunk_id, rank, chunk.score, span, sentence)
                )
        terms = db.query_terms(text)
        n_chunks = int(generation.manifest.get("counts", {}).get("chunks", 1))
        weights = answering.term_weights(terms, db.term_document_counts(conn, terms), n_chunks)
        picked = answering.pick_quotes(
            answering.score_sentences(candidates, weights), self.settings.max_quotes
        )
        infos = db.articles_by_key(conn, list({rows[s.candidate.chunk_id].article_key
                                                for s in picked}))
        return [
            Quote(
                text=s.candidate.text,
                article=infos[rows[s.candidate.chunk_id].article_key],
                chunk_id=s.candidate.chunk_id,
                start=s.candidate.span.start,
                end=s.candidate.span.end,
                score=round(s.score, 4),
            )
            for s in picked
        ]

    def _empty_answer(
        self, question: str, filters: SearchFilters, cover: Coverage, started: float, note: str
    ) -> Answer:
        """An answer that quotes nothing, with the reason."""
        return Answer(
            question=question, quotes=(), results=(), answered=False, confidence="none",
            coverage=cover, filters=filters, elapsed_ms=_ms(started), note=note,
        )

    # --- browsing
    def recent_articles(
        self, limit: int = 10, offset: int = 0, source: str | None = None
    ) -> list[ArticleInfo]:
        """Articles newest first (by published date, then ingest order)."""
        return db.recent_articles(self._current().conn(), limit, offset, source)

    def count_articles(self, source: str | None = None) -> int:
        """How many articles (of one source) the index holds."""
        return db.count_articles(self._current().conn(), source)

    def article(self, id_or_title: str) -> ArticleDetail | None:
        """One article by id (or unique id prefix), else by exact or closest title."""
        found = db.find_article(self._current().conn(), id_or_title)
        if found is None:
            return None
        info, text = found
        return ArticleDetail(article=info, opening=_opening(text))

    def search_titles(self, text: str, limit: int = 25) -> list[ArticleInfo]:
        """Articles whose title contains the text, for autocomplete."""
        return db.search_titles(self._current().conn(), text, limit)

    def sources(self) -> list[str]:
        """The outlets in the index, most articles first."""
        return [source for source, _ in db.sources(self._current().conn())]

    def coverage(self, filters: SearchFilters | None = None) -> Coverage:
        """How many articles, and from when to when, the (filtered) collection spans."""
        return db.coverage(self._current().conn(), filters)

    def stats(self) -> IndexStats:
        """Figures about the serving index."""
        generation = self._current()
        conn = generation.conn()
        manifest = generation.manifest
        cover = db.coverage(conn)
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
            try:
                report, path = Builder(self.settings, self.embedder).run(
                    paths, self._generation, sync=sync, rebuild=rebuild, progress=progress
                )
            except generations.WriterBusy as exc:
                raise ReindexInProgressError(str(exc)) from exc
            if path is not None:
                self._generation = generations.open_generation(path, self.embedder.identity())
            self.last_report = report
            return report
        finally:
            self._write_lock.release()

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
        """Release files."""
        if self._generation is not None:
            self._generation.close()
        if self._state is not None:
            self._state.close()


def _ms(started: float) -> float:
    """Milliseconds since a perf_counter reading."""
    return round((time.perf_counter() - started) * 1000.0, 2)


def _opening(text: str, limit: int = 600) -> str:
    """The article's first paragraph, cut at a word boundary past `limit` characters."""
    paragraph = text.strip().split("\n\n", 1)[0].strip()
    if len(paragraph) <= limit:
        return paragraph
    return paragraph[:limit].rsplit(" ", 1)[0] + "…"
