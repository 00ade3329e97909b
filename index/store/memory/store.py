"""A collection in memory: versions as Python records, the bot's state as dicts.

Every `MemoryStore` made on one `MemoryCollection` sees the same versions, writer lock and
state, as store objects of one local folder or one database do; `collection(name)` gives
the process's collection of a name (the registry names it by the `index_dir` setting).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from index.models import Follow
from index.store.base import (
    IDENTITY_KEYS,
    IdentityMismatch,
    StateStore,
    Store,
    StoreCapabilities,
    StoreEmpty,
    WriterBusy,
)
from index.store.scan import ArticleRecord, ScanSnapshot, ScanWriter


class MemorySnapshot(ScanSnapshot):
    """One committed version: records, a matrix of vectors and the writer's metadata."""

    def __init__(self, name: str, records: tuple[ArticleRecord, ...],
                 vectors: dict[int, np.ndarray], metadata: dict[str, Any]) -> None:
        """Hold the version (the vectors become one (n, dim) float32 matrix)."""
        super().__init__()
        self._name = name
        self._records_held = records
        self._metadata = metadata
        self._rows = {chunk_id: row for row, chunk_id in enumerate(vectors)}
        dim = int(metadata.get("embedding", {}).get("dim", 0))
        self._matrix = (np.stack(list(vectors.values())).astype(np.float32) if vectors
                        else np.zeros((0, dim), dtype=np.float32))

    @property
    def version(self) -> str:
        """'mem-000007'."""
        return self._name

    @property
    def metadata(self) -> dict[str, Any]:
        """What the writer recorded."""
        return self._metadata

    @property
    def capabilities(self) -> StoreCapabilities:
        """Exact search over every vector; one process only."""
        return StoreCapabilities(backend="memory", dense_search="exact", index_type="flat")

    def size_bytes(self) -> int:
        """Bytes of the vectors and the articles' texts."""
        return int(self._matrix.nbytes) + sum(
            len(r.article.article.text.encode()) for r in self._records_held)

    def _records(self) -> Sequence[ArticleRecord]:
        """The version's articles, in ingest order."""
        return self._records_held

    def _vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """Rows of the matrix; KeyError for a chunk not in this version."""
        rows = [self._rows[int(chunk_id)] for chunk_id in chunk_ids]
        return self._matrix[rows]


class MemoryStateStore(StateStore):
    """Votes, follows, rate limits and named values in dicts, behind one lock."""

    def __init__(self) -> None:
        """Empty state."""
        self._lock = threading.Lock()
        self._votes: dict[tuple[str, str, tuple[int, ...]], int] = {}
        self._follows: dict[int, Follow] = {}
        self._next_follow = 1
        self._windows: dict[str, tuple[float, int]] = {}  # bucket -> (window start, uses)
        self._values: dict[str, str] = {}

    def _record_feedback(
        self, question: str, chunk_ids: list[int], vote: int, user_hash: str
    ) -> None:
        """Store a checked vote; a user's later vote on the same answer replaces it."""
        with self._lock:
            self._votes[user_hash, question, tuple(chunk_ids)] = vote

    def feedback_counts(self) -> dict[str, int]:
        """Counts of up and down votes."""
        with self._lock:
            votes = list(self._votes.values())
        return {"up": votes.count(1), "down": votes.count(-1)}

    def _add_follow(
        self, topic: str, *, channel_id: int, user_id: int, guild_id: int | None
    ) -> Follow:
        """The channel's follow of the topic, added unless it is there."""
        with self._lock:
            for follow in self._follows.values():
                if follow.channel_id == channel_id and follow.topic == topic:
                    return follow
            created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            follow = Follow(self._next_follow, guild_id, channel_id, user_id, topic, created)
            self._follows[follow.id] = follow
            self._next_follow += 1
            return follow

    def remove_follow(self, follow_id: int) -> bool:
        """Delete a follow; False if there was none with that id."""
        with self._lock:
            return self._follows.pop(follow_id, None) is not None

    def list_follows(
        self, *, guild_id: int | None = None, channel_id: int | None = None
    ) -> list[Follow]:
        """Follows, optionally of one guild or one channel, oldest first."""
        with self._lock:
            follows = sorted(self._follows.values(), key=lambda f: f.id)
        return [f for f in follows if (guild_id is None or f.guild_id == guild_id)
                and (channel_id is None or f.channel_id == channel_id)]

    def take_token(self, bucket: str, rate: int, per_seconds: float, now: float) -> float | None:
        """Take one use of the bucket's allowance (see StateStore.take_token)."""
        with self._lock:
            window = self._windows.get(bucket)
            if window is None or now >= window[0] + per_seconds:
                start, used = now, 1
            else:
                start, used = window[0], window[1] + 1
            self._windows[bucket] = (start, used)
        return None if used <= rate else start + per_seconds - now

    def get_value(self, key: str) -> str | None:
        """A named value (None when unset)."""
        with self._lock:
            return self._values.get(key)

    def set_value(self, key: str, value: str) -> None:
        """Set a named value."""
        with self._lock:
            self._values[key] = value

    def close(self) -> None:
        """Nothing to release: the state lives as long as its collection."""


class MemoryCollection:
    """What every store object of one in-memory collection shares."""

    def __init__(self, name: str = "") -> None:
        """An empty collection."""
        self.name = name
        self.lock = threading.Lock()
        self.current: MemorySnapshot | None = None
        self.versions = 0
        self.writing = False
        self.state = MemoryStateStore()


_COLLECTIONS: dict[str, MemoryCollection] = {}
_COLLECTIONS_LOCK = threading.Lock()


def collection(name: str) -> MemoryCollection:
    """This process's collection of that name (made empty on first use)."""
    with _COLLECTIONS_LOCK:
        return _COLLECTIONS.setdefault(name, MemoryCollection(name))


class MemoryWriter(ScanWriter):
    """A version built in memory; publishing swaps the collection's current version."""

    def __init__(self, store: MemoryStore, base: MemorySnapshot | None) -> None:
        """Build on `base`; the collection's writer flag is already taken."""
        self._store = store
        super().__init__(base)

    def _publish(self, records: tuple[ArticleRecord, ...], vectors: dict[int, np.ndarray],
                 metadata: dict[str, Any]) -> str:
        """Make the version current; the store serves it from now on."""
        shared = self._store.collection
        with shared.lock:
            shared.versions += 1
            snapshot = MemorySnapshot(f"mem-{shared.versions:06d}", records, vectors, metadata)
            shared.current = snapshot
        self._store.published(metadata)
        return snapshot.version

    def _release(self) -> None:
        """Let the next writer start."""
        with self._store.collection.lock:
            self._store.collection.writing = False


class MemoryStore(Store):
    """A store object on an in-memory collection; thread-safe."""

    name = "memory"

    def __init__(self, shared: MemoryCollection | None = None) -> None:
        """A store on `shared` (a collection of its own when None)."""
        self.collection = shared if shared is not None else MemoryCollection()
        self._identity: dict[str, Any] | None = None
        self._set_aside = False

    @property
    def location(self) -> str:
        """'memory:NAME'."""
        return f"memory:{self.collection.name}"

    def exists(self) -> bool:
        """True when a version has been committed."""
        return self.collection.current is not None

    def open(self, identity: Mapping[str, Any] | None, *, repair: bool = False) -> bool:
        """Serve the current version if it was embedded as `identity` says."""
        self._identity = dict(identity) if identity is not None else None
        self._set_aside = False
        current = self.collection.current
        if current is None:
            return False
        stored = current.metadata.get("embedding", {})
        if identity is not None:
            for key in IDENTITY_KEYS:
                if stored.get(key) != identity.get(key):
                    if repair:
                        self._set_aside = True
                        return False
                    raise IdentityMismatch(
                        f"the index was built with {key}={stored.get(key)!r} but the settings "
                        f"give {identity.get(key)!r}; rebuild it (articlebot reindex --rebuild)")
        return True

    @contextlib.contextmanager
    def reading(self) -> Iterator[MemorySnapshot]:
        """The current version for one call (it never changes under the caller)."""
        current = self.collection.current
        if current is None or self._set_aside:
            raise StoreEmpty(f"the index in {self.location} is empty")
        yield current

    def writer(self, *, fresh: bool = False) -> MemoryWriter:
        """Begin the next version; WriterBusy while another writer of the collection works."""
        with self.collection.lock:
            if self.collection.writing:
                raise WriterBusy(f"another writer is building a version of {self.location}")
            self.collection.writing = True
            base = None if fresh else self.collection.current
        try:
            return MemoryWriter(self, base)
        except BaseException:
            with self.collection.lock:
                self.collection.writing = False
            raise

    def published(self, metadata: Mapping[str, Any]) -> None:
        """A writer of this store published: serve it, with its identity if none was set."""
        self._set_aside = False
        if self._identity is None:
            embedding = metadata.get("embedding", {})
            self._identity = {key: embedding.get(key) for key in IDENTITY_KEYS}

    def state(self) -> StateStore:
        """The collection's state (the same object for every store on it)."""
        return self.collection.state

    def close(self) -> None:
        """Nothing to release: the collection lives as long as the process."""
