"""ONNX Runtime serving the exported model in fp32, no torch at serve time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.embedding.base import EmbeddingError
from index.embedding.exported import ExportedEmbedder, cpu_threads, ensure_export, read_model_spec


class OnnxEmbedder(ExportedEmbedder):
    """Embeds with ONNX Runtime's CPU provider (fp32: identical to torch to float precision)."""

    backend = "onnx"

    def __init__(self, model: str, model_path: Path | str, cache_dir: Path | None) -> None:
        """Export the model to ONNX when the cache lacks it, then open a session."""
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EmbeddingError(
                "embed_backend=onnx needs onnxruntime: pip install onnxruntime"
            ) from exc
        spec = read_model_spec(model, model_path)
        path = ensure_export(spec, cache_dir, "onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = cpu_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise EmbeddingError(f"cannot open {path} with ONNX Runtime: {exc}") from exc
        names = [node.name for node in self._session.get_inputs()]
        super().__init__(spec, path.parent / "tokenizer.json", names)

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Run one batch (sessions are thread-safe and release the GIL)."""
        return self._session.run(None, feed)[0]
