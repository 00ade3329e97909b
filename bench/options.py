"""The ranges of the benchmark command lines' numeric options (perf, stores, quality, stories).

Each maximum lies well past any run the docs describe and low enough that a typo (an extra
zero or three) is refused at the command line, not left to exhaust memory or overflow FAISS.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

# More questions than any evaluation set holds (SQuAD dev: 10,570).
MAX_QUESTIONS = 1_000_000
MAX_SQUAD = 100_000  # SQuAD questions asked in a latency run
MAX_QUERIES = 10_000  # news quiz questions used as queries
MAX_CHUNKS = 100_000  # chunks embedded for a speed figure
MAX_ROUNDS = 100
MAX_BATCH = 4096  # chunks per encode call
MAX_ARTICLES_HELD_BACK = 1_000_000
MAX_THREADS = 256  # askers, FAISS threads
MAX_VECTORS = 1_000_000_000  # index sizes: 1.5 TB of 384-d float32 at the top
MAX_DATABASE_CHUNKS = 100_000_000  # PostgreSQL scale run: the docs measure 1M
MAX_BREADTH = 100_000  # HNSW efSearch / ef_search, IVF nprobe
MAX_K = 1024  # neighbours per query
MAX_CORPUS_ARTICLES = 10_000_000  # articles read from a corpus file
MAX_SAMPLES = 10_000  # story groups printed
MAX_DAYS_APART = 365  # between two articles of one event
MAX_NOISE = 1.0  # standard deviation per dimension on unit vectors: beyond 1 a copy is noise


def positive_ints(most: int) -> Callable[[str], str]:
    """A typer callback: reject a comma-separated list holding anything but integers 1..most."""

    def check(value: str) -> str:
        """Return the list unchanged, or raise BadParameter naming the accepted range."""
        items = [item.strip() for item in value.split(",")]
        # Digits are counted first: int() refuses numbers of over 4,300 digits with a traceback.
        if not all(item.isascii() and item.isdigit() and len(item) <= len(str(most))
                   and 1 <= int(item) <= most for item in items):
            raise typer.BadParameter(
                f"expected positive integers up to {most:,} separated by commas, got {value!r}"
            )
        return value

    return check
