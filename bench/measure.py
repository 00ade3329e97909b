"""What every speed benchmark shares: latency figures, progress notes, reports, question
sets and benchmark settings.

`bench.perf` and `bench.stores` both import from here and not from each other's helpers, so
the two modules form no import cycle (`bench.perf` mounts `bench.stores`' commands).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.quality import NEWS_CORPUS, NEWS_QUESTIONS, SQUAD_DATA, read_json_gz, read_jsonl
from index.config import BUNDLED_MODEL, Settings
from index.embedding.choice import machine_description

REPO_ROOT = Path(__file__).resolve().parents[1]
YEAR_CORPUS = NEWS_CORPUS.with_name("corpus-2023.jsonl.gz")
BENCH_DIR = REPO_ROOT / "var" / "bench"
DEFAULT_BACKEND = str(Settings.model_fields["embed_backend"].default)


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 and mean of latencies in milliseconds."""
    if not ms:
        return {"n": 0, "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0}
    values = np.asarray(ms, dtype=float)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"n": len(values), "p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2),
            "p99_ms": round(float(p99), 2), "mean_ms": round(float(values.mean()), 2)}


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages (2 cores: above ~2 means others compete)."""
    return [round(value, 2) for value in os.getloadavg()]


def ratio(value: float, baseline: float) -> float:
    """value / baseline, rounded (0 when there is no baseline)."""
    return round(value / baseline, 2) if baseline else 0.0


def timed_ms(function: Callable[[str], Any], argument: str) -> float:
    """Milliseconds one call takes."""
    started = time.perf_counter()
    function(argument)
    return (time.perf_counter() - started) * 1000


def running_top_k(best: tuple[np.ndarray, np.ndarray] | None, scores: np.ndarray,
                  ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge a block's (queries × rows) scores into the best k (scores, ids) per query so far."""
    if best is not None:
        scores = np.concatenate([best[0], scores], axis=1)
        ids = np.concatenate([best[1], np.broadcast_to(ids, (len(scores), len(ids)))], axis=1)
    else:
        ids = np.broadcast_to(ids, scores.shape)
    keep = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, keep, axis=1), np.take_along_axis(ids, keep, axis=1)


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Print a result as JSON or as indented key: value lines."""
    if as_json:
        print(json.dumps(result, indent=2))
        return

    def show(value: Any, indent: int) -> None:
        """Print a nested value."""
        for key, item in value.items():
            if isinstance(item, dict):
                print(" " * indent + f"{key}:")
                show(item, indent + 2)
            else:
                print(" " * indent + f"{key}: {item}")

    show(result, 0)


def print_report(result: dict[str, Any], as_json: bool) -> None:
    """Print a benchmark's figures with the machine they were measured on."""
    emit(result | {"machine": machine_description()}, as_json)


def note(message: str) -> None:
    """Progress on stderr, so --json output stays clean."""
    print(f"[perf {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def news_question_texts() -> list[str]:
    """The news quiz questions."""
    return [str(row["question"]) for row in read_jsonl(NEWS_QUESTIONS)]


def squad_question_texts(count: int, seed: int = 0) -> list[str]:
    """A seeded sample of SQuAD dev questions."""
    questions = [qa["question"] for article in read_json_gz(SQUAD_DATA)["data"]
                 for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    random.Random(seed).shuffle(questions)
    return questions[:count]


def bench_settings(index_dir: Path, backend: str) -> Settings:
    """Settings for a benchmark index, ignoring the environment and .env."""
    return Settings(_env_file=None, index_dir=index_dir, article_dirs=[], embed_backend=backend,
                    max_file_mb=4096)


def concrete_backend(backend: str) -> str:
    """The backend a name stands for here: `auto` becomes the one measured on this machine."""
    from index.embedding import resolve_backend

    return resolve_backend(BUNDLED_MODEL, backend)


def ingest_dir(corpus: Path, backend: str) -> Path:
    """Where the ingest benchmark builds its index (reused by `query`), by concrete backend."""
    return BENCH_DIR / f"{corpus.name.split('.')[0]}-{concrete_backend(backend)}"


def clear_index(index_dir: Path) -> None:
    """Remove an index folder's contents (exported models live in the machine's cache)."""
    if not index_dir.is_dir():
        return
    for path in index_dir.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
