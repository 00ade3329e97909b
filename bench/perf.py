"""Speed and scale: embedding backends, ingest, question latency, FAISS at large sizes.

Usage: python -m bench.perf embed|ingest|query|scale [options] [--json] (see --help)
Every speed figure comes with a baseline measured in the same run (torch fp32 at batch 32 for
embedding, flat search for FAISS), because other work on the machine moves absolute figures;
the load average is recorded with each result. Figures and commands: docs/performance.md.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
import typer

from bench.measure import (
    DEFAULT_BACKEND,
    REPO_ROOT,
    YEAR_CORPUS,
    bench_settings,
    clear_index,
    concrete_backend,
    ingest_dir,
    load_average,
    news_question_texts,
    note,
    percentiles,
    ratio,
    running_top_k,
    squad_question_texts,
)
from bench.measure import print_report as _report
from bench.measure import timed_ms as _timed_ms
from bench.options import (
    MAX_ARTICLES_HELD_BACK,
    MAX_BATCH,
    MAX_BREADTH,
    MAX_CHUNKS,
    MAX_K,
    MAX_NOISE,
    MAX_QUERIES,
    MAX_ROUNDS,
    MAX_SQUAD,
    MAX_THREADS,
    MAX_VECTORS,
    positive_ints,
)
from bench.peak import chunks_flops, measured_fp32_peak_gflops, transformer_shape
from bench.quality import NEWS_CORPUS, OneLineErrorsGroup
from bench.stores import app as stores_app
from index.config import BUNDLED_MODEL
from index.embedding.base import resolve_model
from index.embedding.choice import AUTO

# torch, FAISS, OpenVINO and the engine are imported where they are used, so that importing
# this module (the CLI mounts its `app`) stays fast.

Backend = Literal["auto", "torch", "openvino", "openvino-int8", "onnx"]
BACKENDS: tuple[str, ...] = get_args(Backend)
BASELINE = "torch"
INDEX_KINDS = ("flat", "ivf", "hnsw")
FLOAT32 = "flat_float32"  # the exact float32 scan `scale` measures every index against


# --- what each benchmark is asked to do: its options (no slots, so the class attributes can
# serve as the command line's defaults)
@dataclass(frozen=True)
class EmbedOptions:
    """`embed`: chunks/s of each backend against torch fp32 on the same real chunks."""

    corpus: Path = NEWS_CORPUS
    chunks: int = 256
    queries: int = 50
    rounds: int = 3
    batch_size: int = 32
    backends: str = "openvino,openvino-int8,onnx"


@dataclass(frozen=True)
class IngestOptions:
    """`ingest`: a full ingest, adding the last articles, an unchanged re-run, a baseline."""

    corpus: Path = NEWS_CORPUS
    backend: str = DEFAULT_BACKEND
    index: Path | None = None
    added: int = 100
    baseline_chunks: int = 128
    baseline_rounds: int = 3


@dataclass(frozen=True)
class QueryOptions:
    """`query`: end-to-end question latency, start-up and memory per backend."""

    index: Path | None = None
    backends: str = f"{DEFAULT_BACKEND},torch"
    squad: int = 500
    concurrency: int = 8
    faiss_threads: int = 0


@dataclass(frozen=True)
class ScaleOptions:
    """`scale`: flat, IVF and HNSW search at growing sizes (comma-separated lists as given)."""

    sizes: str = "100000,1000000"
    vectors_from: Path | None = None
    base: int = 100_000
    noise: float = 0.01
    queries: int = 200
    k: int = 10
    kinds: str = "ivf,hnsw"
    streamed_from: int = 2_000_000
    ef_search: str = "64,128,256,512"
    nprobe: str = "32,64,128,256,512"


@dataclass(frozen=True)
class IngestWorkerOptions:
    """The `_ingest-worker` subprocess: which index, backend and file."""

    index: Path
    backend: str
    path: Path


@dataclass(frozen=True)
class QueryWorkerOptions:
    """The `_query-worker` subprocess: the index, backend, questions and how to ask them."""

    index: Path
    backend: str
    questions: Path
    news: int
    started: float
    concurrency: int = 8
    faiss_threads: int = 0


# --- small pure helpers (the ones bench.stores shares are in bench.measure)
def noisy_blocks(
    base: np.ndarray, total: int, noise: float, seed: int = 0, step: int = 100_000
) -> Iterator[np.ndarray]:
    """`total` unit vectors in blocks: the base rows, then copies with Gaussian noise per dim."""
    rng = np.random.default_rng(seed)
    first = min(total, len(base))
    yield np.ascontiguousarray(base[:first], dtype=np.float32)
    for start in range(first, total, step):
        rows = min(step, total - start)
        picked = base[rng.integers(0, len(base), rows)]
        block = picked + rng.normal(0.0, noise, picked.shape).astype(np.float32)
        yield block / np.linalg.norm(block, axis=1, keepdims=True)


def noisy_copies(base: np.ndarray, total: int, noise: float, seed: int = 0) -> np.ndarray:
    """All of `noisy_blocks` as one matrix."""
    return np.concatenate(list(noisy_blocks(base, total, noise, seed)))


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k found, over queries (rows)."""
    hits = [len(set(f[f >= 0]) & set(e[e >= 0])) / max(1, (e >= 0).sum())
            for f, e in zip(found, exact, strict=True)]
    return round(float(np.mean(hits)), 4)


# --- data
def corpus_texts(path: Path, limit: int | None = None) -> list[str]:
    """Article texts of a JSON Lines corpus (the first `limit`)."""
    texts = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            texts.append(json.loads(line)["text"])
            if limit and len(texts) >= limit:
                break
    return texts


def sample_chunks(embedder: Any, path: Path, count: int, min_tokens: int = 200) -> list[str]:
    """Real chunks as the index cuts them, keeping only full ones (≥ min_tokens)."""
    from index.chunk import chunk_text

    chunks: list[str] = []
    for text in corpus_texts(path):
        for chunk in chunk_text(text, max_tokens=embedder.content_tokens, overlap=1,
                                count_tokens=embedder.token_counts,
                                token_offsets=embedder.token_offsets):
            if chunk.n_tokens >= min_tokens:
                chunks.append(text[chunk.start : chunk.end])
        if len(chunks) >= count:
            return chunks[:count]
    return chunks


# --- embed
def make_embedders(backends: Sequence[str]) -> dict[str, Any]:
    """One embedder per backend, exported models cached under var/bench/models."""
    from index.embedding import make_embedder

    return {name: make_embedder(BUNDLED_MODEL, name) for name in backends}


def agreement(vectors: np.ndarray, reference: np.ndarray, queries: np.ndarray,
              query_reference: np.ndarray) -> dict[str, float]:
    """Cosine of each vector with the reference's, and how often a query's top-1 chunk agrees."""
    cosines = (vectors * reference).sum(axis=1)
    top = np.argmax(queries @ vectors.T, axis=1)
    top_reference = np.argmax(query_reference @ reference.T, axis=1)
    return {"cos_min": round(float(cosines.min()), 6), "cos_mean": round(float(cosines.mean()), 6),
            "top1_same": round(float((top == top_reference).mean()), 4)}


def bench_embed(args: EmbedOptions) -> dict[str, Any]:
    """Chunks/s of each backend on the same real chunks, interleaved round by round."""
    backends = list(dict.fromkeys([BASELINE, *args.backends.split(",")]))
    load_before = load_average()
    embedders = make_embedders(backends)
    chunks = sample_chunks(embedders[backends[-1]], Path(args.corpus), args.chunks)
    tokens = embedders[backends[-1]].token_counts(chunks)
    questions = news_question_texts()[: args.queries]
    note(f"{len(chunks)} chunks (mean {np.mean(tokens):.0f} tokens), {len(questions)} queries")
    for embedder in embedders.values():
        embedder.encode(chunks[:32], batch_size=args.batch_size)  # warm up
    rates: dict[str, list[float]] = {name: [] for name in backends}
    query_ms: dict[str, list[float]] = {name: [] for name in backends}
    vectors: dict[str, np.ndarray] = {}
    query_vectors: dict[str, np.ndarray] = {}
    for round_ in range(args.rounds):
        for name in backends:
            time.sleep(0.3)  # let the previous runtime's spinning threads go idle
            started = time.perf_counter()
            vectors[name] = embedders[name].encode(chunks, batch_size=args.batch_size)
            rates[name].append(len(chunks) / (time.perf_counter() - started))
            rows = []
            for question in questions:
                started = time.perf_counter()
                rows.append(embedders[name].encode_query(question))
                query_ms[name].append((time.perf_counter() - started) * 1000)
            query_vectors[name] = np.stack(rows)
        note(f"round {round_ + 1}: " + ", ".join(f"{n} {rates[n][-1]:.1f}/s" for n in backends))
    peak = measured_fp32_peak_gflops()
    reference = embedders[BASELINE]
    shape = transformer_shape(Path(resolve_model(BUNDLED_MODEL)) / "config.json")
    gflop = chunks_flops(tokens, shape, reference.special_tokens) / 1e9
    result: dict[str, Any] = {
        "what": "embed",
        "chunks": len(chunks), "mean_tokens": round(float(np.mean(tokens)), 1),
        "batch_size": args.batch_size, "rounds": args.rounds,
        "fp32_peak_gflops": round(peak, 1), "gflop_per_pass": round(gflop, 2),
        "load_before": load_before, "load_after": load_average(), "backends": {},
    }
    for name in backends:
        per_round = [ratio(rate, base) for rate, base in zip(rates[name], rates[BASELINE],
                                                            strict=True)]
        entry = {
            "chunks_per_s": round(float(np.median(rates[name])), 1),
            "chunks_per_s_rounds": [round(r, 1) for r in rates[name]],
            "x_torch": round(float(np.median(per_round)), 2),
            "query_ms_p50": round(float(np.median(query_ms[name])), 2),
            "tokens_per_s": round(float(np.median(rates[name]) * np.mean(tokens))),
            # Useful arithmetic (no padding) per second, as a share of the measured fp32 peak.
            "share_of_fp32_peak": round(
                float(np.median(rates[name])) / len(chunks) * gflop / peak, 3),
        }
        if name == AUTO:
            entry["chose"] = embedders[name].backend
        if getattr(embedders[name], "precision", None):
            entry["precision"] = str(embedders[name].precision)
        if name != BASELINE:
            entry |= agreement(vectors[name], vectors[BASELINE], query_vectors[name],
                               query_vectors[BASELINE])
        result["backends"][name] = entry
    return result


# --- subprocess workers (peak RSS and start-up are per process)
def run_worker(arguments: Sequence[str]) -> dict[str, Any]:
    """Run `python -m bench.perf <arguments>` and return its JSON and its peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.perf", *arguments],
        stdout=subprocess.PIPE, cwd=REPO_ROOT, text=True,
    )
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"worker {arguments[0]} failed with exit code {process.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # Linux reports KiB
    return result


def ingest_worker(args: IngestWorkerOptions) -> dict[str, Any]:
    """In a fresh process: open (or create) the index and ingest one file; print figures."""
    from index.engine import Engine

    started = time.perf_counter()
    engine = Engine.open(bench_settings(Path(args.index), args.backend), create=True)
    opened = time.perf_counter()
    report = engine.ingest([Path(args.path)])
    finished = time.perf_counter()
    with engine.store.reading() as snapshot:
        counts = snapshot.metadata["counts"]
        chunks, tokens = counts["chunks"], counts["tokens"]
    return {
        "open_seconds": round(opened - started, 2),
        "ingest_seconds": round(finished - opened, 2),
        "added": report.added, "updated": report.updated, "unchanged": report.unchanged,
        "duplicates": report.duplicates, "skipped": len(report.skipped),
        "chunks_embedded": report.chunks_embedded, "chunks_reused": report.chunks_reused,
        "index_chunks": int(chunks), "index_tokens": int(tokens),
        "index_type": engine.stats().index_type,
    }


def query_worker(args: QueryWorkerOptions) -> dict[str, Any]:
    """In a fresh process: time to the first answer, then latency alone and with concurrency."""
    process_started = float(args.started)
    if args.faiss_threads:
        from index.store.local import vectors

        vectors.set_threads(args.faiss_threads)
    from index.engine import Engine

    questions = json.loads(Path(args.questions).read_text(encoding="utf-8"))
    engine = Engine.open(bench_settings(Path(args.index), args.backend))
    engine.ask(questions[0])
    startup = time.time() - process_started
    rss_ready = _rss_mb()
    for question in questions[:20]:  # warm caches before timing
        engine.ask(question)
    result: dict[str, Any] = {"startup_seconds": round(startup, 2), "rss_ready_mb": rss_ready,
                              "index": engine.stats().index_type,
                              "chunks": engine.stats().n_chunks}
    for label, subset in (("news", questions[: args.news]), ("squad", questions[args.news :])):
        single = [_timed_ms(engine.ask, q) for q in subset]
        result[f"{label}_single"] = percentiles(single)
    concurrent_ms: list[float] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        concurrent_ms = list(pool.map(lambda q: _timed_ms(engine.ask, q), questions))
    wall = time.perf_counter() - started
    result[f"all_{args.concurrency}_threads"] = percentiles(concurrent_ms) | {
        "questions_per_s": round(len(questions) / wall, 1)
    }
    result["rss_end_mb"] = _rss_mb()
    return result


def _rss_mb() -> float:
    """This process's resident memory now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- ingest


def throughput(run: dict[str, Any], articles: int) -> dict[str, Any]:
    """Articles/s, chunks/s and tokens/s of one ingest run (over its ingest seconds)."""
    seconds = max(run["ingest_seconds"], 1e-9)
    return {"articles_per_s": round(articles / seconds, 2),
            "chunks_per_s": round(run["chunks_embedded"] / seconds, 1),
            "tokens_per_s": round(run["chunks_embedded"] * run["mean_tokens"] / seconds)}


def bench_ingest(args: IngestOptions) -> dict[str, Any]:
    """Full ingest (all but the last N articles), adding the last N, then an unchanged re-run."""
    args = replace(args, backend=concrete_backend(args.backend))
    corpus = Path(args.corpus)
    index_dir = Path(args.index) if args.index else ingest_dir(corpus, args.backend)
    clear_index(index_dir)
    # The one-time export (with torch) is not part of ingest speed: do it before timing.
    make_embedders([args.backend])
    with gzip.open(corpus, "rt", encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()]
    head_count = len(lines) - args.added
    result: dict[str, Any] = {"what": "ingest", "corpus": str(corpus), "articles": len(lines),
                              "backend": args.backend, "index": str(index_dir),
                              "load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="perf-ingest-") as tmp:
        head = Path(tmp) / f"{corpus.name.split('.')[0]}-head.jsonl"
        head.write_text("".join(lines[:head_count]), encoding="utf-8")
        del lines
        common = ["--index", str(index_dir), "--backend", args.backend]
        note(f"ingesting the first {head_count} articles with {args.backend}")
        first = run_worker(["_ingest-worker", *common, str(head)])
        first["mean_tokens"] = first["index_tokens"] / max(1, first["index_chunks"])
        result["full"] = first | throughput(first, first["added"])
        note(f"adding the last {args.added} articles")
        result["add"] = run_worker(["_ingest-worker", *common, str(corpus)])
        note("re-running on the unchanged corpus")
        result["unchanged"] = run_worker(["_ingest-worker", *common, str(corpus)])
    result["load_after_ingest"] = load_average()
    note(f"baseline: torch fp32 and {args.backend} on {args.baseline_chunks} chunks")
    embedders = make_embedders(list(dict.fromkeys([BASELINE, args.backend])))
    chunks = sample_chunks(embedders[args.backend], corpus, args.baseline_chunks, min_tokens=0)
    for embedder in embedders.values():
        embedder.encode(chunks[:32])  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(args.baseline_rounds):  # interleaved, so a busy spell hits both alike
        for name, embedder in embedders.items():
            started = time.perf_counter()
            embedder.encode(chunks, batch_size=32)
            samples[name].append(len(chunks) / (time.perf_counter() - started))
    rates = {name: float(np.median(values)) for name, values in samples.items()}
    full = result["full"]
    result["baseline"] = {
        "torch_chunks_per_s": round(rates[BASELINE], 1),
        f"{args.backend}_chunks_per_s": round(rates[args.backend], 1),
        "ingest_x_torch": ratio(full["chunks_per_s"], rates[BASELINE]),
        "embed_only_x_torch": ratio(rates[args.backend], rates[BASELINE]),
        "torch_estimated_ingest_seconds": round(
            full["ingest_seconds"] * ratio(full["chunks_per_s"], rates[BASELINE]), 1),
        "rounds": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "load": load_average(),
    }
    return result


# --- query
def bench_query(args: QueryOptions) -> dict[str, Any]:
    """End-to-end Engine.ask latency per backend, each in its own process."""
    index_dir = Path(args.index) if args.index else ingest_dir(YEAR_CORPUS, DEFAULT_BACKEND)
    news = news_question_texts()
    squad = squad_question_texts(args.squad)
    result: dict[str, Any] = {"what": "query", "index": str(index_dir), "news_questions": len(news),
                              "squad_questions": len(squad), "concurrency": args.concurrency,
                              "faiss_threads": args.faiss_threads or "default",
                              "load_before": load_average(), "backends": {}}
    with tempfile.TemporaryDirectory(prefix="perf-query-") as tmp:
        questions = Path(tmp) / "questions.json"
        questions.write_text(json.dumps(news + squad), encoding="utf-8")
        for backend in args.backends.split(","):
            note(f"asking {len(news) + len(squad)} questions with {backend}")
            result["backends"][backend] = run_worker([
                "_query-worker", "--index", str(index_dir), "--backend", backend,
                "--questions", str(questions), "--news", str(len(news)),
                "--concurrency", str(args.concurrency), "--started", repr(time.time()),
                "--faiss-threads", str(args.faiss_threads),
            ])
    base = result["backends"].get(BASELINE)
    if base:
        for entry in result["backends"].values():
            entry["news_p50_x_torch"] = ratio(base["news_single"]["p50_ms"],
                                              entry["news_single"]["p50_ms"])
    result["load_after"] = load_average()
    return result


# --- scale
def base_vectors(index_dir: Path | None, limit: int) -> tuple[np.ndarray, str]:
    """Real chunk vectors: from a built index when given, else embedded from corpus-8w."""
    if index_dir is not None:
        from index.store import make_store

        store = make_store(bench_settings(index_dir, DEFAULT_BACKEND))
        try:
            if store.open(None):
                with store.reading() as snapshot:
                    blocks: list[np.ndarray] = []
                    taken = 0
                    for item in snapshot.export_articles():
                        if taken >= limit:
                            break
                        blocks.append(item.vectors[: limit - taken])
                        taken += len(blocks[-1])
                if taken:
                    return np.concatenate(blocks), f"{taken} vectors of {index_dir}"
        finally:
            store.close()
    embedder = make_embedders([DEFAULT_BACKEND])[DEFAULT_BACKEND]
    chunks = sample_chunks(embedder, NEWS_CORPUS, limit, min_tokens=0)
    return embedder.encode(chunks), f"{len(chunks)} chunks of corpus-8w embedded"


def timed_searches(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    """Top-k ids per query, searching one query at a time, and the milliseconds each took."""
    from index.store.local import vectors

    found = np.full((len(queries), k), -1, dtype=np.int64)
    times = []
    for row, query in enumerate(queries):
        started = time.perf_counter()
        ids, _ = vectors.search(index, query, k)
        times.append((time.perf_counter() - started) * 1000)
        found[row, : len(ids)] = ids
    return found, times


def breadth_sweep(index: Any, queries: np.ndarray, k: int, exact: np.ndarray,
                  values: str) -> dict[str, Any]:
    """Search p50/p95 (1 thread) and recall@k at each search breadth; restores the default.

    The breadth is HNSW's efSearch or IVF's nprobe (lists visited).
    """
    from index.store.local import vectors

    _, default = vectors.search_breadth(index)
    vectors.set_threads(1)
    sweep: dict[str, Any] = {}
    try:
        for breadth in (int(v) for v in values.split(",") if v):
            vectors.set_search_breadth(index, breadth)
            found, times = timed_searches(index, queries, k)
            sweep[str(breadth)] = percentiles(times) | {"recall_at_k": recall_at(found, exact)}
    finally:
        vectors.set_search_breadth(index, default)
    return sweep


def index_figures(index: Any, queries: np.ndarray, exact: np.ndarray | None,
                  args: ScaleOptions) -> tuple[dict[str, Any], np.ndarray]:
    """Search p50/p95 on 1 and 2 threads, recall@k and the breadth sweep of one built index.

    Also returns what one thread found (the exact neighbours, when the index is flat).
    """
    from index.store.local import vectors

    kind = vectors.index_type_of(index)
    figures: dict[str, Any] = {}
    for threads in (1, 2):
        vectors.set_threads(threads)
        found, times = timed_searches(index, queries, args.k)
        figures[f"search_{threads}_threads"] = percentiles(times)
        if threads == 1:
            found_1_thread = found
            if exact is not None:
                figures["recall_at_k"] = recall_at(found, exact)
    if kind == "ivf":
        figures |= {"lists": vectors.ivf_list_count(index),
                    "nprobe": vectors.search_breadth(index)[1]}
    if exact is not None and kind != "flat":
        values = args.nprobe if kind == "ivf" else args.ef_search
        figures["by_breadth"] = breadth_sweep(index, queries, args.k, exact, values)
    return figures, found_1_thread


def scale_streamed(base: np.ndarray, size: int, queries: np.ndarray,
                   args: ScaleOptions) -> dict[str, Any]:
    """Approximate indexes alone, added block by block, for sizes that cannot be held twice.

    The exact neighbours come from a blockwise brute-force scan (what a flat index computes)
    during the first build; no flat index is built, so there is no flat search time here. IVF
    trains on a sample drawn the same way as the vectors (the base and noisy copies).
    """
    from index.store.local import vectors

    dim = base.shape[1]
    best = None
    entry: dict[str, Any] = {"flat": {"skipped": "streamed: the vectors are not held twice, "
                                                "exact top-k by blockwise scan"}}
    for kind in (k for k in args.kinds.split(",") if k != "flat"):
        vectors.set_threads(os.cpu_count() or 1)
        started = time.perf_counter()
        training = (noisy_copies(base, vectors.ivf_lists(size) * vectors.IVF_TRAINING_PER_LIST,
                                 args.noise, seed=1) if kind == "ivf" else base[:0])
        index = vectors.empty_index(kind, dim, size, training)
        del training
        built = time.perf_counter() - started
        added = 0
        note(f"{size}: building {kind} block by block")
        exact_known = best is not None  # from the first kind's pass
        for block in noisy_blocks(base, size, args.noise):
            ids = np.arange(added, added + len(block), dtype=np.int64)
            if not exact_known:
                best = running_top_k(best, queries @ block.T, ids, args.k)
            started = time.perf_counter()
            index.add_with_ids(block, ids)
            built += time.perf_counter() - started
            added += len(block)
            if added % 1_000_000 < len(block):
                note(f"{size}: {added:,} added, {built:.0f} s")
        with tempfile.TemporaryDirectory(prefix="perf-scale-") as tmp:
            path = Path(tmp) / "index.faiss"
            vectors.write_index(index, path)  # to disk: a copy in memory would not fit
            size_bytes = path.stat().st_size
        figures = {"build_seconds": round(built, 1),
                   "bytes_per_vector": round(size_bytes / size, 1)}
        entry[kind] = figures | index_figures(index, queries, best[1], args)[0]
        note(f"{size}: {kind} {entry[kind]['search_1_threads']['p50_ms']} ms, "
             f"recall {entry[kind]['recall_at_k']}")
        del index
    return entry


def bench_scale(args: ScaleOptions) -> dict[str, Any]:
    """An exact float32 scan (the ground truth and the time baseline), then the project's
    own indexes (build_index/search: flat in float16, IVF, HNSW) at growing sizes."""
    from index.store.local import vectors

    embedder = make_embedders([DEFAULT_BACKEND])[DEFAULT_BACKEND]
    queries = embedder.encode(news_question_texts()[: args.queries])
    base, origin = base_vectors(Path(args.vectors_from) if args.vectors_from else None,
                                args.base)
    result: dict[str, Any] = {
        "what": "scale", "base": origin, "noise_per_dim": args.noise, "queries": len(queries),
        "k": args.k, "hnsw": {"M": vectors.HNSW_M, "efConstruction": vectors.HNSW_EF_CONSTRUCTION,
                              "efSearch": vectors.HNSW_EF_SEARCH},
        "ivf": {"lists": "≈4·√n, a power of two",
                "nprobe": f"lists/{vectors.IVF_PROBE_SHARE}, at least {vectors.IVF_MIN_PROBES}"},
        "load_before": load_average(), "sizes": {},
    }
    for size in (int(s) for s in args.sizes.split(",")):
        if size >= args.streamed_from:
            result["sizes"][str(size)] = scale_streamed(base, size, queries, args)
            continue
        matrix = noisy_copies(base, size, args.noise)
        ids = np.arange(size, dtype=np.int64)
        entry: dict[str, Any] = {}
        exact = None
        # A float32 scan first: its answers are the exact neighbours every index is measured
        # against, its time the baseline; then the flat index as stored (float16).
        for kind in [FLOAT32, "flat"] + [k for k in args.kinds.split(",") if k != "flat"]:
            vectors.set_threads(os.cpu_count() or 1)
            note(f"{size}: building {kind}")
            started = time.perf_counter()
            index = vectors.build_index(ids, matrix, matrix.shape[1],
                                        "flat" if kind == FLOAT32 else kind,
                                        float16=kind != FLOAT32)
            built = time.perf_counter() - started
            figures: dict[str, Any] = {"build_seconds": round(built, 1),
                                       "bytes_per_vector": round(
                                           vectors.serialized_bytes(index) / size, 1)}
            measured, found = index_figures(index, queries, exact, args)
            entry[kind] = figures | measured
            if kind == FLOAT32:
                exact = found
            del index
        float32_p50 = entry[FLOAT32]["search_1_threads"]["p50_ms"]
        flat_p50 = entry["flat"]["search_1_threads"]["p50_ms"]
        entry["flat"]["p50_x_float32"] = ratio(float32_p50, flat_p50)
        for kind in entry.keys() - {"flat", FLOAT32}:
            entry[kind]["p50_x_flat"] = ratio(flat_p50, entry[kind]["search_1_threads"]["p50_ms"])
        result["sizes"][str(size)] = entry
        del matrix
        note(f"{size}: float32 p50 {float32_p50} ms; " + "; ".join(
            f"{kind} {entry[kind]['search_1_threads']['p50_ms']} ms, recall "
            f"{entry[kind].get('recall_at_k')}" for kind in entry if kind != FLOAT32))
    result["load_after"] = load_average()
    return result


# --- command line
def _names_in(allowed: Sequence[str]) -> Callable[[str], str]:
    """A check that every name of a comma-separated list is one of `allowed`."""

    def check(value: str) -> str:
        """Reject a name that is not allowed."""
        unknown = [name for name in value.split(",") if name not in allowed]
        if unknown:
            raise typer.BadParameter(f"{unknown[0]!r} is not one of {', '.join(allowed)}")
        return value

    return check


app = typer.Typer(
    help="Speed and scale: embedding backends, ingest, question latency, FAISS at large sizes. "
    "Every speed figure comes with a baseline measured in the same run (torch fp32 at batch 32 "
    "for embedding, flat search for FAISS), because other work on the machine moves absolute "
    "figures; the load average is recorded with each result. Progress goes to stderr. Figures "
    "and commands: docs/performance.md.",
    cls=OneLineErrorsGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as indented JSON, not key: value lines.")
]


@app.command("embed")
def embed_command(
    corpus: Annotated[
        Path, typer.Option("--corpus", help="Corpus (JSON Lines, gzipped) to cut real chunks from.")
    ] = EmbedOptions.corpus,
    chunks: Annotated[
        int,
        typer.Option("--chunks", min=1, max=MAX_CHUNKS,
                     help="Chunks to embed, full ones only (≥ 200 tokens)."),
    ] = EmbedOptions.chunks,
    queries: Annotated[
        int,
        typer.Option("--queries", min=0, max=MAX_QUERIES, help="News quiz questions embedded "
                     "one at a time, for the query latency (ms)."),
    ] = EmbedOptions.queries,
    rounds: Annotated[
        int,
        typer.Option("--rounds", min=1, max=MAX_ROUNDS, help="Rounds, each timing every "
                     "backend in turn; the median is reported."),
    ] = EmbedOptions.rounds,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=MAX_BATCH, help="Chunks per encode call.")
    ] = EmbedOptions.batch_size,
    backends: Annotated[
        str,
        typer.Option("--backends", callback=_names_in(BACKENDS), metavar="NAMES",
                     help=f"Backends to compare, comma-separated, from {', '.join(BACKENDS)}; "
                     f"{BASELINE} fp32, the baseline, is always measured."),
    ] = EmbedOptions.backends,
    as_json: JsonOption = False,
) -> None:
    """Chunks/s of each embedding backend against torch fp32, on the same real chunks."""
    _report(bench_embed(EmbedOptions(corpus, chunks, queries, rounds, batch_size, backends)),
            as_json)


@app.command("ingest")
def ingest_command(
    corpus: Annotated[
        Path, typer.Option("--corpus", help="Corpus to ingest: JSON Lines, gzipped.")
    ] = IngestOptions.corpus,
    backend: Annotated[
        Backend, typer.Option("--backend", help="Embedding backend of the index.")
    ] = IngestOptions.backend,
    index: Annotated[
        Path | None,
        typer.Option("--index", help="Index folder; emptied first, exported models kept "
                     "(default: var/bench/<corpus name>-<backend>)."),
    ] = IngestOptions.index,
    added: Annotated[
        int,
        typer.Option("--added", min=0, max=MAX_ARTICLES_HELD_BACK, help="Articles held back "
                     "from the full ingest, then added (the +N run)."),
    ] = IngestOptions.added,
    baseline_chunks: Annotated[
        int,
        typer.Option("--baseline-chunks", min=1, max=MAX_CHUNKS, help="Chunks embedded by "
                     "torch fp32 and the backend afterwards, for the speed ratio."),
    ] = IngestOptions.baseline_chunks,
    baseline_rounds: Annotated[
        int,
        typer.Option("--baseline-rounds", min=1, max=MAX_ROUNDS, help="Rounds of that "
                     "baseline, interleaved; the median is reported."),
    ] = IngestOptions.baseline_rounds,
    as_json: JsonOption = False,
) -> None:
    """Ingest: all but the last N articles, then the last N, then an unchanged re-run.

    Each run is a fresh process (start-up, seconds, peak RSS in MB); a torch fp32 baseline
    on real chunks follows.
    """
    options = IngestOptions(corpus, backend, index, added, baseline_chunks, baseline_rounds)
    _report(bench_ingest(options), as_json)


@app.command("query")
def query_command(
    index: Annotated[
        Path | None,
        typer.Option("--index", help="Index folder to ask (default: the year index `ingest` "
                     f"builds, var/bench/corpus-2023-{DEFAULT_BACKEND})."),
    ] = QueryOptions.index,
    backends: Annotated[
        str,
        typer.Option("--backends", callback=_names_in(BACKENDS), metavar="NAMES",
                     help="Backends to time, comma-separated, each in its own process, from "
                     f"{', '.join(BACKENDS)}."),
    ] = QueryOptions.backends,
    squad: Annotated[
        int,
        typer.Option("--squad", min=0, max=MAX_SQUAD, help="SQuAD dev questions (a seeded "
                     "sample) asked after the news quiz."),
    ] = QueryOptions.squad,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, max=MAX_THREADS, help="Threads asking at once in "
                     "the concurrent run."),
    ] = QueryOptions.concurrency,
    faiss_threads: Annotated[
        int,
        typer.Option("--faiss-threads", min=0, max=MAX_THREADS, help="FAISS threads in the "
                     "workers (0: FAISS's default, one per core)."),
    ] = QueryOptions.faiss_threads,
    as_json: JsonOption = False,
) -> None:
    """Engine.ask latency (ms, p50/p95/p99), start-up and RSS (MB) per backend."""
    options = QueryOptions(index, backends, squad, concurrency, faiss_threads)
    _report(bench_query(options), as_json)


@app.command("scale")
def scale_command(
    sizes: Annotated[
        str,
        typer.Option("--sizes", callback=positive_ints(MAX_VECTORS), metavar="N,N,...",
                     help="Index sizes to build (vectors), comma-separated."),
    ] = ScaleOptions.sizes,
    vectors_from: Annotated[
        Path | None,
        typer.Option("--vectors-from", help="An index folder to take the real vectors from "
                     "(default: embed chunks of corpus-8w)."),
    ] = ScaleOptions.vectors_from,
    base: Annotated[
        int,
        typer.Option("--base", min=1, max=MAX_VECTORS, help="Most real vectors to take; the "
                     "rest of each size are noisy copies of them."),
    ] = ScaleOptions.base,
    noise: Annotated[
        float,
        typer.Option("--noise", min=0.0, max=MAX_NOISE, help="Standard deviation of the "
                     "Gaussian noise added per dimension to make a copy (unit vectors)."),
    ] = ScaleOptions.noise,
    queries: Annotated[
        int,
        typer.Option("--queries", min=1, max=MAX_QUERIES,
                     help="News quiz questions used as queries."),
    ] = ScaleOptions.queries,
    k: Annotated[
        int, typer.Option("--k", min=1, max=MAX_K, help="Neighbours per query (recall@k).")
    ] = ScaleOptions.k,
    kinds: Annotated[
        str,
        typer.Option("--kinds", callback=_names_in(INDEX_KINDS), metavar="NAMES",
                     help="Approximate indexes to measure against flat, comma-separated, "
                     "from ivf, hnsw."),
    ] = ScaleOptions.kinds,
    streamed_from: Annotated[
        int,
        typer.Option("--streamed-from", min=1, max=MAX_VECTORS, help="From this size (vectors) "
                     "on, build block by block with no flat index; exact top-k by a blockwise "
                     "scan."),
    ] = ScaleOptions.streamed_from,
    ef_search: Annotated[
        str,
        typer.Option("--ef-search", callback=positive_ints(MAX_BREADTH), metavar="N,N,...",
                     help="HNSW efSearch values to sweep, comma-separated (recall and latency "
                     "at each)."),
    ] = ScaleOptions.ef_search,
    nprobe: Annotated[
        str,
        typer.Option("--nprobe", callback=positive_ints(MAX_BREADTH), metavar="N,N,...",
                     help="IVF nprobe values (lists visited) to sweep, comma-separated (recall "
                     "and latency at each)."),
    ] = ScaleOptions.nprobe,
    as_json: JsonOption = False,
) -> None:
    """FAISS flat vs IVF and HNSW at large sizes: build seconds, bytes/vector, search ms, recall.

    Real chunk vectors plus noisy copies of them; the project's own build_index and search.
    """
    options = ScaleOptions(sizes, vectors_from, base, noise, queries, k, kinds, streamed_from,
                           ef_search, nprobe)
    _report(bench_scale(options), as_json)


# Subprocess workers: `run_worker` starts `python -m bench.perf _<what>-worker ...` and reads
# the one JSON line they print.
@app.command("_ingest-worker", hidden=True)
def ingest_worker_command(
    path: Annotated[Path, typer.Argument(help="The JSON Lines file to ingest.")],
    index: Annotated[Path, typer.Option("--index", help="Index folder (created if missing).")],
    backend: Annotated[Backend, typer.Option("--backend", help="Embedding backend.")],
) -> None:
    """Internal: open the index, ingest one file, print the figures as one JSON line."""
    print(json.dumps(ingest_worker(IngestWorkerOptions(index, backend, path))))


@app.command("_query-worker", hidden=True)
def query_worker_command(
    index: Annotated[Path, typer.Option("--index", help="Index folder to ask.")],
    backend: Annotated[Backend, typer.Option("--backend", help="Embedding backend.")],
    questions: Annotated[
        Path, typer.Option("--questions", help="JSON list of questions, news first.")
    ],
    news: Annotated[int, typer.Option("--news", help="How many of them are news questions.")],
    started: Annotated[
        float, typer.Option("--started", help="time.time() when the parent started this.")
    ],
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Threads asking at once.")
    ] = QueryWorkerOptions.concurrency,
    faiss_threads: Annotated[
        int, typer.Option("--faiss-threads", help="FAISS threads (0: FAISS's default).")
    ] = QueryWorkerOptions.faiss_threads,
) -> None:
    """Internal: time to the first answer, then latency alone and with concurrency, as JSON."""
    options = QueryWorkerOptions(index, backend, questions, news, started, concurrency,
                                 faiss_threads)
    print(json.dumps(query_worker(options)))


# The store comparison's commands live in bench/stores.py (it shares bench.measure's helpers
# and imports nothing of this module).
app.add_typer(stores_app, name="stores")

if __name__ == "__main__":
    app()
