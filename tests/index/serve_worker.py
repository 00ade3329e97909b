"""Processes of the cross-process freshness test: a long-lived reader and one-shot writers.

    python -m tests.index.serve_worker serve STORE TARGET WORK
        opens an engine on the collection (STORE is 'local' with TARGET an index folder, or
        'postgres' with TARGET a database URL), prints 'ready', and keeps asking a standing
        question in a loop, each question on a new thread (as the bot's worker threads come
        and go). Meanwhile it reads commands on stdin:
          'ask WORD'  asks about the festival named WORD and prints one JSON line:
                      {"generation": version that answered, "quoted": the first quote is
                      that festival's article}
          'stop'      prints {"asked": questions the loop asked, "errors": what failed,
                      "unsealed": versions read that were not sealed, "versions": count}
    python -m tests.index.serve_worker write STORE TARGET WORK WORD
        ingests one article about the festival WORD from a process of its own and prints
        the version it published.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr

from index.config import Settings
from index.engine import Engine
from index.store.base import Snapshot
from tests.index.fakes import HashingEmbedder

STANDING_QUESTION = "Where was the harvest festival held?"


def settings_for(store: str, target: str, work: Path) -> Settings:
    """Settings of one process: the shared collection, an article folder of its own."""
    common = {"_env_file": None, "model": "test-hashing", "min_score": 0.05,
              "min_answer_score": 0.0, "article_dirs": [work / "articles"]}
    if store == "postgres":
        return Settings(**common, store="postgres", database_url=SecretStr(target),
                        index_dir=work / "unused-index")
    return Settings(**common, index_dir=Path(target))


def festival_article(word: str) -> str:
    """An article only one question matches: the festival named `word`."""
    return (f"The {word} festival\n\nThe {word} festival was held in the town of "
            f"{word.capitalize()}ville this spring. Thousands came to the {word} festival.\n")


def say(payload: object) -> None:
    """One JSON line to the parent, flushed."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def sealed(snapshot: Snapshot) -> bool:
    """True when the version being read is a published one (a local generation's folder
    still holds its manifest while it is read)."""
    path = getattr(snapshot, "path", None)
    return path is None or (Path(path) / "manifest.json").is_file()


def serve(store: str, target: str, work: Path) -> int:
    """Ask in a loop on fresh threads while answering the parent's questions."""
    engine = Engine.open(settings_for(store, target, work), embedder=HashingEmbedder())
    versions: set[str] = set()
    unsealed: list[str] = []
    errors: list[str] = []
    opened = engine.store.reading

    @contextlib.contextmanager
    def checked_reading() -> Iterator[Snapshot]:
        with opened() as snapshot:
            versions.add(str(snapshot.version))
            if not sealed(snapshot):
                unsealed.append(str(snapshot.version))
            yield snapshot

    engine.store.reading = checked_reading  # type: ignore[method-assign]
    stop = threading.Event()
    asked = 0

    def ask_once() -> None:
        try:
            engine.ask(STANDING_QUESTION)
            engine.stats()
        except Exception:  # every failure is the test's finding
            errors.append(traceback.format_exc(limit=4))

    def loop() -> None:
        nonlocal asked
        while not stop.is_set():
            worker = threading.Thread(target=ask_once)  # a new thread opens new connections
            worker.start()
            worker.join()
            asked += 1

    asker = threading.Thread(target=loop)
    asker.start()
    say({"ready": True})
    for line in sys.stdin:
        command, _, word = line.strip().partition(" ")
        if command == "ask":
            try:
                answer = engine.ask(f"Where was the {word} festival held?")
                generation = engine.stats().generation
                quoted = bool(answer.quotes) and word in answer.quotes[0].article.title
                say({"generation": generation, "quoted": quoted})
            except Exception:  # the finding is reported, not raised
                errors.append(traceback.format_exc(limit=4))
                say({"generation": None, "quoted": False})
        elif command == "stop":
            break
    stop.set()
    asker.join()
    engine.close()
    say({"asked": asked, "errors": errors, "unsealed": unsealed, "versions": len(versions)})
    return 0


def write(store: str, target: str, work: Path, word: str) -> int:
    """Ingest the festival article from this process and report the new version."""
    folder = work / f"write-{word}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{word}.txt"
    path.write_text(festival_article(word), encoding="utf-8")
    engine = Engine.open(settings_for(store, target, work), create=True,
                         embedder=HashingEmbedder())
    report = engine.ingest([path])
    say({"generation": report.generation, "added": report.added})
    engine.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one role."""
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("serve", "write"))
    parser.add_argument("store", choices=("local", "postgres"))
    parser.add_argument("target")
    parser.add_argument("work", type=Path)
    parser.add_argument("word", nargs="?", default="")
    args = parser.parse_args(argv)
    if args.role == "serve":
        return serve(args.store, args.target, args.work)
    return write(args.store, args.target, args.work, args.word)


if __name__ == "__main__":
    raise SystemExit(main())
