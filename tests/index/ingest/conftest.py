from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from index.ingest import iter_articles
from index.models import ParsedArticle, SkippedItem

Ingest = Callable[..., tuple[list[ParsedArticle], list[SkippedItem]]]


@pytest.fixture
def ingest() -> Ingest:
    """Run iter_articles over paths and split what comes out into articles and skipped items."""

    def run(*paths: Path, **options: object) -> tuple[list[ParsedArticle], list[SkippedItem]]:
        items = list(iter_articles(list(paths), **options))
        articles = [item for item in items if isinstance(item, ParsedArticle)]
        skipped = [item for item in items if isinstance(item, SkippedItem)]
        assert len(articles) + len(skipped) == len(items)
        return articles, skipped

    return run
