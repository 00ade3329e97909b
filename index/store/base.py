"""The storage interface: narrow protocols, each with its contract, and nothing to reach past.

A backend keeps the collection as a series of immutable versions. Readers get a `Snapshot`,
one consistent view that never changes under them; a `StoreWriter` builds the next version
beside the current one and `commit` makes it current atomically (readers of the old one
finish on it), while `abort` leaves everything as it was. Filters travel as data
(`SearchFilters`); each backend translates them into its own query language, meaning what
`index.store.filters.matches` says. Scores come out raw (inner product, BM25): fusion, time
boosts, per-article caps and quote choice stay in the engine, above the store.

The read side is four narrow protocols that a `Snapshot` joins: `VersionInfo` (name,
metadata, capabilities), `DenseSearch`, `KeywordSearch` (whose analyser contract ties it to
`index.text`) and `ArticleCatalogue` (rows, browsing, titles, export). The write side is
`StoreWriter`; the bot's state (feedback votes, follows, rate limits, small values such as
the command-sync hash) is `StateStore`, behind the same seam so that several bot processes
can share it; `Store` opens versions, writers and the state.

Backends: `local` (FAISS + SQLite generations on one disk, `index/store/local/`), `postgres`
(pgvector, `index/store/postgres/`), `memory` (this process's memory, for tests,
`index/store/memory/`). Adding one: implement the protocols in
`index/store/<name>/` (52 methods written whole; 24 on `index.store.scan`, which serves every
read and the writer from a few primitives, for a backend without its own indexes), register it in
`index/store/registry.py`, and run the conformance suite
(`tests/index/store/test_conformance.py`) against it unchanged.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np

from index.models import (
    ArticleInfo,
    ChunkSpan,
    Coverage,
    Follow,
    ParsedArticle,
    SearchFilters,
    Span,
)

# What identifies an embedding space: vectors compare only within one (the embedder's identity).
IDENTITY_KEYS = ("model", "dim", "normalized")


class StoreError(Exception):
    """The store cannot be opened or used; the message is fit to show as one line."""


class IdentityMismatch(StoreError):
    """The stored collection was embedded with another model, dimension or normalisation."""


class WriterBusy(StoreError):
    """Another writer (thread or process) is building a version of this collection."""


class StoreEmpty(StoreError):
    """No version of the collection has been committed yet."""


@dataclass(frozen=True, slots=True)
class StoreCapabilities:
    """What a backend's search can promise, for the engine's and the benchmarks' reports.

    `dense_search` is "exact" when every search scans all vectors it may return, else
    "approximate"; `exact_filtered_below` is the number of chunks passing a filter under
    which a filtered dense search is exact even on an approximate index (0: never).
    """

    backend: str
    dense_search: Literal["exact", "approximate"]
    index_type: str
    exact_filtered_below: int = 0
    shared: bool = False  # several processes on several machines may use one collection


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A stored chunk with its article's public id, date and story."""

    id: int
    article_key: str
    start: int  # character offsets of the chunk in its article's text
    end: int
    text: str
    published: date | None = None
    story_id: str = ""


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """What a writer needs to know about an article already in the collection."""

    key: str
    content_hash: str
    norm_hash: str
    origin_file: str
    source: str = ""  # the outlet: one text from two outlets is two articles of one story


@dataclass(frozen=True, slots=True)
class KeywordStatistics:
    """What BM25 needs from the whole collection: document counts of terms and chunk lengths."""

    doc_counts: Mapping[str, int]  # chunks containing each term, matched as the index stems it
    n_chunks: int
    mean_chunk_words: float


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A chunk to store: its span of the article's text and the hash its vector is reused by."""

    span: ChunkSpan
    text_hash: str


@dataclass(frozen=True, slots=True)
class NewArticle:
    """An article to store with its chunks (in order) and sentence spans (in order)."""

    key: str
    article: ParsedArticle
    content_hash: str
    norm_hash: str
    origin_file: str
    chunks: tuple[NewChunk, ...]
    sentences: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class ArticleSummary:
    """An article as story grouping sees it: metadata, the start of its text, its chunks."""

    key: str
    title: str
    head: str  # the first `head_chars` characters of the text
    published: date | None
    source: str
    chunk_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ExportedArticle:
    """An article as stored, with its chunks' vectors ((n_chunks, dim) float32) and story."""

    article: NewArticle
    vectors: np.ndarray
    story_id: str


class _Memoised:
    """Figures derived from an immutable version, kept for the version's readers.

    Entries are set whole, so readers in other threads need no lock; a backend may share one
    memo between the snapshots of a version by assigning `_memo` (see the PostgreSQL one).
    """

    def __init__(self) -> None:
        self._memo: dict[Any, Any] = {}
        self._memo_lock = threading.Lock()


class VersionInfo(ABC):
    """What a committed version is: its name, what its writer recorded, what it promises."""

    @property
    @abstractmethod
    def version(self) -> str:
        """The version's name (e.g. 'gen-000007')."""

    @property
    @abstractmethod
    def metadata(self) -> Mapping[str, Any]:
        """What the writer recorded at commit (embedding identity, chunking, counts, times)."""

    @property
    @abstractmethod
    def capabilities(self) -> StoreCapabilities:
        """What searches on this version promise."""

    @abstractmethod
    def size_bytes(self) -> int:
        """Bytes the version takes in its backend."""


class DenseSearch(ABC):
    """Nearest chunks to a query vector.

    Contract: vectors are float32 and L2-normalised, so a score is the inner product, i.e.
    the cosine similarity (raw: no fusion, no boost). Filters mean what
    `index.store.filters.matches` says; a filtered search returns only chunks of articles
    passing them. An "exact" search (`StoreCapabilities.dense_search`) returns the true top k.
    """

    @abstractmethod
    def dense_search(
        self, query: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[tuple[int, float]]:
        """Top-k (chunk id, inner product) for a query vector of shape (dim,), best first.

        With filters, only chunks of articles passing them are returned.
        """

    @abstractmethod
    def dense_scores(self, query: np.ndarray, chunk_ids: Sequence[int]) -> np.ndarray:
        """Inner products of the query (dim,) with the stored vectors of these chunks: (n,).

        Raises KeyError when a chunk id is not in this version.
        """


class KeywordSearch(_Memoised, ABC):
    """Chunks holding query terms, scored by BM25 (higher is better), and BM25's statistics.

    The analyser contract: a term matches a chunk when the chunk holds a word with the same
    stem, words being what `index.text.tokens` splits and stems what `index.text.stem`
    (Porter) makes of them (terms are single words, as `index.text.terms` gives them). A
    chunk's length is its number of `index.text.tokens`. The engine scores candidates itself with
    `index.text`, so an index that splits or stems otherwise would weigh a term one way in
    the store and another in scoring ("voted/voting/votes" once one stem in the index and
    three in scoring); the conformance suite checks this
    (`test_the_keyword_index_counts_terms_and_lengths_as_the_analyser_does`). Filters mean
    what `index.store.filters.matches` says.
    """

    @abstractmethod
    def keyword_search(
        self, terms: Sequence[str], k: int, filters: SearchFilters | None = None
    ) -> list[tuple[int, float]]:
        """Top-k (chunk id, BM25; higher is better) for chunks holding any of the terms."""

    @abstractmethod
    def count_chunks(self) -> int:
        """Number of chunks (BM25's document count)."""

    def keyword_statistics(self, terms: Sequence[str]) -> KeywordStatistics:
        """Document counts of the terms, the number of chunks and their mean length (memoised)."""
        shape = self._memo.get("shape")
        if shape is None:
            shape = self._memo["shape"] = (self.count_chunks(), self._mean_chunk_words())
        counts: dict[str, int] = {}
        missing: list[str] = []
        for term in terms:
            cached = self._memo.get(("df", term))
            if cached is None:
                missing.append(term)
            else:
                counts[term] = cached
        for term, count in self._term_document_counts(missing).items():
            self._memo["df", term] = counts[term] = count
        return KeywordStatistics(counts, shape[0], shape[1])

    @abstractmethod
    def _term_document_counts(self, terms: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each term, matched as the analyser says (no memo)."""

    @abstractmethod
    def _mean_chunk_words(self) -> float:
        """Mean number of `index.text.tokens` in a chunk (BM25's length normalisation)."""


class ArticleCatalogue(_Memoised, ABC):
    """The articles of a version: chunk rows, browsing, titles, counts and export.

    Contract: an article's id (`key`) is unique in a version; chunk ids are unique across
    versions of a collection (an id deleted is never given again); "newest first" orders by
    published date, undated last, then by ingest order, newest first; filters mean what
    `index.store.filters.matches` says.
    """

    @abstractmethod
    def chunk_rows(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunks by id (ids not in this version are left out)."""

    @abstractmethod
    def sentence_spans(self, chunk_ids: Sequence[int]) -> dict[int, list[Span]]:
        """For each chunk, the spans of its article's sentences that lie within it, in order."""

    @abstractmethod
    def chunk_ids_of_articles(self, keys: Sequence[str]) -> list[int]:
        """Ids of every chunk of these articles, ascending."""

    @abstractmethod
    def articles(self, keys: Sequence[str]) -> dict[str, ArticleInfo]:
        """Article metadata by public id."""

    @abstractmethod
    def story_members(self, story_ids: Sequence[str]) -> dict[str, list[ArticleInfo]]:
        """The articles of each story, oldest first."""

    @abstractmethod
    def find_article(self, id_or_title: str) -> tuple[ArticleInfo, str, int] | None:
        """An article, its text and its number of chunks, by id, unique id prefix, exact
        title, then title substring."""

    @abstractmethod
    def search_titles(self, text: str, limit: int) -> list[ArticleInfo]:
        """Articles whose title contains the text, newest first."""

    @abstractmethod
    def recent_articles(
        self, limit: int, offset: int = 0, source: str | None = None
    ) -> list[ArticleInfo]:
        """Articles newest first (by published date, undated last, then by ingest order)."""

    @abstractmethod
    def articles_since(
        self, *, published_since: date | None, ingested_since: str | None, limit: int
    ) -> list[tuple[ArticleInfo, str]]:
        """Newest articles with their story ids, published or ingested since a point.

        `ingested_since` is a time in the form of `metadata['build_started']`.
        """

    @abstractmethod
    def sources(self) -> list[tuple[str, int]]:
        """Outlets with their article counts, most first."""

    @abstractmethod
    def count_articles(self, source: str | None = None) -> int:
        """Number of articles (of one outlet)."""

    @abstractmethod
    def count_chunks(self) -> int:
        """Number of chunks."""

    @abstractmethod
    def stored_articles(self) -> dict[str, StoredArticle]:
        """Every article's identity and hashes, by public id (what a writer plans with)."""

    @abstractmethod
    def export_articles(self) -> Iterator[ExportedArticle]:
        """Every article with everything needed to store it elsewhere without re-embedding."""

    def coverage(self, filters: SearchFilters | None = None) -> Coverage:
        """Article count and date span of the (filtered) collection; the whole one memoised."""
        if filters is not None and not filters.is_empty():
            return self._coverage(filters)
        cached = self._memo.get("coverage")
        if cached is None:
            cached = self._memo["coverage"] = self._coverage(None)
        return cached

    @abstractmethod
    def _coverage(self, filters: SearchFilters | None) -> Coverage:
        """Article count and date span (no memo)."""


class Snapshot(VersionInfo, DenseSearch, KeywordSearch, ArticleCatalogue):
    """One committed version of the collection, read-only and immutable: every read protocol.

    Safe to use from several threads. Arrays are float32; vectors are L2-normalised, so inner
    products are cosine similarities. The engine's functions may ask for less (a
    `KeywordSearch`, an `ArticleCatalogue`); a backend's snapshot serves them all.
    """


class StoreWriter(ABC):
    """Builds the next version of a collection; nothing is visible to readers until `commit`.

    Used as a context manager: leaving it without `commit` (an error, or a plain return)
    aborts, and the collection stays as it was. Contract: one writer at a time per collection
    (`Store.writer` raises WriterBusy for a second, across processes too); a new chunk's id
    was never given to a chunk of this collection before; the committed metadata holds what
    it was given plus `counts` (articles, chunks) and `build_started`, the time every article
    this writer added was ingested at (what `articles_since(ingested_since=...)` compares).
    """

    @property
    @abstractmethod
    def base(self) -> Snapshot | None:
        """The version this one starts from (None: it starts empty)."""

    @abstractmethod
    def stored_articles(self) -> dict[str, StoredArticle]:
        """The articles the new version holds so far, by public id."""

    @abstractmethod
    def count_chunks(self) -> int:
        """Chunks the new version holds so far."""

    @abstractmethod
    def delete_articles(self, keys: Sequence[str]) -> None:
        """Remove articles with their chunks, sentences and vectors (unknown ids are ignored)."""

    @abstractmethod
    def add_article(self, article: NewArticle) -> list[int]:
        """Store an article with its chunks and sentences; return the new chunks' ids in order.

        Raises StoreError when an article with that id is already stored.
        """

    @abstractmethod
    def reusable_vectors(self, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors (dim,) already stored for chunks with these text hashes, by hash."""

    @abstractmethod
    def set_vectors(self, chunk_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Give new chunks their vectors: `vectors` is (len(chunk_ids), dim) float32."""

    @abstractmethod
    def vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """Vectors of chunks of the new version: (n, dim) float32.

        Raises KeyError for a chunk that has none yet.
        """

    @abstractmethod
    def article_summaries(self, head_chars: int) -> list[ArticleSummary]:
        """Every article of the new version, for story grouping."""

    @abstractmethod
    def set_story_ids(self, story_of: Mapping[str, str]) -> None:
        """Store each article's story id (article id → story id)."""

    @abstractmethod
    def commit(self, metadata: Mapping[str, Any]) -> str:
        """Publish the new version with this metadata; returns its name.

        Every chunk must have a vector. Readers that hold the previous version finish on it.
        """

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written; the current version stays."""

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()


class StateStore(ABC):
    """State that outlives versions: feedback votes, follows, rate limits and named values.

    Safe to use from several threads. Contract: every store object of one collection sees
    the same state (two bot processes share their rate-limit windows through it), and
    `take_token` takes its use atomically.
    """

    def record_feedback(
        self, question: str, chunk_ids: Sequence[int], vote: int, user_hash: str
    ) -> None:
        """Store a vote (+1/-1); a user's later vote on the same answer replaces the earlier.

        Raises ValueError for any other vote.
        """
        if vote not in (-1, 1):
            raise ValueError("vote must be +1 or -1")
        self._record_feedback(question, sorted(int(i) for i in chunk_ids), vote, user_hash)

    @abstractmethod
    def _record_feedback(
        self, question: str, chunk_ids: list[int], vote: int, user_hash: str
    ) -> None:
        """Store a checked vote on the answer that quoted these (sorted) chunks."""

    @abstractmethod
    def feedback_counts(self) -> dict[str, int]:
        """Counts of up and down votes: {'up': n, 'down': m}."""

    def add_follow(
        self, topic: str, *, channel_id: int, user_id: int, guild_id: int | None = None
    ) -> Follow:
        """Follow a topic in a channel (following it again there changes nothing).

        The topic's white space is folded. Raises ValueError for a topic without words.
        """
        topic = " ".join(topic.split())
        if not topic:
            raise ValueError("a followed topic needs words")
        return self._add_follow(topic, channel_id=channel_id, user_id=user_id,
                                guild_id=guild_id)

    @abstractmethod
    def _add_follow(
        self, topic: str, *, channel_id: int, user_id: int, guild_id: int | None
    ) -> Follow:
        """Store a follow of a checked topic, or return the one already there."""

    @abstractmethod
    def remove_follow(self, follow_id: int) -> bool:
        """Delete a follow; False if there was none with that id."""

    @abstractmethod
    def list_follows(
        self, *, guild_id: int | None = None, channel_id: int | None = None
    ) -> list[Follow]:
        """Follows, optionally of one guild or one channel, oldest first."""

    @abstractmethod
    def take_token(self, bucket: str, rate: int, per_seconds: float, now: float) -> float | None:
        """Take one use of the bucket's allowance: `rate` uses per window of `per_seconds`,
        the window starting at the first use after the last one ended (as discord.py's
        Cooldown). Returns None when a use was left, else the seconds until the window ends.

        `now` is the caller's clock in seconds (wall time when several processes share the
        store, so their windows agree).
        """

    @abstractmethod
    def get_value(self, key: str) -> str | None:
        """A named value (None when unset)."""

    @abstractmethod
    def set_value(self, key: str, value: str) -> None:
        """Set a named value."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""


class Store(ABC):
    """A backend: the current version of a collection, its writer, and the bot's state."""

    name: str = ""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the collection lives, for messages (a folder, a server)."""

    @abstractmethod
    def exists(self) -> bool:
        """True when at least one version has been committed (cheap; loads nothing)."""

    def write_failure(self, exc: BaseException) -> str | None:
        """One line naming why a write failed (a read-only folder, a full disk), when `exc` is
        such a failure of this store; None for anything else (a bug must stay a traceback)."""
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            return f"{(exc.strerror or str(exc)).lower()}{where}"
        return None

    @abstractmethod
    def open(self, identity: Mapping[str, Any] | None, *, repair: bool = False) -> bool:
        """Start serving the current version; False when there is none yet.

        `identity` is the embedder's (model, dim, normalized): a version built with another
        raises IdentityMismatch (None accepts any model, for tools that only read rows). A
        damaged version falls back to an older good one, or raises StoreError when none is
        good. With `repair` (a rebuild is about to run) neither raises: the version is set
        aside and nothing serves.
        """

    @abstractmethod
    def reading(self) -> AbstractContextManager[Snapshot]:
        """Hold the current version for one call; raises StoreEmpty when there is none."""

    @abstractmethod
    def writer(self, *, fresh: bool = False) -> StoreWriter:
        """Begin the next version: a copy of the current one (empty with `fresh`).

        Raises WriterBusy while another writer is at work on this collection.
        """

    @abstractmethod
    def state(self) -> StateStore:
        """The bot's state store (opened on first call, then the same object)."""

    @abstractmethod
    def close(self) -> None:
        """Release files and connections; calls still running finish on what they hold."""


# How often a writer that waits asks again for the collection (s): a writer's turn comes at
# most this late, and each try costs one lock attempt (a file lock, or one database query).
WRITER_POLL_SECONDS = 0.5


def begin_writer(
    store: Store,
    *,
    fresh: bool = False,
    wait_seconds: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> StoreWriter:
    """`store.writer(fresh=...)`, waiting up to `wait_seconds` while another writer is at work.

    `on_wait` hears once, before the first wait, what is waited for (one line). Raises
    WriterBusy, saying how long it waited, when the other writer is still at work after
    `wait_seconds`; `clock` and `sleep` (seconds) are injectable for tests.
    """
    deadline: float | None = None
    while True:
        try:
            return store.writer(fresh=fresh)
        except WriterBusy as exc:
            now = clock()
            if deadline is None:
                deadline = now + wait_seconds
                if wait_seconds <= 0:
                    raise
                if on_wait is not None:
                    on_wait(f"{exc}; waiting up to {wait_seconds:g} s for it to finish")
            if now >= deadline:
                raise WriterBusy(f"{exc}; still busy after waiting {wait_seconds:g} s") from exc
            sleep(min(WRITER_POLL_SECONDS, deadline - now))
