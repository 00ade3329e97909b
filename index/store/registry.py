"""The storage backends by name: each with its own settings and a factory of unopened stores.

The `store` setting names one; `make_store` reads that backend's settings out of the
engine's (`index.config.Settings`, by field name) and calls its factory. Nothing outside
`index/store` compares backend names: the engine, the bot and the CLI ask this registry
(`names`, `index_folder`, `make_store`). A backend is added with `register` (the built-in
ones are registered below; their factories import them only when used, so a missing extra,
such as psycopg for postgres, fails only the backend that needs it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from index.store.base import Store, StoreError

if TYPE_CHECKING:
    from index.config import Settings


@dataclass(frozen=True, slots=True)
class Backend:
    """A storage backend as the registry knows it.

    `settings` is a pydantic model whose fields are named as the `Settings` fields they are
    read from; `factory` makes an unopened store from an instance of it. `in_index_dir`: the
    collection lives in the `index_dir` folder (no folder, no index), else elsewhere (a
    server, the process's memory).
    """

    name: str
    description: str
    settings: type[BaseModel]
    factory: Callable[[Any], Store]
    in_index_dir: bool = False


_BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    """Make a backend choosable by its name (a second registration of a name replaces it)."""
    _BACKENDS[backend.name] = backend


def names() -> tuple[str, ...]:
    """The registered backends' names, in registration order."""
    return tuple(_BACKENDS)


def backend(name: str) -> Backend:
    """The backend called `name`; raises StoreError naming the choices for an unknown one."""
    found = _BACKENDS.get(name)
    if found is None:
        raise StoreError(f"unknown store {name!r} (choose {', '.join(_BACKENDS)})")
    return found


def backend_settings(settings: Settings) -> BaseModel:
    """The configured backend's own settings, read from the engine's.

    Raises StoreError for an unknown backend or settings the backend refuses.
    """
    chosen = backend(settings.store)
    try:
        return chosen.settings.model_validate(settings, from_attributes=True)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise StoreError(f"store={chosen.name}: {where}: {problem['msg']}") from exc


def make_store(settings: Settings) -> Store:
    """The backend the `store` setting names, unopened.

    Raises StoreError for a backend this build does not know or cannot make.
    """
    return backend(settings.store).factory(backend_settings(settings))


def index_folder(settings: Settings) -> Path | None:
    """The folder the configured backend keeps its collection in; None when it keeps it
    elsewhere (a database server, memory). Raises StoreError for an unknown backend."""
    return settings.index_dir if backend(settings.store).in_index_dir else None


# ------------------------------------------------------------------ the built-in backends


class LocalSettings(BaseModel):
    """The local backend's settings: the index folder and the FAISS index type."""

    model_config = ConfigDict(frozen=True)

    index_dir: Path
    index_type: str = "auto"


def _local(settings: LocalSettings) -> Store:
    """A LocalStore on the folder."""
    from index.store.local import LocalStore

    return LocalStore(settings.index_dir, index_type=settings.index_type)


class PostgresSettings(BaseModel):
    """The PostgreSQL backend's settings: the server URL and the connection pool's limits."""

    model_config = ConfigDict(frozen=True)

    database_url: SecretStr | None = None
    database_pool_size: int = 8
    database_statement_timeout_ms: int = 30_000


def _postgres(settings: PostgresSettings) -> Store:
    """A PostgresStore on the server; StoreError without a URL or without the extra."""
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


register(Backend(
    "local", "FAISS + SQLite generations in index_dir, for one machine",
    LocalSettings, _local, in_index_dir=True,
))
register(Backend(
    "postgres", "PostgreSQL + pgvector at database_url, shared by several machines",
    PostgresSettings, _postgres,
))


class MemorySettings(BaseModel):
    """The in-memory backend's settings: `index_dir` names the process's collection."""

    model_config = ConfigDict(frozen=True)

    index_dir: Path


def _memory(settings: MemorySettings) -> Store:
    """A MemoryStore on the process's collection named by the folder setting."""
    from index.store.memory import MemoryStore, collection

    return MemoryStore(collection(str(settings.index_dir)))


register(Backend(
    "memory", "this process's memory, nothing kept (tests and trials)",
    MemorySettings, _memory,
))
