"""The feed tests' web server (bench/localweb.py), one per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.localweb import Page, Web, article_page, atom, rss, serving

__all__ = ["Page", "Web", "article_page", "atom", "rss"]


@pytest.fixture
def web() -> Iterator[Web]:
    """A server on a free port of 127.0.0.1, stopped after the test."""
    with serving() as state:
        yield state
