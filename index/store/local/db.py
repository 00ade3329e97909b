"""SQLite side of a local generation: articles, chunks, sentence offsets, an FTS5 keyword index."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

from index.models import ArticleInfo, ChunkSpan, Coverage, ParsedArticle, SearchFilters, Span
from index.store.base import (
    ArticleSummary,
    ChunkRow,
    NewArticle,
    NewChunk,
    StoredArticle,
    StoreError,
)
from index.text import tokens

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles(
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL DEFAULT '',
    published TEXT,
    authors TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '[]',
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    norm_hash TEXT NOT NULL,
    origin TEXT NOT NULL,
    origin_file TEXT NOT NULL,
    story_id TEXT,
    ingested_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published DESC, id DESC);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE INDEX IF NOT EXISTS articles_norm ON articles(norm_hash);
CREATE INDEX IF NOT EXISTS articles_origin_file ON articles(origin_file);
CREATE INDEX IF NOT EXISTS articles_story ON articles(story_id);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL,
    text_hash TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id, ord);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(text_hash);
CREATE TABLE IF NOT EXISTS sentences(
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    PRIMARY KEY(article_id, ord)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

ARTICLE_COLUMNS = "a.key, a.title, a.source, a.url, a.published, a.authors, a.labels"

def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a generation database (read-only for serving)."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
    else:
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -32000")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables of an empty generation."""
    conn.executescript(SCHEMA)


def keyword_query(terms: Sequence[str]) -> str:
    """An FTS5 OR-query of the terms, each quoted, or '' if there are none."""
    return " OR ".join(f'"{term}"' for term in terms)


def filter_sql(filters: SearchFilters | None, alias: str = "a") -> tuple[str, list[object]]:
    """A WHERE fragment (starting with ' AND', or '') and its parameters for article filters."""
    if filters is None or filters.is_empty():
        return "", []
    parts: list[str] = []
    params: list[object] = []
    if filters.sources:
        parts.append(f"{alias}.source IN ({','.join('?' * len(filters.sources))})")
        params.extend(filters.sources)
    if filters.since:
        parts.append(f"{alias}.published >= ?")
        params.append(filters.since.isoformat())
    if filters.until:
        parts.append(f"{alias}.published <= ?")
        params.append(filters.until.isoformat())
    if filters.labels:
        parts.append(
            f"EXISTS (SELECT 1 FROM json_each({alias}.labels) WHERE value IN "
            f"({','.join('?' * len(filters.labels))}))"
        )
        params.extend(filters.labels)
    return " AND " + " AND ".join(parts), params


def _article(row: Sequence[object]) -> ArticleInfo:
    """Build an ArticleInfo from the ARTICLE_COLUMNS of a row."""
    key, title, source, url, published, authors, labels = row[:7]
    return ArticleInfo(
        id=str(key),
        title=str(title),
        source=str(source),
        url=str(url),
        published=date.fromisoformat(str(published)) if published else None,
        authors=tuple(json.loads(str(authors))),
        labels=tuple(json.loads(str(labels))),
    )


# ---------------------------------------------------------------- reading


def keyword_search(
    conn: sqlite3.Connection, terms: Sequence[str], k: int, filters: SearchFilters | None = None
) -> list[tuple[int, float]]:
    """Top-k (chunk id, FTS5 BM25; higher is better) of chunks holding any of the terms."""
    query = keyword_query(terms)
    if not query:
        return []
    where, params = filter_sql(filters)
    if where:
        sql = (
            "SELECT f.rowid, -bm25(chunks_fts) AS s FROM chunks_fts f "
            "JOIN chunks c ON c.id = f.rowid JOIN articles a ON a.id = c.article_id "
            f"WHERE chunks_fts MATCH ?{where} ORDER BY bm25(chunks_fts) LIMIT ?"
        )
    else:
        sql = (
            "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY bm25(chunks_fts) LIMIT ?"
        )
    rows = conn.execute(sql, [query, *params, k]).fetchall()
    return [(int(rowid), float(score)) for rowid, score in rows]


def allowed_chunk_ids(conn: sqlite3.Connection, filters: SearchFilters) -> list[int]:
    """Ids of every chunk whose article passes the filters."""
    where, params = filter_sql(filters)
    sql = f"SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article_id WHERE 1=1{where}"
    return [int(row[0]) for row in conn.execute(sql, params)]


def chunk_rows(conn: sqlite3.Connection, chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
    """Chunks by id."""
    if not chunk_ids:
        return {}
    sql = (
        "SELECT c.id, a.key, c.start, c.end, c.text, a.published, a.story_id "
        "FROM chunks c JOIN articles a ON a.id = c.article_id "
        f"WHERE c.id IN ({','.join('?' * len(chunk_ids))})"
    )
    return {
        int(row[0]): ChunkRow(
            int(row[0]), str(row[1]), int(row[2]), int(row[3]), str(row[4]),
            date.fromisoformat(row[5]) if row[5] else None, str(row[6] or row[1]),
        )
        for row in conn.execute(sql, list(chunk_ids))
    }


def articles_by_key(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, ArticleInfo]:
    """Article metadata by public id."""
    if not keys:
        return {}
    sql = f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.key IN ({','.join('?' * len(keys))})"
    return {str(row[0]): _article(row) for row in conn.execute(sql, list(keys))}


def sentence_spans(conn: sqlite3.Connection, chunk_ids: Sequence[int]) -> dict[int, list[Span]]:
    """For each chunk, its article's sentence spans that lie within the chunk, in order."""
    spans: dict[int, list[Span]] = {chunk_id: [] for chunk_id in chunk_ids}
    if not chunk_ids:
        return spans
    sql = (
        "SELECT c.id, s.start, s.end FROM chunks c JOIN sentences s ON s.article_id = "
        "c.article_id AND s.start >= c.start AND s.end <= c.end "
        f"WHERE c.id IN ({','.join('?' * len(chunk_ids))}) ORDER BY c.id, s.ord"
    )
    for chunk_id, start, end in conn.execute(sql, list(dict.fromkeys(chunk_ids))):
        spans[int(chunk_id)].append(Span(int(start), int(end)))
    return spans


def term_document_counts(conn: sqlite3.Connection, terms: Sequence[str]) -> dict[str, int]:
    """How many chunks contain each term (matched as the keyword index stems it)."""
    sql = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
    return {term: int(conn.execute(sql, (f'"{term}"',)).fetchone()[0]) for term in terms}


def average_chunk_words(conn: sqlite3.Connection) -> float:
    """Mean number of words in a chunk, counted by the analyser (`index.text.tokens`) as BM25
    counts a candidate's length.

    Tokenising costs ~90 µs a chunk, so past MEAN_WORDS_SAMPLE chunks the mean is taken over
    every k-th chunk by id (at 2,000 chunks the standard error of the mean is ~1 %, and BM25's
    length normalisation moves little with it); the writer records it in the manifest.
    """
    conn.create_function("analysed_words", 1, lambda text: len(tokens(text)), deterministic=True)
    step = max(1, count_chunks(conn) // MEAN_WORDS_SAMPLE)
    row = conn.execute(
        "SELECT avg(analysed_words(text)) FROM chunks WHERE id % ? = 0", (step,)
    ).fetchone()
    return float(row[0] or 1.0)


MEAN_WORDS_SAMPLE = 2000


def recent_articles(
    conn: sqlite3.Connection, limit: int, offset: int = 0, source: str | None = None
) -> list[ArticleInfo]:
    """Articles newest first."""
    where, params = ("WHERE a.source = ?", [source]) if source else ("", [])
    sql = (
        f"SELECT {ARTICLE_COLUMNS} FROM articles a {where} "
        "ORDER BY a.published IS NULL, a.published DESC, a.id DESC LIMIT ? OFFSET ?"
    )
    return [_article(row) for row in conn.execute(sql, [*params, limit, offset])]


def count_articles(conn: sqlite3.Connection, source: str | None = None) -> int:
    """Number of articles (of one source)."""
    if source:
        return int(conn.execute("SELECT count(*) FROM articles WHERE source = ?", (source,))
                   .fetchone()[0])
    return int(conn.execute("SELECT count(*) FROM articles").fetchone()[0])


def count_chunks(conn: sqlite3.Connection) -> int:
    """Number of chunks."""
    return int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])


def count_tokens(conn: sqlite3.Connection) -> int:
    """Tokens in all chunks, as the embedding model counts them."""
    return int(conn.execute("SELECT coalesce(sum(n_tokens), 0) FROM chunks").fetchone()[0])


def find_article(
    conn: sqlite3.Connection, id_or_title: str
) -> tuple[ArticleInfo, str, int] | None:
    """An article, its text and its number of chunks, by id, unique id prefix, exact title,
    then title substring."""
    needle = id_or_title.strip()
    if not needle:
        return None
    base = (
        f"SELECT {ARTICLE_COLUMNS}, a.text, "
        "(SELECT count(*) FROM chunks c WHERE c.article_id = a.id) FROM articles a "
    )
    attempts = [
        ("WHERE a.key = ?", needle.lower()),
        ("WHERE a.key LIKE ? ESCAPE '\\'", _like_prefix(needle.lower())),
        ("WHERE a.title = ? COLLATE NOCASE", needle),
        ("WHERE a.title LIKE ? ESCAPE '\\' ORDER BY a.published DESC", _like_contains(needle)),
    ]
    for where, value in attempts:
        rows = conn.execute(base + where + " LIMIT 2", (value,)).fetchall()
        if len(rows) == 1 or (rows and "title" in where):
            row = rows[0]
            return _article(row), str(row[7]), int(row[8])
    return None


def search_titles(conn: sqlite3.Connection, text: str, limit: int) -> list[ArticleInfo]:
    """Articles whose title contains the text, newest first."""
    sql = (
        f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.title LIKE ? ESCAPE '\\' "
        "ORDER BY a.published IS NULL, a.published DESC LIMIT ?"
    )
    return [_article(row) for row in conn.execute(sql, (_like_contains(text.strip()), limit))]


def sources(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """Outlets with their article counts, most first."""
    rows = conn.execute(
        "SELECT source, count(*) FROM articles WHERE source != '' GROUP BY source "
        "ORDER BY count(*) DESC, source"
    )
    return [(str(source), int(n)) for source, n in rows]


def coverage(conn: sqlite3.Connection, filters: SearchFilters | None = None) -> Coverage:
    """Article count and date span of the (filtered) collection."""
    where, params = filter_sql(filters)
    row = conn.execute(
        f"SELECT count(*), min(a.published), max(a.published) FROM articles a WHERE 1=1{where}",
        params,
    ).fetchone()
    return Coverage(
        n_articles=int(row[0]),
        first=date.fromisoformat(row[1]) if row[1] else None,
        last=date.fromisoformat(row[2]) if row[2] else None,
    )


def story_members(
    conn: sqlite3.Connection, story_ids: Sequence[str]
) -> dict[str, list[ArticleInfo]]:
    """The articles of each story, oldest first."""
    if not story_ids:
        return {}
    sql = (
        f"SELECT {ARTICLE_COLUMNS}, a.story_id FROM articles a "
        f"WHERE a.story_id IN ({','.join('?' * len(story_ids))}) ORDER BY a.published, a.id"
    )
    members: dict[str, list[ArticleInfo]] = {}
    for row in conn.execute(sql, list(story_ids)):
        members.setdefault(str(row[7]), []).append(_article(row))
    return members


def articles_since(
    conn: sqlite3.Connection, *, published_since: date | None, ingested_since: str | None,
    limit: int,
) -> list[tuple[ArticleInfo, str]]:
    """Newest articles (with their story ids) published or ingested since a point, newest first."""
    parts, params = [], []
    if published_since is not None:
        parts.append("a.published >= ?")
        params.append(published_since.isoformat())
    if ingested_since is not None:
        parts.append("a.ingested_at >= ?")
        params.append(ingested_since)
    where = ("WHERE " + " AND ".join(parts)) if parts else ""
    sql = (
        f"SELECT {ARTICLE_COLUMNS}, coalesce(a.story_id, a.key) FROM articles a {where} "
        "ORDER BY a.published IS NULL, a.published DESC, a.id DESC LIMIT ?"
    )
    return [(_article(row), str(row[7])) for row in conn.execute(sql, [*params, limit])]


def chunk_ids_of_articles(conn: sqlite3.Connection, keys: Sequence[str]) -> list[int]:
    """Ids of every chunk of the given articles."""
    if not keys:
        return []
    sql = (
        "SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article_id "
        f"WHERE a.key IN ({','.join('?' * len(keys))}) ORDER BY c.id"
    )
    return [int(row[0]) for row in conn.execute(sql, list(keys))]


def get_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """The meta table as a dict."""
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}


def _like_prefix(text: str) -> str:
    """A LIKE pattern matching strings that start with text."""
    return _escape_like(text) + "%"


def _like_contains(text: str) -> str:
    """A LIKE pattern matching strings that contain text."""
    return "%" + _escape_like(text) + "%"


def _escape_like(text: str) -> str:
    """Escape LIKE wildcards."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ---------------------------------------------------------------- writing


def stored_articles(conn: sqlite3.Connection) -> dict[str, StoredArticle]:
    """Every article's identity and hashes, by public id."""
    rows = conn.execute("SELECT key, content_hash, norm_hash, origin_file, source FROM articles")
    return {str(r[0]): StoredArticle(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4] or ""))
            for r in rows}


def delete_articles(conn: sqlite3.Connection, keys: Sequence[str]) -> list[int]:
    """Delete articles with their chunks and sentences (FTS rows follow by trigger).

    Returns the ids of the chunks deleted.
    """
    deleted: list[int] = []
    for key in keys:
        row = conn.execute("SELECT id FROM articles WHERE key = ?", (key,)).fetchone()
        if row is None:
            continue
        rowid = int(row[0])
        deleted += [int(r[0]) for r in conn.execute(
            "SELECT id FROM chunks WHERE article_id = ?", (rowid,))]
        conn.execute("DELETE FROM chunks WHERE article_id = ?", (rowid,))
        conn.execute("DELETE FROM sentences WHERE article_id = ?", (rowid,))
        conn.execute("DELETE FROM articles WHERE id = ?", (rowid,))
    return deleted


def chunk_ids_by_hash(conn: sqlite3.Connection, hashes: Iterable[str]) -> dict[str, int]:
    """An existing chunk id for each known chunk-text hash (for reusing vectors)."""
    found: dict[str, int] = {}
    batch: list[str] = []

    def flush() -> None:
        """Look up one batch of hashes."""
        sql = f"SELECT text_hash, id FROM chunks WHERE text_hash IN ({','.join('?' * len(batch))})"
        for text_hash, chunk_id in conn.execute(sql, batch):
            found.setdefault(str(text_hash), int(chunk_id))
        batch.clear()

    for text_hash in hashes:
        batch.append(text_hash)
        if len(batch) >= 500:
            flush()
    if batch:
        flush()
    return found


def all_chunk_ids(conn: sqlite3.Connection) -> list[int]:
    """Every chunk id, ascending."""
    return [int(row[0]) for row in conn.execute("SELECT id FROM chunks ORDER BY id")]


def insert_article(conn: sqlite3.Connection, new: NewArticle, ingested_at: str) -> list[int]:
    """Insert an article, its sentences and its chunks; return the chunk ids in order.

    `ingested_at` is the build's start (`now`), so "ingested since this build" finds exactly
    the articles it added.
    """
    article = new.article
    try:
        rowid = conn.execute(
            "INSERT INTO articles(key, title, source, url, published, authors, labels, text,"
            " content_hash, norm_hash, origin, origin_file, ingested_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                new.key, article.title, article.source, article.url,
                article.published.isoformat() if article.published else None,
                json.dumps(list(article.authors)), json.dumps(list(article.labels)),
                article.text, new.content_hash, new.norm_hash, article.origin, new.origin_file,
                ingested_at,
            ),
        ).lastrowid
    except sqlite3.IntegrityError as exc:
        raise StoreError(f"article {new.key} is already stored") from exc
    conn.executemany(
        "INSERT INTO sentences(article_id, ord, start, end) VALUES (?,?,?,?)",
        [(rowid, i, s.start, s.end) for i, s in enumerate(new.sentences)],
    )
    chunk_ids = []
    for ord_, chunk in enumerate(new.chunks):
        span = chunk.span
        chunk_ids.append(int(conn.execute(
            "INSERT INTO chunks(article_id, ord, start, end, n_tokens, text_hash, text)"
            " VALUES (?,?,?,?,?,?,?)",
            (rowid, ord_, span.start, span.end, span.n_tokens, chunk.text_hash,
             article.text[span.start : span.end]),
        ).lastrowid))
    return chunk_ids


def article_summaries(conn: sqlite3.Connection, head_chars: int) -> list[ArticleSummary]:
    """Every article with the start of its text and its chunk ids, for story grouping."""
    members: dict[int, list[int]] = {}
    for chunk_id, article_id in conn.execute("SELECT id, article_id FROM chunks ORDER BY id"):
        members.setdefault(int(article_id), []).append(int(chunk_id))
    rows = conn.execute(
        "SELECT id, key, title, substr(text, 1, ?), published, source FROM articles",
        (head_chars,),
    )
    return [
        ArticleSummary(
            key=str(key), title=str(title), head=str(head),
            published=date.fromisoformat(published) if published else None,
            source=str(source), chunk_ids=tuple(members.get(int(rowid), ())),
        )
        for rowid, key, title, head, published, source in rows
    ]


def set_story_ids(conn: sqlite3.Connection, story_of: dict[str, str]) -> None:
    """Store each article's story id."""
    conn.executemany(
        "UPDATE articles SET story_id = ? WHERE key = ?",
        [(story, key) for key, story in story_of.items()],
    )


def set_meta(conn: sqlite3.Connection, values: dict[str, str]) -> None:
    """Set entries of the meta table."""
    conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", values.items())


def now(conn: sqlite3.Connection) -> str:
    """SQLite's clock to the millisecond, UTC: 'YYYY-MM-DD HH:MM:SS.SSS'.

    Older generations stored ingested_at to the second ('YYYY-MM-DD HH:MM:SS'); both forms
    compare correctly as strings, and two builds within one second no longer look alike.
    """
    return str(conn.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')").fetchone()[0])


def export_rows(conn: sqlite3.Connection) -> Iterable[tuple[NewArticle, list[int], str]]:
    """Every article as a NewArticle, with its chunk ids (in order) and story id."""
    articles = conn.execute(
        "SELECT id, key, title, source, url, published, authors, labels, text, content_hash, "
        "norm_hash, origin, origin_file, coalesce(story_id, key) FROM articles ORDER BY id"
    )
    for (rowid, key, title, source, url, published, authors, labels, text, chash, nhash,
         origin, origin_file, story) in articles.fetchall():
        sentences = tuple(Span(int(a), int(b)) for a, b in conn.execute(
            "SELECT start, end FROM sentences WHERE article_id = ? ORDER BY ord", (rowid,)))
        chunk_rows = conn.execute(
            "SELECT id, start, end, n_tokens, text_hash FROM chunks WHERE article_id = ? "
            "ORDER BY ord", (rowid,)).fetchall()
        chunks = tuple(
            NewChunk(ChunkSpan(int(start), int(end),
                               tuple(s for s in sentences if s.start >= start and s.end <= end),
                               int(n_tokens)), str(text_hash))
            for _, start, end, n_tokens, text_hash in chunk_rows
        )
        parsed = ParsedArticle(
            text=str(text), origin=str(origin), title=str(title), source=str(source),
            url=str(url), published=date.fromisoformat(published) if published else None,
            authors=tuple(json.loads(authors)), labels=tuple(json.loads(labels)),
        )
        yield (NewArticle(key=str(key), article=parsed, content_hash=str(chash),
                          norm_hash=str(nhash), origin_file=str(origin_file), chunks=chunks,
                          sentences=sentences),
               [int(row[0]) for row in chunk_rows], str(story))
