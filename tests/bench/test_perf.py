"""The speed harness's own arithmetic: percentiles, recall, machine facts, index sweeps."""

from __future__ import annotations

import numpy as np
import pytest

from bench import perf
from bench.perf import (
    breadth_sweep,
    noisy_copies,
    percentiles,
    recall_at,
    running_top_k,
)
from index.store.local import vectors


def test_percentiles_of_known_latencies() -> None:
    figures = percentiles([float(ms) for ms in range(1, 101)])
    assert figures["n"] == 100
    assert figures["p50_ms"] == 50.5
    assert 95.0 <= figures["p95_ms"] <= 96.0
    assert percentiles([])["n"] == 0


def test_recall_counts_shared_ids_and_ignores_missing() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 2, 1], [5, 9, -1, -1]])
    assert recall_at(found, exact) == 0.625


def test_noisy_copies_keep_the_base_and_stay_unit_length() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(50, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    out = noisy_copies(base, 120, noise=0.01)
    assert out.shape == (120, 16)
    assert np.array_equal(out[:50], base)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("kind", "knob", "values"),
                         [("hnsw", "efSearch", "16,256"), ("ivf", "nprobe", "1,64")])
def test_breadth_sweep_reports_each_value_and_restores_the_default(kind: str, knob: str,
                                                                   values: str) -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(size=(2_000, 32)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    ids = np.arange(len(data), dtype=np.int64)
    queries = data[:20]
    exact = np.stack([vectors.search(vectors.build_index(ids, data, 32, "flat"), q, 10)[0]
                      for q in queries])
    index = vectors.build_index(ids, data, 32, kind)
    name, default = vectors.search_breadth(index)
    assert name == knob
    low, high = values.split(",")
    sweep = breadth_sweep(index, queries, 10, exact, values)
    assert set(sweep) == {low, high}
    assert sweep[high]["recall_at_k"] >= sweep[low]["recall_at_k"]
    assert sweep[high]["recall_at_k"] > 0.9
    assert vectors.search_breadth(index) == (knob, default)


def test_streamed_scale_measures_each_approximate_kind_against_exact() -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(size=(300, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    args = perf.ScaleOptions(k=5, kinds="ivf,hnsw", noise=0.01, ef_search="64", nprobe="1,4")
    streamed = perf.scale_streamed(base, 3_000, base[:10], args)
    assert set(streamed) == {"flat", "ivf", "hnsw"} and "skipped" in streamed["flat"]
    for kind in ("ivf", "hnsw"):
        assert streamed[kind]["recall_at_k"] > 0.5
        assert set(streamed[kind]["by_breadth"]) == ({"1", "4"} if kind == "ivf" else {"64"})
    assert streamed["ivf"]["lists"] == vectors.ivf_lists(3_000)


def test_running_top_k_matches_a_full_sort() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(4, 50)).astype(np.float32)
    best = None
    for start in range(0, 50, 12):
        block_ids = np.arange(start, min(start + 12, 50), dtype=np.int64)
        best = running_top_k(best, scores[:, start : start + 12], block_ids, 5)
    expected = np.argsort(-scores, axis=1)[:, :5]
    assert np.array_equal(best[1], expected)


def test_encoder_flops_follow_the_transformer_arithmetic():
    from bench.peak import chunks_flops, encoder_flops

    # MiniLM-L6: d 384, 6 layers, f 1536. One token: 2·6·(4·384² + 2·384·1536 + 2·384).
    assert encoder_flops(1, 384, 6, 1536) == 2 * 6 * (4 * 384**2 + 2 * 384 * 1536 + 2 * 384)
    # Attention grows with the square of the length, the rest linearly.
    linear = 2 * 6 * (4 * 384**2 + 2 * 384 * 1536)
    assert encoder_flops(128, 384, 6, 1536) == 128 * linear + 2 * 6 * 2 * 128**2 * 384
    shape = {"hidden": 384, "layers": 6, "intermediate": 1536}
    assert chunks_flops([10, 20], shape, 2) == (encoder_flops(12, 384, 6, 1536)
                                                + encoder_flops(22, 384, 6, 1536))


def test_the_measured_peak_is_a_plausible_rate():
    from bench.peak import measured_fp32_peak_gflops

    assert 0.5 < measured_fp32_peak_gflops(size=256, runs=1) < 100_000
