"""Every read and the writer served by scanning a version held as Python records.

For a backend without indexes of its own (the in-memory one, one that keeps a version as a
file or an object): its snapshot subclasses `ScanSnapshot` and writes 6 methods (the four of
`VersionInfo`, `_records` and `_vectors`); its writer subclasses `ScanWriter` and writes 2
(`_publish`, `_release`). A backend with an index overrides only the reads it speeds up
(a vector index's `dense_search`, say) and keeps the rest.

What the reads mean is what the protocols in `index.store.base` say: dense search is exact
(every allowed vector is scored), keyword matching and lengths follow the analyser
(`index.text.tokens` and `index.text.stem`), filters are `index.store.filters.matches`, and
keyword scores are BM25 with FTS5's constants, as the local backend ranks them. Each search
costs a pass over the version (fine for thousands of chunks, not for millions).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from index.models import ArticleInfo, Coverage, SearchFilters, Span
from index.store.base import (
    ArticleSummary,
    ChunkRow,
    ExportedArticle,
    NewArticle,
    Snapshot,
    StoredArticle,
    StoreError,
    StoreWriter,
)
from index.store.filters import matches
from index.text import stem, tokens

# FTS5's BM25 constants and its floor for the IDF of a term in most documents (SQLite's
# fts5_aux.c), so a scan ranks keyword matches as the local backend does.
BM25_K1 = 1.2
BM25_B = 0.75
MIN_IDF = 1e-6


@dataclass(frozen=True, slots=True)
class ArticleRecord:
    """An article of a version as a scan reads it.

    `chunk_ids` follow `article.chunks` (same order, same length); `story_id` is '' until a
    writer sets it; `ingested_at` is the `build_started` of the version that added it.
    """

    article: NewArticle
    chunk_ids: tuple[int, ...]
    story_id: str
    ingested_at: str

    def info(self) -> ArticleInfo:
        """The article's metadata as the catalogue gives it."""
        parsed = self.article.article
        return ArticleInfo(id=self.article.key, title=parsed.title, source=parsed.source,
                           url=parsed.url, published=parsed.published,
                           authors=tuple(parsed.authors), labels=tuple(parsed.labels))


@dataclass(frozen=True, slots=True)
class _Tables:
    """What the reads look records up by, derived once per version."""

    order: dict[str, int]  # article id -> ingest position (records' order)
    by_key: dict[str, ArticleRecord]
    infos: dict[str, ArticleInfo]
    chunks: dict[int, tuple[ArticleRecord, int]]  # chunk id -> its article, its position
    stems: dict[int, Counter[str]]  # chunk id -> its words' stems, counted
    lengths: dict[int, int]  # chunk id -> its number of tokens


def _term_stems(term: str) -> tuple[str, ...]:
    """The stems a term matches with, as the analyser splits it (several for "bus-driver")."""
    return tuple(stem(token) for token in tokens(term))


def _newest_first(record: ArticleRecord, position: int) -> tuple[bool, int, int]:
    """Sort key: published date newest first, undated last, then the later ingested first."""
    published = record.article.article.published
    return (published is None, -published.toordinal() if published else 0, -position)


class ScanSnapshot(Snapshot):
    """A Snapshot whose every read scans `_records` (and `_vectors` for the dense side).

    Subclasses write `version`, `metadata`, `capabilities`, `size_bytes`, `_records` and
    `_vectors`; the records and vectors must not change for the snapshot's life.
    """

    @abstractmethod
    def _records(self) -> Sequence[ArticleRecord]:
        """Every article of the version, in ingest order (oldest first)."""

    @abstractmethod
    def _vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """Stored vectors of these chunks: (n, dim) float32, L2-normalised.

        Raises KeyError for a chunk id not in this version.
        """

    # --- derived tables
    def _tables(self) -> _Tables:
        """The look-up tables of this version (built on first use, then memoised)."""
        tables = self._memo.get("scan")
        if tables is None:
            with self._memo_lock:
                tables = self._memo.get("scan")
                if tables is None:
                    tables = self._memo["scan"] = self._build_tables()
        return tables

    def _build_tables(self) -> _Tables:
        """Index the records by article and chunk; stem every chunk once."""
        records = list(self._records())
        chunks: dict[int, tuple[ArticleRecord, int]] = {}
        stems: dict[int, Counter[str]] = {}
        lengths: dict[int, int] = {}
        for record in records:
            text = record.article.article.text
            for position, (chunk_id, chunk) in enumerate(
                    zip(record.chunk_ids, record.article.chunks, strict=True)):
                chunks[chunk_id] = (record, position)
                words = tokens(text[chunk.span.start : chunk.span.end])
                stems[chunk_id] = Counter(stem(word) for word in words)
                lengths[chunk_id] = len(words)
        return _Tables(
            order={record.article.key: i for i, record in enumerate(records)},
            by_key={record.article.key: record for record in records},
            infos={record.article.key: record.info() for record in records},
            chunks=chunks, stems=stems, lengths=lengths,
        )

    def _passing(self, filters: SearchFilters | None) -> list[ArticleRecord]:
        """The records whose articles pass the filters, in ingest order."""
        tables = self._tables()
        return [tables.by_key[key] for key, info in tables.infos.items()
                if matches(info, filters)]

    def _newest(self, records: Sequence[ArticleRecord]) -> list[ArticleRecord]:
        """Records newest first (see `_newest_first`)."""
        order = self._tables().order
        return sorted(records, key=lambda r: _newest_first(r, order[r.article.key]))

    # --- DenseSearch
    def dense_search(
        self, query: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[tuple[int, float]]:
        """Exact top-k by inner product over every allowed chunk (ties: the lower id first)."""
        ids = sorted(cid for record in self._passing(filters) for cid in record.chunk_ids)
        if not ids or k <= 0:
            return []
        scores = self._vectors(ids) @ np.asarray(query, dtype=np.float32)
        best = np.argsort(-scores, kind="stable")[:k]
        return [(ids[i], float(scores[i])) for i in best]

    def dense_scores(self, query: np.ndarray, chunk_ids: Sequence[int]) -> np.ndarray:
        """Inner products with these chunks' vectors; KeyError for an unknown chunk."""
        return (self._vectors(list(chunk_ids)) @ np.asarray(query, dtype=np.float32)).astype(
            np.float32)

    # --- KeywordSearch
    def keyword_search(
        self, terms: Sequence[str], k: int, filters: SearchFilters | None = None
    ) -> list[tuple[int, float]]:
        """Top-k by BM25 (FTS5's) of the chunks holding any term (ties: the lower id first)."""
        wanted = [(term, stems) for term in dict.fromkeys(terms) if (stems := _term_stems(term))]
        if not wanted or k <= 0:
            return []
        tables = self._tables()
        n_chunks = len(tables.chunks)
        counts = self._term_document_counts([term for term, _ in wanted])
        idf = {term: max(MIN_IDF, math.log((n_chunks - counts[term] + 0.5)
                                           / (counts[term] + 0.5)))
               for term, _ in wanted}
        mean = self._mean_chunk_words()
        scored: list[tuple[float, int]] = []
        for record in self._passing(filters):
            for chunk_id in record.chunk_ids:
                held = tables.stems[chunk_id]
                norm = BM25_K1 * (1 - BM25_B + BM25_B * tables.lengths[chunk_id] / mean)
                score = 0.0
                for term, stems in wanted:
                    frequency = min(held[s] for s in stems)
                    if frequency:
                        score += idf[term] * frequency * (BM25_K1 + 1) / (frequency + norm)
                if score > 0:
                    scored.append((-score, chunk_id))
        return [(chunk_id, -negative) for negative, chunk_id in sorted(scored)[:k]]

    def count_chunks(self) -> int:
        """Number of chunks."""
        return len(self._tables().chunks)

    def _term_document_counts(self, terms: Sequence[str]) -> dict[str, int]:
        """Chunks holding every stem of each term."""
        held = self._tables().stems.values()
        counts: dict[str, int] = {}
        for term in terms:
            stems = _term_stems(term)
            counts[term] = sum(all(s in chunk for s in stems) for chunk in held) if stems else 0
        return counts

    def _mean_chunk_words(self) -> float:
        """Mean tokens a chunk (1.0 for an empty version, as SQLite's avg of nothing)."""
        lengths = self._tables().lengths
        return sum(lengths.values()) / len(lengths) if lengths else 1.0

    # --- ArticleCatalogue
    def chunk_rows(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunks by id (unknown ids left out)."""
        chunks = self._tables().chunks
        rows: dict[int, ChunkRow] = {}
        for chunk_id in chunk_ids:
            found = chunks.get(int(chunk_id))
            if found is None:
                continue
            record, position = found
            span = record.article.chunks[position].span
            parsed = record.article.article
            rows[int(chunk_id)] = ChunkRow(
                int(chunk_id), record.article.key, span.start, span.end,
                parsed.text[span.start : span.end], parsed.published,
                record.story_id or record.article.key)
        return rows

    def sentence_spans(self, chunk_ids: Sequence[int]) -> dict[int, list[Span]]:
        """The article's sentences within each chunk, in order ([] for an unknown chunk)."""
        chunks = self._tables().chunks
        spans: dict[int, list[Span]] = {}
        for chunk_id in chunk_ids:
            found = chunks.get(int(chunk_id))
            if found is None:
                spans[int(chunk_id)] = []
                continue
            record, position = found
            span = record.article.chunks[position].span
            spans[int(chunk_id)] = [s for s in record.article.sentences
                                    if s.start >= span.start and s.end <= span.end]
        return spans

    def chunk_ids_of_articles(self, keys: Sequence[str]) -> list[int]:
        """Ids of these articles' chunks, ascending."""
        by_key = self._tables().by_key
        return sorted(cid for key in dict.fromkeys(keys) if key in by_key
                      for cid in by_key[key].chunk_ids)

    def articles(self, keys: Sequence[str]) -> dict[str, ArticleInfo]:
        """Article metadata by id (unknown ids left out)."""
        infos = self._tables().infos
        return {key: infos[key] for key in keys if key in infos}

    def story_members(self, story_ids: Sequence[str]) -> dict[str, list[ArticleInfo]]:
        """Each story's articles, oldest first (undated last, then in ingest order)."""
        wanted = set(story_ids)
        tables = self._tables()
        members: dict[str, list[ArticleRecord]] = {}
        for record in tables.by_key.values():
            if record.story_id in wanted:
                members.setdefault(record.story_id, []).append(record)

        def oldest_first(record: ArticleRecord) -> tuple[bool, int, int]:
            """Sort key: published ascending, undated last, then ingest order."""
            published = record.article.article.published
            return (published is None, published.toordinal() if published else 0,
                    tables.order[record.article.key])

        return {story: [tables.infos[r.article.key] for r in sorted(records, key=oldest_first)]
                for story, records in members.items()}

    def find_article(self, id_or_title: str) -> tuple[ArticleInfo, str, int] | None:
        """By id, unique id prefix, exact title (any case), then title substring (newest)."""
        needle = id_or_title.strip()
        if not needle:
            return None
        records = list(self._tables().by_key.values())
        lowered = needle.lower()
        attempts = [
            ([r for r in records if r.article.key == lowered], False),
            ([r for r in records if r.article.key.lower().startswith(lowered)], False),
            ([r for r in records if r.article.article.title.lower() == lowered], True),
            (self._newest([r for r in records if lowered in r.article.article.title.lower()]),
             True),
        ]
        for found, by_title in attempts:
            if len(found) == 1 or (found and by_title):
                record = found[0]
                return (self._tables().infos[record.article.key], record.article.article.text,
                        len(record.chunk_ids))
        return None

    def search_titles(self, text: str, limit: int) -> list[ArticleInfo]:
        """Articles whose title contains the text (any case), newest first."""
        needle = text.strip().lower()
        records = [r for r in self._tables().by_key.values()
                   if needle in r.article.article.title.lower()]
        return [r.info() for r in self._newest(records)[:max(limit, 0)]]

    def recent_articles(
        self, limit: int, offset: int = 0, source: str | None = None
    ) -> list[ArticleInfo]:
        """Articles newest first, optionally of one outlet."""
        records = [r for r in self._tables().by_key.values()
                   if not source or r.article.article.source == source]
        infos = self._tables().infos
        return [infos[r.article.key]
                for r in self._newest(records)[max(offset, 0) : max(offset, 0) + max(limit, 0)]]

    def articles_since(
        self, *, published_since: date | None, ingested_since: str | None, limit: int
    ) -> list[tuple[ArticleInfo, str]]:
        """Newest articles (with story ids) published and ingested since the points given."""
        records = [
            r for r in self._tables().by_key.values()
            if (published_since is None or (r.article.article.published is not None
                                            and r.article.article.published >= published_since))
            and (ingested_since is None or r.ingested_at >= ingested_since)
        ]
        infos = self._tables().infos
        return [(infos[r.article.key], r.story_id or r.article.key)
                for r in self._newest(records)[:max(limit, 0)]]

    def sources(self) -> list[tuple[str, int]]:
        """Outlets (named ones) with their article counts, most first, then by name."""
        counts = Counter(info.source for info in self._tables().infos.values() if info.source)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def count_articles(self, source: str | None = None) -> int:
        """Number of articles (of one outlet)."""
        infos = self._tables().infos.values()
        return sum(1 for info in infos if not source or info.source == source)

    def stored_articles(self) -> dict[str, StoredArticle]:
        """Every article's identity and hashes."""
        return {r.article.key: StoredArticle(r.article.key, r.article.content_hash,
                                             r.article.norm_hash, r.article.origin_file,
                                             r.article.article.source)
                for r in self._tables().by_key.values()}

    def export_articles(self) -> Iterator[ExportedArticle]:
        """Every article in ingest order, with its vectors and story."""
        for record in self._tables().by_key.values():
            yield ExportedArticle(record.article, self._vectors(list(record.chunk_ids)),
                                  record.story_id or record.article.key)

    def _coverage(self, filters: SearchFilters | None) -> Coverage:
        """Count and date span of the articles passing the filters."""
        passing = [self._tables().infos[r.article.key] for r in self._passing(filters)]
        days = [info.published for info in passing if info.published is not None]
        return Coverage(len(passing), min(days, default=None), max(days, default=None))


def build_time(after: str | None = None) -> str:
    """Now in UTC as 'YYYY-MM-DD HH:MM:SS.ffffff', later than `after` (a base's build time):
    the form `articles_since(ingested_since=...)` compares as strings."""
    now = datetime.now(UTC).replace(tzinfo=None)
    if after:
        now = max(now, datetime.fromisoformat(after) + timedelta(microseconds=1))
    return now.strftime("%Y-%m-%d %H:%M:%S.%f")


class ScanWriter(StoreWriter):
    """The next version as records in Python: the base's, then the changes; published whole.

    Subclasses write `_publish` (make the records and vectors the current version) and
    `_release` (give the writer's lock back). Chunk ids continue from the base's
    `metadata['next_chunk_id']`, so an id is never given twice in a collection.
    """

    def __init__(self, base: ScanSnapshot | None) -> None:
        """Start from `base` (None: an empty collection or a fresh start)."""
        self._base = base
        records = list(base._records()) if base is not None else []
        self._records: dict[str, ArticleRecord] = {r.article.key: r for r in records}
        metadata: Mapping[str, Any] = base.metadata if base is not None else {}
        used = max((cid for r in records for cid in r.chunk_ids), default=0)
        self._next_id = max(int(metadata.get("next_chunk_id", 1)), used + 1)
        self._build_started = build_time(metadata.get("build_started"))
        self._new_vectors: dict[int, np.ndarray] = {}
        self._finished = False
        self._released = False

    @abstractmethod
    def _publish(self, records: tuple[ArticleRecord, ...], vectors: dict[int, np.ndarray],
                 metadata: dict[str, Any]) -> str:
        """Make this the current version (every chunk's vector given); return its name."""

    @abstractmethod
    def _release(self) -> None:
        """Let the next writer start (called once, after commit or abort)."""

    def _release_once(self) -> None:
        """`_release`, the first time only."""
        if not self._released:
            self._released = True
            self._release()

    @property
    def base(self) -> ScanSnapshot | None:
        """The version this one starts from."""
        return self._base

    def stored_articles(self) -> dict[str, StoredArticle]:
        """The articles the new version holds so far."""
        return {key: StoredArticle(key, r.article.content_hash, r.article.norm_hash,
                                   r.article.origin_file, r.article.article.source)
                for key, r in self._records.items()}

    def count_chunks(self) -> int:
        """Chunks the new version holds so far."""
        return sum(len(r.chunk_ids) for r in self._records.values())

    def delete_articles(self, keys: Sequence[str]) -> None:
        """Remove articles (unknown ids ignored) and any vectors given to their chunks."""
        for key in keys:
            record = self._records.pop(key, None)
            if record is not None:
                for chunk_id in record.chunk_ids:
                    self._new_vectors.pop(chunk_id, None)

    def add_article(self, article: NewArticle) -> list[int]:
        """Add an article; its chunks get ids never given before. StoreError if stored."""
        if article.key in self._records:
            raise StoreError(f"article {article.key} is already stored")
        ids = tuple(range(self._next_id, self._next_id + len(article.chunks)))
        self._next_id += len(ids)
        self._records[article.key] = ArticleRecord(article, ids, "", self._build_started)
        return list(ids)

    def reusable_vectors(self, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The base's vectors of chunks with these text hashes."""
        if self._base is None or not text_hashes:
            return {}
        wanted = set(text_hashes)
        found: dict[str, int] = {}
        for record in self._base._records():
            for chunk_id, chunk in zip(record.chunk_ids, record.article.chunks, strict=True):
                if chunk.text_hash in wanted:
                    found.setdefault(chunk.text_hash, chunk_id)
        if not found:
            return {}
        hashes = list(found)
        return dict(zip(hashes, self._base._vectors([found[h] for h in hashes]), strict=True))

    def set_vectors(self, chunk_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Keep the new chunks' vectors (copied, as float32)."""
        for chunk_id, vector in zip(chunk_ids, vectors, strict=True):
            self._new_vectors[int(chunk_id)] = np.array(vector, dtype=np.float32)

    def vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """New chunks' vectors, the base's for chunks kept from it; KeyError for none."""
        rows: list[np.ndarray | None] = [self._new_vectors.get(int(c)) for c in chunk_ids]
        kept = [int(c) for c, row in zip(chunk_ids, rows, strict=True) if row is None]
        if kept:
            if self._base is None:
                raise KeyError(f"chunk {kept[0]} has no vector")
            old = iter(self._base._vectors(kept))
            rows = [row if row is not None else next(old) for row in rows]
        if not rows:
            dim = next(iter(self._new_vectors.values())).shape[0] if self._new_vectors else 0
            return np.zeros((0, dim), dtype=np.float32)
        return np.stack(rows).astype(np.float32)  # type: ignore[arg-type]

    def article_summaries(self, head_chars: int) -> list[ArticleSummary]:
        """Every article of the new version, for story grouping."""
        return [ArticleSummary(key=key, title=r.article.article.title,
                               head=r.article.article.text[:head_chars],
                               published=r.article.article.published,
                               source=r.article.article.source, chunk_ids=r.chunk_ids)
                for key, r in self._records.items()]

    def set_story_ids(self, story_of: Mapping[str, str]) -> None:
        """Store each article's story id (unknown articles ignored)."""
        for key, story in story_of.items():
            record = self._records.get(key)
            if record is not None:
                self._records[key] = replace(record, story_id=story)

    def commit(self, metadata: Mapping[str, Any]) -> str:
        """Publish the records with `metadata` plus counts, build times and the next chunk id.

        Raises KeyError when a chunk has no vector (nothing is published then).
        """
        if self._finished:
            raise StoreError("this version was already committed or aborted")
        try:
            records = tuple(self._records.values())
            ids = [cid for r in records for cid in r.chunk_ids]
            matrix = self.vectors(ids)
            lengths = [len(tokens(r.article.article.text[c.span.start : c.span.end]))
                       for r in records for c in r.article.chunks]
            manifest = {
                **metadata,
                "counts": {"articles": len(records), "chunks": len(ids),
                           "tokens": sum(c.span.n_tokens for r in records
                                         for c in r.article.chunks),
                           "mean_chunk_words": sum(lengths) / len(lengths) if lengths else 1.0},
                "index_type": "flat",
                "build_started": self._build_started,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "next_chunk_id": self._next_id,
            }
            name = self._publish(records, dict(zip(ids, matrix, strict=True)), manifest)
            self._finished = True
            return name
        except BaseException:
            self.abort()
            raise
        finally:
            self._release_once()

    def abort(self) -> None:
        """Discard the changes; the current version stays."""
        if not self._finished:
            self._finished = True
            self._records.clear()
            self._new_vectors.clear()
        self._release_once()
