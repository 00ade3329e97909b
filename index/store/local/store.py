"""The local backend: FAISS + SQLite generations in one folder, for one machine."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.store.base import (
    IDENTITY_KEYS,
    ArticleSummary,
    NewArticle,
    StateStore,
    Store,
    StoredArticle,
    StoreEmpty,
    StoreWriter,
)
from index.store.local import db, generations, vectors
from index.store.local.generations import Generation, GenerationError
from index.store.local.state import LocalStateStore

log = logging.getLogger(__name__)

# SQLite's messages for a write the file system refused.
_WRITE_PROBLEM = re.compile(r"readonly|read-only|disk is full|unable to open|disk I/O error")



class LocalStore(Store):
    """Generations in `index_dir` (see `generations`), served one at a time.

    Thread-safe: questions may run in several threads while one writer builds the next
    generation; the new generation replaces the old one atomically when committed.
    """

    name = "local"

    def __init__(self, index_dir: Path, *, index_type: str = "auto") -> None:
        """Nothing is opened until `open`, `writer` or `state`.

        `index_type`: the FAISS index new generations get ('auto', 'flat', 'ivf', 'hnsw').
        """
        self.index_dir = index_dir
        self.index_type = index_type
        self._identity: dict[str, Any] | None = None
        self._generation: Generation | None = None
        self._swap_lock = threading.Lock()
        # What `CURRENT` looked like when last read (inode, mtime, size): a question compares
        # one stat with it, and reads the file only when another process replaced it.
        self._current_seen: tuple[int, int, int] | None = None
        self._refresh_lock = threading.Lock()
        self._opened = False
        self._refused: set[str] = set()  # generations another process made that cannot serve
        self._state: LocalStateStore | None = None
        self._state_lock = threading.Lock()

    @property
    def location(self) -> str:
        """The index folder."""
        return str(self.index_dir)

    def exists(self) -> bool:
        """True when the folder holds a complete generation."""
        return bool(generations.complete_generations(self.index_dir))

    def write_failure(self, exc: BaseException) -> str | None:
        """OSError as the base says; SQLite's and FAISS's own write errors as one line."""
        if isinstance(exc, sqlite3.OperationalError) and _WRITE_PROBLEM.search(str(exc)):
            return str(exc)
        # FAISS reports a failed write as RuntimeError("Error in ... could not open ... for
        # writing: No space left on device"); only its last clause names the cause.
        if isinstance(exc, RuntimeError) and "for writing" in str(exc):
            return str(exc).strip().splitlines()[-1].rsplit(": ", 1)[-1].lower()
        return super().write_failure(exc)

    def open(self, identity: Mapping[str, Any] | None, *, repair: bool = False) -> bool:
        """Serve the best good generation; clean up half-built ones first."""
        self._identity = dict(identity) if identity is not None else None
        self._current_seen = self._current_stat()  # before reading: a later switch is seen
        if self.index_dir.is_dir():
            for path in generations.remove_leftovers(self.index_dir):
                log.warning("removed half-built index generation %s", path.name)
        # One FAISS thread: faster and steadier for single queries, and no contention with the
        # embedding runtime's own threads (see docs/performance.md).
        faiss.omp_set_num_threads(1)
        try:
            generation = generations.open_best(self.index_dir, self._identity)
        except GenerationError as exc:
            if not repair:
                raise
            log.warning("setting the current index aside for a rebuild: %s", exc)
            generation = None
        if generation is not None:
            self._swap(generation)
        self._opened = True
        return generation is not None

    @contextlib.contextmanager
    def reading(self) -> Iterator[Generation]:
        """Hold the newest sealed generation for one call; a writer may replace it meanwhile.

        Another process's commit (a cron ingest, a second container on the same volume) is
        served from the next call on: each call stats `CURRENT` and opens the generation it
        names when it changed. The generation held is registered across processes
        (`generations.hold_for_reading`), so no writer prunes it while this call reads it.
        """
        self._follow_current()
        with self._swap_lock:
            generation = self._generation
            if generation is None:
                raise StoreEmpty(f"the index in {self.index_dir} is empty")
            generation.acquire()
        try:
            yield generation
        finally:
            generation.release()

    def _current_stat(self) -> tuple[int, int, int] | None:
        """`CURRENT`'s inode, mtime (ns) and size; None when it cannot be read."""
        try:
            stat = os.stat(self.index_dir / generations.CURRENT)
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _follow_current(self) -> None:
        """Serve the generation `CURRENT` names if another process switched it.

        One thread opens (and verifies) the new generation while the others go on with the
        one served; a generation that cannot serve (damaged, another model) is said once and
        the one served stays.
        """
        seen = self._current_stat()
        if not self._opened or seen is None or seen == self._current_seen:
            return
        if not self._refresh_lock.acquire(blocking=False):
            return  # another thread is opening it; this call reads the one served
        try:
            if seen == self._current_seen:
                return
            name = generations.current_name(self.index_dir)
            serving = self._generation
            if name is None or (serving is not None and serving.name == name):
                self._current_seen = seen
                return
            try:
                newer = generations.open_generation(self.index_dir / name, self._identity)
            except (GenerationError, sqlite3.Error, OSError) as exc:
                self._current_seen = seen  # not tried again until CURRENT changes again
                if name not in self._refused:
                    self._refused.add(name)
                    log.error("not serving index generation %s written by another process: "
                              "%s; still serving %s", name, exc,
                              serving.name if serving else "nothing")
                return
            self._current_seen = seen
            with self._swap_lock:  # checked and swapped at once: a commit may land meanwhile
                old = self._generation
                # Closed meanwhile, or this process committed a newer one meanwhile: keep it.
                stale = not self._opened or (
                    old is not None and generations.generation_number(old.path)
                    > generations.generation_number(newer.path))
                if not stale:
                    self._generation = newer
            if stale:
                newer.close()
                return
            if old is not None:
                old.retire()
            log.info("serving index generation %s, written by another process", name)
        finally:
            self._refresh_lock.release()

    def _swap(self, generation: Generation) -> None:
        """Serve a new generation; the old one closes once its last reader is done."""
        with self._swap_lock:
            old, self._generation = self._generation, generation
        if old is not None:
            old.retire()

    def writer(self, *, fresh: bool = False) -> LocalWriter:
        """Take the folder's writer lock and start the next generation beside the current one.

        The base is the generation CURRENT names once the lock is held, so a writer that
        waited for another builds on that one's result, not on what this process served.
        """
        lock = contextlib.ExitStack()
        lock.enter_context(generations.writer_lock(self.index_dir))
        try:
            base, release = (None, None) if fresh else self._latest()
            return LocalWriter(self, base, release, lock)
        except BaseException:
            lock.close()
            raise

    def _latest(self) -> tuple[Generation | None, contextlib.ExitStack | None]:
        """The generation CURRENT names (held for the caller), or the serving one."""
        held = contextlib.ExitStack()
        name = generations.current_name(self.index_dir)
        with self._swap_lock:
            serving = self._generation
            if serving is not None and (name is None or serving.name == name):
                serving.acquire()
                held.callback(serving.release)
                return serving, held
        if name is not None and self._identity is not None:
            try:
                newer = generations.open_generation(self.index_dir / name, self._identity)
            except (GenerationError, OSError) as exc:
                log.warning("cannot build on %s (%s); building on the generation served", name,
                            exc)
            else:
                held.callback(newer.close)
                return newer, held
        if serving is None:
            return None, None
        with self._swap_lock:
            serving.acquire()
        held.callback(serving.release)
        return serving, held

    def state(self) -> StateStore:
        """`state.sqlite` in the index folder, outside the generations."""
        if self._state is None:
            with self._state_lock:
                if self._state is None:
                    self._state = LocalStateStore(self.index_dir)
        return self._state

    def close(self) -> None:
        """Stop serving (calls still running finish on the generation they hold)."""
        with self._swap_lock:
            generation, self._generation = self._generation, None
            self._opened = False
        if generation is not None:
            generation.retire()
        if self._state is not None:
            self._state.close()
            self._state = None


class LocalWriter(StoreWriter):
    """A generation under construction: a copy of the base's database, then the changes.

    Everything is written in one SQLite transaction, and the vector index is built from the
    base's vectors and the new ones at commit.
    """

    def __init__(
        self,
        store: LocalStore,
        base: Generation | None,
        release_base: contextlib.ExitStack | None,
        lock: contextlib.ExitStack,
    ) -> None:
        """Create the building folder and copy the base's database into it."""
        self._store = store
        self._base = base
        self._cleanup = lock
        if release_base is not None:
            self._cleanup.push(release_base)
        self._building = generations.next_building_dir(store.index_dir)
        self._new_vectors: dict[int, np.ndarray] = {}
        self._finished = False
        try:
            self._conn = db.connect(self._building / generations.DATABASE)
            # Same clock and format as articles.ingested_at, so "new since this build" is a
            # comparison of strings.
            self._build_started = db.now(self._conn)
            if base is not None:
                base.conn().backup(self._conn)
            # On a copy too: brings an older generation's schema up to date (IF NOT EXISTS).
            db.create_schema(self._conn)
        except BaseException:
            self.abort()
            raise

    @property
    def base(self) -> Generation | None:
        """The generation this one was copied from."""
        return self._base

    def stored_articles(self) -> dict[str, StoredArticle]:
        """The articles written so far, by public id."""
        return db.stored_articles(self._conn)

    def count_chunks(self) -> int:
        """Chunks written so far."""
        return db.count_chunks(self._conn)

    def delete_articles(self, keys: Sequence[str]) -> None:
        """Remove articles, their chunks, sentences and any vectors given to them."""
        for chunk_id in db.delete_articles(self._conn, keys):
            self._new_vectors.pop(chunk_id, None)

    def add_article(self, article: NewArticle) -> list[int]:
        """Insert an article with its sentences and chunks."""
        return db.insert_article(self._conn, article, self._build_started)

    def reusable_vectors(self, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors of the base's chunks with these text hashes."""
        if self._base is None or not text_hashes:
            return {}
        by_hash = db.chunk_ids_by_hash(self._base.conn(), text_hashes)
        if not by_hash:
            return {}
        hashes = list(by_hash)
        matrix = vectors.reconstruct(self._base.index, [by_hash[h] for h in hashes])
        return dict(zip(hashes, matrix, strict=True))

    def set_vectors(self, chunk_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Keep the new chunks' vectors until commit."""
        for chunk_id, vector in zip(chunk_ids, vectors, strict=True):
            self._new_vectors[int(chunk_id)] = vector

    def vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """New chunks' vectors, and the base's for chunks copied from it."""
        dim = self._dim()
        matrix = np.zeros((len(chunk_ids), dim), dtype=np.float32)
        copied: list[tuple[int, int]] = []
        for row, chunk_id in enumerate(chunk_ids):
            vector = self._new_vectors.get(int(chunk_id))
            if vector is None:
                copied.append((row, int(chunk_id)))
            else:
                matrix[row] = vector
        if copied:
            if self._base is None:
                raise KeyError(f"chunk {copied[0][1]} has no vector")
            try:
                old = vectors.reconstruct(self._base.index, [cid for _, cid in copied])
            except RuntimeError as exc:
                raise KeyError(f"a chunk among {len(copied)} has no vector") from exc
            matrix[[row for row, _ in copied]] = old
        return matrix

    def _dim(self) -> int:
        """The vectors' dimension (from any vector seen so far)."""
        if self._new_vectors:
            return len(next(iter(self._new_vectors.values())))
        if self._base is not None:
            return int(self._base.index.d)
        return 0

    def article_summaries(self, head_chars: int) -> list[ArticleSummary]:
        """Every article written so far, for story grouping."""
        return db.article_summaries(self._conn, head_chars)

    def set_story_ids(self, story_of: Mapping[str, str]) -> None:
        """Store each article's story id."""
        db.set_story_ids(self._conn, dict(story_of))

    def commit(self, metadata: Mapping[str, Any]) -> str:
        """Build the vector index, seal the generation, switch CURRENT to it and serve it.

        `metadata` must hold `embedding` with the model's `dim`; the manifest gets it with the
        counts, index type and build time added.
        """
        if self._finished:
            raise GenerationError("this generation was already committed or aborted")
        try:
            dim = int(metadata["embedding"]["dim"])
            ids = np.array(db.all_chunk_ids(self._conn), dtype=np.int64)
            matrix = (self.vectors(ids.tolist()) if len(ids)
                      else np.zeros((0, dim), dtype=np.float32))
            index_type = vectors.choose_index_type(len(ids), self._store.index_type)
            index = vectors.build_index(ids, matrix, dim, index_type)
            vectors.write_index(index, self._building / generations.VECTORS)
            built_at = datetime.now(UTC).isoformat(timespec="seconds")
            db.set_meta(self._conn, {"built_at": built_at, "build_started": self._build_started,
                                     "index_type": index_type})
            self._conn.commit()
            self._conn.execute("PRAGMA optimize")
            counts = {"articles": db.count_articles(self._conn),
                      "chunks": db.count_chunks(self._conn),
                      "tokens": db.count_tokens(self._conn),
                      "mean_chunk_words": db.average_chunk_words(self._conn)}
            self._conn.close()
            manifest = {**metadata, "counts": counts, "index_type": index_type,
                        "built_at": built_at}
            final = generations.commit(self._building, manifest)
            self._finished = True
            generations.prune(self._store.index_dir)
            identity = self._store._identity or {
                key: metadata["embedding"].get(key) for key in IDENTITY_KEYS
            }
            self._store._identity = dict(identity)
            self._store._swap(generations.open_generation(final, identity))
            return final.name
        except BaseException:
            self.abort()
            raise
        finally:
            self._cleanup.close()

    def abort(self) -> None:
        """Delete the building folder and release the lock (nothing was published)."""
        if not self._finished:
            self._finished = True
            conn = getattr(self, "_conn", None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            shutil.rmtree(self._building, ignore_errors=True)
        self._cleanup.close()
