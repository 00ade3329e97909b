"""The PostgreSQL schema, versioned: created and migrated by the project, never by hand.

Every article, chunk and story row carries the collection version that added it (`added_in`)
and the one that removed it (`removed_in`, NULL while current). Version v sees a row when
added_in <= v < removed_in, so a reader pinned to v reads the same rows however many versions
are published after it; rows no pinned version can see are deleted later.
"""

from __future__ import annotations

import psycopg

from index.store.base import StoreError

SCHEMA_VERSION = 3

# Each entry takes the schema from the version before it to its own number.
MIGRATIONS: dict[int, str] = {
    1: """
CREATE EXTENSION IF NOT EXISTS vector;
-- Words as SQLite FTS5's 'porter unicode61' (the local store) counts them: split at every
-- character that is no letter or digit (the chunks' text is split so before parsing, as the
-- query terms are), the Porter stemmer, no stop words; so both stores feed BM25 alike.
CREATE TEXT SEARCH DICTIONARY articlebot_porter (TEMPLATE = snowball, LANGUAGE = porter);
CREATE TEXT SEARCH CONFIGURATION articlebot (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION articlebot ALTER MAPPING FOR asciiword, word, numword,
    hword_part, hword_asciipart, hword_numpart WITH articlebot_porter;
ALTER TEXT SEARCH CONFIGURATION articlebot DROP MAPPING FOR hword, asciihword, numhword;
CREATE TABLE collection(
    id int PRIMARY KEY CHECK (id = 1),
    current_version int,
    model text,
    dim int,
    normalized boolean
);
INSERT INTO collection(id) VALUES (1);
CREATE TABLE versions(
    version int PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('building', 'published', 'retired')),
    build_started text NOT NULL,
    published_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE articles(
    id bigserial PRIMARY KEY,
    key text NOT NULL,
    title text NOT NULL DEFAULT '',
    source text NOT NULL DEFAULT '',
    url text NOT NULL DEFAULT '',
    published date,
    authors text[] NOT NULL DEFAULT '{}',
    labels text[] NOT NULL DEFAULT '{}',
    text text NOT NULL,
    content_hash text NOT NULL,
    norm_hash text NOT NULL,
    origin text NOT NULL,
    origin_file text NOT NULL,
    ingested_at text NOT NULL,
    added_in int NOT NULL,
    removed_in int
);
CREATE INDEX articles_key ON articles(key);
CREATE INDEX articles_live ON articles(added_in, removed_in);
CREATE INDEX articles_published ON articles(published DESC, id DESC);
CREATE INDEX articles_source ON articles(source);
CREATE INDEX articles_labels ON articles USING gin(labels);
CREATE TABLE sentences(
    article_id bigint NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ord int NOT NULL,
    start int NOT NULL,
    "end" int NOT NULL,
    PRIMARY KEY(article_id, ord)
);
CREATE TABLE stories(
    id bigserial PRIMARY KEY,
    article_id bigint NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    story_id text NOT NULL,
    added_in int NOT NULL,
    removed_in int
);
CREATE INDEX stories_article ON stories(article_id);
CREATE INDEX stories_story ON stories(story_id);
-- Filter columns are copied from the article (its rows never change), so a dense search
-- filters in the same statement as the vector index scan.
CREATE TABLE chunks(
    id bigserial PRIMARY KEY,
    article_id bigint NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ord int NOT NULL,
    start int NOT NULL,
    "end" int NOT NULL,
    n_tokens int NOT NULL,
    n_words int NOT NULL,
    text_hash text NOT NULL,
    text text NOT NULL,
    embedding vector,
    source text NOT NULL DEFAULT '',
    published date,
    labels text[] NOT NULL DEFAULT '{}',
    added_in int NOT NULL,
    removed_in int,
    tsv tsvector GENERATED ALWAYS AS
        (to_tsvector('articlebot', regexp_replace(text, '[^[:alnum:]]+', ' ', 'g'))) STORED
);
CREATE INDEX chunks_article ON chunks(article_id, ord);
CREATE INDEX chunks_hash ON chunks(text_hash);
CREATE INDEX chunks_live ON chunks(added_in, removed_in);
CREATE INDEX chunks_tsv ON chunks USING gin(tsv);
CREATE INDEX chunks_source ON chunks(source);
CREATE INDEX chunks_labels ON chunks USING gin(labels);
-- Chunks holding each lexeme, as of the version that last changed the count.
CREATE TABLE term_counts(
    lexeme text NOT NULL,
    version int NOT NULL,
    n int NOT NULL,
    PRIMARY KEY(lexeme, version)
);
CREATE TABLE feedback(
    user_hash text NOT NULL,
    question text NOT NULL,
    chunk_ids text NOT NULL,
    vote int NOT NULL CHECK (vote IN (-1, 1)),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_hash, question, chunk_ids)
);
CREATE TABLE follows(
    id bigserial PRIMARY KEY,
    guild_id bigint,
    channel_id bigint NOT NULL,
    user_id bigint NOT NULL,
    topic text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel_id, topic)
);
CREATE TABLE named_values(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE rate_limits(
    bucket text PRIMARY KEY,
    window_start double precision NOT NULL,
    per_seconds double precision NOT NULL,
    used int NOT NULL
);
""",
    # A question's period ("in March", since/until) filters chunks by date: without an index,
    # counting the chunks a period allows and scanning them exactly read the whole table
    # (~0.6 s a question at 1M chunks, `bench.perf stores scale`).
    2: """
CREATE INDEX IF NOT EXISTS chunks_published ON chunks(published);
""",
    # Keyword candidates from posting lists instead of reading every match's tsvector
    # (~20 µs a match: 0.6–6 s a question at 1M chunks, `bench.perf stores scale`). One row
    # per (chunk, lexeme): the term's BM25 weight in the chunk without its IDF (FTS5's k1 and
    # b, the mean chunk length of the version that wrote it), read best first per lexeme.
    # Vectors stay inside the chunk row (MAIN, not out of line), so an exact scan of the
    # chunks a filter allows reads them with the row instead of fetching a TOAST value each
    # (docs/performance.md); rows written before keep theirs until rewritten (VACUUM FULL).
    3: """
-- BM25's term weight without the IDF (Robertson & Zaragoza 2009, eq. 3.3; k1 1.2 and b 0.75
-- as SQLite FTS5's bm25(), which the local store ranks by): tf (k1 + 1) / (tf + k1 (1 - b +
-- b dl / avgdl)).
CREATE FUNCTION articlebot_impact(tf int, n_words int, mean_words float8) RETURNS real
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN tf * 2.2::float8 / (tf + 1.2::float8 * (0.25::float8 + 0.75::float8 * n_words
                                                    / greatest(mean_words, 1)));
CREATE TABLE postings(
    chunk_id bigint NOT NULL,
    lexeme text NOT NULL,
    impact real NOT NULL
);
INSERT INTO postings(chunk_id, lexeme, impact)
SELECT c.id, u.lexeme, articlebot_impact(cardinality(u.positions), c.n_words, m.mean)
FROM chunks c CROSS JOIN (SELECT avg(n_words) AS mean FROM chunks) m
CROSS JOIN LATERAL unnest(c.tsv) u;
-- Indexed after the rows are in (a sort, not a row-by-row insert). The chunk index finds a
-- dead chunk's postings (deduplicated: ~7 bytes a row); the impact index serves searches from
-- its leaves alone once the table is vacuumed (1.3 ms for 1,000 postings, against 12 ms
-- fetching each row; measured at 3.4M postings).
CREATE INDEX postings_chunk ON postings(chunk_id);
CREATE INDEX postings_by_impact ON postings(lexeme, impact DESC) INCLUDE (chunk_id);
ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN;
""",
}

# Serialises migrations of one database across processes (pg_advisory_xact_lock key).
MIGRATION_LOCK = 0x61726D67


def migrate(conn: psycopg.Connection) -> int:
    """Bring the database's schema to SCHEMA_VERSION; returns the version found before.

    A read-only server (a streaming replica) is only checked: its schema comes from the
    primary. Raises StoreError when the database holds a newer schema than this code
    understands, or a replica an older one.
    """
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"the database schema is version {found}, newer than this articlebot "
            f"understands ({SCHEMA_VERSION}); upgrade articlebot"
        )
    if found == SCHEMA_VERSION:
        return found
    if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
        raise StoreError(
            f"this read-only replica has schema version {found}, not {SCHEMA_VERSION}; "
            "open the primary first (it migrates the schema) and let the replica catch up"
        )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS articlebot_schema("
            "id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)"
        )
        found = schema_version(conn)  # another process may have migrated meanwhile
        for version in range(found + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version])
        conn.execute(
            "INSERT INTO articlebot_schema(id, version) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            (SCHEMA_VERSION,),
        )
    return found


def schema_version(conn: psycopg.Connection) -> int:
    """The schema version the database holds (0: none yet)."""
    if conn.execute("SELECT to_regclass('articlebot_schema')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT version FROM articlebot_schema").fetchone()
    return int(row[0]) if row else 0


def live(alias: str, version: str = "%(v)s") -> str:
    """SQL: the row is visible at the version (a parameter placeholder by default)."""
    return (f"{alias}.added_in <= {version} AND ({alias}.removed_in IS NULL "
            f"OR {alias}.removed_in > {version})")
