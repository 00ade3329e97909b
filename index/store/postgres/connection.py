"""Connections to the PostgreSQL server: the pool every store object keeps, and its errors.

Each pooled connection is configured alike (pgvector's types, a statement timeout,
autocommit, custom plans); a server that goes away drops the pool, so the next call connects
afresh; errors that mean the database cannot be reached become one-line StoreErrors.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from index.store.base import StoreError
from index.store.postgres.schema import migrate

# How long a call waits for a connection before the database counts as unavailable (s).
CONNECTION_WAIT_SECONDS = 5.0


def _connection_lost(exc: BaseException) -> bool:
    """True when the server went away (not a timeout, a conflict or a busy pool)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def _unlock_all(conn: psycopg.Connection) -> None:
    """Release every advisory lock a connection still holds as it returns to the pool."""
    conn.execute("SELECT pg_advisory_unlock_all()")


def as_array(value: Any) -> np.ndarray:
    """A pgvector value as float32 (pgvector loads `Vector` objects)."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)


class PooledConnections:
    """The connection pool of a store object, opened (and the schema migrated) on first use.

    The store sets `_url`, `_pool_size`, `_statement_timeout_ms`, `_pool` (None) and
    `_pool_lock` (an RLock: `unavailable` may run inside `pool`), and names itself in
    `location`.
    """

    _url: str
    _pool_size: int
    _statement_timeout_ms: int
    _pool: ConnectionPool | None
    _pool_lock: threading.RLock
    location: Any

    def _configure(self, conn: psycopg.Connection) -> None:
        """Every pooled connection: pgvector's types, a statement timeout, autocommit, and a
        plan made for each statement's own values."""
        from pgvector.psycopg import register_vector

        conn.autocommit = True
        register_vector(conn)
        conn.execute(f"SET statement_timeout = {int(self._statement_timeout_ms)}")
        # psycopg prepares a statement run five times, and PostgreSQL then may keep a generic
        # plan, blind to how much a filter's values select: a month's exact dense scan took
        # 109 ms with it against 29 ms planned for its dates (1M chunks, measured).
        conn.execute("SET plan_cache_mode = force_custom_plan")

    def pool(self) -> ConnectionPool:
        """The connection pool (opened, and the schema migrated, on first use)."""
        pool = self._pool
        if pool is not None:
            return pool
        with self._pool_lock:
            if self._pool is None:
                try:
                    with psycopg.connect(self._url, autocommit=True, connect_timeout=10) as conn:
                        migrate(conn)
                    pool = ConnectionPool(
                        self._url, min_size=1, max_size=self._pool_size,
                        configure=self._configure, check=ConnectionPool.check_connection,
                        # Session-level advisory locks must never outlive their user.
                        reset=_unlock_all, kwargs={"connect_timeout": 10}, open=False,
                    )
                    pool.open(wait=True, timeout=30)
                except (psycopg.Error, PoolTimeout) as exc:
                    raise self.unavailable(exc) from exc
                self._pool = pool
            return self._pool

    def unavailable(self, exc: BaseException) -> StoreError:
        """The one-line error for a database that cannot be reached or used.

        Also drops the pool when the server went away, so the next call connects afresh at
        once instead of waiting out the pool's reconnection back-off.
        """
        if _connection_lost(exc):
            with self._pool_lock:
                pool, self._pool = self._pool, None
            if pool is not None:
                threading.Thread(target=pool.close, kwargs={"timeout": 1.0},
                                 name="pg-pool-close", daemon=True).start()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(f"the index database at {self.location} is unavailable: {first}")

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection for one unit of work; database errors become StoreError."""
        try:
            with self.pool().connection(timeout=CONNECTION_WAIT_SECONDS) as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise self.unavailable(exc) from exc
