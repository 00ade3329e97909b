"""FAISS vector indexes keyed by chunk id: exact while small, HNSW when large."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

# Below this many vectors an exact scan answers within the latency budget (see docs/performance.md).
HNSW_THRESHOLD = 200_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
# Recall@10 ≥ 0.98 against exact search up to 1M vectors at ~1.2 ms a query (128 gave 0.95 at
# 1M); measured with `python -m bench.perf scale`, figures in docs/performance.md.
HNSW_EF_SEARCH = 512
EXACT_FILTER_LIMIT = 50_000


def choose_index_type(n_vectors: int, requested: str = "auto") -> str:
    """Pick 'flat' (exact) or 'hnsw' from the collection size unless one is requested."""
    if requested != "auto":
        return requested
    return "hnsw" if n_vectors >= HNSW_THRESHOLD else "flat"


def build_index(
    ids: np.ndarray, vectors: np.ndarray, dim: int, index_type: str = "flat"
) -> faiss.Index:
    """Build an id-mapped inner-product index over normalised vectors."""
    if index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    elif index_type == "flat":
        inner = faiss.IndexFlatIP(dim)
    else:
        raise ValueError(f"unknown index type {index_type!r}")
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
        )
    return index


def index_type_of(index: faiss.Index) -> str:
    """Name the kind of index inside the id map."""
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    return "hnsw" if isinstance(inner, faiss.IndexHNSWFlat) else "flat"


def write_index(index: faiss.Index, path: Path) -> None:
    """Write an index to a file."""
    faiss.write_index(index, str(path))


def read_index(path: Path) -> faiss.Index:
    """Read an index from a file and set its search parameters."""
    index = faiss.read_index(str(path))
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSWFlat):
        inner.hnsw.efSearch = HNSW_EF_SEARCH
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
        if index_type_of(index) == "hnsw" and len(allowed_ids) <= EXACT_FILTER_LIMIT:
            # A graph walk restricted to a small subset misses neighbours: score the subset exactly.
            return _exact_subset(index, query[0], k, allowed_ids)
        selector = faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
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
