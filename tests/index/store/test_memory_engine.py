"""The engine on the in-memory backend: chosen by name, it answers as the local backend does."""

from __future__ import annotations

from index.config import Settings
from index.engine import Engine
from tests.index.fakes import HashingEmbedder

QUESTIONS = ("When did the harbour bridge reopen?", "Who discovered the comet?",
             "When is the apple harvest festival?")


def answers(settings: Settings) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each question's listed articles and quotes, from a fresh index of the articles."""
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    engine.reindex()
    try:
        return [(tuple(hit.article.id for hit in answer.results),
                 tuple(quote.text for quote in answer.quotes))
                for answer in map(engine.ask, QUESTIONS)]
    finally:
        engine.close()


def test_the_memory_backend_answers_as_the_local_one(settings: Settings) -> None:
    in_memory = settings.model_copy(update={"store": "memory"})
    local, memory = answers(settings), answers(in_memory)
    assert memory == local and all(quotes for _, quotes in memory)
    engine = Engine.open(in_memory, embedder=HashingEmbedder())  # the same collection again
    assert engine.stats().store == "memory" and engine.stats().n_articles == 3
    engine.close()
