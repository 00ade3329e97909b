"""The index survives crashes, damaged files, concurrent switches and a foreign model."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from index.config import Settings
from index.engine import Engine, EngineError, IndexMismatchError
from index.store.local import generations, vectors
from tests.index.fakes import HashingEmbedder
from tests.index.reindex_worker import EXIT_ENGINE_ERROR, settings_for
from tests.index.synthetic import change_articles, write_articles

REPO = Path(__file__).resolve().parents[2]
QUESTION = "What did the council say about the harbour bridge in Port Ellin?"
_MARKER = re.compile(r"Revision (r\d+) was published")


def build(settings: Settings, embedder: HashingEmbedder) -> Engine:
    engine = Engine.open(settings, create=True, embedder=embedder)
    engine.reindex()
    return engine


def ids_match(engine: Engine) -> None:
    """FAISS ids and SQLite chunk rows of the serving generation are the same set."""
    generation = engine.store._generation
    faiss_ids = set(vectors.index_ids(generation.index).tolist())
    rows = {row[0] for row in generation.conn().execute("SELECT id FROM chunks")}
    assert faiss_ids == rows and rows


def marker_counts(texts: list[str]) -> Counter[str]:
    """How many texts carry each revision marker."""
    return Counter(marker for text in texts for marker in set(_MARKER.findall(text)))


# ------------------------------------------------------------------ crashes


def worker_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARTICLEBOT_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def spawn_worker(index_dir: Path, article_dir: Path, rebuild: bool) -> subprocess.Popen[str]:
    """Start a reindex process; it imports everything, says 'ready' and waits for a line."""
    command = [sys.executable, "-m", "tests.index.reindex_worker", "build",
               str(index_dir), str(article_dir), *(["--rebuild"] if rebuild else [])]
    return subprocess.Popen(
        command, cwd=REPO, env=worker_env(), text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def go(process: subprocess.Popen[str]) -> float:
    """Wait until the worker is ready, let it start its reindex; returns the start time."""
    assert process.stdout is not None and process.stdin is not None
    ready = process.stdout.readline().strip()
    assert ready == "ready", process.stderr.read() if process.stderr else ""
    process.stdin.write("go\n")
    process.stdin.flush()
    return time.perf_counter()


def last_stage(output: str) -> str:
    """The last thing a worker reported: start, a progress stage, or done."""
    words = [line.split()[-1] if line.startswith("stage") else line.split()[0]
             for line in output.split("\n") if line.strip()]
    return words[-1] if words else "ready"


class CrashLoop:
    """Kills reindex workers at chosen moments and checks the index after every kill."""

    def __init__(self, tmp_path: Path, n_articles: int) -> None:
        self.article_dir, self.index_dir = tmp_path / "articles", tmp_path / "index"
        self.paths = write_articles(self.article_dir, n_articles)
        self.settings = settings_for(self.index_dir, self.article_dir)
        self.embedder = HashingEmbedder()
        build(self.settings, self.embedder).close()
        self.committed = self.file_markers()
        self.served = generations.current_name(self.index_dir)
        self.leftovers_cleaned = 0
        self.switches = 0

    def file_markers(self) -> Counter[str]:
        return marker_counts([path.read_text("utf-8") for path in self.paths])

    def change(self, round_number: int, count: int) -> None:
        first = round_number * count
        chosen = [self.paths[(first + k) % len(self.paths)] for k in range(count)]
        change_articles(chosen, f"r{round_number}")

    def check(self) -> None:
        """The index opens whole: old generation, or a complete new one; leftovers cleaned."""
        leftovers = list(self.index_dir.glob(f"{generations.PREFIX}*{generations.BUILDING}"))
        engine = Engine.open(self.settings, embedder=self.embedder)
        try:
            assert not list(self.index_dir.glob(f"*{generations.BUILDING}"))
            self.leftovers_cleaned += len(leftovers)
            ids_match(engine)
            assert engine.ask(QUESTION).answered
            assert engine.count_articles() == len(self.paths)
            rows = engine.store._generation.conn().execute("SELECT text FROM articles")
            texts = [row[0] for row in rows]
            name = engine.stats().generation
            if name == self.served:
                assert marker_counts(texts) == self.committed  # nothing of the killed run
            else:
                current = self.file_markers()
                assert marker_counts(texts) == current  # all of it
                self.committed, self.served = current, name
                self.switches += 1
        finally:
            engine.close()


KILLS = 25
CHANGED_PER_ROUND = 60


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_sigkill_at_any_moment_never_loses_or_tears_the_index(tmp_path: Path) -> None:
    """SIGKILL a reindex at 25 moments spread over the build; the index is always whole."""
    loop = CrashLoop(tmp_path, n_articles=400)
    # Two measured runs (incremental, full rebuild), then the kill rounds; every second is full.
    modes = [False, True] + [k % 2 == 1 for k in range(KILLS)]
    durations: dict[bool, float] = {}
    stages: Counter[str] = Counter()
    worker = spawn_worker(loop.index_dir, loop.article_dir, modes[0])
    for round_number, rebuild in enumerate(modes):
        loop.change(round_number, CHANGED_PER_ROUND)
        started = go(worker)
        upcoming = (spawn_worker(loop.index_dir, loop.article_dir, modes[round_number + 1])
                    if round_number + 1 < len(modes) else None)
        kill = round_number - 2
        if kill < 0:
            output, errors = worker.communicate(timeout=60)
            assert worker.returncode == 0, errors
            durations[rebuild] = time.perf_counter() - started
        else:
            # A permutation of evenly spaced moments, up to 10% past the measured end.
            fraction = ((kill * 11) % KILLS + 0.5) / KILLS * 1.1
            pause = durations[rebuild] * fraction - (time.perf_counter() - started)
            time.sleep(max(0.0, pause))
            worker.send_signal(signal.SIGKILL)
            output, _ = worker.communicate(timeout=30)
            assert worker.returncode in (-signal.SIGKILL, 0)
            stages[last_stage(output)] += 1
        loop.check()
        if upcoming is not None:
            worker = upcoming
    print(f"\nbuild seconds {durations}; kills by last stage reached {dict(stages)}; "
          f"switches {loop.switches}; leftovers cleaned {loop.leftovers_cleaned}")
    assert sum(stages.values()) == KILLS
    assert len(stages) >= 3  # the kills landed in different stages of the build
    assert loop.leftovers_cleaned >= 1


def test_a_live_writers_building_generation_is_not_a_leftover(settings, embedder) -> None:
    build(settings, embedder).close()
    in_progress = settings.index_dir / "gen-000050.building"
    with generations.writer_lock(settings.index_dir):  # another process is building
        in_progress.mkdir()
        Engine.open(settings, embedder=embedder).close()
        assert in_progress.is_dir()
    Engine.open(settings, embedder=embedder).close()  # the writer has gone: now it is left over
    assert not in_progress.exists()


# ------------------------------------------------------------------ damaged files


def damage(path: Path, how: str) -> None:
    """Truncate a file, or flip one bit in its middle."""
    size = path.stat().st_size
    if how == "truncated":
        with path.open("r+b") as handle:
            handle.truncate(size // 2)
        return
    with path.open("r+b") as handle:
        handle.seek(size // 2)
        byte = handle.read(1)[0]
        handle.seek(size // 2)
        handle.write(bytes([byte ^ 0x10]))


def two_generations(settings: Settings, embedder: HashingEmbedder) -> tuple[Path, Path]:
    """Build twice (the second with a change); returns (newest, older)."""
    engine = build(settings, embedder)
    path = settings.article_dirs[0] / "comet.txt"
    path.write_text(path.read_text() + "\nA second sighting followed.\n", encoding="utf-8")
    engine.reindex()
    engine.close()
    newest, older = generations.complete_generations(settings.index_dir)[:2]
    return newest, older


@pytest.mark.parametrize("how", ["truncated", "bit-flipped"])
@pytest.mark.parametrize("name", [generations.VECTORS, generations.DATABASE])
def test_damaged_file_is_detected_and_the_previous_generation_serves(
    settings, embedder, caplog: pytest.LogCaptureFixture, name: str, how: str
) -> None:
    newest, older = two_generations(settings, embedder)
    damage(newest / name, how)
    with caplog.at_level(logging.WARNING, logger="index.store.generations"):
        engine = Engine.open(settings, embedder=embedder)
    assert engine.stats().generation == older.name
    assert engine.ask("When did the harbour bridge reopen?").answered
    ids_match(engine)
    problem = "missing or truncated" if how == "truncated" else "does not match its checksum"
    damaged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert damaged == [
        f"index generation {newest.name} is damaged, trying an older one: "
        f"{newest.name}: {name} is {problem}"
        if how == "truncated" else
        f"index generation {newest.name} is damaged, trying an older one: "
        f"{newest.name}: {name} {problem}"
    ]
    assert f"serving index generation {older.name} of {settings.index_dir}: " in caplog.text


@pytest.mark.parametrize(
    "manifest",
    ['{"format": 1', "[]", '{"format": 1, "embedding": {}}',
     '{"format": 1, "files": {"articles.sqlite": {"bytes": "x"}}}'],
    ids=["cut", "not-an-object", "no-files", "bad-entry"],
)
def test_damaged_manifest_falls_back_too(settings, embedder, manifest: str) -> None:
    newest, older = two_generations(settings, embedder)
    (newest / generations.MANIFEST).write_text(manifest, encoding="utf-8")
    assert Engine.open(settings, embedder=embedder).stats().generation == older.name


def test_no_good_generation_says_how_to_rebuild(
    settings, embedder, caplog: pytest.LogCaptureFixture
) -> None:
    newest, older = two_generations(settings, embedder)
    damage(newest / generations.DATABASE, "bit-flipped")
    damage(older / generations.VECTORS, "truncated")
    with caplog.at_level(logging.ERROR), pytest.raises(EngineError) as failure:
        Engine.open(settings, embedder=embedder)
    message = str(failure.value)
    assert "no good index generation" in message
    assert "articlebot reindex --rebuild" in message
    assert newest.name in message and older.name in message
    assert caplog.text.count("is damaged") == 2


@pytest.mark.parametrize("problem", ["damaged", "other-model"])
def test_rebuild_repairs_an_index_with_no_good_generation(settings, embedder, problem) -> None:
    newest, older = two_generations(settings, embedder)
    if problem == "damaged":
        damage(newest / generations.DATABASE, "bit-flipped")
        damage(older / generations.DATABASE, "bit-flipped")
    else:
        embedder = HashingEmbedder(dim=32)  # the model setting changed since the build
    error = IndexMismatchError if problem == "other-model" else EngineError
    with pytest.raises(error, match="reindex --rebuild"):  # a plain reindex refuses
        Engine.open(settings, create=True, embedder=embedder)
    # what `articlebot reindex --rebuild` does
    engine = Engine.open(settings, create=True, repair=True, embedder=embedder)
    engine.reindex(rebuild=True)
    assert engine.ask("When did the harbour bridge reopen?").answered


def test_replaced_generations_are_closed_once_their_readers_finish(settings, embedder) -> None:
    engine = build(settings, embedder)
    first = engine.store._generation
    with engine._reading() as held:  # a question still running on the first generation
        (settings.article_dirs[0] / "new.txt").write_text("Night market\n\nIt opened.\n", "utf-8")
        engine.reindex()
        assert held is first and first._connections  # still open for its reader
        held.conn().execute("SELECT count(*) FROM chunks").fetchone()
    assert not first._connections  # closed when the reader let go, without waiting for GC
    assert engine.store._generation is not first and engine.ask("harbour bridge").results


# ------------------------------------------------------------------ concurrent switches


def test_questions_in_threads_survive_generation_switches(settings, embedder) -> None:
    """4 threads ask in a loop while 5 reindexes switch generations: all answers valid."""
    write_articles(settings.article_dirs[0], 120)
    engine = build(settings, embedder)
    known: dict[int, set[int]] = {}  # id(generation) -> its chunk ids
    known_lock = threading.Lock()

    def chunk_ids(generation: generations.Generation) -> set[int]:
        with known_lock:
            if id(generation) not in known:
                known[id(generation)] = set(vectors.index_ids(generation.index).tolist())
            return known[id(generation)]

    stop = threading.Event()
    errors: list[BaseException] = []
    served: Counter[str] = Counter()
    # Every generation ever served, in order: on a loaded machine two switches can happen while
    # one question runs, so "the one before or the one after" is not enough to check against.
    history = [engine.store._generation]
    swap = engine.store._swap

    def recording_swap(generation: generations.Generation) -> None:
        with known_lock:
            history.append(generation)
        swap(generation)

    engine.store._swap = recording_swap  # type: ignore[method-assign]

    def asker(number: int) -> None:
        questions = [QUESTION, "apple harvest in Tamsin", "comet telescope", "railway tunnel"]
        while not stop.is_set():
            with known_lock:
                first = max(0, len(history) - 2)  # the one serving, or one being swapped in
            before = engine.store._generation
            try:
                answer = engine.ask(questions[number % len(questions)])
            except BaseException as error:
                errors.append(error)
                return
            after = engine.store._generation
            assert before is not None and after is not None
            with known_lock:
                during = list(history[first:])
            allowed = set().union(*(chunk_ids(generation) for generation in during))
            ids = {q.chunk_id for q in answer.quotes} | {h.chunk_id for h in answer.results}
            if not ids <= allowed:
                errors.append(AssertionError(f"chunk ids {ids - allowed} in no generation"))
                return
            with known_lock:
                served[after.name] += 1

    def answered(count: int, generation: str) -> bool:
        with known_lock:
            return sum(served.values()) >= count and served[generation] > 0

    threads = [threading.Thread(target=asker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        for round_number in range(5):
            path = settings.article_dirs[0] / f"article-{round_number:04d}.txt"
            change_articles([path], f"s{round_number}")
            assert engine.reindex().updated == 1
            chunk_ids(engine.store._generation)
            # Counted, not timed: the next write waits until four more questions were answered,
            # one of them by the new generation, however long a question takes on this machine.
            with known_lock:
                wanted = sum(served.values()) + 4
            name = engine.store._generation.name
            deadline = time.monotonic() + 300  # a guard against a hang only
            while not errors and not answered(wanted, name):
                assert time.monotonic() < deadline, f"no question answered by {name}"
                time.sleep(0.005)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors[:3]
    assert len(served) >= 5 and sum(served.values()) >= 20


# ------------------------------------------------------------------ foreign model


@pytest.mark.parametrize(("model", "dim", "word"), [("another-model", 64, "model"),
                                                    ("test-hashing", 32, "dim")])
def test_foreign_model_is_refused_under_python_O(
    settings, embedder, model: str, dim: int, word: str
) -> None:
    build(settings, embedder).close()
    command = [sys.executable, "-O", "-m", "tests.index.reindex_worker", "open",
               str(settings.index_dir), str(settings.article_dirs[0]),
               "--model", model, "--dim", str(dim)]
    done = subprocess.run(command, cwd=REPO, env=worker_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == EXIT_ENGINE_ERROR, done.stderr
    assert f"the index was built with {word}=" in done.stderr
    assert "articlebot reindex --rebuild" in done.stderr
    with pytest.raises(IndexMismatchError, match=word):
        Engine.open(settings, embedder=HashingEmbedder(model=model, dim=dim))


@pytest.mark.parametrize(("damage_current", "why"), [
    (lambda d, newest: (d / "CURRENT").write_bytes(b"\xff\xfegen-\x80"),
     "CURRENT does not hold a generation name (not UTF-8 text)"),
    (lambda d, newest: (d / "CURRENT").write_text(""), "CURRENT is empty"),
    (lambda d, newest: (d / "CURRENT").unlink(), "CURRENT is missing"),
    (lambda d, newest: (d / "CURRENT").write_text("../../etc"),
     "CURRENT holds '../../etc', not a generation name"),
])
def test_a_damaged_current_is_recovered_and_said_once(
    settings, embedder, caplog: pytest.LogCaptureFixture, damage_current, why
) -> None:
    newest, _ = two_generations(settings, embedder)
    damage_current(settings.index_dir, newest)
    with caplog.at_level(logging.WARNING, logger="index.store.local.generations"):
        engine = Engine.open(settings, embedder=embedder)
        Engine.open(settings, embedder=embedder).close()  # a second open says nothing new
    assert engine.stats().generation == newest.name
    said = [r.getMessage() for r in caplog.records if "serving index generation" in r.getMessage()]
    assert said == [f"serving index generation {newest.name} of {settings.index_dir}: {why}"]
    # A rebuild (and any write) works on it and leaves a good CURRENT behind.
    assert engine.reindex(rebuild=True).added == 3
    assert generations.read_current(settings.index_dir)[1] is None


def test_a_deleted_manifest_of_the_serving_generation_is_said(
    settings, embedder, caplog: pytest.LogCaptureFixture
) -> None:
    newest, older = two_generations(settings, embedder)
    (newest / generations.MANIFEST).unlink()
    with caplog.at_level(logging.WARNING, logger="index.store.local.generations"):
        engine = Engine.open(settings, embedder=embedder)
    assert engine.stats().generation == older.name
    assert (f"serving index generation {older.name} of {settings.index_dir}: CURRENT names "
            f"{newest.name}, which is missing or has no manifest.json") in caplog.text

