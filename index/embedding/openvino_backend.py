"""OpenVINO runtime serving the exported model in bf16 or in int8; no torch needed.

`openvino` runs the fp32 IR at the CPU's default inference precision (bf16 where the CPU has
AVX512-BF16 or AMX). `openvino-int8` quantises the model with NNCF, once: int8 weights, and int8
activations whose scales are calibrated on a few pages of news-like text written for the purpose
(`calibration.txt`), so the matrix products run as int8 dot products (VNNI/AMX); what is left
unquantised runs in f32. The calibration
text ships with the package, so the quantised model depends on nobody's collection;
docs/performance.md has the speed and the retrieval quality against torch fp32.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from index.embedding.base import EmbeddingError, quiet_model_loading
from index.embedding.exported import (
    ExportedEmbedder,
    ModelSpec,
    cpu_threads,
    ensure_export,
    exclusive,
    input_tokenizer,
    one_time_step,
    pad_batch,
    read_model_spec,
    save_openvino_model,
)

log = logging.getLogger(__name__)

CALIBRATION_TEXT = Path(__file__).with_name("calibration.txt")
# Bump when the quantisation recipe changes, so models quantised the old way are not reused
# (2: the unquantised layers run in f32, which changes the vectors and so the eval caches).
QUANTIZATION_VERSION = "2"


def calibration_texts() -> list[str]:
    """The calibration texts: one paragraph or question per line."""
    lines = CALIBRATION_TEXT.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def quantization_fingerprint() -> str:
    """A short hash of what the int8 vectors depend on beyond the model: recipe and text."""
    digest = hashlib.sha256(QUANTIZATION_VERSION.encode() + CALIBRATION_TEXT.read_bytes())
    return digest.hexdigest()[:12]


def int8_model_path(xml: Path) -> Path:
    """Where the int8 model of the IR `xml` goes: named after its quantisation fingerprint."""
    return xml.with_name(f"{xml.stem}-int8-{quantization_fingerprint()}.xml")


def ensure_int8_model(xml: Path, spec: ModelSpec) -> Path:
    """The int8 model beside `xml`, quantising it first (once) when missing."""
    target = int8_model_path(xml)
    if target.is_file():
        return target
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise EmbeddingError(f"embed_backend=openvino-int8 needs nncf: {exc}") from exc
    with exclusive(xml.parent):
        if not target.is_file():  # another process may have quantised it meanwhile
            with one_time_step(f"quantising {spec.name} to int8 in {xml.parent}"):
                _quantize(ov, nncf, xml, spec, target)
    return target


def _quantize(ov: Any, nncf: Any, xml: Path, spec: ModelSpec, target: Path) -> None:
    """Quantise the IR `xml` with NNCF, calibrated on the bundled text, into `target`."""
    model = ov.Core().read_model(str(xml))
    names = [port.get_any_name() for port in model.inputs]
    tokenizer = input_tokenizer(xml.parent / "tokenizer.json", spec.max_tokens)
    # One text per sample: no padding tokens skew the activation ranges.
    samples = []
    for encoding in tokenizer.encode_batch(calibration_texts()):
        arrays = pad_batch([encoding])
        samples.append({name: arrays[name] for name in names})
    # NNCF draws progress bars on stdout, which would corrupt `--json` output.
    with quiet_model_loading(), contextlib.redirect_stdout(io.StringIO()):
        nncf.set_log_level(logging.ERROR)
        quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                                  model_type=nncf.ModelType.TRANSFORMER)
    save_openvino_model(quantized, target)


class OpenVinoEmbedder(ExportedEmbedder):
    """Embeds with the OpenVINO CPU plugin: bf16 by default here, or int8."""

    def __init__(
        self, model: str, model_path: Path | str, cache_dir: Path | None, *, int8: bool = False
    ) -> None:
        """Export the model to IR when the cache lacks it, then compile it for the CPU."""
        try:
            import openvino as ov
        except ImportError as exc:
            raise EmbeddingError("embed_backend=openvino needs the openvino package") from exc
        self.backend = "openvino-int8" if int8 else "openvino"
        spec = read_model_spec(model, model_path)
        xml = ensure_export(spec, cache_dir, "openvino")
        # One stream over all cores: a single question is as fast as it can be, and
        # batches of 32 already fill the cores (more streams measured no faster).
        config: dict[str, object] = {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": cpu_threads(),
        }
        if int8:
            xml = ensure_int8_model(xml, spec)
            # The layers left unquantised (softmax, layer norm, the residual sums) run in f32:
            # in bf16 on AMX CPUs they turned some inputs' vectors to cos 0.76-0.92 with fp32
            # (3 of 100 news questions), at a small cost in speed (docs/performance.md,
            # "int8 on AMX").
            config["INFERENCE_PRECISION_HINT"] = "f32"
        core = ov.Core()
        # Caching the compiled blob halves start-up on the next run.
        core.set_property({"CACHE_DIR": str(xml.parent / "openvino-cache")})
        try:
            self._compiled = core.compile_model(str(xml), "CPU", config)
        except Exception as exc:
            raise EmbeddingError(f"cannot compile {xml} with OpenVINO: {exc}") from exc
        names = [port.get_any_name() for port in self._compiled.inputs]
        super().__init__(spec, xml.parent / "tokenizer.json", names)
        precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.precision = f"int8, {precision} elsewhere" if int8 else precision
        log.info("OpenVINO embedder %s: %s, %d threads", model, self.precision, cpu_threads())
        # An infer request serves one call at a time: each thread gets its own.
        self._local = threading.local()

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Run one batch on this thread's infer request (the GIL is released meanwhile)."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        request.infer(feed)
        # The output buffer is reused by the next call on this request; pooling copies it.
        return request.get_output_tensor(0).data
