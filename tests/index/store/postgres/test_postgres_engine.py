"""The engine on the PostgreSQL backend: the same answers as on the local one, migrations,
schema versions, a server that goes away and comes back, writers in two processes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench.stores import on_postgres
from index.config import Settings
from index.engine import (
    Engine,
    EngineError,
    IndexMismatchError,
    IndexUnavailableError,
    ReindexInProgressError,
)
from index.migrate import copy_collection
from index.models import SearchFilters
from index.store import StoreError, WriterBusy, make_store
from index.store.postgres import PostgresStore
from index.store.postgres.schema import SCHEMA_VERSION
from tests import pgserver
from tests.index.fakes import HashingEmbedder

QUESTIONS = [
    "When did the harbour bridge reopen?",
    "How many apples did the cooperative count?",
    "Who discovered the comet?",
    "What will the festival celebrate?",
]


def answers(engine: Engine) -> list[tuple[list[str], list[tuple[str, int, int]]]]:
    """Each question's ranked article ids and quotes (article, start, end)."""
    found = []
    for question in QUESTIONS:
        answer = engine.ask(question)
        found.append(([hit.article.id for hit in answer.results],
                      [(q.article.id, q.start, q.end) for q in answer.quotes]))
    return found


def test_answers_match_the_local_backend(settings: Settings, fresh_database: str) -> None:
    local = Engine.open(settings, create=True, embedder=HashingEmbedder())
    local.reindex()
    remote = Engine.open(on_postgres(settings, fresh_database), create=True,
                         embedder=HashingEmbedder())
    report = remote.reindex()
    assert report.added == 3 and remote.stats().store == "postgres"
    assert answers(remote) == answers(local)
    filters = SearchFilters(labels=("satire",))
    assert [h.article.id for h in remote.ask("comet telescope", filters).results] == [
        h.article.id for h in local.ask("comet telescope", filters).results]
    assert remote.stats().n_chunks == local.stats().n_chunks
    assert [a.id for a in remote.recent_articles()] == [a.id for a in local.recent_articles()]


def test_reindex_updates_and_removes_on_postgres(settings: Settings, fresh_database: str) -> None:
    embedder = HashingEmbedder()
    settings = settings.model_copy(update={"chunk_max_tokens": 30})  # several chunks each
    engine = Engine.open(on_postgres(settings, fresh_database), create=True, embedder=embedder)
    engine.reindex()
    folder = settings.article_dirs[0]
    orchard = folder / "orchard.txt"
    orchard.write_text(orchard.read_text().replace("October", "November"), encoding="utf-8")
    (folder / "comet.txt").unlink()
    before = embedder.encoded
    report = engine.reindex()
    assert (report.updated, report.removed) == (1, 1)
    assert report.chunks_reused >= 1 and embedder.encoded - before == report.chunks_embedded
    assert "November" in engine.ask("When is the apple harvest festival?").quotes[0].text
    assert engine.count_articles() == 2
    assert engine.reindex().changed is False
    assert [s.article.id for s in engine.whatsnew(limit=5)]  # the last build's articles


class RecordingEmbedder(HashingEmbedder):
    """Remembers every text it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def encode(self, texts, *, batch_size=32, show_progress=False):  # type: ignore[no-untyped-def]
        self.texts += list(texts)
        return super().encode(texts, batch_size=batch_size, show_progress=show_progress)


def test_migration_round_trip_embeds_nothing(settings: Settings, fresh_database: str,
                                             tmp_path: Path) -> None:
    embedder = RecordingEmbedder()
    local = Engine.open(settings, create=True, embedder=embedder)
    local.reindex()
    expected = answers(local)
    embedded = len(embedder.texts)
    remote_settings = on_postgres(settings, fresh_database)
    report = copy_collection(make_store(settings), make_store(remote_settings))
    assert report.articles == 3 and report.chunks == local.stats().n_chunks
    remote = Engine.open(remote_settings, embedder=embedder)
    assert answers(remote) == expected
    back = settings.model_copy(update={"index_dir": tmp_path / "back"})
    copy_collection(make_store(remote_settings), make_store(back))
    again = Engine.open(back, embedder=embedder)
    assert answers(again) == expected
    assert set(embedder.texts[embedded:]) <= set(QUESTIONS)  # questions only, no chunk


def test_a_newer_schema_is_refused(fresh_database: str) -> None:
    store = PostgresStore(fresh_database)
    assert not store.exists()  # creates the schema
    store.close()
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE articlebot_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this articlebot understands"):
        PostgresStore(fresh_database).exists()


def test_an_older_schema_is_migrated_in_place(settings: Settings, fresh_database: str) -> None:
    from index.store.postgres.schema import MIGRATIONS

    with psycopg.connect(fresh_database, autocommit=True) as conn:  # a version-1 database
        conn.execute(MIGRATIONS[1])
        conn.execute("CREATE TABLE articlebot_schema(id int PRIMARY KEY CHECK (id = 1), "
                     "version int NOT NULL); INSERT INTO articlebot_schema VALUES (1, 1)")
    engine = Engine.open(on_postgres(settings, fresh_database), create=True,
                         embedder=HashingEmbedder())
    assert engine.reindex().added == 3
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM articlebot_schema").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT to_regclass('chunks_published')").fetchone()[0] is not None
        # A question's period is counted through the index, not a scan of every chunk.
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.execute(
            "EXPLAIN SELECT count(*) FROM chunks WHERE published >= '2023-01-01'"))
    assert "chunks_published" in plan


def test_an_unreachable_server_is_one_clear_error(settings: Settings) -> None:
    url = f"postgresql://postgres@127.0.0.1:{pgserver.free_port()}/nothing"
    with pytest.raises(EngineError) as error:
        Engine.open(on_postgres(settings, url), embedder=HashingEmbedder())
    message = str(error.value)
    assert "unavailable" in message and "\n" not in message and "postgres@" not in message


def test_two_writers_one_waits_its_turn(settings: Settings, fresh_database: str) -> None:
    first = PostgresStore(fresh_database)
    second = PostgresStore(fresh_database)  # as another process would
    try:
        with first.writer(), pytest.raises(WriterBusy):
            second.writer()
        impatient = on_postgres(settings, fresh_database).model_copy(
            update={"writer_wait_seconds": 0})
        engine = Engine.open(impatient, create=True, embedder=HashingEmbedder())
        with first.writer(), pytest.raises(ReindexInProgressError):
            engine.reindex()
        assert engine.reindex().added == 3
    finally:
        first.close()
        second.close()


@pytest.fixture
def own_server() -> Iterator[tuple[Path, str]]:
    """A server of this test's own, to stop and start."""
    base = Path(tempfile.mkdtemp(prefix="articlebot-pg-"))
    base.chmod(0o755)
    try:
        url = pgserver.start(base / "data")
    except pgserver.ServerUnavailable as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot start a server of its own: {exc}")
    try:
        yield base / "data", url
    finally:
        pgserver.stop(base / "data")
        shutil.rmtree(base, ignore_errors=True)


def test_the_engine_survives_a_server_restart(settings: Settings,
                                              own_server: tuple[Path, str]) -> None:
    data_dir, url = own_server
    engine = Engine.open(on_postgres(settings, url), create=True, embedder=HashingEmbedder())
    engine.reindex()
    assert engine.ask(QUESTIONS[0]).answered
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    pgserver.stop(data_dir)
    with pytest.raises(IndexUnavailableError, match="unavailable"):
        engine.ask(QUESTIONS[0])
    with pytest.raises(IndexUnavailableError):
        engine.follows()
    pgserver.start(data_dir, port)
    assert engine.ask(QUESTIONS[0]).answered  # the pool reconnects
    engine.close()


def test_a_rebuild_with_another_model_stops_the_old_readers(settings: Settings,
                                                            fresh_database: str) -> None:
    serving = Engine.open(on_postgres(settings, fresh_database), create=True,
                          embedder=HashingEmbedder())
    serving.reindex()
    other = settings.model_copy(update={"model": "test-hashing-2"})
    rebuilding = Engine.open(on_postgres(other, fresh_database), create=True, repair=True,
                             embedder=HashingEmbedder("test-hashing-2"))
    with pytest.raises(IndexMismatchError):  # an incremental run would mix two models
        rebuilding.reindex()
    report = rebuilding.reindex(rebuild=True)
    assert report.chunks_reused == 0 and report.added == 3  # no vector of the old model
    with pytest.raises(IndexMismatchError, match="rebuilt with model 'test-hashing-2'"):
        serving.ask(QUESTIONS[0])
    assert rebuilding.ask(QUESTIONS[0]).answered
