"""The engine tests' fixtures (a hashing embedder, small article folders), for the CLI's tests."""

from __future__ import annotations

from tests.index.conftest import article_dir, embedder, settings

__all__ = ["article_dir", "embedder", "settings"]
