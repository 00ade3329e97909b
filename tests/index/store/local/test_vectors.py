"""Vector indexes: the type follows the size, and every type searches, filters and reloads alike."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from index.store.local import vectors

DIM = 32
FLOAT16_HALF_ULP = 2.0 ** -12  # the largest rounding error of a float16 in [-1, 1]


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered() -> np.ndarray:
    """20,000 vectors in 400 tight clusters: near-duplicates, hard for approximate search."""
    rng = np.random.default_rng(0)
    centres = unit_rows(rng.normal(size=(400, DIM)))
    return unit_rows(centres[rng.integers(0, 400, 20_000)] + rng.normal(0, 0.05, (20_000, DIM)))


def exact_top(data: np.ndarray, query: np.ndarray, k: int) -> set[int]:
    """Positions of the k best inner products."""
    return set(np.argsort(-(data @ query))[:k].tolist())


def test_index_type_follows_size_unless_requested() -> None:
    assert vectors.choose_index_type(vectors.APPROXIMATE_THRESHOLD - 1) == "flat"
    assert vectors.choose_index_type(vectors.APPROXIMATE_THRESHOLD) == "ivf"
    assert vectors.choose_index_type(10, "hnsw") == "hnsw"


@pytest.mark.parametrize(("n_vectors", "lists"), [(1_000_000, 4096), (5_000_000, 8192),
                                                 (200_000, 2048), (1_000, 25), (10, 1)])
def test_ivf_lists_are_about_four_root_n_and_trainable(n_vectors: int, lists: int) -> None:
    assert vectors.ivf_lists(n_vectors) == lists


def test_ivf_searches_a_share_of_the_lists_but_not_too_few() -> None:
    assert vectors.ivf_probes(8192) == 8192 // vectors.IVF_PROBE_SHARE
    assert vectors.ivf_probes(1024) == vectors.IVF_MIN_PROBES
    assert vectors.ivf_probes(25) == 25


def test_training_sample_is_fixed_and_bounded(clustered: np.ndarray) -> None:
    first = vectors.training_sample(clustered, 8)
    assert len(first) == 8 * vectors.IVF_TRAINING_PER_LIST
    assert np.array_equal(first, vectors.training_sample(clustered, 8))
    assert len(vectors.training_sample(clustered[:100], 8)) == 100


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_each_type_finds_neighbours_and_survives_a_reload(kind: str, clustered: np.ndarray,
                                                          tmp_path: Path) -> None:
    ids = np.arange(1_000, 1_000 + len(clustered), dtype=np.int64)
    index = vectors.build_index(ids, clustered, DIM, kind)
    vectors.write_index(index, tmp_path / "v.faiss")
    index = vectors.read_index(tmp_path / "v.faiss")
    assert vectors.index_type_of(index) == kind
    assert np.array_equal(np.sort(vectors.index_ids(index)), ids)
    # float16 (flat) keeps a unit vector's components within half a unit in the last place
    assert np.allclose(vectors.reconstruct(index, [1_000, 1_007]), clustered[[0, 7]],
                       rtol=0, atol=FLOAT16_HALF_ULP)
    queries = clustered[:50]
    recall = np.mean([
        len(set((vectors.search(index, q, 10)[0] - 1_000).tolist()) & exact_top(clustered, q, 10))
        / 10 for q in queries])
    assert recall >= 0.95


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_flat_and_ivf_store_float16_and_score_as_float32_does(kind: str,
                                                              clustered: np.ndarray) -> None:
    ids = np.arange(len(clustered), dtype=np.int64)
    half = vectors.build_index(ids, clustered, DIM, kind)
    full = vectors.build_index(ids, clustered, DIM, kind, float16=False)
    assert vectors.index_type_of(half) == vectors.index_type_of(full) == kind
    # 2 bytes a component instead of 4, beside the same 8-byte id per vector
    assert vectors.serialized_bytes(half) < 0.6 * vectors.serialized_bytes(full)
    for query in clustered[:20]:
        found, scores = vectors.search(half, query, 10)
        assert np.allclose(scores, clustered[found] @ query, rtol=0, atol=DIM * FLOAT16_HALF_ULP)
        assert found[0] == vectors.search(full, query, 10)[0][0]


def test_a_float32_flat_index_written_before_still_serves(clustered: np.ndarray,
                                                           tmp_path: Path) -> None:
    ids = np.arange(len(clustered), dtype=np.int64)
    vectors.write_index(vectors.build_index(ids, clustered, DIM, "flat", float16=False),
                        tmp_path / "old.faiss")
    index = vectors.read_index(tmp_path / "old.faiss")
    assert vectors.index_type_of(index) == "flat"
    assert np.array_equal(vectors.reconstruct(index, [3, 9]), clustered[[3, 9]])
    found, _ = vectors.search(index, clustered[5], 10)
    assert set(found.tolist()) == exact_top(clustered, clustered[5], 10)


def test_reload_sets_the_search_breadth(clustered: np.ndarray, tmp_path: Path) -> None:
    index = vectors.build_index(np.arange(len(clustered)), clustered, DIM, "ivf")
    ivf = faiss.downcast_index(index.index)
    assert ivf.nlist == vectors.ivf_lists(len(clustered))
    ivf.nprobe = 1
    vectors.write_index(index, tmp_path / "v.faiss")
    reloaded_index = vectors.read_index(tmp_path / "v.faiss")  # owns the inner index
    reloaded = faiss.downcast_index(reloaded_index.index)
    assert reloaded.nprobe == vectors.ivf_probes(reloaded.nlist)


def test_ivf_without_vectors_falls_back_to_flat() -> None:
    index = vectors.build_index(np.zeros(0, dtype=np.int64), np.zeros((0, DIM)), DIM, "ivf")
    assert vectors.index_type_of(index) == "flat"
    assert len(vectors.search(index, np.ones(DIM, dtype=np.float32), 5)[0]) == 0


def test_ivf_too_small_for_two_lists_is_flat(clustered: np.ndarray) -> None:
    few = 2 * vectors.IVF_MIN_TRAINING_PER_LIST - 1
    index = vectors.build_index(np.arange(few), clustered[:few], DIM, "ivf")
    assert vectors.index_type_of(index) == "flat"
    enough = vectors.build_index(np.arange(few + 1), clustered[: few + 1], DIM, "ivf")
    assert vectors.index_type_of(enough) == "ivf"


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown index type"):
        vectors.build_index(np.zeros(0, dtype=np.int64), np.zeros((0, DIM)), DIM, "lsh")


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
@pytest.mark.parametrize("exact_limit", [50_000, 0])
def test_filtered_search_keeps_to_the_allowed_ids(kind: str, exact_limit: int,
                                                  clustered: np.ndarray,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "EXACT_FILTER_LIMIT", exact_limit)
    index = vectors.build_index(np.arange(len(clustered)), clustered, DIM, kind)
    allowed = np.arange(0, len(clustered), 7)
    query = clustered[14]
    found, scores = vectors.search(index, query, 5, allowed_ids=allowed.tolist())
    assert set(found.tolist()) <= set(allowed.tolist())
    assert found[0] == 14 and np.all(np.diff(scores) <= 1e-6)
    if exact_limit:  # small subsets are scored exactly
        best = allowed[np.argsort(-(clustered[allowed] @ query))[:5]]
        assert found.tolist() == best.tolist()
