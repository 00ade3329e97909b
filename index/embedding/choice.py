"""`embed_backend=auto`: the fastest backend measured on this machine among those proven sound.

At the first use of a model on a machine, every installed backend embeds the bundled
calibration text (`calibration.txt`): each must agree with torch fp32 (the model as published)
to be eligible, and the fastest eligible one is chosen. The choice and its figures are kept in
the machine's model cache (`backend-choice.json`), keyed by the CPU (model and instruction
sets), the model files and the runtime versions, so a new CPU or an upgraded runtime measures
again. An explicit `embed_backend` always wins.

Why measure rather than decide from the instruction sets: on a CPU with AVX-512 VNNI int8 ran
3.6x torch, on an AVX2-only one 1.04x, slower than two lossless backends (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from index.embedding.base import Embedder
from index.embedding.exported import exclusive

log = logging.getLogger(__name__)

AUTO = "auto"
# Every backend auto may choose, in order of preference on a tie.
CANDIDATES = ("openvino-int8", "openvino", "onnx", "torch")
# Runtimes whose versions change the speed (a new one measures again).
RUNTIMES = ("torch", "openvino", "onnxruntime", "nncf")
# Instruction sets the backends' kernels depend on.
ISA_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_bf16", "amx_int8", "asimd", "asimddp", "i8mm", "bf16")
CHOICE_FILE = "backend-choice.json"
# Agreement with torch fp32 a backend needs to be eligible, as cosine of each calibration text's
# vectors: the mean, and the worst text. int8 measured a mean of 0.991 on news chunks; the
# broken bf16 layers of int8 on AMX (fixed since) gave single texts 0.76-0.92, which the worst
# case catches (docs/performance.md, "int8 on AMX"). The calibration text is also what int8 is
# calibrated on, so this is a sanity gate; SQuAD is the quality proof.
MIN_MEAN_COSINE = 0.985
MIN_WORST_COSINE = 0.95
# Texts embedded per timing run and runs per backend (best kept): a few seconds in all.
TIMED_TEXTS = 64
TIMED_RUNS = 2


@dataclass(frozen=True, slots=True)
class BackendChoice:
    """The backend chosen for a model on a machine, with what it was chosen on."""

    backend: str
    machine: str  # CPU model and instruction sets, as `machine_description` gives them
    texts_per_s: dict[str, float] = field(default_factory=dict)  # each eligible backend
    speed_vs_torch: dict[str, float] = field(default_factory=dict)
    agreement: dict[str, dict[str, float]] = field(default_factory=dict)  # mean, worst cosine
    not_eligible: dict[str, str] = field(default_factory=dict)  # backend: why
    measured_at: str = ""

    def summary(self) -> str:
        """'openvino-int8 (3.4x torch fp32), measured 2026-11-30 on Intel Xeon (avx2, …)'."""
        speed = self.speed_vs_torch.get(self.backend)
        ratio = f" ({speed:.1f}x torch fp32)" if speed else ""
        return f"{self.backend}{ratio}, measured {self.measured_at[:10]} on {self.machine}"


def machine_description(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU's model name, core count and the instruction sets embedding speed depends on."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    name = fields.get("model name") or fields.get("Model") or platform.processor() or "unknown"
    return {"cpu": name, "cores": os.cpu_count(), "machine": platform.machine(),
            "isa": [flag for flag in ISA_FLAGS if flag in flags]}


def _runtime_versions() -> dict[str, str]:
    versions = {}
    for name in RUNTIMES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def choice_key(model_fingerprint: str) -> str:
    """What a remembered choice holds for: CPU, instruction sets, runtimes, model files."""
    machine = machine_description()
    return json.dumps([machine["cpu"], machine["machine"], machine["cores"], machine["isa"],
                       _runtime_versions(), model_fingerprint])


def _describe(machine: dict[str, Any]) -> str:
    return f"{machine['cpu']} ({', '.join(machine['isa']) or 'no SIMD flags read'})"


def _read(cache_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((cache_dir / CHOICE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered(cache_dir: Path, key: str) -> BackendChoice | None:
    """The choice kept for this key, if any (a damaged file counts as none)."""
    entry = _read(cache_dir).get(key)
    if not isinstance(entry, dict) or entry.get("backend") not in CANDIDATES:
        return None
    try:
        return BackendChoice(**entry)
    except TypeError:
        return None


def _remember(cache_dir: Path, key: str, choice: BackendChoice) -> None:
    data = _read(cache_dir)
    data[key] = asdict(choice)
    target = cache_dir / CHOICE_FILE
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, target)


def _texts_per_s(embedder: Embedder, texts: list[str], clock: Callable[[], float]) -> float:
    """Texts embedded per second, the best of TIMED_RUNS runs timed by `clock` (seconds)."""
    embedder.encode(texts[:8])  # warm-up: first calls compile and allocate
    best = float("inf")
    for _ in range(TIMED_RUNS):
        started = clock()
        embedder.encode(texts)
        best = min(best, clock() - started)
    # A run the clock did not see (0 s, a coarse clock) would divide by zero: count it as 1 ns.
    return len(texts) / max(best, 1e-9)


def measure(
    model: str, *, build: Any, clock: Callable[[], float] = time.perf_counter
) -> BackendChoice:
    """Time and check every backend on the calibration text; the fastest eligible one wins.

    `build(backend)` returns an Embedder (the factory, given so tests can pass fakes) and
    `clock()` the time in seconds the runs are timed by (given so tests can count what an
    embedder did rather than how long a busy machine took). A backend that cannot be built
    here (a runtime not installed) is not eligible, with the reason. Raises EmbeddingError
    when not even torch can run.
    """
    from tqdm import tqdm

    from index.embedding.openvino_backend import calibration_texts

    texts = calibration_texts()[:TIMED_TEXTS]
    machine = machine_description()
    speeds: dict[str, float] = {}
    agreement: dict[str, dict[str, float]] = {}
    not_eligible: dict[str, str] = {}
    reference: np.ndarray | None = None
    order = ["torch", *(name for name in CANDIDATES if name != "torch")]
    for name in tqdm(order, desc="measuring embedding backends", unit="backend", disable=None):
        try:
            embedder = build(name)
            vectors = embedder.encode(texts)
            speeds[name] = _texts_per_s(embedder, texts, clock)
        except Exception as exc:
            if name == "torch":
                raise
            log.info("embedding backend %s cannot run here: %s", name, exc)
            not_eligible[name] = (str(exc).strip().split("\n")[0] or type(exc).__name__)[:200]
            continue
        if reference is None:
            reference = vectors
        cosines = np.sum(vectors * reference, axis=1)
        agreement[name] = {"mean": round(float(cosines.mean()), 4),
                           "worst": round(float(cosines.min()), 4)}
        if cosines.mean() < MIN_MEAN_COSINE or cosines.min() < MIN_WORST_COSINE:
            not_eligible[name] = (f"vectors differ from torch fp32 (cosine mean "
                                  f"{cosines.mean():.3f}, worst {cosines.min():.3f})")
    eligible = [name for name in CANDIDATES if name in speeds and name not in not_eligible]
    best = max(eligible, key=lambda name: (speeds[name], -CANDIDATES.index(name)))
    torch_speed = speeds["torch"]
    choice = BackendChoice(
        backend=best, machine=_describe(machine),
        texts_per_s={name: round(speed, 1) for name, speed in speeds.items()},
        speed_vs_torch={name: round(speed / torch_speed, 2) for name, speed in speeds.items()},
        agreement=agreement, not_eligible=not_eligible,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    log.info("embedding backend for %s on this machine: %s (texts/s %s; not eligible: %s)",
             model, choice.summary(), choice.texts_per_s, choice.not_eligible or "none")
    return choice


def choose(
    model: str, model_fingerprint: str, cache_dir: Path, *, build: Any,
    clock: Callable[[], float] = time.perf_counter,
) -> BackendChoice:
    """The remembered choice for this machine and model, measuring it first when there is none
    (`build` and `clock` as `measure` takes them)."""
    key = choice_key(model_fingerprint)
    found = remembered(cache_dir, key)
    if found is not None:
        return found
    with exclusive(cache_dir):
        found = remembered(cache_dir, key)  # another process may have measured meanwhile
        if found is not None:
            return found
        choice = measure(model, build=build, clock=clock)
        _remember(cache_dir, key, choice)
        return choice
