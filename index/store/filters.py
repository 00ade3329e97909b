"""What a question's filters mean, in Python: the reference every backend's query agrees with.

Backends translate `SearchFilters` into their own query language (SQLite in
`index/store/local/db.py`, PostgreSQL in `index/store/postgres/`, a scan in `index.store.scan`);
the conformance suite (`tests/index/store/test_conformance.py`) checks each translation
against `matches`, and the engine names the filters an article fails with `failed`.

The meaning: outlets and labels match exactly (an article passes the labels when it has any
of them); `since` and `until` are inclusive days, and an undated article fails either.
Every filter given must pass; no filters (or empty ones) pass everything.
"""

from __future__ import annotations

from index.models import FILTER_NAMES, ArticleInfo, SearchFilters


def failed(article: ArticleInfo, filters: SearchFilters | None) -> tuple[str, ...]:
    """The filters the article fails, among `FILTER_NAMES` and in their order (() when none)."""
    if filters is None:
        return ()
    day = article.published
    failing = {
        "source": bool(filters.sources) and article.source not in filters.sources,
        "since": filters.since is not None and (day is None or day < filters.since),
        "until": filters.until is not None and (day is None or day > filters.until),
        "label": bool(filters.labels) and not set(article.labels) & set(filters.labels),
    }
    return tuple(name for name in FILTER_NAMES if failing[name])


def matches(article: ArticleInfo, filters: SearchFilters | None) -> bool:
    """True when the article passes every filter (always, without filters)."""
    return not failed(article, filters)
