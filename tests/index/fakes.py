"""A fast, deterministic embedder for engine tests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from index.embedding.base import Embedder, normalize_rows, resolve_model

_WORD = re.compile(r"\w+")


class HashingEmbedder(Embedder):
    """Bag-of-words vectors by feature hashing: related texts share words, so they score close.

    Uses the bundled model's real tokenizer (no torch), so token limits are the real ones.
    """

    backend = "hashing"

    def __init__(self, model: str = "test-hashing", dim: int = 64, max_tokens: int = 64) -> None:
        """Load the bundled tokenizer and fix the vector size."""
        bundled = Path(resolve_model("all-MiniLM-L6-v2"))
        tokenizer = Tokenizer.from_file(str(bundled / "tokenizer.json"))
        super().__init__(model, tokenizer, dim, max_tokens)
        self.encoded = 0

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """Hash each word into a bucket; count how many texts were embedded."""
        self.encoded += len(texts)
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                bucket = int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % self.dim
                matrix[row, bucket] += 1.0
        return normalize_rows(matrix)
