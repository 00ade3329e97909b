"""A long-lived reader sees every other process's writes, and never loses what it reads.

One process serves (an `Engine`, as `articlebot serve` holds one) and asks in a loop on fresh
threads; other processes write five times, one after another, as a cron `ingest`, a `reindex`
or a second container on the same volume would. Run on the local store and, where a server
is available, on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from index.config import Settings
from index.engine import Engine
from index.models import Progress
from index.store import WriterBusy, begin_writer, make_store
from tests.index.fakes import HashingEmbedder
from tests.index.serve_worker import settings_for

ROOT = Path(__file__).resolve().parents[2]
WORDS = ("amberly", "brisket", "corvane", "dellish", "emberton")


def _worker(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.index.serve_worker", *args]


def _read_json(process: subprocess.Popen[str]) -> dict[str, object]:
    line = process.stdout.readline() if process.stdout else ""
    if not line:
        _, err = process.communicate(timeout=30)
        raise AssertionError(f"the serving process ended: {err[-3000:]}")
    return json.loads(line)


def _seed(store: str, target: str, work: Path) -> None:
    seed = work / "seed"
    seed.mkdir(parents=True)
    (seed / "harvest.txt").write_text(
        "The harvest festival\n\nThe harvest festival was held in Oldmere, where farmers "
        "brought their apples and pears.\n", encoding="utf-8")
    engine = Engine.open(settings_for(store, target, work), create=True,
                         embedder=HashingEmbedder())
    engine.ingest([seed])
    engine.close()


def _serve_while_others_write(store: str, target: str, work: Path) -> None:
    _seed(store, target, work)
    server = subprocess.Popen(_worker("serve", store, target, str(work / "server")),
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert _read_json(server) == {"ready": True}
        for word in WORDS:
            written = subprocess.run(_worker("write", store, target, str(work / word), word),
                                     cwd=ROOT, capture_output=True, text=True, timeout=300)
            assert written.returncode == 0, written.stderr[-3000:]
            published = json.loads(written.stdout.strip().splitlines()[-1])
            assert published["added"] == 1
            assert server.stdin is not None
            server.stdin.write(f"ask {word}\n")
            server.stdin.flush()
            # The first question after the write is answered from it.
            answer = _read_json(server)
            assert answer == {"generation": published["generation"], "quoted": True}, word
        server.stdin.write("stop\n")
        server.stdin.flush()
        summary = _read_json(server)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert summary["errors"] == [], summary["errors"][0]
    assert summary["unsealed"] == []
    assert summary["versions"] >= 2  # the loop itself moved on while the writes happened
    assert summary["asked"] > len(WORDS)


def test_a_serving_process_answers_from_every_other_process_write(tmp_path: Path) -> None:
    _serve_while_others_write("local", str(tmp_path / "index"), tmp_path)


def test_a_serving_process_sees_every_write_on_postgres(
    fresh_database: str, tmp_path: Path
) -> None:
    _serve_while_others_write("postgres", fresh_database, tmp_path)



@pytest.fixture(params=["local", "postgres"])
def shared_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test index's settings on each store (PostgreSQL where a server is available)."""
    if request.param == "local":
        return settings
    url = request.getfixturevalue("fresh_database")
    return settings.model_copy(update={"store": "postgres", "database_url": SecretStr(url)})


def test_a_second_writer_waits_its_turn_and_says_what_for(
    shared_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine.open(shared_settings.model_copy(update={"writer_wait_seconds": 60}),
                         create=True, embedder=HashingEmbedder())
    other = make_store(shared_settings)  # as another process would hold it
    other.open(None)
    holder = other.writer()
    stages: list[Progress] = []
    waiting = threading.Event()

    def progress(event: Progress) -> None:
        stages.append(event)
        if event.stage == "waiting":
            waiting.set()

    with ThreadPoolExecutor(1) as pool:
        ingest = pool.submit(engine.reindex, progress)
        assert waiting.wait(30), "the second writer never said it was waiting"
        assert not ingest.done()
        holder.abort()  # the first writer finishes; the second one's turn comes
        report = ingest.result(timeout=60)
    assert report.added == 3
    lines = [r.getMessage() for r in caplog.records if "waiting up to 60 s" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("another process is updating this index")
    if shared_settings.store == "local":
        assert f"pid {os.getpid()}" in lines[0]  # who holds it, from the lock file
    assert [e.message for e in stages if e.stage == "waiting"] == [
        "another process is updating the index"]
    other.close()
    engine.close()


class _BusyStore:
    """A store whose writer is busy `busy` times, then free."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.tries = 0

    def writer(self, *, fresh: bool = False) -> str:
        self.tries += 1
        if self.tries <= self.busy:
            raise WriterBusy("another process is updating this index")
        return "writer"


def test_a_waiting_writer_gives_up_after_its_bound() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    heard: list[str] = []
    with pytest.raises(WriterBusy, match=r"still busy after waiting 3 s"):
        begin_writer(_BusyStore(busy=100), wait_seconds=3, on_wait=heard.append,
                     clock=lambda: now[0], sleep=sleep)
    assert sum(slept) == pytest.approx(3)
    assert heard == ["another process is updating this index; waiting up to 3 s for it to "
                     "finish"]
    store = _BusyStore(busy=2)
    assert begin_writer(store, wait_seconds=3, clock=lambda: now[0], sleep=sleep) == "writer"
    assert store.tries == 3
    with pytest.raises(WriterBusy, match=r"^another process is updating this index$"):
        begin_writer(_BusyStore(busy=1), wait_seconds=0, clock=lambda: now[0], sleep=sleep)


def test_a_generation_held_for_reading_is_not_pruned_until_released(
    settings: Settings,
) -> None:
    reader = Engine.open(settings, create=True, embedder=HashingEmbedder())
    reader.reindex()
    writer = Engine.open(settings, embedder=HashingEmbedder())  # as another process would
    with reader.store.reading() as held:
        for n in range(3):
            extra = settings.article_dirs[0] / f"extra-{n}.txt"
            extra.write_text(f"Extra {n}\n\nThe {n} extra story about ferries.\n",
                             encoding="utf-8")
            writer.reindex()
        assert held.path.is_dir()  # three writes later, still there while read
        with ThreadPoolExecutor(1) as pool:  # a new thread opens a new connection
            assert pool.submit(held.count_articles).result() == 3
    assert held.path.is_dir()  # still served by the reader, which has not asked since
    assert reader.stats().n_articles == 6  # the reader moves on, letting go of it
    writer.reindex(rebuild=True)  # the next prune finds it free
    assert not held.path.exists()
    assert not list(settings.index_dir.glob("*.removing"))
    reader.close()
    writer.close()


def test_a_generation_that_cannot_serve_is_said_once_and_the_old_one_serves(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    reader = Engine.open(settings, create=True, embedder=HashingEmbedder())
    reader.reindex()
    served = reader.stats().generation
    other_model = settings.model_copy(update={"model": "another-model"})
    rebuilt = Engine.open(other_model, create=True, repair=True,
                          embedder=HashingEmbedder(model="another-model"))
    rebuilt.reindex(rebuild=True)  # another process rebuilt it with another model
    for _ in range(3):
        assert reader.ask("When did the harbour bridge reopen?").answered
        assert reader.stats().generation == served
    said = [r for r in caplog.records if "written by another process" in r.getMessage()]
    assert len(said) == 1 and "another-model" in said[0].getMessage()
    rebuilt.close()
    reader.close()
