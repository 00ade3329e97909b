"""The PostgreSQL + pgvector backend: one collection that several processes and machines share.

Versions (see `schema.py`): a writer adds rows tagged with the next version number inside one
transaction and publishes by setting `collection.current_version` in that same transaction,
so the new version appears whole or not at all. A reader pins the version that is current
when it starts with a shared advisory lock, and reads only rows that version sees; versions
no reader pins are retired and their dead rows deleted after each commit. One writer at a
time, across every process, holds an exclusive advisory lock.

Dense search is pgvector's inner product (`<#>`) on normalised vectors: exact (a sequential
scan) below APPROXIMATE_THRESHOLD chunks, through an HNSW index above it, with iterative
index scans so that a filtered search never returns fewer rows than exist. Keyword candidates
come from a generated `tsvector` column (GIN index; the Porter stemmer without stop words, as
the local store's FTS5) ranked by BM25 computed in SQL from the document counts kept per
version in `term_counts`; the engine then scores every candidate with its own BM25 as it
does for the local backend.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from index.store.base import (
    IDENTITY_KEYS,
    IdentityMismatch,
    StateStore,
    Store,
    StoreEmpty,
)
from index.store.postgres.connection import PooledConnections
from index.store.postgres.snapshot import (
    APPROXIMATE_THRESHOLD,
    EXACT_FILTER_LIMIT,
    HNSW_EF_SEARCH,
    PostgresSnapshot,
)
from index.store.postgres.state import PostgresStateStore
from index.store.postgres.writer import PostgresWriter

log = logging.getLogger(__name__)

VERSION_LOCK = 0x61727631  # advisory lock class: (class, version) pins a version
# A version is retired (its dead rows deleted) only this long after a newer one was published
# and when no reader pins it: readers on streaming replicas hold no lock on the primary, so
# this is their margin (a call takes milliseconds; replay lag must stay below it).
RETIRE_AFTER_SECONDS = 60.0


class PostgresStore(PooledConnections, Store):
    """A collection in a PostgreSQL database with pgvector.

    Thread-safe; the connection pool is opened on first use.
    """

    name = "postgres"

    def __init__(self, url: str, *, pool_size: int = 8, statement_timeout_ms: int = 30_000,
                 ef_search: int = HNSW_EF_SEARCH,
                 retire_after_seconds: float = RETIRE_AFTER_SECONDS,
                 index_build_memory: str = "1GB",
                 approximate_threshold: int = APPROXIMATE_THRESHOLD,
                 exact_filter_limit: int = EXACT_FILTER_LIMIT) -> None:
        """Nothing connects until first use. `url` is a libpq URL (postgresql://…).

        `index_build_memory` is the server memory the HNSW build may use (maintenance_work_mem;
        an index of n 384-d vectors builds in memory with about n × 2 kB).
        `approximate_threshold`: from this many chunks on, dense searches go through an HNSW
        index (built at the first commit that reaches it); below, they scan exactly.
        `exact_filter_limit`: a filter allowing at most this many chunks is searched
        exhaustively (exact dense scan, every keyword match); above, through the HNSW index
        and the posting lists.
        """
        if not re.fullmatch(r"\d+(kB|MB|GB)", index_build_memory):
            raise ValueError(f"index_build_memory {index_build_memory!r} is not like '1GB'")
        self.index_build_memory = index_build_memory
        self.approximate_threshold = approximate_threshold
        self.exact_filter_limit = exact_filter_limit
        # Figures derived from a version (metadata, coverage, document counts), shared by
        # every snapshot of it: versions never change once published.
        self._memos: dict[int, dict[Any, Any]] = {}
        self._url = url
        self.retire_after_seconds = retire_after_seconds
        self._pool_size = pool_size
        self._statement_timeout_ms = statement_timeout_ms
        self.ef_search = ef_search
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.RLock()  # `unavailable` may run inside `pool`
        self._identity: dict[str, Any] | None = None
        # Set by open(repair=True) on a collection built with another model: nothing serves
        # until the rebuild commits.
        self._set_aside = False
        self._state: PostgresStateStore | None = None

    @property
    def location(self) -> str:
        """The server and database, without credentials."""
        info = psycopg.conninfo.conninfo_to_dict(self._url)
        return f"postgresql://{info.get('host', 'localhost')}:{info.get('port', 5432)}/" \
               f"{info.get('dbname', '')}"

    # --- Store
    def exists(self) -> bool:
        """True when a version has been published."""
        with self.connection() as conn:
            row = conn.execute("SELECT current_version FROM collection").fetchone()
        return row is not None and row[0] is not None

    def open(self, identity: Mapping[str, Any] | None, *, repair: bool = False) -> bool:
        """Check the stored model against `identity` and serve the current version."""
        self._identity = dict(identity) if identity is not None else None
        with self.connection() as conn:
            row = conn.execute(
                "SELECT current_version, model, dim, normalized FROM collection"
            ).fetchone()
        self._set_aside = False
        if row is None or row[0] is None:
            return False
        stored = dict(zip(IDENTITY_KEYS, row[1:], strict=True))
        if identity is not None:
            for key in IDENTITY_KEYS:
                if stored[key] != identity.get(key):
                    problem = (f"the index was built with {key}={stored[key]!r} but the settings "
                               f"give {identity.get(key)!r}; rebuild it (articlebot reindex "
                               "--rebuild) or change the model setting back")
                    if repair:
                        log.warning("setting the current index aside for a rebuild: %s", problem)
                        self._set_aside = True
                        return False
                    raise IdentityMismatch(problem)
        return True

    @contextlib.contextmanager
    def reading(self) -> Iterator[PostgresSnapshot]:
        """Pin the current version for one call on a connection of its own."""
        if self._set_aside:
            raise StoreEmpty(f"the index in {self.location} is set aside for a rebuild")
        with self.connection() as conn:
            version = self._pin(conn, self._identity)
            try:
                yield PostgresSnapshot(self, conn, version)
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock_shared(%s, %s)",
                                 (VERSION_LOCK, version))

    def memo_for(self, version: int) -> dict[Any, Any]:
        """The memo of a version (the two newest versions' are kept)."""
        memo = self._memos.get(version)
        if memo is None:
            with self._pool_lock:
                memo = self._memos.setdefault(version, {})
                for old in sorted(self._memos)[:-2]:
                    del self._memos[old]
        return memo

    @staticmethod
    def _pin(conn: psycopg.Connection, identity: Mapping[str, Any] | None) -> int:
        """Hold a shared lock on the current version, once it is sure not to be retired.

        Raises IdentityMismatch when the current version was built with another model than
        `identity` (another process rebuilt the collection with a new model).
        """
        while True:
            row = conn.execute(
                "SELECT current_version, pg_advisory_lock_shared(%s, current_version), model, "
                "dim, normalized FROM collection WHERE current_version IS NOT NULL",
                (VERSION_LOCK,)).fetchone()
            if row is None:
                raise StoreEmpty("the index is empty")
            version = int(row[0])
            stored = dict(zip(IDENTITY_KEYS, row[2:], strict=True))
            if identity is not None and any(stored[k] != identity.get(k) for k in IDENTITY_KEYS):
                conn.execute("SELECT pg_advisory_unlock_shared(%s, %s)", (VERSION_LOCK, version))
                raise IdentityMismatch(
                    f"the index was rebuilt with model {stored['model']!r} ({stored['dim']} "
                    f"dims); restart with that model setting"
                )
            state = conn.execute("SELECT state FROM versions WHERE version = %s",
                                 (version,)).fetchone()
            if state is not None and state[0] == "published":
                return version
            # Retired between our two reads: a newer version is current now.
            conn.execute("SELECT pg_advisory_unlock_shared(%s, %s)", (VERSION_LOCK, version))

    def writer(self, *, fresh: bool = False) -> PostgresWriter:
        """Take the collection's writer lock and begin the next version."""
        return PostgresWriter(self, fresh=fresh)

    def state(self) -> StateStore:
        """The bot's state in the same database."""
        if self._state is None:
            self._state = PostgresStateStore(self)
        return self._state

    def close(self) -> None:
        """Close the pool (connections in use are closed when returned)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def collect_garbage(self, conn: psycopg.Connection) -> None:
        """Retire versions no reader pins (oldest first) and delete the rows none can see."""
        current = conn.execute("SELECT current_version FROM collection").fetchone()[0]
        if current is None:
            return
        older = conn.execute(
            "SELECT v.version FROM versions v WHERE v.state = 'published' AND v.version < "
            "%(cur)s AND (SELECT min(w.published_at) FROM versions w WHERE w.version > "
            "v.version) < now() - make_interval(secs => %(grace)s) ORDER BY v.version",
            {"cur": current, "grace": self.retire_after_seconds}).fetchall()
        for (version,) in older:
            free = conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                (VERSION_LOCK, version)).fetchone()[0]
            if not free:
                break  # pinned: it and everything newer stays
            try:
                conn.execute("UPDATE versions SET state = 'retired' WHERE version = %s",
                             (version,))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (VERSION_LOCK, version))
        oldest = conn.execute(
            "SELECT min(version) FROM versions WHERE state = 'published'").fetchone()[0]
        with conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 0")  # a rebuild leaves many rows
            conn.execute("DELETE FROM postings p USING chunks c WHERE p.chunk_id = c.id AND "
                         "c.removed_in <= %s", (oldest,))
            for table in ("chunks", "stories", "articles"):
                conn.execute(f"DELETE FROM {table} WHERE removed_in <= %s", (oldest,))
            conn.execute(
                "DELETE FROM term_counts t WHERE t.version < %(m)s AND EXISTS (SELECT 1 FROM "
                "term_counts u WHERE u.lexeme = t.lexeme AND u.version > t.version "
                "AND u.version <= %(m)s)", {"m": oldest})
        # Searches read postings from the impact index alone where the visibility map marks a
        # page all-visible: mark the pages just written or emptied now, not whenever
        # autovacuum comes (1,000 postings: 12 ms fetching each row, 1.3 ms from the index
        # alone; measured). VACUUM skips pages already marked, so a small update costs little.
        conn.execute("SET statement_timeout = 0")
        try:
            conn.execute("VACUUM (SKIP_LOCKED) postings")
        finally:
            conn.execute(f"SET statement_timeout = {int(self._statement_timeout_ms)}")
