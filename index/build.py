"""Building a new index generation from article files, reusing what has not changed."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from index.chunk import chunk_text
from index.config import Settings
from index.embedding import Embedder
from index.ingest import (
    article_key,
    content_hash,
    file_origin,
    iter_articles,
    normalized_text_hash,
)
from index.models import IngestReport, ParsedArticle, Progress, SkippedItem
from index.store import db, generations, vectors
from index.store.generations import Generation
from index.stories import StoryInput, group_stories

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
EMBED_SLICE = 512  # chunks per progress step; each slice is sorted by length inside the model


@dataclass
class Plan:
    """What a run will change, worked out before anything is written."""

    add: list[tuple[str, ParsedArticle]] = field(default_factory=list)
    update: list[tuple[str, ParsedArticle]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    report: IngestReport = field(default_factory=IngestReport)

    @property
    def changes(self) -> bool:
        """True when the index must change."""
        return bool(self.add or self.update or self.remove)


def assign_stories(conn: sqlite3.Connection, vectors_by_id: dict[int, np.ndarray]) -> int:
    """Group the articles that tell the same story and store each one's story id.

    An article's vector is the normalised mean of its chunks' vectors.
    """
    members: dict[int, list[int]] = {}
    for chunk_id, article_id in conn.execute("SELECT id, article_id FROM chunks"):
        members.setdefault(int(article_id), []).append(int(chunk_id))
    inputs = []
    rows = conn.execute(
        "SELECT id, key, title, substr(text, 1, 4000), published, source FROM articles"
    )
    for rowid, key, title, head, published, source in rows:
        chunk_ids = members.get(int(rowid), [])
        vector = None
        if chunk_ids:
            mean = np.mean([vectors_by_id[i] for i in chunk_ids], axis=0)
            vector = mean / max(float(np.linalg.norm(mean)), 1e-12)
        inputs.append(StoryInput(
            article_id=str(key), title=str(title), text=str(head),
            published=date.fromisoformat(published) if published else None,
            source=str(source), vector=vector,
        ))
    story_of = group_stories(inputs)
    with conn:
        conn.executemany(
            "UPDATE articles SET story_id = ? WHERE key = ?",
            [(story, key) for key, story in story_of.items()],
        )
    return len(set(story_of.values()))


def text_hash(text: str) -> str:
    """Content hash of a chunk's text (vectors are reused by it)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _within(path: str, roots: Sequence[Path]) -> bool:
    """True when a file path lies under one of the roots."""
    resolved = Path(path)
    return any(resolved.is_relative_to(root) for root in roots)


def plan_changes(
    parsed: Iterable[ParsedArticle | SkippedItem],
    stored: dict[str, db.StoredArticle],
    *,
    sync_roots: Sequence[Path] | None,
) -> Plan:
    """Compare what the files hold with what the index holds.

    With sync_roots (a reindex), stored articles from files under those roots that were read
    cleanly but no longer hold them are removed. Files that could not be read, or that had a
    bad record, keep their articles: bad input never loses what the index already has.
    """
    plan = Plan()
    seen: set[str] = set()
    norm_owner = {article.norm_hash: key for key, article in stored.items()}
    troubled_files: set[str] = set()
    for item in parsed:
        if isinstance(item, SkippedItem):
            plan.report.skipped.append(item)
            troubled_files.add(file_origin(item.origin))
            continue
        key = article_key(item)
        if key in seen:
            plan.report.duplicates += 1
            continue
        seen.add(key)
        chash = content_hash(item)
        old = stored.get(key)
        if old is not None and old.content_hash == chash:
            plan.report.unchanged += 1
            continue
        nhash = normalized_text_hash(item.text)
        owner = norm_owner.get(nhash)
        if owner is not None and owner != key:
            plan.report.duplicates += 1
            continue
        norm_owner[nhash] = key
        (plan.update if old is not None else plan.add).append((key, item))
    if sync_roots is not None:
        for key, article in stored.items():
            if key in seen or article.origin_file in troubled_files:
                continue
            if _within(article.origin_file, sync_roots):
                plan.remove.append(key)
    plan.report.added = len(plan.add)
    plan.report.new_article_ids = [key for key, _ in plan.add]
    plan.report.updated = len(plan.update)
    plan.report.removed = len(plan.remove)
    return plan


class EmbedAhead:
    """Embeds chunk texts on a worker thread while the caller keeps chunking articles.

    Embedding backends release the GIL while they run, so chunking (pure Python) and
    embedding overlap. Vectors are kept by the chunk text's hash.
    """

    def __init__(self, embedder: Embedder, batch_size: int) -> None:
        """Start the worker."""
        self.embedder = embedder
        self.batch_size = batch_size
        self.vectors: dict[str, np.ndarray] = {}
        self.queued = 0
        self._seen: set[str] = set()
        self._pending: list[tuple[str, str]] = []
        self._slices: list[list[tuple[str, str]] | None] = []
        self._ready = threading.Condition()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="embed-ahead", daemon=True)
        self._thread.start()

    def add(self, digest: str, text: str) -> None:
        """Queue a chunk text for embedding (each distinct text once)."""
        if digest in self._seen:
            return
        self._seen.add(digest)
        self._pending.append((digest, text))
        self.queued += 1
        if len(self._pending) >= EMBED_SLICE:
            self._push(self._pending)
            self._pending = []

    def _push(self, item: list[tuple[str, str]] | None) -> None:
        """Hand a slice (or the end mark) to the worker."""
        with self._ready:
            self._slices.append(item)
            self._ready.notify()

    def _work(self) -> None:
        """Embed slices until the end mark; keep the first error for `finish`."""
        while True:
            with self._ready:
                while not self._slices:
                    self._ready.wait()
                item = self._slices.pop(0)
            if item is None:
                return
            if self._error is not None:  # drain what is queued; `finish` raises the error
                continue
            try:
                matrix = self.embedder.encode([t for _, t in item], batch_size=self.batch_size)
            except BaseException as exc:  # re-raised on the caller's thread
                self._error = exc
                continue
            for (digest, _), vector in zip(item, matrix, strict=True):
                self.vectors[digest] = vector

    def stop(self) -> None:
        """End the worker without waiting for queued chunks (the build failed)."""
        with self._ready:
            self._slices[:] = [None]
            self._ready.notify()

    def finish(self, notify: ProgressCallback) -> dict[str, np.ndarray]:
        """Wait for every queued chunk, reporting progress; return the vectors by text hash."""
        if self._pending:
            self._push(self._pending)
            self._pending = []
        self._push(None)
        while self._thread.is_alive():
            self._thread.join(timeout=2.0)
            done = len(self.vectors)
            notify(Progress("embedding", done, self.queued,
                            f"embedded {done}/{self.queued} chunks"))
        if self._error is not None:
            raise self._error
        return self.vectors


class Builder:
    """Writes a new generation: copy of the current one, changes applied, vectors rebuilt."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        """Keep the settings and the embedder used for new chunks."""
        self.settings = settings
        self.embedder = embedder
        self.max_tokens = min(
            settings.chunk_max_tokens or embedder.content_tokens, embedder.content_tokens
        )

    def manifest_settings(self) -> dict[str, object]:
        """Chunking settings recorded in the manifest."""
        return {"max_tokens": self.max_tokens, "overlap": self.settings.chunk_overlap_sentences,
                "splitter": "sentencex"}

    def run(
        self,
        paths: Sequence[Path],
        current: Generation | None,
        *,
        sync: bool,
        rebuild: bool = False,
        progress: ProgressCallback | None = None,
    ) -> tuple[IngestReport, Path | None]:
        """Ingest paths into a new generation; returns the report and the new generation path.

        No generation is written when nothing changed.
        """
        started = time.perf_counter()
        notify = progress or (lambda _p: None)
        index_dir = self.settings.index_dir
        roots = [Path(p).resolve() for p in self.settings.article_dirs] if sync else None
        if current is not None and current.manifest.get("chunking") != self.manifest_settings():
            rebuild = True  # chunk boundaries changed: every article must be cut again
        stored = {} if (current is None or rebuild) else db.stored_articles(current.conn())
        notify(Progress("reading", 0, 0, "reading article files"))
        parsed = iter_articles(
            paths,
            max_bytes=int(self.settings.max_file_mb * 2**20),
            allowed_roots=roots,
        )
        plan = plan_changes(parsed, stored, sync_roots=roots)
        for item in plan.report.skipped:
            log.warning("skipped %s", item)
        if not plan.changes and not (rebuild and current is not None):
            plan.report.seconds = time.perf_counter() - started
            return plan.report, None
        with generations.writer_lock(index_dir):
            building = generations.next_building_dir(index_dir)
            try:
                self._write(building, current, stored, plan, rebuild, notify)
                manifest = self._manifest(building, started)
                final = generations.commit(building, manifest)
            except BaseException:
                shutil.rmtree(building, ignore_errors=True)
                raise
            generations.prune(index_dir)
        plan.report.seconds = time.perf_counter() - started
        plan.report.generation = final.name
        notify(Progress("done", 1, 1, plan.report.summary()))
        return plan.report, final

    def _write(
        self,
        building: Path,
        current: Generation | None,
        stored: dict[str, db.StoredArticle],
        plan: Plan,
        rebuild: bool,
        notify: ProgressCallback,
    ) -> None:
        """Fill the building folder with the database and the vector index."""
        target = db.connect(building / generations.DATABASE)
        # Same clock and format as articles.ingested_at, so "new since this build" is a compare.
        build_started = target.execute("SELECT datetime('now')").fetchone()[0]
        try:
            if current is not None and not rebuild:
                current.conn().backup(target)
            # On a copy too: brings an older generation's schema up to date (IF NOT EXISTS).
            db.create_schema(target)
            with target:
                changed = [key for key, _ in plan.update] + plan.remove
                db.delete_articles(target, [stored[key].rowid for key in changed])
                new_chunks, ahead = self._insert(target, plan.add + plan.update, notify)
            vectors_by_id = self._vectors(
                target, current, new_chunks, plan, notify, rebuild, ahead
            )
            ids = np.array(sorted(vectors_by_id), dtype=np.int64)
            matrix = (
                np.stack([vectors_by_id[i] for i in ids])
                if len(ids)
                else np.zeros((0, self.embedder.dim), dtype=np.float32)
            )
            notify(Progress("grouping", 0, 1, "grouping articles into stories"))
            plan.report.stories = assign_stories(target, vectors_by_id)
            index_type = vectors.choose_index_type(len(ids), self.settings.index_type)
            notify(Progress("writing", 0, 1, f"building {index_type} index of {len(ids)} vectors"))
            index = vectors.build_index(ids, matrix, self.embedder.dim, index_type)
            vectors.write_index(index, building / generations.VECTORS)
            with target:
                meta = {"built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "build_started": build_started, "index_type": index_type}
                target.executemany(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", meta.items()
                )
            target.execute("PRAGMA optimize")
        finally:
            target.close()

    def _insert(
        self, conn: sqlite3.Connection, articles: list[tuple[str, ParsedArticle]],
        notify: ProgressCallback,
    ) -> tuple[list[tuple[int, str, str]], dict[str, np.ndarray]]:
        """Insert articles, their sentences and chunks.

        Returns the new chunks as (chunk id, text hash, text), and the vectors already embedded
        for them by text hash.

        When the database holds no other chunks (a first build or a rebuild), no vector can be
        reused, so new chunks are embedded on a worker thread while later articles are chunked.
        Otherwise `_vectors` embeds what it cannot reuse.
        """
        new_chunks: list[tuple[int, str, str]] = []
        ahead = (
            EmbedAhead(self.embedder, self.settings.embed_batch_size)
            if articles and db.count_chunks(conn) == 0
            else None
        )
        try:
            self._insert_articles(conn, articles, new_chunks, ahead, notify)
        except BaseException:
            if ahead is not None:
                ahead.stop()
            raise
        return new_chunks, (ahead.finish(notify) if ahead is not None else {})

    def _insert_articles(
        self, conn: sqlite3.Connection, articles: list[tuple[str, ParsedArticle]],
        new_chunks: list[tuple[int, str, str]], ahead: EmbedAhead | None,
        notify: ProgressCallback,
    ) -> None:
        """Chunk and insert each article, appending its chunks to new_chunks (and to ahead)."""
        total = len(articles)
        for done, (key, article) in enumerate(articles, start=1):
            chunks = chunk_text(
                article.text,
                max_tokens=self.max_tokens,
                overlap=self.settings.chunk_overlap_sentences,
                count_tokens=self.embedder.token_counts,
                token_offsets=self.embedder.token_offsets,
            )
            rowid = conn.execute(
                "INSERT INTO articles(key, title, source, url, published, authors, labels, text,"
                " content_hash, norm_hash, origin, origin_file) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    key, article.title, article.source, article.url,
                    article.published.isoformat() if article.published else None,
                    json.dumps(list(article.authors)), json.dumps(list(article.labels)),
                    article.text, content_hash(article), normalized_text_hash(article.text),
                    article.origin, file_origin(article.origin),
                ),
            ).lastrowid
            sentences = sorted({s for chunk in chunks for s in chunk.sentences},
                               key=lambda s: s.start)
            conn.executemany(
                "INSERT INTO sentences(article_id, ord, start, end) VALUES (?,?,?,?)",
                [(rowid, i, s.start, s.end) for i, s in enumerate(sentences)],
            )
            for ord_, chunk in enumerate(chunks):
                text = article.text[chunk.start : chunk.end]
                digest = text_hash(text)
                chunk_id = conn.execute(
                    "INSERT INTO chunks(article_id, ord, start, end, n_tokens, text_hash, text)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (rowid, ord_, chunk.start, chunk.end, chunk.n_tokens, digest, text),
                ).lastrowid
                new_chunks.append((int(chunk_id), digest, text))
                if ahead is not None:
                    ahead.add(digest, text)
            if done % 200 == 0 or done == total:
                notify(Progress("chunking", done, total, f"chunked {done}/{total} articles"))

    def _vectors(
        self,
        conn: sqlite3.Connection,
        current: Generation | None,
        new_chunks: list[tuple[int, str, str]],
        plan: Plan,
        notify: ProgressCallback,
        rebuild: bool,
        ahead: dict[str, np.ndarray],
    ) -> dict[int, np.ndarray]:
        """Vectors for every chunk: reused, embedded ahead, or embedded now."""
        result: dict[int, np.ndarray] = {}
        new_ids = {chunk_id for chunk_id, _, _ in new_chunks}
        kept_ids = [i for i in db.all_chunk_ids(conn) if i not in new_ids]
        if current is not None and kept_ids and not rebuild:
            for chunk_id, vector in zip(
                kept_ids, vectors.reconstruct(current.index, kept_ids), strict=True
            ):
                result[chunk_id] = vector
        reusable: dict[str, int] = {}
        if current is not None and not rebuild:
            reusable = db.chunk_ids_by_hash(current.conn(), {h for _, h, _ in new_chunks})
        to_embed: list[tuple[int, str]] = []
        reuse_ids: list[tuple[int, int]] = []
        for chunk_id, digest, text in new_chunks:
            old_id = reusable.get(digest)
            if old_id is not None:
                reuse_ids.append((chunk_id, old_id))
            elif digest in ahead:
                result[chunk_id] = ahead[digest]
            else:
                to_embed.append((chunk_id, text))
        if reuse_ids:
            old_vectors = vectors.reconstruct(current.index, [old for _, old in reuse_ids])
            for (chunk_id, _), vector in zip(reuse_ids, old_vectors, strict=True):
                result[chunk_id] = vector
        plan.report.chunks_reused = len(reuse_ids)
        plan.report.chunks_embedded = len(to_embed) + sum(
            1 for _, digest, _ in new_chunks if digest in ahead and digest not in reusable
        )
        total = len(to_embed)
        for first in range(0, total, EMBED_SLICE):
            batch = to_embed[first : first + EMBED_SLICE]
            matrix = self.embedder.encode(
                [text for _, text in batch], batch_size=self.settings.embed_batch_size
            )
            for (chunk_id, _), vector in zip(batch, matrix, strict=True):
                result[chunk_id] = vector
            done = min(first + EMBED_SLICE, total)
            notify(Progress("embedding", done, total, f"embedded {done}/{total} chunks"))
        return result

    def _manifest(self, building: Path, started: float) -> dict[str, object]:
        """The manifest of a built generation (checksums are added at commit)."""
        conn = db.connect(building / generations.DATABASE, readonly=True)
        try:
            counts = {"articles": db.count_articles(conn), "chunks": db.count_chunks(conn)}
            meta = db.get_meta(conn)
        finally:
            conn.close()
        return {
            "embedding": self.embedder.identity() | {"backend": self.embedder.backend},
            "chunking": self.manifest_settings(),
            "counts": counts,
            "index_type": meta.get("index_type", "flat"),
            "built_at": meta.get("built_at", ""),
            "build_seconds": round(time.perf_counter() - started, 3),
        }
