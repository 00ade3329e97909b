"""Embedding backends behind one small interface, chosen by a plain factory."""

from __future__ import annotations

from pathlib import Path

from index.embedding.base import Embedder, EmbeddingError, normalize_rows, resolve_model
from index.embedding.choice import AUTO, BackendChoice, choice_key, choose, remembered
from index.embedding.exported import default_cache_dir, model_fingerprint, read_model_spec

__all__ = ["Embedder", "EmbeddingError", "auto_choice", "backend_description", "make_embedder",
           "normalize_rows", "resolve_backend", "resolve_model"]


def make_embedder(model: str, backend: str = "torch", cache_dir: Path | None = None) -> Embedder:
    """Build the embedder for a model name or path on the chosen backend.

    openvino, openvino-int8 and onnx export the model once into `cache_dir` (default: the
    machine's cache, `default_cache_dir()`) and then serve it without torch. `auto` takes the
    backend measured fastest for this model on this machine (`index.embedding.choice`),
    measuring it at the first use; the embedder's `choice` says what was measured.
    Raises EmbeddingError for an unknown backend or a model that cannot load.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    model_path = resolve_model(model)
    if backend == AUTO:
        choice = auto_choice(model, cache_dir)
        if choice is None:
            return make_embedder(model, "torch", cache_dir)
        embedder = make_embedder(model, choice.backend, cache_dir)
        embedder.choice = choice
        return embedder
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
        f"unknown embedding backend {backend!r} (choose auto, torch, openvino, openvino-int8 "
        "or onnx)"
    )


def auto_choice(model: str, cache_dir: Path | None = None) -> BackendChoice | None:
    """The backend `auto` takes for this model here, measured at the first call on a machine;
    None for a model only torch can serve (not Transformer + Pooling)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    fingerprint = _exportable_fingerprint(model)
    if fingerprint is None:
        return None
    return choose(model, fingerprint, cache_dir,
                  build=lambda name: make_embedder(model, name, cache_dir))


def _exportable_fingerprint(model: str) -> str | None:
    """The hash of the model's files, or None for a model only torch can serve."""
    try:
        return model_fingerprint(read_model_spec(model, resolve_model(model)).folder)
    except EmbeddingError:
        return None


def resolve_backend(model: str, backend: str, cache_dir: Path | None = None) -> str:
    """The backend a setting means here: itself, or for `auto` the one chosen on this machine."""
    if backend != AUTO:
        return backend
    choice = auto_choice(model, cache_dir)
    return choice.backend if choice is not None else "torch"


def backend_description(model: str, backend: str, cache_dir: Path | None = None) -> str:
    """The embedding backend in use, in words, without loading or measuring anything.

    'openvino-int8 (set)', or for auto the remembered choice ('auto: openvino-int8 (3.4x
    torch fp32), measured … on …') or that it has not been measured on this machine yet.
    """
    if backend != AUTO:
        return f"{backend} (set)"
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    fingerprint = _exportable_fingerprint(model)
    if fingerprint is None:
        return "auto: torch (the only backend that serves this model)"
    found = remembered(cache_dir, choice_key(fingerprint))
    if found is None:
        return "auto: not measured on this machine yet (measured at the first embedding)"
    return f"auto: {found.summary()}"
