"""sentence-transformers on torch (fp32): the reference backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from index.embedding.base import (
    Embedder,
    EmbeddingError,
    forbid_downloads,
    model_inputs,
    normalize_rows,
    quiet_model_loading,
)


class TorchEmbedder(Embedder):
    """Embeds with `SentenceTransformer` on the CPU in fp32."""

    backend = "torch"

    def __init__(self, model: str, model_path: object) -> None:
        """Load the model from a local path or a cached name (never downloads)."""
        forbid_downloads()
        from sentence_transformers import SentenceTransformer

        try:
            with quiet_model_loading():
                self._model = SentenceTransformer(str(model_path), device="cpu")
        except Exception as exc:
            raise EmbeddingError(f"cannot load embedding model {model!r}: {exc}") from exc
        max_tokens = int(self._model.max_seq_length or 512)
        dim = int(self._model.get_embedding_dimension())
        tokenizer = self._model.tokenizer.backend_tokenizer
        super().__init__(model, tokenizer.__class__.from_str(tokenizer.to_str()), dim, max_tokens)

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """Embed texts; sentence-transformers sorts each call's texts by length to save padding."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            model_inputs(texts),
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return normalize_rows(vectors)
