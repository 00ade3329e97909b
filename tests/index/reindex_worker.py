"""A reindex (or open) in its own process, for crash and `python -O` tests.

    python -m tests.index.reindex_worker build INDEX ARTICLES [--rebuild]
        imports everything, prints 'ready', waits for a line on stdin, then opens the engine
        (which cleans leftovers) and reindexes, printing 'stage NAME' per progress step and
        'done GENERATION' at the end.
    python -m tests.index.reindex_worker open INDEX ARTICLES [--model M] [--dim D]
        opens the index with a HashingEmbedder of that model and dimension; on an engine error
        prints its message to stderr and exits with status 3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from index.config import Settings
from index.engine import Engine, EngineError
from index.models import Progress
from tests.index.fakes import HashingEmbedder

EXIT_ENGINE_ERROR = 3


def settings_for(index_dir: Path, article_dir: Path, model: str = "test-hashing") -> Settings:
    """Settings for a test index that read no environment."""
    return Settings(
        _env_file=None, index_dir=index_dir, article_dirs=[article_dir], model=model,
        min_score=0.05,
        min_answer_score=0.0,
    )


def say(line: str) -> None:
    """One line to the parent, flushed at once (it may kill us any moment)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def build(index_dir: Path, article_dir: Path, rebuild: bool) -> int:
    """Wait for the go line, then reindex, reporting each stage."""
    embedder = HashingEmbedder()
    say("ready")
    sys.stdin.readline()
    engine = Engine.open(settings_for(index_dir, article_dir), create=True, embedder=embedder)
    say("start")

    def progress(event: Progress) -> None:
        """Report the stage the build is in."""
        say(f"stage {event.stage}")

    report = engine.reindex(progress, rebuild=rebuild)
    say(f"done {report.generation}")
    engine.close()
    return 0


def open_index(index_dir: Path, article_dir: Path, model: str, dim: int) -> int:
    """Open the index with the given model identity; report an engine error."""
    settings = settings_for(index_dir, article_dir, model)
    try:
        engine = Engine.open(settings, embedder=HashingEmbedder(model=model, dim=dim))
    except EngineError as error:
        print(error, file=sys.stderr)
        return EXIT_ENGINE_ERROR
    say(f"opened {engine.stats().generation}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one mode."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("build", "open"))
    parser.add_argument("index_dir", type=Path)
    parser.add_argument("article_dir", type=Path)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--model", default="test-hashing")
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args(argv)
    if args.mode == "build":
        return build(args.index_dir, args.article_dir, args.rebuild)
    return open_index(args.index_dir, args.article_dir, args.model, args.dim)


if __name__ == "__main__":
    sys.exit(main())
