"""OpenVINO runtime serving the exported model: bf16 on CPUs with AMX, no torch at serve time."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from index.embedding.base import EmbeddingError
from index.embedding.exported import ExportedEmbedder, cpu_threads, ensure_export, read_model_spec

log = logging.getLogger(__name__)


class OpenVinoEmbedder(ExportedEmbedder):
    """Embeds with the OpenVINO CPU plugin; its default precision here is bf16 (AMX)."""

    backend = "openvino"

    def __init__(self, model: str, model_path: Path | str, cache_dir: Path | None) -> None:
        """Export the model to IR when the cache lacks it, then compile it for the CPU."""
        try:
            import openvino as ov
        except ImportError as exc:
            raise EmbeddingError("embed_backend=openvino needs the openvino package") from exc
        spec = read_model_spec(model, model_path)
        xml = ensure_export(spec, cache_dir, "openvino")
        core = ov.Core()
        # Caching the compiled blob halves start-up on the next run.
        core.set_property({"CACHE_DIR": str(xml.parent / "openvino-cache")})
        try:
            self._compiled = core.compile_model(
                str(xml), "CPU",
                # One stream over all cores: a single question is as fast as it can be, and
                # batches of 32 already fill the cores (more streams measured no faster).
                {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": cpu_threads()},
            )
        except Exception as exc:
            raise EmbeddingError(f"cannot compile {xml} with OpenVINO: {exc}") from exc
        names = [port.get_any_name() for port in self._compiled.inputs]
        super().__init__(spec, xml.parent / "tokenizer.json", names)
        self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        log.info("OpenVINO embedder %s: %s inference, %d threads", model, self.precision,
                 cpu_threads())
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
