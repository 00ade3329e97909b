"""Local index generations on disk: built aside, checked by manifest, switched to atomically.

Layout of an index folder:
    CURRENT               name of the serving generation (replaced atomically)
    gen-000007/           a complete generation: articles.sqlite, vectors.faiss, manifest.json
    gen-000008.building/  a generation under construction (removed at the next start if left over)
    gen-000005.removing/  a pruned generation being deleted (removed at the next start if left over)
    writer.lock           held by the one process that builds a generation

Every process reading a generation holds a shared `flock` on its `readers.lock` for as long as
it has the generation open; pruning takes that lock exclusively or leaves the generation be, so
a generation another process still reads is never deleted under it (a bot that has not yet
moved to the newest generation keeps answering from the one it holds).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.models import ArticleInfo, Coverage, SearchFilters, Span
from index.store import base
from index.store.base import (
    ChunkRow,
    ExportedArticle,
    Snapshot,
    StoreCapabilities,
    StoredArticle,
    StoreError,
)
from index.store.local import db, vectors

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DATABASE = "articles.sqlite"
VECTORS = "vectors.faiss"
CURRENT = "CURRENT"
PREFIX = "gen-"
_GENERATION_NAME = re.compile(rf"{PREFIX}\d+")
# Fallbacks already reported by this process: (index folder, generation served, why).
_ANNOUNCED: set[tuple[str, str, str]] = set()
_ANNOUNCED_LOCK = threading.Lock()
BUILDING = ".building"
REMOVING = ".removing"
READERS_LOCK = "readers.lock"
FORMAT_VERSION = 1
KEEP_GENERATIONS = 2


class GenerationError(StoreError):
    """A generation is missing, damaged, or does not fit the configured model."""


class Generation(Snapshot):
    """One complete generation, opened read-only for serving: the local backend's snapshot."""

    def __init__(
        self, path: Path, manifest: dict[str, Any], index: faiss.Index,
        reader_lock: int | None = None,
    ) -> None:
        """Wrap a verified generation folder, its manifest and its loaded vector index.

        `reader_lock` is the file descriptor of this process's shared lock on the generation
        (see `hold_for_reading`), released by `close`.
        """
        super().__init__()
        self.path = path
        self._reader_lock = reader_lock
        self.manifest = manifest
        self.index = index
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._readers = 0
        self._retired = False
        self._metadata: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """The generation's folder name."""
        return self.path.name

    @property
    def version(self) -> str:
        """The generation's folder name."""
        return self.path.name

    @property
    def metadata(self) -> dict[str, Any]:
        """The manifest, with `build_started` from the database (older manifests lack it)."""
        if self._metadata is None:
            meta = db.get_meta(self.conn())
            self._metadata = {**self.manifest,
                              "build_started": meta.get("build_started"),
                              "index_type": self.manifest.get("index_type")
                              or meta.get("index_type", "flat")}
        return self._metadata

    @property
    def capabilities(self) -> StoreCapabilities:
        """Exact for a flat index; approximate (exact for small filtered sets) otherwise."""
        kind = vectors.index_type_of(self.index)
        return StoreCapabilities(
            backend="local",
            dense_search="exact" if kind == "flat" else "approximate",
            index_type=kind,
            exact_filtered_below=0 if kind == "flat" else vectors.EXACT_FILTER_LIMIT,
        )

    def size_bytes(self) -> int:
        """Bytes of the generation's files, as sealed in the manifest."""
        files = self.manifest.get("files", {})
        return sum(int(meta["bytes"]) for meta in files.values())

    def conn(self) -> sqlite3.Connection:
        """This thread's read-only connection to the generation's database."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = db.connect(self.path / DATABASE, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    # --- Snapshot
    def dense_search(
        self, query: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[tuple[int, float]]:
        """Top-k (chunk id, inner product); under filters, among the chunks that pass them."""
        allowed = None
        if filters is not None and not filters.is_empty():
            allowed = db.allowed_chunk_ids(self.conn(), filters)
            if not allowed:
                return []
        ids, scores = vectors.search(self.index, query, k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def dense_scores(self, query: np.ndarray, chunk_ids: Sequence[int]) -> np.ndarray:
        """Inner products of the query with these chunks' stored vectors."""
        try:
            return vectors.reconstruct(self.index, chunk_ids) @ query
        except RuntimeError as exc:  # FAISS: an id that the index does not hold
            raise KeyError(f"a chunk id is not in {self.name}") from exc

    def keyword_search(
        self, terms: Sequence[str], k: int, filters: SearchFilters | None = None
    ) -> list[tuple[int, float]]:
        """FTS5's top-k by BM25 among chunks holding any of the terms."""
        return db.keyword_search(self.conn(), terms, k, filters)

    def _term_document_counts(self, terms: Sequence[str]) -> dict[str, int]:
        return db.term_document_counts(self.conn(), terms)

    def _mean_chunk_words(self) -> float:
        recorded = self.manifest.get("counts", {}).get("mean_chunk_words")
        return float(recorded) if recorded else db.average_chunk_words(self.conn())

    def chunk_rows(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunks by id."""
        return db.chunk_rows(self.conn(), chunk_ids)

    def sentence_spans(self, chunk_ids: Sequence[int]) -> dict[int, list[Span]]:
        """Sentence spans within each chunk."""
        return db.sentence_spans(self.conn(), chunk_ids)

    def chunk_ids_of_articles(self, keys: Sequence[str]) -> list[int]:
        """Chunk ids of these articles."""
        return db.chunk_ids_of_articles(self.conn(), keys)

    def articles(self, keys: Sequence[str]) -> dict[str, ArticleInfo]:
        """Articles by id."""
        return db.articles_by_key(self.conn(), keys)

    def story_members(self, story_ids: Sequence[str]) -> dict[str, list[ArticleInfo]]:
        """The articles of each story."""
        return db.story_members(self.conn(), story_ids)

    def find_article(self, id_or_title: str) -> tuple[ArticleInfo, str, int] | None:
        """An article by id, id prefix or title."""
        return db.find_article(self.conn(), id_or_title)

    def search_titles(self, text: str, limit: int) -> list[ArticleInfo]:
        """Articles by title substring."""
        return db.search_titles(self.conn(), text, limit)

    def recent_articles(
        self, limit: int, offset: int = 0, source: str | None = None
    ) -> list[ArticleInfo]:
        """Articles newest first."""
        return db.recent_articles(self.conn(), limit, offset, source)

    def articles_since(
        self, *, published_since: date | None, ingested_since: str | None, limit: int
    ) -> list[tuple[ArticleInfo, str]]:
        """Newest articles published or ingested since a point."""
        return db.articles_since(self.conn(), published_since=published_since,
                                 ingested_since=ingested_since, limit=limit)

    def sources(self) -> list[tuple[str, int]]:
        """Outlets with their article counts."""
        return db.sources(self.conn())

    def count_articles(self, source: str | None = None) -> int:
        """Number of articles."""
        return db.count_articles(self.conn(), source)

    def count_chunks(self) -> int:
        """Number of chunks."""
        return db.count_chunks(self.conn())

    def stored_articles(self) -> dict[str, StoredArticle]:
        """Every article's identity and hashes."""
        return db.stored_articles(self.conn())

    def export_articles(self) -> Iterator[ExportedArticle]:
        """Every article with its vectors (read from the FAISS index) and story."""
        for article, chunk_ids, story in db.export_rows(self.conn()):
            yield ExportedArticle(article, vectors.reconstruct(self.index, chunk_ids), story)

    def _coverage(self, filters: SearchFilters | None) -> Coverage:
        return db.coverage(self.conn(), filters)

    # --- readers
    def acquire(self) -> None:
        """Count one more reader; a retired generation stays open until its readers finish."""
        with self._lock:
            if self._retired:
                raise GenerationError(f"{self.name} has been replaced")
            self._readers += 1

    def release(self) -> None:
        """Count one reader less, closing a retired generation after its last reader."""
        with self._lock:
            self._readers -= 1
            last = self._retired and self._readers == 0
        if last:
            self.close()

    def retire(self) -> None:
        """Mark as replaced: close now if unused, else when the last reader releases it."""
        with self._lock:
            self._retired = True
            unused = self._readers == 0
        if unused:
            self.close()

    def close(self) -> None:
        """Close every connection opened on this generation and stop holding it for reading."""
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
            fd, self._reader_lock = self._reader_lock, None
        if fd is not None:
            os.close(fd)  # releases the shared lock: pruning may now delete the generation


def hold_for_reading(path: Path) -> int | None:
    """Take a shared lock on a generation for this process's reading; returns its descriptor.

    Raises GenerationError when the generation is being (or has been) pruned. Returns None
    where the lock file can neither be opened nor created (a read-only copy of an index
    built before readers registered: nothing can prune it there either).
    """
    lock_path = path / READERS_LOCK
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT, 0o644)
    except FileNotFoundError as exc:
        raise GenerationError(f"{path.name} has been removed") from exc
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        # Pruning renames the folder once it holds the lock exclusively: a lock taken on a
        # file that is no longer at this path guards nothing.
        if os.stat(lock_path).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError(lock_path)
    except (BlockingIOError, FileNotFoundError) as exc:
        os.close(fd)
        raise GenerationError(f"{path.name} is being removed") from exc
    except BaseException:
        os.close(fd)
        raise
    return fd


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def generation_number(path: Path) -> int:
    """The number in a generation folder's name (-1 if it has none)."""
    digits = path.name.removeprefix(PREFIX).removesuffix(BUILDING)
    return int(digits) if digits.isdigit() else -1


def complete_generations(index_dir: Path) -> list[Path]:
    """Complete generation folders, newest first."""
    if not index_dir.is_dir():
        return []
    found = [
        path
        for path in index_dir.glob(f"{PREFIX}*")
        if path.is_dir() and not path.name.endswith((BUILDING, REMOVING))
        and (path / MANIFEST).is_file()
    ]
    return sorted(found, key=generation_number, reverse=True)


def read_current(index_dir: Path) -> tuple[str | None, str | None]:
    """The complete generation CURRENT names, or None and what is wrong with CURRENT.

    CURRENT is only ever replaced atomically, so a problem here means damage or a hand edit;
    the caller falls back to the newest good generation and says why.
    """
    try:
        raw = (index_dir / CURRENT).read_bytes()
    except FileNotFoundError:
        return None, f"{CURRENT} is missing"
    except OSError as exc:
        return None, f"{CURRENT} cannot be read ({exc.strerror or exc})"
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None, f"{CURRENT} does not hold a generation name (not UTF-8 text)"
    if not name:
        return None, f"{CURRENT} is empty"
    if _GENERATION_NAME.fullmatch(name) is None:  # never a path: '../x' must not be opened
        return None, f"{CURRENT} holds {name[:40]!r}, not a generation name"
    if not (index_dir / name / MANIFEST).is_file():
        return None, f"{CURRENT} names {name}, which is missing or has no {MANIFEST}"
    return name, None


def current_name(index_dir: Path) -> str | None:
    """The complete generation CURRENT names, if any (see `read_current`)."""
    return read_current(index_dir)[0]


def candidates(index_dir: Path) -> tuple[list[Path], str | None]:
    """Generations to try when opening, best first: CURRENT, then the others newest first;
    and what is wrong with CURRENT, if anything."""
    generations = complete_generations(index_dir)
    name, problem = read_current(index_dir)
    preferred = [path for path in generations if path.name == name]
    return preferred + [path for path in generations if path.name != name], problem


def _announce_fallback(index_dir: Path, served: str, why: str) -> None:
    """Say once per process, in the log (and so on stderr), which generation serves and why."""
    key = (str(index_dir), served, why)
    with _ANNOUNCED_LOCK:
        if key in _ANNOUNCED:
            return
        _ANNOUNCED.add(key)
    log.warning("serving index generation %s of %s: %s", served, index_dir, why)


def verify(path: Path, expected: dict[str, Any] | None) -> dict[str, Any]:
    """Read and check a generation's manifest and file checksums; return the manifest."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GenerationError(f"{path.name}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise GenerationError(f"{path.name}: index format {found} is not {FORMAT_VERSION}")
    for name, (size, digest) in _listed_files(path, manifest).items():
        file = path / name
        if not file.is_file() or file.stat().st_size != size:
            raise GenerationError(f"{path.name}: {name} is missing or truncated")
        if file_digest(file) != digest:
            raise GenerationError(f"{path.name}: {name} does not match its checksum")
    if expected is not None:
        check_identity(manifest, expected)
    return manifest


def _listed_files(path: Path, manifest: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """Size and checksum of each index file as the manifest lists them.

    Both files must be listed: a manifest damaged so that it lists none would otherwise
    let unchecked files through.
    """
    files = manifest.get("files")
    listed: dict[str, tuple[int, str]] = {}
    for name in (DATABASE, VECTORS):
        meta = files.get(name) if isinstance(files, dict) else None
        try:
            listed[name] = (int(meta["bytes"]), str(meta["sha256"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise GenerationError(
                f"{path.name}: the manifest has no valid entry for {name}"
            ) from exc
    return listed


def check_identity(manifest: dict[str, Any], expected: dict[str, Any]) -> None:
    """Refuse an index built with another model, dimension or normalisation."""
    built = manifest.get("embedding", {})
    for key in base.IDENTITY_KEYS:
        if built.get(key) != expected.get(key):
            raise IdentityMismatch(
                f"the index was built with {key}={built.get(key)!r} but the settings give "
                f"{expected.get(key)!r}; rebuild it (articlebot reindex --rebuild) or change "
                "the model setting back"
            )


class IdentityMismatch(GenerationError, base.IdentityMismatch):
    """The index was built with another model or dimension."""


def open_generation(path: Path, expected: dict[str, Any] | None) -> Generation:
    """Hold a generation for reading (see `hold_for_reading`), verify it and open it.

    Raises GenerationError (damaged, or being pruned), IdentityMismatch or sqlite3.Error.
    """
    reader_lock = hold_for_reading(path)
    try:
        manifest = verify(path, expected)
        try:
            index = vectors.read_index(path / VECTORS)
        except RuntimeError as exc:
            raise GenerationError(f"{path.name}: unreadable vector index ({exc})") from exc
    except BaseException:
        if reader_lock is not None:
            os.close(reader_lock)
        raise
    generation = Generation(path=path, manifest=manifest, index=index, reader_lock=reader_lock)
    try:
        n_chunks = db.count_chunks(generation.conn())
    except BaseException:
        generation.close()
        raise
    if index.ntotal != n_chunks or manifest.get("counts", {}).get("chunks") != n_chunks:
        generation.close()
        raise GenerationError(f"{path.name}: {index.ntotal} vectors for {n_chunks} chunks")
    return generation


def open_best(index_dir: Path, expected: dict[str, Any] | None) -> Generation | None:
    """Open the CURRENT generation, falling back to older good ones; None if there is none."""
    problems: list[str] = []
    paths, current_problem = candidates(index_dir)
    for path in paths:
        try:
            generation = open_generation(path, expected)
        except IdentityMismatch:
            raise
        except (GenerationError, sqlite3.Error) as exc:
            log.error("index generation %s is damaged, trying an older one: %s", path.name, exc)
            problems.append(str(exc))
            continue
        if problems or current_problem:
            _announce_fallback(index_dir, path.name, "; ".join(
                [*([current_problem] if current_problem else []), *problems]))
        return generation
    if problems:
        raise GenerationError(
            "no good index generation in "
            f"{index_dir} ({'; '.join(problems)}); rebuild it with: articlebot reindex --rebuild"
        )
    return None


def remove_leftovers(index_dir: Path) -> list[Path]:
    """Delete half-built generations that a crashed writer left behind, and pruned ones that
    a crash left half-deleted.

    Only while holding the writer lock: a half-built generation of a writer that is still
    running (another process's reindex) is work in progress, not a leftover.
    """
    removed = []
    try:
        with writer_lock(index_dir):
            leftovers = [*index_dir.glob(f"{PREFIX}*{BUILDING}"),
                         *index_dir.glob(f"{PREFIX}*{REMOVING}")]
            for path in leftovers:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    except WriterBusy:
        log.info("another process is building a generation in %s; leaving it be", index_dir)
    except OSError as exc:  # a read-only index folder: nothing could be removed anyway
        log.warning("cannot check %s for half-built generations: %s", index_dir, exc)
    return removed


def prune(index_dir: Path, keep: int = KEEP_GENERATIONS) -> list[str]:
    """Delete all but the newest `keep` complete generations; returns the names deleted.

    CURRENT is always kept, and so is every generation a process still holds for reading
    (a serving bot that has not yet moved on): it is deleted by a later prune, once free.
    """
    name = current_name(index_dir)
    removed = []
    for path in complete_generations(index_dir)[keep:]:
        if path.name == name:
            continue
        try:
            fd = os.open(path / READERS_LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            log.warning("cannot prune index generation %s: %s", path.name, exc)
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("index generation %s is still being read; kept for now", path.name)
                continue
            # Renamed first, under the lock, so no reader can open it from now on; the
            # deletion itself may then take its time (or be finished by the next start).
            doomed = path.with_name(path.name + REMOVING)
            os.replace(path, doomed)
        except OSError as exc:
            log.warning("cannot prune index generation %s: %s", path.name, exc)
            continue
        finally:
            os.close(fd)
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(path.name)
    return removed


def next_building_dir(index_dir: Path) -> Path:
    """A fresh folder for a generation under construction."""
    numbers = [generation_number(p) for p in index_dir.glob(f"{PREFIX}*")]
    path = index_dir / f"{PREFIX}{max(numbers, default=0) + 1:06d}{BUILDING}"
    path.mkdir(parents=True)
    return path


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    """Flush a file's contents to disk."""
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def commit(building: Path, manifest: dict[str, Any]) -> Path:
    """Seal a built generation (checksums, manifest) and make it CURRENT atomically."""
    files = {}
    for name in (DATABASE, VECTORS):
        file = building / name
        _fsync_file(file)
        files[name] = {"bytes": file.stat().st_size, "sha256": file_digest(file)}
    manifest = {**manifest, "format": FORMAT_VERSION, "files": files}
    manifest_path = building / MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    _fsync_file(manifest_path)
    _fsync_dir(building)
    final = building.with_name(building.name.removesuffix(BUILDING))
    os.replace(building, final)
    index_dir = final.parent
    _fsync_dir(index_dir)
    pointer = index_dir / f"{CURRENT}.tmp"
    pointer.write_text(final.name + "\n", encoding="utf-8")
    _fsync_file(pointer)
    os.replace(pointer, index_dir / CURRENT)
    _fsync_dir(index_dir)
    return final


@contextlib.contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index folder's writer lock (one builder at a time, across processes)."""
    """Hold the index folder's writer lock (one builder at a time, across processes).

    The holder writes who it is into the lock file, so that a writer refused meanwhile can
    say what it waits for. Raises WriterBusy at once while another process holds it.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / "writer.lock").open("a+", encoding="utf-8",
                                         errors="backslashreplace") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = _lock_holder(handle)
            raise WriterBusy("another process is updating this index"
                             + (f" ({holder})" if holder else "")) from exc
        try:
            handle.seek(0)
            handle.truncate()
            started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            handle.write(f"pid {os.getpid()}: {_command_line()}, since {started}\n")
            handle.flush()
        except OSError:  # a full disk must not stop a writer that needs no new blocks
            pass
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _command_line() -> str:
    """This process's command, shortened for one line (no arguments past the subcommand)."""
    argv = [Path(sys.argv[0]).name, *sys.argv[1:2]] if sys.argv and sys.argv[0] else ["python"]
    return _printable(" ".join(argv))[:80]


def _printable(text: str) -> str:
    """Text without control or unpaired surrogate characters, for one log line."""
    return "".join(ch for ch in text if ch.isprintable() and not 0xD800 <= ord(ch) < 0xE000)


def _lock_holder(handle: Any) -> str:
    """What the writer lock's holder wrote about itself ('' when nothing readable)."""
    try:
        handle.seek(0)
        return _printable(handle.read(200).strip())[:120]
    except (OSError, ValueError):
        return ""


class WriterBusy(GenerationError, base.WriterBusy):
    """Another writer holds the index."""
