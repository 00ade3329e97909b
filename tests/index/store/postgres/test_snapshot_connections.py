"""A snapshot read from two threads at once: the second runs on another pooled connection and
still reads the pinned version; with no connection to spare, it waits for the snapshot's own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from index.store.postgres import PostgresStore
from tests.index.store.test_conformance import NEWS, opened, write

# An advisory lock key of the tests' own (the store's keys are 0x6172....): a statement waiting
# for it keeps the snapshot's connection busy for exactly as long as the test decides.
HELD_KEY = 0x74657374
# Whether a statement in this database waits for that lock (a key under 2**32 is objid).
WAITING = ("SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
           "AND objid = %s AND database = "
           "(SELECT oid FROM pg_database WHERE datname = current_database())")
# How long a test waits for a thread or a statement (s): far above what any step takes,
# however busy the machine; only a broken store ever reaches it.
WAIT_SECONDS = 60.0
# The held statement outlives every wait above (the store's default is 30 s).
STATEMENT_TIMEOUT_MS = int(WAIT_SECONDS * 2 * 1000)


class WatchedLock:
    """The snapshot's lock, noting when a thread queues on it (a blocking acquire)."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.queued = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking:
            self.queued.set()
        return self.lock.acquire(blocking, timeout)

    def release(self) -> None:
        self.lock.release()


@contextmanager
def busy(snapshot: Any, url: str) -> Iterator[threading.Thread]:
    """A thread keeping the snapshot's own connection in a statement until the block ends.

    The statement waits for an advisory lock this holds on a connection of its own; the
    block starts once the server shows the statement waiting (no guess at how long that
    takes), and the lock is released however the block ends.
    """
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (HELD_KEY,))
        thread = threading.Thread(
            target=lambda: snapshot._rows("SELECT pg_advisory_xact_lock(%(key)s)",
                                          {"key": HELD_KEY}))
        thread.start()
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while not holder.execute(WAITING, (HELD_KEY,)).fetchone()[0]:  # type: ignore[index]
                if time.monotonic() > deadline:
                    pytest.fail(f"the statement was not waiting within {WAIT_SECONDS:.0f} s")
                time.sleep(0.01)
            yield thread
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (HELD_KEY,))
            thread.join(WAIT_SECONDS)


def search_in_thread(snapshot: Any, found: list[Any]) -> threading.Thread:
    """A thread running the test's keyword search on the snapshot into `found`."""
    thread = threading.Thread(
        target=lambda: found.append(snapshot.keyword_search(["harbour", "bridge"], 10)))
    thread.start()
    return thread


def test_a_second_thread_reads_the_pinned_version_on_another_connection(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The borrow wait is 20 ms, enough to open a connection on an idle machine; here it may
    # not be, and this test is about what the borrowed connection reads.
    monkeypatch.setattr("index.store.postgres.snapshot.BORROW_WAIT_SECONDS", WAIT_SECONDS)
    store = PostgresStore(fresh_database, pool_size=4, retire_after_seconds=0,
                          statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    try:
        ids = write(opened(store), NEWS())
        with store.reading() as snapshot:
            alone = snapshot.keyword_search(["harbour", "bridge"], 10)
            assert set(ids["bridge-a"]) & {cid for cid, _ in alone}
            write(store, [], delete=["bridge-a"])  # a newer version, without that article
            snapshot._lock = watched = WatchedLock(snapshot._lock)
            found: list[Any] = []
            with busy(snapshot, fresh_database):
                searching = search_in_thread(snapshot, found)
                searching.join(WAIT_SECONDS)
                # Done while the snapshot's own connection is still busy: it did not queue.
                assert found and not watched.queued.is_set()
        assert found == [alone]  # the pinned version, not the newer one
        with store.reading() as newer:
            assert not set(ids["bridge-a"]) & {cid for cid, _ in
                                               newer.keyword_search(["harbour", "bridge"], 10)}
    finally:
        store.close()


def test_with_no_connection_to_spare_the_second_thread_waits_its_turn(
    fresh_database: str,
) -> None:
    store = PostgresStore(fresh_database, pool_size=1, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    try:
        write(opened(store), NEWS())
        with store.reading() as snapshot:
            alone = snapshot.keyword_search(["harbour", "bridge"], 10)
            snapshot._lock = watched = WatchedLock(snapshot._lock)
            found: list[Any] = []
            with busy(snapshot, fresh_database) as sleeper:
                searching = search_in_thread(snapshot, found)
                assert watched.queued.wait(WAIT_SECONDS)  # it queues for the own connection
                assert sleeper.is_alive() and not found  # and waits while that is busy
            searching.join(WAIT_SECONDS)
        assert found == [alone]
    finally:
        store.close()
