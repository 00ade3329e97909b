"""Fixtures for engine tests: a fast deterministic embedder and small article folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.config import Settings
from tests.index.fakes import HashingEmbedder

ARTICLES = {
    "harbour.txt": (
        "Harbour bridge reopens after repairs\n\n"
        "The harbour bridge in Port Ellin reopened on Monday after six months of repairs. "
        "Engineers replaced the steel cables and repainted the towers.\n\n"
        "The mayor said traffic would return to normal by Friday. "
        "Ferry services that ran during the closure will stop next week.\n\n"
        "truenews\n"
    ),
    "orchard.txt": (
        "Record apple harvest in the valley\n\n"
        "Farmers in the Tamsin valley picked a record apple harvest this autumn. "
        "The cooperative counted four thousand tonnes of apples, mostly Red Lanterns.\n\n"
        "Cider makers expect prices to fall. A festival will celebrate the harvest in October.\n\n"
        "truenews\n"
    ),
    "comet.txt": (
        "Amateur astronomer finds a comet\n\n"
        "A retired teacher in Oslen discovered a new comet with a backyard telescope. "
        "The comet will be brightest in March, when it may be visible without binoculars.\n\n"
        "The observatory confirmed the find and named it after the teacher.\n\n"
        "satire\n"
    ),
}


@pytest.fixture
def article_dir(tmp_path: Path) -> Path:
    """A folder with three small plain-text articles."""
    folder = tmp_path / "articles"
    folder.mkdir()
    for name, text in ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def embedder() -> HashingEmbedder:
    """A fresh hashing embedder."""
    return HashingEmbedder()


@pytest.fixture
def settings(tmp_path: Path, article_dir: Path) -> Settings:
    """Settings pointing at a temporary index and the article folder, ignoring the environment."""
    return Settings(
        _env_file=None,
        index_dir=tmp_path / "index",
        article_dirs=[article_dir],
        model="test-hashing",
        min_score=0.05,
        min_answer_score=0.0,
    )
