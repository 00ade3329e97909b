"""A snapshot read from two threads at once: the second runs on another pooled connection and
still reads the pinned version; with no connection to spare, it waits for the snapshot's own.
"""

from __future__ import annotations

import threading
import time

from index.store.postgres import PostgresStore
from tests.index.store.test_conformance import NEWS, opened, write

SLEEP_SECONDS = 0.8


def busy(snapshot: object) -> threading.Thread:
    """A thread keeping the snapshot's own connection in a statement for SLEEP_SECONDS."""
    thread = threading.Thread(
        target=lambda: snapshot._rows(f"SELECT pg_sleep({SLEEP_SECONDS})"))  # type: ignore[attr-defined]
    thread.start()
    time.sleep(0.15)  # the statement is running
    return thread


def test_a_second_thread_reads_the_pinned_version_on_another_connection(
    fresh_database: str,
) -> None:
    store = PostgresStore(fresh_database, pool_size=4, retire_after_seconds=0)
    try:
        ids = write(opened(store), NEWS())
        with store.reading() as snapshot:
            alone = snapshot.keyword_search(["harbour", "bridge"], 10)
            assert set(ids["bridge-a"]) & {cid for cid, _ in alone}
            write(store, [], delete=["bridge-a"])  # a newer version, without that article
            thread = busy(snapshot)
            started = time.perf_counter()
            beside = snapshot.keyword_search(["harbour", "bridge"], 10)
            waited = time.perf_counter() - started
            thread.join()
        assert beside == alone  # the pinned version, not the newer one
        assert waited < SLEEP_SECONDS / 2  # it did not queue behind the sleeping statement
        with store.reading() as newer:
            assert not set(ids["bridge-a"]) & {cid for cid, _ in
                                               newer.keyword_search(["harbour", "bridge"], 10)}
    finally:
        store.close()


def test_with_no_connection_to_spare_the_second_thread_waits_its_turn(
    fresh_database: str,
) -> None:
    store = PostgresStore(fresh_database, pool_size=1)
    try:
        write(opened(store), NEWS())
        with store.reading() as snapshot:
            alone = snapshot.keyword_search(["harbour", "bridge"], 10)
            thread = busy(snapshot)
            started = time.perf_counter()
            beside = snapshot.keyword_search(["harbour", "bridge"], 10)
            waited = time.perf_counter() - started
            thread.join()
        assert beside == alone
        assert waited > SLEEP_SECONDS / 2
    finally:
        store.close()
