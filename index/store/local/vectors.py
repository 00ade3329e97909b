"""FAISS vector indexes keyed by chunk id: exact while small, IVF when large, HNSW on request.

The exact ("flat") and IVF indexes store each vector as float16 (FAISS's scalar quantizer,
QT_fp16; IVF's lists hold the vectors, not residuals): a scan reads half the bytes — 2.1× faster
than float32 on the year's 65k chunks with recall@10 0.9995 against the float32 scan; IVF at 1M
5.9 instead of 9.3 ms a search at the same recall (`python -m bench.perf scale`,
docs/performance.md) — and a unit vector's components keep their values within 2^-12. HNSW, on
request only, stays float32. Indexes written as float32 before are read and searched as they
are; the next build writes float16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

# Below this many vectors an exact scan answers within the latency budget (see docs/performance.md).
APPROXIMATE_THRESHOLD = 200_000
# IVF: about 4·√n lists, a sixteenth of them (at least 128) searched: recall@10 against exact
# search ≥ 0.98 from 100k to 5M vectors, where HNSW's graph loses its way among near-duplicates
# (0.97 at 1M, 0.76 at 5M); `python -m bench.perf scale`, figures in docs/performance.md.
IVF_LISTS_PER_ROOT = 4
IVF_PROBE_SHARE = 16
IVF_MIN_PROBES = 128
IVF_TRAINING_PER_LIST = 64
IVF_MIN_TRAINING_PER_LIST = 39  # fewer and FAISS's k-means warns that the lists are unreliable
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
# HNSW (on request only): efSearch 512 gives recall@10 0.999 at 100k and 0.97-0.98 at 1M for
# ~1.2 ms a query (128: 0.95 at 1M); `python -m bench.perf scale`, docs/performance.md.
HNSW_EF_SEARCH = 512
EXACT_FILTER_LIMIT = 50_000
# Bumped when what a local index stores for the same vectors changes (evaluation caches key on
# it). 2: flat and IVF indexes store float16.
VECTOR_FORMAT = 2
INDEX_TYPES = ("flat", "ivf", "hnsw")


def choose_index_type(n_vectors: int, requested: str = "auto") -> str:
    """Pick 'flat' (exact) or 'ivf' from the collection size unless a type is requested."""
    if requested != "auto":
        return requested
    return "ivf" if n_vectors >= APPROXIMATE_THRESHOLD else "flat"


def ivf_lists(n_vectors: int) -> int:
    """IVF list count: the power of two nearest 4·√n, with enough vectors to train each list."""
    target = IVF_LISTS_PER_ROOT * math.sqrt(max(n_vectors, 1))
    lists = 2 ** round(math.log2(target))
    return max(1, min(lists, n_vectors // IVF_MIN_TRAINING_PER_LIST))


def ivf_probes(n_lists: int) -> int:
    """Lists an IVF search visits."""
    return min(n_lists, max(IVF_MIN_PROBES, n_lists // IVF_PROBE_SHARE))


def training_sample(vectors: np.ndarray, n_lists: int) -> np.ndarray:
    """A fixed-seed sample of rows to train the IVF lists on (the same data trains the same)."""
    size = min(len(vectors), n_lists * IVF_TRAINING_PER_LIST)
    if size == len(vectors):
        return vectors
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), size, replace=False))
    return vectors[rows]


def empty_index(index_type: str, dim: int, n_vectors: int, training: np.ndarray, *,
                float16: bool = True) -> faiss.Index:
    """An id-mapped inner-product index, ready for `n_vectors` normalised vectors.

    IVF sizes its lists for `n_vectors` and trains them on a sample of `training`; with too few
    vectors for two lists it would be a flat scan anyway, so it is one. Flat and IVF store
    float16 unless `float16` is False (float32: the reference the benchmarks measure against).
    Raises ValueError for an unknown `index_type`.
    """
    n_lists = ivf_lists(n_vectors)
    if index_type == "ivf" and n_lists > 1 and len(training) >= n_lists:
        # The lists hold each vector as float16 too, not a residual to its centroid: the same
        # numbers a flat scan compares.
        inner = (faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dim), dim, n_lists, faiss.ScalarQuantizer.QT_fp16,
            faiss.METRIC_INNER_PRODUCT, False) if float16 else
            faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, n_lists, faiss.METRIC_INNER_PRODUCT))
        inner.train(np.ascontiguousarray(training_sample(training, n_lists), dtype=np.float32))
        inner.nprobe = ivf_probes(n_lists)
        inner.make_direct_map()  # `reconstruct` reads stored vectors by position
    elif index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    elif index_type in INDEX_TYPES and float16:
        inner = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16,
                                           faiss.METRIC_INNER_PRODUCT)
    elif index_type in INDEX_TYPES:
        inner = faiss.IndexFlatIP(dim)
    else:
        raise ValueError(f"unknown index type {index_type!r}")
    return faiss.IndexIDMap2(inner)


def build_index(
    ids: np.ndarray, vectors: np.ndarray, dim: int, index_type: str = "flat", *,
    float16: bool = True,
) -> faiss.Index:
    """Build an id-mapped inner-product index over normalised vectors, (n, dim) float32
    (`empty_index` says what `index_type` and `float16` choose)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = empty_index(index_type, dim, len(ids), vectors, float16=float16)
    if len(ids):
        index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
    return index


def index_type_of(index: faiss.Index) -> str:
    """Name the kind of index inside the id map."""
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSWFlat):
        return "hnsw"
    return "ivf" if isinstance(inner, faiss.IndexIVF) else "flat"


def write_index(index: faiss.Index, path: Path) -> None:
    """Write an index to a file."""
    faiss.write_index(index, str(path))


def read_index(path: Path) -> faiss.Index:
    """Read an index from a file and set its search parameters."""
    index = faiss.read_index(str(path))
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSWFlat):
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    elif isinstance(inner, faiss.IndexIVF):
        inner.nprobe = ivf_probes(inner.nlist)
    return index


def index_ids(index: faiss.Index) -> np.ndarray:
    """All ids an id-mapped index holds."""
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def reconstruct(index: faiss.Index, ids: Sequence[int]) -> np.ndarray:
    """The stored vectors for these ids (each must be present)."""
    if not len(ids):
        return np.zeros((0, index.d), dtype=np.float32)
    return index.reconstruct_batch(np.asarray(ids, dtype=np.int64))


def search(
    index: faiss.Index, query: np.ndarray, k: int, allowed_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (ids, scores) for one query, optionally restricted to some ids."""
    if index.ntotal == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    if allowed_ids is None:
        scores, ids = index.search(query, min(k, index.ntotal))
    else:
        if not len(allowed_ids):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        kind = index_type_of(index)
        if kind != "flat" and len(allowed_ids) <= EXACT_FILTER_LIMIT:
            # A graph walk or a few lists restricted to a small subset miss neighbours:
            # score the subset exactly.
            return _exact_subset(index, query[0], k, allowed_ids)
        selector = faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
        if kind == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=faiss.downcast_index(
                index.index).nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, ids = index.search(query, min(k, len(allowed_ids)), params=params)
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]


def _exact_subset(
    index: faiss.Index, query: np.ndarray, k: int, allowed_ids: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k among the given ids."""
    ids = np.asarray(allowed_ids, dtype=np.int64)
    scores = reconstruct(index, ids) @ query
    top = np.argsort(-scores)[:k]
    return ids[top], scores[top].astype(np.float32)


def set_threads(threads: int) -> None:
    """Threads FAISS may use for one search or build (process-wide)."""
    faiss.omp_set_num_threads(threads)


def search_breadth(index: faiss.Index) -> tuple[str, int]:
    """An approximate index's search breadth: ('nprobe', lists visited) for IVF, ('efSearch',
    candidates kept) for HNSW. Raises ValueError for a flat index.
    """
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexIVF):
        return "nprobe", int(inner.nprobe)
    if isinstance(inner, faiss.IndexHNSWFlat):
        return "efSearch", int(inner.hnsw.efSearch)
    raise ValueError("a flat index has no search breadth")


def set_search_breadth(index: faiss.Index, breadth: int) -> None:
    """Set an approximate index's nprobe (IVF) or efSearch (HNSW)."""
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexIVF):
        inner.nprobe = breadth
    elif isinstance(inner, faiss.IndexHNSWFlat):
        inner.hnsw.efSearch = breadth
    else:
        raise ValueError("a flat index has no search breadth")


def ivf_list_count(index: faiss.Index) -> int:
    """Lists of an IVF index."""
    return int(faiss.downcast_index(index.index).nlist)


def serialized_bytes(index: faiss.Index) -> int:
    """Size of the index as written to disk, in bytes."""
    return int(faiss.serialize_index(index).size)
