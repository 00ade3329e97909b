"""The PostgreSQL backend's read side: one pinned version, searched and browsed in SQL.

Dense search is pgvector's inner product (`<#>`) on normalised vectors: exact (a sequential
scan) below the store's `approximate_threshold` chunks, through an HNSW index above it, with
iterative index scans so that a filtered search never returns fewer rows than exist. Keyword
candidates come from the posting lists a writer keeps per version, ranked by BM25 (FTS5's
constants) computed in SQL; filters are `filter_sql`, checked against
`index.store.filters.matches` by the conformance suite.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from psycopg_pool import PoolTimeout

from index.models import ArticleInfo, ChunkSpan, Coverage, ParsedArticle, SearchFilters, Span
from index.store.base import (
    ChunkRow,
    ExportedArticle,
    NewArticle,
    NewChunk,
    Snapshot,
    StoreCapabilities,
    StoredArticle,
)
from index.store.postgres.connection import as_array
from index.store.postgres.schema import live

if TYPE_CHECKING:
    from index.store.postgres.store import PostgresStore

# Below this many chunks every dense search scans exactly. pgvector's scan costs ~2–3 µs a
# chunk here (the bundled build, no SIMD: 37 ms for 13k chunks, measured), far more than
# FAISS's, so HNSW takes over much earlier than in the local store (docs/scaling.md).
APPROXIMATE_THRESHOLD = 10_000
# A filter that leaves at most this many chunks is searched exhaustively, as in the local
# store: an exact dense scan of its chunks (~2 µs a chunk with the vectors in the row: 24 ms
# for one outlet's 13.8k of 1M chunks, where HNSW found 0.78 of the top 10; docs/performance.md)
# and every keyword match among them (few would be among the lexemes' best postings).
EXACT_FILTER_LIMIT = 50_000
# Candidates the HNSW scan keeps (pgvector's hnsw.ef_search; default 40). At 1M chunks: recall@10
# 0.94 with 200, 0.96–0.98 with 400 (two fills), 4–6 ms (`bench.perf stores scale`,
# docs/performance.md).
HNSW_EF_SEARCH = 400
# Postings a keyword search reads, shared out among its lexemes, rarest first (see
# posting_depths; docs/performance.md: keyword candidates' recall against an exhaustive search
# at 1M chunks).
POSTINGS_BUDGET = 20_000
# FTS5's BM25 constants, so keyword candidates are ranked as the local backend ranks them.
FTS_K1 = 1.2
FTS_B = 0.75
# Keyword matches ranked by the cheap proxy before exact BM25: this many times k, at least 100
# (on the news quiz's searches, 100 for k = 30 kept 99.4 % of the exact top 30; 300, 99.97 %).
KEYWORD_PRESELECT = 4
# How long a snapshot waits for a second connection before it queues on its own (s): long
# enough for the pool to open one on loopback (~5 ms), far shorter than a search.
BORROW_WAIT_SECONDS = 0.02
ARTICLE_COLUMNS = "a.key, a.title, a.source, a.url, a.published, a.authors, a.labels"


def filter_sql(filters: SearchFilters | None, alias: str) -> tuple[str, dict[str, Any]]:
    """An AND-fragment ('' when nothing is filtered) and its named parameters."""
    if filters is None or filters.is_empty():
        return "", {}
    parts: list[str] = []
    params: dict[str, Any] = {}
    if filters.sources:
        parts.append(f"{alias}.source = ANY(%(f_sources)s)")
        params["f_sources"] = list(filters.sources)
    if filters.since:
        parts.append(f"{alias}.published >= %(f_since)s")
        params["f_since"] = filters.since
    if filters.until:
        parts.append(f"{alias}.published <= %(f_until)s")
        params["f_until"] = filters.until
    if filters.labels:
        parts.append(f"{alias}.labels && %(f_labels)s::text[]")
        params["f_labels"] = list(filters.labels)
    return " AND " + " AND ".join(parts), params


def posting_depths(document_counts: Sequence[int], budget: int) -> list[int]:
    """How many of each lexeme's best postings to read: `budget` shared out rarest first, each
    lexeme taking its whole list when that fits in an equal share of what is left.

    A chunk's BM25 is mostly its rare terms' (high IDF), so their lists are read whole and
    the common terms' are cut, as MaxScore skips the terms that cannot lift a document into
    the top k (Turtle & Flood 1995). Lexemes with no postings get 0. Order follows the input.
    """
    depths = [0] * len(document_counts)
    left = budget
    order = sorted(range(len(document_counts)), key=lambda i: document_counts[i])
    for rank, i in enumerate(order):
        share = left // (len(order) - rank)
        depths[i] = max(0, min(document_counts[i], share))
        left -= depths[i]
    return depths


def tsquery_text(lexemes: Sequence[str]) -> str:
    """An OR tsquery of lexemes, each quoted (no further stemming)."""
    quoted = ("'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'" for lexeme in lexemes)
    return " | ".join(quoted)


def _article(row: Sequence[Any]) -> ArticleInfo:
    """ArticleInfo from the ARTICLE_COLUMNS of a row."""
    key, title, source, url, published, authors, labels = row[:7]
    return ArticleInfo(id=str(key), title=str(title), source=str(source), url=str(url),
                       published=published, authors=tuple(authors), labels=tuple(labels))


def _like(text: str) -> str:
    """Escape LIKE wildcards."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class PostgresSnapshot(Snapshot):
    """One pinned version, read on one connection (a lock serialises threads on it)."""

    def __init__(self, store: PostgresStore, conn: psycopg.Connection, version: int) -> None:
        """Wrap a pinned version."""
        super().__init__()
        self._store = store
        self._conn = conn
        self._version_number = version
        self._lock = threading.RLock()
        self._memo = store.memo_for(version)

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None, *,
              binary: bool = False) -> list[tuple[Any, ...]]:
        """Run a query at this version (%(v)s) and fetch every row.

        `binary` results: vectors arrive as float32 bytes instead of text to parse.
        """
        with self._session() as conn:
            return conn.execute(sql, {"v": self._version_number, **(params or {})},
                                binary=binary).fetchall()

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection]:
        """The snapshot's connection, or, while another thread runs a statement on it, a
        second pooled connection reading the same version: the first connection's pin keeps
        the version's rows for the snapshot's whole life, so any connection may read them
        (a question's dense and keyword searches run at once this way). Waits for the
        snapshot's own connection when the pool has none to spare at once.

        Database errors that mean the server is unreachable become StoreError.
        """
        borrowed = None
        if not self._lock.acquire(blocking=False):
            pool = self._store.pool()
            stats = pool.get_stats()
            if stats.get("pool_available", 0) or stats.get("pool_size", 0) < pool.max_size:
                with contextlib.suppress(PoolTimeout):
                    borrowed = pool.getconn(timeout=BORROW_WAIT_SECONDS)
            if borrowed is None:
                self._lock.acquire()
        try:
            yield self._conn if borrowed is None else borrowed
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._store.unavailable(exc) from exc
        finally:
            if borrowed is None:
                self._lock.release()
            else:
                pool.putconn(borrowed)

    @property
    def version(self) -> str:
        """'v000007'."""
        return f"v{self._version_number:06d}"

    @property
    def metadata(self) -> dict[str, Any]:
        """What the writer recorded, with the build's start."""
        recorded = self._memo.get("metadata")
        if recorded is None:
            metadata, started = self._rows(
                "SELECT metadata, build_started FROM versions WHERE version = %(v)s")[0]
            recorded = self._memo["metadata"] = {**metadata, "build_started": started}
        return recorded

    @property
    def capabilities(self) -> StoreCapabilities:
        """Exact below the store's approximate_threshold chunks, HNSW above."""
        approximate = self.count_chunks() >= self._store.approximate_threshold
        return StoreCapabilities(
            backend="postgres", dense_search="approximate" if approximate else "exact",
            index_type="hnsw" if approximate else "flat",
            exact_filtered_below=self._store.exact_filter_limit if approximate else 0,
            shared=True,
        )

    def size_bytes(self) -> int:
        """Bytes of the collection's tables and indexes (every version they hold)."""
        return int(self._rows(
            "SELECT sum(pg_total_relation_size(t)) FROM unnest(ARRAY['articles', 'chunks', "
            "'sentences', 'stories', 'term_counts', 'postings']::regclass[]) t")[0][0] or 0)

    # --- retrieval
    def dense_search(
        self, query: np.ndarray, k: int, filters: SearchFilters | None = None,
        *, exact: bool | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k by inner product: exact scan when small, HNSW with iterative scans when large.

        `exact` forces either way (benchmarks measure the HNSW's recall against it).
        """
        if k <= 0:
            return []
        where, params = filter_sql(filters, "c")
        dim = len(query)
        forced = exact is not None
        exact = exact if forced else self.count_chunks() < self._store.approximate_threshold
        if not forced and not exact and where:
            exact = self.allowed_chunks(filters) <= self._store.exact_filter_limit
        sql = (f"SELECT id, distance FROM (SELECT c.id, c.embedding::vector({dim}) <#> "
               f"%(q)s::vector({dim}) AS distance FROM chunks c WHERE {live('c')}{where} "
               f"AND vector_dims(c.embedding) = {dim} "  # the HNSW index's predicate
               "ORDER BY distance LIMIT %(k)s) found ORDER BY distance, id")
        values = {"v": self._version_number, "q": np.asarray(query, dtype=np.float32), "k": k,
                  **params}
        if exact:
            settings = ["SET LOCAL enable_indexscan = off"]
        else:
            settings = ["SET LOCAL hnsw.iterative_scan = relaxed_order",
                        f"SET LOCAL hnsw.ef_search = {int(self._store.ef_search)}"]
        with self._session() as conn:
            # One round trip: the settings hold for this statement's transaction only.
            with conn.pipeline(), conn.transaction():
                for setting in settings:
                    conn.execute(setting)
                cursor = conn.execute(sql, values)
            rows = cursor.fetchall()
        return [(int(cid), -float(distance)) for cid, distance in rows]

    def dense_scores(self, query: np.ndarray, chunk_ids: Sequence[int]) -> np.ndarray:
        """Inner products with the stored vectors, computed here as the local backend does."""
        wanted = list(dict.fromkeys(int(i) for i in chunk_ids))
        if not wanted:
            return np.zeros(0, dtype=np.float32)
        rows = dict(self._rows(
            f"SELECT c.id, c.embedding FROM chunks c WHERE c.id = ANY(%(ids)s) AND {live('c')}",
            {"ids": wanted}, binary=True))
        missing = [i for i in wanted if i not in rows]
        if missing:
            raise KeyError(f"chunk {missing[0]} is not in {self.version}")
        matrix = np.stack([as_array(rows[int(i)]) for i in chunk_ids])
        return matrix @ query

    def _stems(self, terms: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
        """Each term's lexemes as the keyword index stems it, with the chunks holding each at
        this version (a stop word has none). Memoised per version; one query for the rest.
        """
        missing = [t for t in dict.fromkeys(terms) if ("stem", t) not in self._memo]
        if missing:
            rows = self._rows(
                "SELECT t, l, coalesce((SELECT n FROM term_counts WHERE lexeme = l AND "
                "version <= %(v)s ORDER BY version DESC LIMIT 1), 0) FROM unnest(%(t)s::text[]) t "
                "LEFT JOIN LATERAL unnest(tsvector_to_array(to_tsvector('articlebot', "
                "regexp_replace(t, '[^[:alnum:]]+', ' ', 'g')))) l "
                "ON true", {"t": missing})
            found: dict[str, list[tuple[str, int]]] = {t: [] for t in missing}
            for term, lexeme, count in rows:
                if lexeme is not None:
                    found[str(term)].append((str(lexeme), int(count)))
            for term, stems in found.items():
                self._memo["stem", term] = stems
        return {t: self._memo["stem", t] for t in terms}

    def keyword_search(
        self, terms: Sequence[str], k: int, filters: SearchFilters | None = None,
        *, exhaustive: bool | None = None,
    ) -> list[tuple[int, float]]:
        """Chunks holding any term, the top k by BM25 (FTS5's k1 and b) computed in SQL.

        Candidates come from the posting lists: each lexeme's best postings by BM25 weight
        without IDF (POSTINGS_BUDGET of them in all, see posting_depths), summed with the
        IDFs, the best KEYWORD_PRESELECT·k (at least 100) visible ones getting exact BM25 from
        their tsvectors. A filter that allows at most the store's exact_filter_limit chunks is
        searched exhaustively instead: every match among its chunks (GIN ∩ the filter), first
        ranked by Σ idf·ts_rank, which is cheaper than unpacking each tsvector (~20 µs a
        match). `exhaustive` forces either way (benchmarks measure the posting lists' recall
        against it).
        """
        counts = dict(pair for stems in self._stems(terms).values() for pair in stems)
        lexemes = sorted(counts)
        if not lexemes or k <= 0:
            return []
        n_docs = self.count_chunks()
        idf = [max(1e-6, math.log((n_docs - counts[lex] + 0.5) / (counts[lex] + 0.5)))
               for lex in lexemes]
        where, params = filter_sql(filters, "c")
        share = 1.0
        if where:
            allowed = self.allowed_chunks(filters)
            share = allowed / max(n_docs, 1)
            if exhaustive is None:
                exhaustive = allowed <= self._store.exact_filter_limit
        preselect = max(KEYWORD_PRESELECT * k, 100)
        values: dict[str, Any] = {
            "lex": lexemes, "idf": idf, "k": k, "pre": preselect, "k1": FTS_K1,
            "k1p1": FTS_K1 + 1, "b": FTS_B, "avg": max(self._mean_chunk_words(), 1.0), **params,
        }
        if exhaustive:
            proxy = " + ".join(f"%(w{i})s * ts_rank(c.tsv, %(t{i})s::tsquery)"
                               for i in range(len(lexemes)))
            candidates = (
                "SELECT c.id, c.n_words, c.tsv FROM chunks c WHERE c.tsv @@ %(query)s::tsquery "
                f"AND {live('c')}{where} ORDER BY {proxy} DESC, c.id LIMIT %(pre)s")
            values |= {"query": tsquery_text(lexemes),
                       **{f"w{i}": weight for i, weight in enumerate(idf)},
                       **{f"t{i}": tsquery_text([lex]) for i, lex in enumerate(lexemes)}}
        else:
            # Postings of versions this reader cannot see (a build in progress, rows not yet
            # deleted) and chunks the filter rejects take places: reach deeper in proportion.
            values |= {"depth": posting_depths([counts[lex] for lex in lexemes],
                                               POSTINGS_BUDGET),
                       "reach": math.ceil(2 * preselect / max(share, 1e-6))}
            candidates = (
                "WITH q AS (SELECT unnest(%(lex)s::text[]) AS lexeme, unnest(%(idf)s::float8[]) "
                "AS idf, unnest(%(depth)s::int[]) AS depth), best AS (SELECT b.chunk_id, "
                "sum(q.idf * b.impact) AS score FROM q CROSS JOIN LATERAL (SELECT p.chunk_id, "
                "p.impact FROM postings p WHERE p.lexeme = q.lexeme ORDER BY p.impact DESC "
                "LIMIT q.depth) b GROUP BY "
                "b.chunk_id ORDER BY score DESC, b.chunk_id LIMIT %(reach)s) "
                "SELECT c.id, c.n_words, c.tsv FROM best JOIN chunks c ON c.id = best.chunk_id "
                f"WHERE {live('c')}{where} ORDER BY best.score DESC, c.id LIMIT %(pre)s")
        sql = (
            f"WITH p AS MATERIALIZED ({candidates}), q AS (SELECT unnest(%(lex)s::text[]) AS "
            "lexeme, unnest(%(idf)s::float8[]) AS idf) "
            "SELECT p.id, sum(q.idf * cardinality(u.positions) * %(k1p1)s / "
            "(cardinality(u.positions) + %(k1)s * (1 - %(b)s + %(b)s * p.n_words / %(avg)s))) "
            "AS score FROM p CROSS JOIN LATERAL unnest(p.tsv) u "
            "JOIN q ON q.lexeme = u.lexeme GROUP BY p.id ORDER BY score DESC, p.id LIMIT %(k)s"
        )
        rows = self._rows(sql, values)
        return [(int(cid), float(score)) for cid, score in rows]

    def allowed_chunks(self, filters: SearchFilters | None) -> int:
        """Chunks the filters allow at this version (memoised per version)."""
        allowed = self._memo.get(("allowed", filters))
        if allowed is None:
            where, params = filter_sql(filters, "c")
            allowed = self._memo["allowed", filters] = int(self._rows(
                f"SELECT count(*) FROM chunks c WHERE {live('c')}{where}", params)[0][0])
        return allowed

    def _term_document_counts(self, terms: Sequence[str]) -> dict[str, int]:
        return {term: min((n for _, n in stems), default=0)
                for term, stems in self._stems(terms).items()}

    def _mean_chunk_words(self) -> float:
        return float(self.metadata.get("counts", {}).get("mean_chunk_words", 1.0))

    # --- rows
    def chunk_rows(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunks by id, with their article and story at this version."""
        if not chunk_ids:
            return {}
        rows = self._rows(
            "SELECT c.id, a.key, c.start, c.\"end\", c.text, a.published, s.story_id "
            "FROM chunks c JOIN articles a ON a.id = c.article_id LEFT JOIN stories s ON "
            f"s.article_id = a.id AND {live('s')} WHERE c.id = ANY(%(ids)s) AND {live('c')}",
            {"ids": [int(i) for i in chunk_ids]})
        return {int(cid): ChunkRow(int(cid), str(key), int(start), int(end), str(text),
                                   published, str(story or key))
                for cid, key, start, end, text, published, story in rows}

    def sentence_spans(self, chunk_ids: Sequence[int]) -> dict[int, list[Span]]:
        """Sentence spans within each chunk, in order."""
        spans: dict[int, list[Span]] = {int(cid): [] for cid in chunk_ids}
        if not spans:
            return spans
        rows = self._rows(
            "SELECT c.id, s.start, s.\"end\" FROM chunks c JOIN sentences s ON s.article_id = "
            "c.article_id AND s.start >= c.start AND s.\"end\" <= c.\"end\" "
            "WHERE c.id = ANY(%(ids)s) ORDER BY c.id, s.ord", {"ids": list(spans)})
        for cid, start, end in rows:
            spans[int(cid)].append(Span(int(start), int(end)))
        return spans

    def chunk_ids_of_articles(self, keys: Sequence[str]) -> list[int]:
        """Chunk ids of these articles, ascending."""
        if not keys:
            return []
        return [int(r[0]) for r in self._rows(
            "SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article_id WHERE "
            f"a.key = ANY(%(keys)s) AND {live('a')} AND {live('c')} ORDER BY c.id",
            {"keys": list(keys)})]

    def articles(self, keys: Sequence[str]) -> dict[str, ArticleInfo]:
        """Articles by id."""
        if not keys:
            return {}
        rows = self._rows(f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.key = ANY(%(k)s) "
                          f"AND {live('a')}", {"k": list(keys)})
        return {str(row[0]): _article(row) for row in rows}

    def story_members(self, story_ids: Sequence[str]) -> dict[str, list[ArticleInfo]]:
        """The articles of each story, oldest first (undated first, as the local backend)."""
        if not story_ids:
            return {}
        rows = self._rows(
            f"SELECT {ARTICLE_COLUMNS}, s.story_id FROM stories s JOIN articles a ON "
            f"a.id = s.article_id WHERE s.story_id = ANY(%(s)s) AND {live('s')} AND "
            f"{live('a')} ORDER BY a.published NULLS FIRST, a.id", {"s": list(story_ids)})
        members: dict[str, list[ArticleInfo]] = {}
        for row in rows:
            members.setdefault(str(row[7]), []).append(_article(row))
        return members

    def find_article(self, id_or_title: str) -> tuple[ArticleInfo, str, int] | None:
        """By id, unique id prefix, exact title (any case), then title substring."""
        needle = id_or_title.strip()
        if not needle:
            return None
        base = (f"SELECT {ARTICLE_COLUMNS}, a.text, (SELECT count(*) FROM chunks c WHERE "
                f"c.article_id = a.id) FROM articles a WHERE {live('a')} AND ")
        attempts = [
            ("a.key = %(n)s", needle.lower(), False),
            ("a.key LIKE %(n)s", _like(needle.lower()) + "%", False),
            ("lower(a.title) = lower(%(n)s)", needle, True),
            ("a.title ILIKE %(n)s ORDER BY a.published DESC NULLS LAST", f"%{_like(needle)}%",
             True),
        ]
        for where, value, by_title in attempts:
            rows = self._rows(base + where + " LIMIT 2", {"n": value})
            if len(rows) == 1 or (rows and by_title):
                row = rows[0]
                return _article(row), str(row[7]), int(row[8])
        return None

    def search_titles(self, text: str, limit: int) -> list[ArticleInfo]:
        """Titles containing the text (any case), newest first."""
        rows = self._rows(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE {live('a')} AND a.title ILIKE "
            "%(n)s ORDER BY a.published DESC NULLS LAST, a.id DESC LIMIT %(l)s",
            {"n": f"%{_like(text.strip())}%", "l": limit})
        return [_article(row) for row in rows]

    def recent_articles(
        self, limit: int, offset: int = 0, source: str | None = None
    ) -> list[ArticleInfo]:
        """Newest first, undated last."""
        where = " AND a.source = %(src)s" if source else ""
        rows = self._rows(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE {live('a')}{where} ORDER BY "
            "a.published DESC NULLS LAST, a.id DESC LIMIT %(l)s OFFSET %(o)s",
            {"src": source, "l": limit, "o": offset})
        return [_article(row) for row in rows]

    def articles_since(
        self, *, published_since: date | None, ingested_since: str | None, limit: int
    ) -> list[tuple[ArticleInfo, str]]:
        """Newest first, with story ids."""
        where = ""
        if published_since is not None:
            where += " AND a.published >= %(ps)s"
        if ingested_since is not None:
            where += " AND a.ingested_at >= %(is)s"
        rows = self._rows(
            f"SELECT {ARTICLE_COLUMNS}, coalesce(s.story_id, a.key) FROM articles a LEFT JOIN "
            f"stories s ON s.article_id = a.id AND {live('s')} WHERE {live('a')}{where} "
            "ORDER BY a.published DESC NULLS LAST, a.id DESC LIMIT %(l)s",
            {"ps": published_since, "is": ingested_since, "l": limit})
        return [(_article(row), str(row[7])) for row in rows]

    def sources(self) -> list[tuple[str, int]]:
        """Outlets with their article counts, most first."""
        rows = self._rows(
            f"SELECT a.source, count(*) FROM articles a WHERE {live('a')} AND a.source <> '' "
            "GROUP BY a.source ORDER BY count(*) DESC, a.source")
        return [(str(source), int(n)) for source, n in rows]

    def count_articles(self, source: str | None = None) -> int:
        """Articles (of one outlet) at this version."""
        if source is None:
            return int(self.metadata.get("counts", {}).get("articles", 0))
        return int(self._rows(f"SELECT count(*) FROM articles a WHERE {live('a')} AND "
                              "a.source = %(src)s", {"src": source})[0][0])

    def count_chunks(self) -> int:
        """Chunks at this version (recorded at commit)."""
        return int(self.metadata.get("counts", {}).get("chunks", 0))

    def stored_articles(self) -> dict[str, StoredArticle]:
        """Every article's identity and hashes."""
        rows = self._rows("SELECT a.key, a.content_hash, a.norm_hash, a.origin_file, a.source "
                          f"FROM articles a WHERE {live('a')}")
        return {str(r[0]): StoredArticle(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]))
                for r in rows}

    def export_articles(self) -> Iterator[ExportedArticle]:
        """Every article at this version with its chunks' vectors and story."""
        rows = self._rows(
            "SELECT a.id, a.key, a.title, a.source, a.url, a.published, a.authors, a.labels, "
            "a.text, a.content_hash, a.norm_hash, a.origin, a.origin_file, "
            f"coalesce(s.story_id, a.key) FROM articles a LEFT JOIN stories s ON s.article_id "
            f"= a.id AND {live('s')} WHERE {live('a')} ORDER BY a.id")
        for (rowid, key, title, source, url, published, authors, labels, text, chash, nhash,
             origin, origin_file, story) in rows:
            sentences = tuple(Span(int(a), int(b)) for a, b in self._rows(
                "SELECT start, \"end\" FROM sentences WHERE article_id = %(a)s ORDER BY ord",
                {"a": rowid}))
            chunk_rows = self._rows(
                "SELECT c.start, c.\"end\", c.n_tokens, c.text_hash, c.embedding FROM chunks c "
                f"WHERE c.article_id = %(a)s AND {live('c')} ORDER BY c.ord", {"a": rowid},
                binary=True)
            chunks = tuple(
                NewChunk(ChunkSpan(int(start), int(end), tuple(
                    sp for sp in sentences if sp.start >= start and sp.end <= end),
                    int(n_tokens)), str(text_hash))
                for start, end, n_tokens, text_hash, _ in chunk_rows)
            parsed = ParsedArticle(text=str(text), origin=str(origin), title=str(title),
                                   source=str(source), url=str(url), published=published,
                                   authors=tuple(authors), labels=tuple(labels))
            matrix = (np.stack([as_array(row[4]) for row in chunk_rows]) if chunk_rows
                      else np.zeros((0, 0), dtype=np.float32))
            yield ExportedArticle(
                NewArticle(key=str(key), article=parsed, content_hash=str(chash),
                           norm_hash=str(nhash), origin_file=str(origin_file), chunks=chunks,
                           sentences=sentences),
                matrix, str(story))

    def _coverage(self, filters: SearchFilters | None) -> Coverage:
        where, params = filter_sql(filters, "a")
        n, first, last = self._rows(
            f"SELECT count(*), min(a.published), max(a.published) FROM articles a WHERE "
            f"{live('a')}{where}", params)[0]
        return Coverage(n_articles=int(n), first=first, last=last)
