"""OpenVINO runtime serving the exported model in bf16 or with int8 weights; no torch needed.

`openvino` runs the fp32 IR at the CPU's default inference precision (bf16 where the CPU has
AVX512-BF16 or AMX). `openvino-int8` stores the weights as int8 (NNCF weight compression, no
calibration data) and lets the CPU plugin quantise each token's activations to int8 on the fly,
so the matrix products run as int8 dot products (VNNI/AMX); see docs/performance.md for its speed
and its retrieval quality against torch fp32.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from pathlib import Path

import numpy as np

from index.embedding.base import EmbeddingError, quiet_model_loading
from index.embedding.exported import (
    ExportedEmbedder,
    cpu_threads,
    ensure_export,
    read_model_spec,
    save_openvino_model,
)

log = logging.getLogger(__name__)

INT8_SUFFIX = "-int8"


def ensure_int8_weights(xml: Path) -> Path:
    """The IR beside `xml` with int8 weights, compressing it first (once) when missing."""
    target = xml.with_name(f"{xml.stem}{INT8_SUFFIX}.xml")
    if target.is_file():
        return target
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise EmbeddingError(f"embed_backend=openvino-int8 needs nncf: {exc}") from exc
    log.info("compressing the embedding model's weights to int8 in %s (one time)", target)
    # NNCF draws a progress bar on stdout, which would corrupt `--json` output.
    with quiet_model_loading(), contextlib.redirect_stdout(io.StringIO()):
        nncf.set_log_level(logging.ERROR)
        compressed = nncf.compress_weights(
            ov.Core().read_model(str(xml)), mode=nncf.CompressWeightsMode.INT8_ASYM
        )
    save_openvino_model(compressed, target)
    return target


class OpenVinoEmbedder(ExportedEmbedder):
    """Embeds with the OpenVINO CPU plugin: bf16 by default here, or int8 weights and products."""

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
            xml = ensure_int8_weights(xml)
            # Activations are quantised per token row (one group across the hidden size):
            # measured faster than the plugin's default groups of 32, and as close to fp32.
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = spec.dim
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
        self.precision = f"int8 weights, {precision} otherwise" if int8 else precision
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
