"""SQLite side of a generation: articles, chunks, sentence offsets and an FTS5 keyword index."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from index.models import ArticleInfo, Coverage, SearchFilters, Span

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
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A stored chunk with its article's public id."""

    id: int
    article_key: str
    article_rowid: int
    start: int
    end: int
    text: str
    published: date | None = None
    story_id: str = ""


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """What the writer needs to know about an article already in the index."""

    rowid: int
    key: str
    content_hash: str
    norm_hash: str
    origin_file: str


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


def query_terms(text: str) -> list[str]:
    """The distinct non-stop words of a text, casefolded, in order."""
    terms: list[str] = []
    for word in _WORD.findall(text.casefold()):
        if word not in STOP_WORDS and word not in terms:
            terms.append(word)
    return terms


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


def _article(row: Sequence[object], n_chunks: int = 0, n_chars: int = 0) -> ArticleInfo:
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
        n_chunks=n_chunks,
        n_chars=n_chars,
    )


# ---------------------------------------------------------------- reading


def keyword_search(
    conn: sqlite3.Connection, query: str, k: int, filters: SearchFilters | None = None
) -> list[tuple[int, float]]:
    """Top-k (chunk id, BM25 score; higher is better) for an FTS5 query."""
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
        "SELECT c.id, a.key, a.id, c.start, c.end, c.text, a.published, a.story_id "
        "FROM chunks c JOIN articles a ON a.id = c.article_id "
        f"WHERE c.id IN ({','.join('?' * len(chunk_ids))})"
    )
    return {
        int(row[0]): ChunkRow(
            int(row[0]), str(row[1]), int(row[2]), int(row[3]), int(row[4]), str(row[5]),
            date.fromisoformat(row[6]) if row[6] else None, str(row[7] or row[1]),
        )
        for row in conn.execute(sql, list(chunk_ids))
    }


def articles_by_key(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, ArticleInfo]:
    """Article metadata by public id."""
    if not keys:
        return {}
    sql = f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.key IN ({','.join('?' * len(keys))})"
    return {str(row[0]): _article(row) for row in conn.execute(sql, list(keys))}


def article_text(conn: sqlite3.Connection, key: str) -> str:
    """An article's full text."""
    row = conn.execute("SELECT text FROM articles WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else ""


def sentences_in(conn: sqlite3.Connection, article_rowid: int, start: int, end: int) -> list[Span]:
    """Sentence spans of an article that lie within [start, end)."""
    rows = conn.execute(
        "SELECT start, end FROM sentences WHERE article_id = ? AND start >= ? AND end <= ? "
        "ORDER BY ord",
        (article_rowid, start, end),
    )
    return [Span(int(s), int(e)) for s, e in rows]


def term_document_counts(conn: sqlite3.Connection, terms: Sequence[str]) -> dict[str, int]:
    """How many chunks contain each term (matched as the keyword index stems it)."""
    sql = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
    return {term: int(conn.execute(sql, (f'"{term}"',)).fetchone()[0]) for term in terms}


def average_chunk_words(conn: sqlite3.Connection) -> float:
    """Mean number of words in a chunk (BM25's length normalisation)."""
    row = conn.execute(
        "SELECT avg(length(text) - length(replace(text, ' ', '')) + 1) FROM chunks"
    ).fetchone()
    return float(row[0] or 1.0)


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


def find_article(conn: sqlite3.Connection, id_or_title: str) -> tuple[ArticleInfo, str] | None:
    """An article (and its text) by id, unique id prefix, exact title, then title substring."""
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
            text = str(row[7])
            return _article(row, n_chunks=int(row[8]), n_chars=len(text)), text
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
    rows = conn.execute("SELECT id, key, content_hash, norm_hash, origin_file FROM articles")
    return {str(r[1]): StoredArticle(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]))
            for r in rows}


def delete_articles(conn: sqlite3.Connection, rowids: Sequence[int]) -> None:
    """Delete articles with their chunks and sentences (FTS rows follow by trigger)."""
    for rowid in rowids:
        conn.execute("DELETE FROM chunks WHERE article_id = ?", (rowid,))
        conn.execute("DELETE FROM sentences WHERE article_id = ?", (rowid,))
        conn.execute("DELETE FROM articles WHERE id = ?", (rowid,))


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
