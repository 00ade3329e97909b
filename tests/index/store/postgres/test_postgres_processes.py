"""Several processes on one PostgreSQL collection: readers never see half a version, writers
never lose each other's work; readers on a streaming replica see what the primary published.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.engine import Engine
from index.store import StoreError
from index.store.postgres import PostgresStore
from tests import pgserver
from tests.index.fakes import HashingEmbedder
from tests.index.store.postgres.worker import (
    PAIR,
    READING,
    STOP,
    TITLE,
    article,
    settings_for,
)

ROOT = Path(__file__).resolve().parents[4]
ROUNDS = 6
# How long the test waits for the readers to start reading (s): only a broken reader reaches
# it, however busy the machine.
WAIT_SECONDS = 120.0


def spawn(*args: str) -> subprocess.Popen[str]:
    """A worker process (see worker.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.index.store.postgres.worker", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def result(process: subprocess.Popen[str]) -> dict[str, object]:
    """A worker's JSON line (its stderr in the failure message)."""
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_readers_writers_and_a_publisher_in_separate_processes(
    fresh_database: str, tmp_path: Path
) -> None:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "w0-seed.txt").write_text(article("w0-seed", 0, 1), encoding="utf-8")
    engine = Engine.open(settings_for(fresh_database, tmp_path), create=True,
                         embedder=HashingEmbedder())
    engine.ingest([seed])
    engine.close()
    # In step, not timed: the writers start once every reader reads, and the readers stop once
    # the writers are done (each after at least 11 reads).
    folders = [tmp_path / f"r{n}" for n in range(3)]
    readers = [spawn("reader", fresh_database, str(folder), "11") for folder in folders]
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not all((folder / READING).exists() for folder in folders):
            ended = [r for r in readers if r.poll() is not None]
            assert not ended, ended[0].communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the readers never started reading"
            time.sleep(0.05)
        writers = [spawn("writer", fresh_database, str(tmp_path), f"w{n + 1}", str(ROUNDS))
                   for n in range(2)]
        publisher = spawn("publisher", fresh_database, str(tmp_path), str(ROUNDS))
        written = [result(p) for p in writers] + [result(publisher)]
        for folder in folders:
            (folder / STOP).touch()
        read = [result(p) for p in readers]
    finally:
        for reader in readers:  # a failed test leaves no reader reading on
            if reader.poll() is None:
                reader.kill()
                reader.wait()
    assert all(r["problems"] == [] for r in read), read
    assert sum(int(r["reads"]) for r in read) > 30
    assert max(int(r["versions"]) for r in read) > 2  # they read while versions changed
    assert all(w["rounds"] == ROUNDS for w in written)
    final = Engine.open(settings_for(fresh_database, tmp_path / "check"),
                        embedder=HashingEmbedder())
    with final.store.reading() as snapshot:
        titles = {a.title.removeprefix(TITLE) for a, _ in snapshot.articles_since(
            published_since=None, ingested_since=None, limit=10_000)}
        pairs = {t for t in titles if PAIR.match(t)}
        assert pairs == {f"w{w}-{r}-{h}" for w in (1, 2) for r in range(ROUNDS) for h in "ab"}
        assert {"w0-seed", "Harbour bulletin"} <= titles  # nothing lost to the other writers
        # Each pair but the last was edited once more: its second edition won.
        found = snapshot.find_article(f"{TITLE}w1-0-a")
        assert found is not None and "edition 2" in found[1]
    final.close()


def replayed(url: str) -> bool:
    """True once the replica holds a published version (its schema may still be missing)."""
    store = PostgresStore(url)
    try:
        return store.exists()
    except StoreError:
        return False
    finally:
        store.close()


@pytest.fixture
def primary_and_replica(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A primary of this test's own and a streaming replica of it (pg_basebackup -R)."""
    base = Path(tempfile.mkdtemp(prefix="articlebot-pg-"))
    base.chmod(0o755)
    try:
        primary = pgserver.start(base / "primary")
        replica = pgserver.start(base / "replica", primary_url=primary.replace(
            "/articlebot", "/postgres"))
    except pgserver.ServerUnavailable as exc:
        pgserver.stop(base / "primary")
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot start a primary and a replica: {exc}")
    try:
        yield primary, replica
    finally:
        pgserver.stop(base / "replica")
        pgserver.stop(base / "primary")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_readers_on_a_replica_see_each_version_once_replayed(
    primary_and_replica: tuple[str, str], tmp_path: Path, article_dir: Path
) -> None:
    primary_url, replica_url = primary_and_replica
    writer = Engine.open(settings_for(primary_url, tmp_path / "w", [article_dir]), create=True,
                         embedder=HashingEmbedder())
    writer.reindex()
    reader = Engine(settings_for(replica_url, tmp_path / "r"), embedder=HashingEmbedder())
    deadline = time.monotonic() + 30
    while not replayed(replica_url):  # the first version reaches the replica
        assert time.monotonic() < deadline, "the replica never replayed the first version"
        time.sleep(0.2)
    reader.load()
    assert reader.ask("When did the harbour bridge reopen?").answered
    (article_dir / "storm.txt").write_text(
        "Storm closes the ferry\n\nA winter storm closed the ferry to Oslen on Tuesday.\n",
        encoding="utf-8")
    writer.reindex()
    deadline = time.monotonic() + 30
    while reader.count_articles() != 4:
        assert time.monotonic() < deadline, "the replica never served the new version"
        time.sleep(0.2)
    answer = reader.ask("Which storm closed the ferry?")
    assert answer.answered and answer.quotes[0].article.title == "Storm closes the ferry"
    writer.close()
    reader.close()
