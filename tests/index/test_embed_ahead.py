"""Chunks are embedded on a worker thread while later articles are chunked."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from index.build import EmbedAhead, text_hash
from index.engine import Engine
from tests.index.fakes import HashingEmbedder


class FailingEmbedder(HashingEmbedder):
    """Fails on its first batch."""

    def encode(self, texts, *, batch_size=32, show_progress=False):
        raise RuntimeError("embedding broke")


def test_ahead_embeds_each_distinct_text_once() -> None:
    embedder = HashingEmbedder()
    ahead = EmbedAhead(embedder, batch_size=4)
    texts = [f"text number {i}" for i in range(700)] + ["text number 3"]
    for text in texts:
        ahead.add(text_hash(text), text)
    vectors = ahead.finish(lambda _p: None)
    assert len(vectors) == 700 and embedder.encoded == 700
    assert np.allclose(vectors[text_hash("text number 5")], embedder.encode(["text number 5"])[0])


def test_ahead_error_reaches_the_caller() -> None:
    ahead = EmbedAhead(FailingEmbedder(), batch_size=4)
    ahead.add("h", "some text")
    with pytest.raises(RuntimeError, match="embedding broke"):
        ahead.finish(lambda _p: None)


def test_first_build_embeds_ahead_and_incremental_reuses(settings, embedder) -> None:
    engine = Engine.open(settings, create=True, embedder=embedder)
    report = engine.reindex()
    assert report.chunks_embedded == embedder.encoded > 0
    assert not any(t.name == "embed-ahead" for t in threading.enumerate())
    before = embedder.encoded
    assert engine.reindex().chunks_embedded == 0 and embedder.encoded == before
