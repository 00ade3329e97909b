"""A process of the multi-process test: a reader, an ingest worker or a publisher, on one
PostgreSQL collection. Prints one JSON line of what it did and what went wrong.

    python -m tests.index.store.postgres.worker reader URL WORK SECONDS
    python -m tests.index.store.postgres.worker writer URL WORK NAME ROUNDS
    python -m tests.index.store.postgres.worker publisher URL WORK ROUNDS
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import date
from pathlib import Path

from pydantic import SecretStr

from index import questions
from index.config import Settings
from index.engine import Engine, ReindexInProgressError
from index.models import SearchFilters
from tests.index.fakes import HashingEmbedder

PAIR = re.compile(r"^(?P<writer>w\d)-(?P<round>\d+)-(?P<half>[ab])$")
TITLE = "Storm report "
QUESTION = "Which storm reached the harbour and the ferry?"


def settings_for(url: str, work: Path, article_dirs: list[Path] | None = None) -> Settings:
    """Settings of one worker process: the shared database, a folder of its own."""
    return Settings(_env_file=None, store="postgres", database_url=SecretStr(url),
                    index_dir=work / "index", article_dirs=article_dirs or [],
                    model="test-hashing", min_score=0.05, min_answer_score=0.0)


def article(name: str, round_: int, edition: int) -> str:
    """An article's text: writers' pairs mention storms, harbours and ferries."""
    return (f"{TITLE}{name}\n\nStorm number {round_} reached the harbour, edition "
            f"{edition}. The ferry from {name} stopped while the storm passed.\n")


# The files by which the test and a reader keep step (in the reader's work folder).
READING = "READING"
STOP = "STOP"


def ingest_retrying(engine: Engine, paths: list[Path]) -> int:
    """Ingest until no other writer is in the way; returns how many times it waited."""
    waits = 0
    while True:
        try:
            engine.ingest(paths)
            return waits
        except ReindexInProgressError:
            waits += 1
            time.sleep(0.05)


def reader(url: str, work: Path, at_least: int) -> dict[str, object]:
    """Ask continuously; check that each answer comes from one whole version.

    Creates `work/READING` after its first read and reads until `work/STOP` exists and it has
    read `at_least` times: the test starts the writers once every reader reads and stops the
    readers once the writers are done, so no reader's span depends on how busy the machine is.
    """
    settings = settings_for(url, work)
    embedder = HashingEmbedder()
    engine = Engine.open(settings, embedder=embedder)
    problems: list[str] = []
    reads = 0
    versions: set[str] = set()
    while reads < at_least or not (work / STOP).exists():
        with engine.store.reading() as snapshot:
            answer = questions.answer_question(snapshot, embedder, settings, QUESTION,
                                               SearchFilters(), date.today())
            ids = [hit.chunk_id for hit in answer.results] + [q.chunk_id for q in answer.quotes]
            rows = snapshot.chunk_rows(ids)
            if set(rows) != set(ids):
                problems.append(f"{snapshot.version}: chunks {set(ids) - set(rows)} vanished")
            halves: dict[tuple[str, str], set[str]] = {}
            for info, _ in snapshot.articles_since(published_since=None, ingested_since=None,
                                                   limit=10_000):
                match = PAIR.match(info.title.removeprefix(TITLE))
                if match:
                    halves.setdefault((match["writer"], match["round"]), set()).add(
                        match["half"])
            broken = [key for key, found in halves.items() if found != {"a", "b"}]
            if broken:
                problems.append(f"{snapshot.version}: half a pair in {broken}")
            versions.add(snapshot.version)
        reads += 1
        if reads == 1:
            work.mkdir(parents=True, exist_ok=True)
            (work / READING).touch()
    engine.close()
    return {"reads": reads, "versions": len(versions), "problems": problems}


def writer(url: str, work: Path, name: str, rounds: int) -> dict[str, object]:
    """Add a pair of articles a round, in one ingest, and edit the previous round's pair."""
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    engine = Engine.open(settings_for(url, work), create=True, embedder=HashingEmbedder())
    waits = 0
    for round_ in range(rounds):
        paths = []
        for half in "ab":
            path = folder / f"{name}-{round_}-{half}.txt"
            path.write_text(article(f"{name}-{round_}-{half}", round_, 1), encoding="utf-8")
            paths.append(path)
        if round_:
            for half in "ab":  # a second edition of the last pair
                path = folder / f"{name}-{round_ - 1}-{half}.txt"
                path.write_text(article(f"{name}-{round_ - 1}-{half}", round_ - 1, 2),
                                encoding="utf-8")
                paths.append(path)
        waits += ingest_retrying(engine, paths)
    engine.close()
    return {"rounds": rounds, "waits": waits}


def publisher(url: str, work: Path, rounds: int) -> dict[str, object]:
    """Reindex a folder of its own, changing one article each round."""
    folder = work / "published"
    folder.mkdir(parents=True, exist_ok=True)
    engine = Engine.open(settings_for(url, work, [folder]), create=True,
                         embedder=HashingEmbedder())
    waits = 0
    for round_ in range(rounds):
        (folder / "bulletin.txt").write_text(
            f"Harbour bulletin\n\nThe harbour master's bulletin number {round_}.\n",
            encoding="utf-8")
        while True:
            try:
                engine.reindex()
                break
            except ReindexInProgressError:
                waits += 1
                time.sleep(0.05)
    engine.close()
    return {"rounds": rounds, "waits": waits}


def main(argv: list[str]) -> int:
    """Run one role and print its result as JSON."""
    role, url, work = argv[0], argv[1], Path(argv[2])
    if role == "reader":
        result = reader(url, work, int(argv[3]))
    elif role == "writer":
        result = writer(url, work, argv[3], int(argv[4]))
    else:
        result = publisher(url, work, int(argv[3]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
