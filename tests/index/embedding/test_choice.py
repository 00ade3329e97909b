"""embed_backend=auto: measured once per machine and model, the fastest sound backend wins."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from index.embedding import choice
from index.embedding.base import EmbeddingError
from tests.index.fakes import HashingEmbedder


class FakeClock:
    """A clock (seconds) that moves only when an embedder says it spent time: what is measured
    is what the embedders did, however busy the machine running the tests is."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        """Move the clock on by `seconds`."""
        with self.lock:
            self.now += seconds


class TimedEmbedder(HashingEmbedder):
    """The hashing embedder at a set speed on a fake clock, optionally with its vectors bent."""

    def __init__(self, clock: FakeClock, seconds_per_text: float, bend: float = 0.0) -> None:
        super().__init__()
        self.clock = clock
        self.seconds_per_text = seconds_per_text
        self.bend = bend

    def encode(self, texts: Sequence[str], *, batch_size: int = 32,
               show_progress: bool = False) -> np.ndarray:
        self.clock.spend(self.seconds_per_text * len(texts))
        vectors = super().encode(texts, batch_size=batch_size)
        if self.bend:
            noise = np.random.default_rng(0).normal(size=vectors.shape).astype(np.float32)
            vectors = vectors + self.bend * noise
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors


def builder(speeds: dict[str, float], bent: Sequence[str] = (), missing: Sequence[str] = ()):
    """A `build` for choice.choose, embedders spending `speeds` (seconds a text) on CLOCK, and
    the names it built."""
    built: list[str] = []

    def build(name: str) -> HashingEmbedder:
        built.append(name)
        if name in missing:
            raise EmbeddingError(f"embed_backend={name} needs a runtime that is not installed")
        return TimedEmbedder(CLOCK, speeds[name], bend=0.5 if name in bent else 0.0)

    return build, built


CLOCK = FakeClock()


SPEEDS = {"torch": 0.0008, "onnx": 0.0006, "openvino": 0.0004, "openvino-int8": 0.0002}


@pytest.fixture(autouse=True)
def few_texts(monkeypatch):
    monkeypatch.setattr(choice, "TIMED_TEXTS", 24)


def test_the_fastest_sound_backend_is_chosen_and_remembered(tmp_path):
    build, built = builder(SPEEDS)
    first = choice.choose("model-a", "fp1", tmp_path, build=build, clock=CLOCK)
    assert first.backend == "openvino-int8"
    # Exactly what the embedders spent on the clock, however busy this machine is.
    assert first.texts_per_s == {"torch": 1250.0, "openvino-int8": 5000.0, "openvino": 2500.0,
                                 "onnx": 1666.7}
    assert first.speed_vs_torch == {"torch": 1.0, "openvino-int8": 4.0, "openvino": 2.0,
                                    "onnx": 1.33}
    assert first.agreement["onnx"] == {"mean": 1.0, "worst": 1.0}
    assert first.machine.startswith(choice.machine_description()["cpu"])
    built.clear()
    again = choice.choose("model-a", "fp1", tmp_path, build=build, clock=CLOCK)
    assert again == first and built == []  # remembered: nothing measured twice
    saved = json.loads((tmp_path / choice.CHOICE_FILE).read_text())
    assert [entry["backend"] for entry in saved.values()] == ["openvino-int8"]


def test_a_backend_whose_vectors_differ_is_not_eligible_however_fast(tmp_path):
    build, _ = builder(SPEEDS, bent=["openvino-int8"])
    chosen = choice.choose("model-a", "fp1", tmp_path, build=build, clock=CLOCK)
    assert chosen.backend == "openvino"
    assert chosen.not_eligible["openvino-int8"].startswith("vectors differ from torch fp32")


def test_a_backend_that_cannot_run_here_is_skipped_with_its_reason(tmp_path):
    build, _ = builder(SPEEDS, missing=["openvino", "openvino-int8"])
    chosen = choice.choose("model-a", "fp1", tmp_path, build=build, clock=CLOCK)
    assert chosen.backend == "onnx"
    assert "not installed" in chosen.not_eligible["openvino"]


def test_torch_wins_where_it_is_fastest(tmp_path):
    build, _ = builder({**SPEEDS, "torch": 0.0001})
    assert choice.choose("model-a", "fp1", tmp_path, build=build, clock=CLOCK).backend == "torch"


def test_another_cpu_or_model_measures_again(tmp_path, monkeypatch):
    build, built = builder(SPEEDS)
    choice.choose("model-a", "fp1", tmp_path, build=build, clock=CLOCK)
    built.clear()
    choice.choose("model-a", "fp2", tmp_path, build=build, clock=CLOCK)  # other model files
    assert built
    built.clear()
    monkeypatch.setattr(choice, "machine_description", lambda cpuinfo=None: {
        "cpu": "AMD EPYC", "cores": 2, "machine": "x86_64", "isa": ["avx2", "fma"]})
    other = choice.choose("model-a", "fp1", tmp_path, build=build, clock=CLOCK)
    assert built and other.machine == "AMD EPYC (avx2, fma)"


def test_concurrent_processes_measure_once(tmp_path):
    build, built = builder(SPEEDS)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        choice.choose("model-a", "fp1", tmp_path, build=build, clock=CLOCK))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and all(result == results[0] for result in results)
    assert sorted(built) == sorted(SPEEDS)  # one measurement: each backend built once


def test_a_damaged_choice_file_measures_again(tmp_path):
    (tmp_path / choice.CHOICE_FILE).write_text("{not json")
    build, built = builder(SPEEDS)
    chosen = choice.choose("model-a", "fp1", tmp_path, build=build, clock=CLOCK)
    assert chosen.backend == "openvino-int8"
    assert sorted(built) == sorted(SPEEDS)


def test_machine_description_reads_cpuinfo():
    cpuinfo = ("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n"
               "flags\t\t: fpu sse2 avx2 fma f16c\n")
    described = choice.machine_description(cpuinfo)
    assert described["cpu"] == "AMD EPYC 7B13" and described["isa"] == ["avx2", "fma", "f16c"]
    arm = choice.machine_description("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    assert arm["isa"] == ["asimd", "asimddp"]


def test_stats_describe_the_backend_without_measuring(tmp_path, monkeypatch):
    from index.embedding import backend_description
    from index.embedding.base import resolve_model
    from index.embedding.exported import model_fingerprint, read_model_spec

    model = "all-MiniLM-L6-v2"
    assert backend_description(model, "onnx", tmp_path) == "onnx (set)"
    assert backend_description(model, "auto", tmp_path) == (
        "auto: not measured on this machine yet (measured at the first embedding)")
    fingerprint = model_fingerprint(read_model_spec(model, resolve_model(model)).folder)
    build, built = builder(SPEEDS)
    choice.choose(model, fingerprint, tmp_path, build=build, clock=CLOCK)
    built.clear()
    described = backend_description(model, "auto", tmp_path)
    assert described.startswith("auto: openvino-int8 (") and built == []
