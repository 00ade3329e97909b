"""Storage behind one interface (`base.py`), with backends chosen by a plain factory."""

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

if TYPE_CHECKING:
    from index.config import Settings

__all__ = [
    "IDENTITY_KEYS",
    "ArticleCatalogue",
    "ArticleSummary",
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
    "begin_writer",
    "make_store",
    "open_state",
]

BACKENDS = ("local", "postgres")


def make_store(settings: Settings) -> Store:
    """The backend the `store` setting names, unopened.

    Raises StoreError for a backend this build does not know.
    """
    if settings.store == "local":
        from index.store.local import LocalStore

        return LocalStore(settings.index_dir, index_type=settings.index_type)
    if settings.store == "postgres":
        if settings.database_url is None:
            raise StoreError("store=postgres needs ARTICLEBOT_DATABASE_URL (postgresql://…)")
        try:
            from index.store.postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"store=postgres needs the postgres extra: pip install 'articlebot[postgres]' "
                f"({exc.name} is missing)"
            ) from exc
        return PostgresStore(
            settings.database_url.get_secret_value(),
            pool_size=settings.database_pool_size,
            statement_timeout_ms=settings.database_statement_timeout_ms,
        )
    raise StoreError(f"unknown store {settings.store!r} (choose {', '.join(BACKENDS)})")


def open_state(settings: Settings) -> StateStore:
    """The configured backend's bot-state store (blocking: opens a file or a connection)."""
    return make_store(settings).state()
