"""Storage behind narrow protocols (`base.py`), with backends chosen by name (`registry.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from index.store.base import (
    IDENTITY_KEYS,
    ArticleCatalogue,
    ArticleSummary,
    ChunkRow,
    DenseSearch,
    ExportedArticle,
    IdentityMismatch,
    KeywordSearch,
    KeywordStatistics,
    NewArticle,
    NewChunk,
    Snapshot,
    StateStore,
    Store,
    StoreCapabilities,
    StoredArticle,
    StoreEmpty,
    StoreError,
    StoreWriter,
    VersionInfo,
    WriterBusy,
    begin_writer,
)
from index.store.registry import Backend, backend, index_folder, make_store, names, register

if TYPE_CHECKING:
    from index.config import Settings

__all__ = [
    "IDENTITY_KEYS",
    "ArticleCatalogue",
    "ArticleSummary",
    "Backend",
    "ChunkRow",
    "DenseSearch",
    "ExportedArticle",
    "IdentityMismatch",
    "KeywordSearch",
    "KeywordStatistics",
    "NewArticle",
    "NewChunk",
    "Snapshot",
    "StateStore",
    "Store",
    "StoreCapabilities",
    "StoreEmpty",
    "StoreError",
    "StoreWriter",
    "StoredArticle",
    "VersionInfo",
    "WriterBusy",
    "backend",
    "begin_writer",
    "index_folder",
    "make_store",
    "names",
    "open_state",
    "register",
]


def open_state(settings: Settings) -> StateStore:
    """The configured backend's bot-state store (blocking: opens a file or a connection)."""
    return make_store(settings).state()
