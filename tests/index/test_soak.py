"""Soak: questions from several threads while reindexes keep switching generations.

Runs ARTICLEBOT_SOAK_SECONDS seconds (20 by default, for CI); set it higher for a long local
run, e.g. `ARTICLEBOT_SOAK_SECONDS=600 .venv/bin/pytest -s -m slow tests/index/test_soak.py`.
"""

from __future__ import annotations

import gc
import os
import resource
import threading
import time
from pathlib import Path

import pytest

from index.config import Settings
from index.engine import Engine
from tests.index.fakes import HashingEmbedder
from tests.index.synthetic import PLACES, TOPICS, change_articles, write_articles

SOAK_SECONDS = float(os.environ.get("ARTICLEBOT_SOAK_SECONDS", "20"))
ASKERS = 4
ARTICLES = 300
# The least work a soak does, however long it takes on a busy machine: it runs SOAK_SECONDS
# and, past them, until it has done this much (within its pytest timeout).
MIN_REINDEXES = 3
MIN_ANSWERS = 100


def rss_mib() -> float:
    """This process's resident memory now, in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_files() -> int:
    """File descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
@pytest.mark.timeout(int(SOAK_SECONDS) + 120)
def test_soak_questions_while_reindexing(tmp_path: Path) -> None:
    article_dir = tmp_path / "articles"
    paths = write_articles(article_dir, ARTICLES)
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", article_dirs=[article_dir],
                        model="test-hashing", min_score=0.05, min_answer_score=0.0)
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    engine.reindex()
    questions = [f"What happened with the {topic} in {place}?"
                 for topic in TOPICS for place in PLACES[:3]]
    latencies: list[list[float]] = [[] for _ in range(ASKERS)]
    errors: list[BaseException] = []
    answered = [0] * ASKERS
    stop = threading.Event()

    def asker(number: int) -> None:
        turn = number
        while not stop.is_set():
            started = time.perf_counter()
            try:
                answer = engine.ask(questions[turn % len(questions)])
            except BaseException as error:
                errors.append(error)
                return
            latencies[number].append(time.perf_counter() - started)
            answered[number] += answer.answered
            turn += ASKERS

    rss_start, files_start = rss_mib(), open_files()
    rss_peak = rss_start
    threads = [threading.Thread(target=asker, args=(n,)) for n in range(ASKERS)]
    for thread in threads:
        thread.start()
    reindexes = 0
    deadline = time.perf_counter() + SOAK_SECONDS
    try:
        while not errors and (time.perf_counter() < deadline or reindexes < MIN_REINDEXES
                              or sum(map(len, latencies)) < MIN_ANSWERS):
            first = (reindexes * 15) % ARTICLES
            change_articles(paths[first : first + 15], f"soak{reindexes}")
            report = engine.reindex()
            assert report.updated == 15, report.summary()
            reindexes += 1
            rss_peak = max(rss_peak, rss_mib())
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    files_before_gc = open_files()
    # Replaced generations are freed by the cyclic collector, not at once (see
    # docs/reliability.md); after a collection none of their files may stay open.
    gc.collect()
    files_end = open_files()
    engine.close()

    served = sorted(x for per_thread in latencies for x in per_thread)
    p50 = served[len(served) // 2] * 1000
    p95 = served[int(len(served) * 0.95)] * 1000
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nsoak {SOAK_SECONDS:.0f}s: {len(served)} answers served "
        f"({sum(answered)} with quotes) by {ASKERS} threads, {len(errors)} errors, "
        f"{reindexes} reindexes; latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
        f"max {served[-1] * 1000:.1f} ms; RSS {rss_start:.0f} -> peak {rss_peak:.0f} MiB "
        f"(process max {maxrss:.0f} MiB); open files {files_start} -> {files_before_gc}, "
        f"{files_end} after a collection"
    )
    assert not errors, errors[:3]
    assert reindexes >= MIN_REINDEXES and len(served) >= MIN_ANSWERS
    assert files_end <= files_start + 2 * (ASKERS + 1)  # at most two live generations
