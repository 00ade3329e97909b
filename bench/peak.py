"""How much of the CPU's fp32 arithmetic the embedding backends use.

The peak is measured, not computed from a clock: a large float32 matrix product through numpy's
BLAS (OpenBLAS, every core), the best a tuned fp32 kernel reaches on this CPU. A backend's rate
is the transformer's arithmetic per chunk (from the model's config, below) times chunks per
second; its share of the peak says how much speed the CPU leaves on the table (int8 and bf16
backends can exceed 1.0, since their products are not fp32).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Side of the square product timed for the peak: large enough that the kernel, not memory,
# sets the pace (2048: 17 GFLOP a product), small enough to take a second or two.
PEAK_SIZE = 2048
PEAK_RUNS = 3


def measured_fp32_peak_gflops(size: int = PEAK_SIZE, runs: int = PEAK_RUNS) -> float:
    """GFLOP/s of the best of `runs` float32 products of two size × size matrices."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: threads start, pages fault in
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def transformer_shape(config_file: Path) -> dict[str, int]:
    """Hidden size, layers and feed-forward size from a BERT-style config.json."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    hidden = int(config["hidden_size"])
    return {"hidden": hidden, "layers": int(config["num_hidden_layers"]),
            "intermediate": int(config.get("intermediate_size", 4 * hidden))}


def encoder_flops(tokens: int, hidden: int, layers: int, intermediate: int) -> int:
    """Floating-point operations of one encoder pass over `tokens` tokens (2 per multiply-add).

    Per layer: the Q, K, V and output projections (4·n·d²), the feed-forward pair (2·n·d·f),
    and attention's two n × n products (2·n²·d); multiply-adds, doubled. Embedding look-ups,
    softmax and layer norms are left out (a few percent at these sizes).
    """
    per_layer = 4 * tokens * hidden**2 + 2 * tokens * hidden * intermediate
    per_layer += 2 * tokens**2 * hidden
    return 2 * layers * per_layer


def chunks_flops(token_counts: Sequence[int], shape: dict[str, int], special_tokens: int) -> int:
    """Arithmetic to embed chunks of these token counts (special tokens added, no padding)."""
    return sum(encoder_flops(count + special_tokens, shape["hidden"], shape["layers"],
                             shape["intermediate"]) for count in token_counts)
