"""Embedding backends behind one small interface, chosen by a plain factory."""

from __future__ import annotations

from pathlib import Path

from index.embedding.base import Embedder, EmbeddingError, normalize_rows, resolve_model

__all__ = ["Embedder", "EmbeddingError", "make_embedder", "normalize_rows", "resolve_model"]


def make_embedder(model: str, backend: str = "torch", cache_dir: Path | None = None) -> Embedder:
    """Build the embedder for a model name or path on the chosen backend.

    openvino, openvino-int8 and onnx export the model once into `cache_dir` (the engine passes
    `index_dir/models`) and then serve it without torch.
    """
    model_path = resolve_model(model)
    if backend == "torch":
        from index.embedding.torch_backend import TorchEmbedder

        return TorchEmbedder(model, model_path)
    if backend in ("openvino", "openvino-int8"):
        from index.embedding.openvino_backend import OpenVinoEmbedder

        return OpenVinoEmbedder(model, model_path, cache_dir, int8=backend == "openvino-int8")
    if backend == "onnx":
        from index.embedding.onnx_backend import OnnxEmbedder

        return OnnxEmbedder(model, model_path, cache_dir)
    raise EmbeddingError(
        f"unknown embedding backend {backend!r} (choose torch, openvino, openvino-int8 or onnx)"
    )
