"""Keyword search through the posting lists: the same chunks as an exhaustive search while
nothing is cut off, only visible chunks when lists are cut, rows kept in step with the chunks,
and a schema-2 database given its posting lists by the migration.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from index.models import SearchFilters
from index.store.postgres import PostgresStore
from index.store.postgres import snapshot as postgres_snapshot
from index.store.postgres.snapshot import posting_depths
from tests.index.store.test_conformance import NEWS, article, opened, write

TERM_SETS = (["harbour"], ["harbour", "bridge", "ferries"], ["apple", "comet", "traffic"],
             ["reopened", "monday", "telescope", "nothing"])
FILTERS = (None, SearchFilters(sources=("Gazette",)), SearchFilters(labels=("satire",)))


@pytest.fixture
def store(fresh_database: str) -> Iterator[PostgresStore]:
    """A store whose superseded versions are deleted at once."""
    made = PostgresStore(fresh_database, pool_size=2, retire_after_seconds=0)
    yield made
    made.close()


def searches(store: PostgresStore, *, exhaustive: bool) -> list[list[tuple[int, float]]]:
    """Every term set under every filter, one way."""
    with store.reading() as snapshot:
        return [snapshot.keyword_search(terms, 10, filters, exhaustive=exhaustive)
                for terms in TERM_SETS for filters in FILTERS]


def postings_in_step(url: str) -> tuple[int, int]:
    """(posting rows, lexemes summed over every stored chunk row)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM postings), "
            "(SELECT coalesce(sum(length(tsv)), 0) FROM chunks)").fetchone()


@pytest.mark.parametrize(("counts", "budget", "depths"), [
    ([1299, 2155, 13606], 9000, [1299, 2155, 5546]),  # rare lists whole, the rest shared
    ([13606, 1299, 2155], 9000, [5546, 1299, 2155]),  # in the order given
    ([5000, 5000, 5000], 9000, [3000, 3000, 3000]),
    ([0, 10], 4, [0, 4]),
    ([], 100, []),
])
def test_posting_depths_share_the_budget_rarest_first(
    counts: list[int], budget: int, depths: list[int]
) -> None:
    assert posting_depths(counts, budget) == depths
    assert sum(posting_depths(counts, budget)) <= budget


def test_posting_lists_find_what_an_exhaustive_search_finds(store: PostgresStore) -> None:
    write(opened(store), NEWS())
    found = searches(store, exhaustive=False)
    assert found == searches(store, exhaustive=True)
    assert sum(len(hits) for hits in found) > len(found)  # not a comparison of empty lists


def test_cut_posting_lists_return_visible_chunks_that_pass_the_filter(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = write(opened(store), NEWS())
    write(store, [], delete=["bridge-b"])
    monkeypatch.setattr(postgres_snapshot, "POSTINGS_BUDGET", 3)  # one or two postings a lexeme
    gazette = set(ids["bridge-a"]) | set(ids["harvest"])
    with store.reading() as snapshot:
        everywhere = snapshot.keyword_search(["harbour", "bridge"], 10, exhaustive=False)
        in_gazette = snapshot.keyword_search(["harbour", "bridge", "apple"], 10,
                                             SearchFilters(sources=("Gazette",)),
                                             exhaustive=False)
    assert everywhere and {cid for cid, _ in everywhere} <= set(ids["bridge-a"])
    assert in_gazette and {cid for cid, _ in in_gazette} <= gazette


def test_posting_rows_follow_the_chunks_through_updates_and_rebuilds(
    store: PostgresStore, fresh_database: str
) -> None:
    write(opened(store), NEWS())
    rows, lexemes = postings_in_step(fresh_database)
    assert rows == lexemes > 0
    updated = article("bridge-a", [("tram", "The tram line opened beside the harbour.")],
                      source="Gazette")
    write(store, [updated], delete=["bridge-a", "comet"])
    assert postings_in_step(fresh_database)[0] == postings_in_step(fresh_database)[1] < rows
    write(store, NEWS(), fresh=True)
    assert postings_in_step(fresh_database) == (rows, lexemes)


def test_a_schema_2_database_gets_its_posting_lists(
    store: PostgresStore, fresh_database: str
) -> None:
    write(opened(store), NEWS())
    before = searches(store, exhaustive=False)
    store.close()
    with psycopg.connect(fresh_database, autocommit=True) as conn:  # as schema 2 left it
        conn.execute("DROP TABLE postings; DROP FUNCTION articlebot_impact; "
                     "ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE EXTENDED; "
                     "UPDATE articlebot_schema SET version = 2")
    migrated = PostgresStore(fresh_database, pool_size=2)
    try:
        assert opened(migrated).exists()
        assert searches(migrated, exhaustive=False) == before
    finally:
        migrated.close()
    rows, lexemes = postings_in_step(fresh_database)
    assert rows == lexemes > 0
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        storage = conn.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = "
                               "'chunks'::regclass AND attname = 'embedding'").fetchone()[0]
    assert storage == "m"  # vectors kept in the row
