"""Building the next version of the collection from article files, reusing what has not changed."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from index.ingest.sanitize import store_path
from index.models import (
    LAST_CHANGE_KEY,
    LAST_REINDEX_KEY,
    IngestReport,
    ParsedArticle,
    Progress,
    SkippedItem,
    SyncOutcome,
)
from index.store import (
    NewArticle,
    NewChunk,
    StateStore,
    Store,
    StoredArticle,
    StoreEmpty,
    StoreWriter,
    begin_writer,
)
from index.stories import StoryInput, group_stories

log = logging.getLogger(__name__)

# Bump when what a collection holds for the same files changes: text cleaning (index/text.py),
# sentence splitting and chunking (index/chunk.py), the model's inputs (index/embedding/base.py).
# Evaluation caches key on it; existing collections keep their chunks until an article changes
# or `reindex --rebuild`. 2: NFC without invisible characters, abbreviation-aware sentences,
# ASCII quotes for the model.
PIPELINE_VERSION = 2

ProgressCallback = Callable[[Progress], None]
EMBED_SLICE = 512  # chunks per progress step; each slice is sorted by length inside the model
STORY_HEAD_CHARS = 4000  # characters of each article that story grouping compares


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


def assign_stories(writer: StoreWriter) -> int:
    """Group the articles that tell the same story and store each one's story id.

    An article's vector is the normalised mean of its chunks' vectors. Returns the number of
    stories.
    """
    summaries = writer.article_summaries(STORY_HEAD_CHARS)
    chunk_ids = [chunk_id for summary in summaries for chunk_id in summary.chunk_ids]
    matrix = writer.vectors(chunk_ids)
    row_of = {chunk_id: row for row, chunk_id in enumerate(chunk_ids)}
    inputs = []
    for summary in summaries:
        vector = None
        if summary.chunk_ids:
            mean = np.mean(matrix[[row_of[i] for i in summary.chunk_ids]], axis=0)
            vector = mean / max(float(np.linalg.norm(mean)), 1e-12)
        inputs.append(StoryInput(
            article_id=summary.key, title=summary.title, text=summary.head,
            published=summary.published, source=summary.source, vector=vector,
        ))
    story_of = group_stories(inputs)
    writer.set_story_ids(story_of)
    return len(set(story_of.values()))


def sync_outcomes(state: StateStore) -> tuple[SyncOutcome | None, SyncOutcome | None]:
    """What the latest reindex did, and the latest run that wrote a version (blocking).

    Either is None when no run has been recorded (an index from before they were) or the
    record cannot be read. Raises what the state store raises.
    """
    return (SyncOutcome.from_json(state.get_value(LAST_REINDEX_KEY)),
            SyncOutcome.from_json(state.get_value(LAST_CHANGE_KEY)))


def text_hash(text: str) -> str:
    """Content hash of a chunk's text (vectors are reused by it)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _within(path: str, roots: Sequence[Path]) -> bool:
    """True when a stored file path lies under one of the roots.

    Stored paths went through `store_path` (bytes that are not UTF-8 escaped), so the roots
    are compared in that form too, or a folder with such a name would never lose an article.
    """
    resolved = Path(path)
    return any(resolved.is_relative_to(store_path(str(root))) for root in roots)


def plan_changes(
    parsed: Iterable[ParsedArticle | SkippedItem],
    stored: dict[str, StoredArticle],
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
    # A text is a duplicate only from the same outlet: wire copy run by a second outlet is a
    # second article of one story (its chunks reuse the first one's vectors).
    norm_owner = {(article.norm_hash, article.source.casefold()): key
                  for key, article in stored.items()}
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
        same_text = (normalized_text_hash(item.text), item.source.casefold())
        owner = norm_owner.get(same_text)
        if owner is not None and owner != key:
            plan.report.duplicates += 1
            continue
        norm_owner[same_text] = key
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
        self.queued = 0
        self._seen: set[str] = set()
        self._pending: list[tuple[str, str]] = []
        self._slices: list[tuple[list[str], Future[np.ndarray]]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-ahead")

    def add(self, digest: str, text: str) -> None:
        """Queue a chunk text for embedding (each distinct text once)."""
        if digest in self._seen:
            return
        self._seen.add(digest)
        self._pending.append((digest, text))
        self.queued += 1
        if len(self._pending) >= EMBED_SLICE:
            self._submit()

    def _submit(self) -> None:
        """Hand the pending texts to the worker as one slice."""
        digests = [digest for digest, _ in self._pending]
        texts = [text for _, text in self._pending]
        self._pending = []
        future = self._pool.submit(self.embedder.encode, texts, batch_size=self.batch_size)
        self._slices.append((digests, future))

    def stop(self) -> None:
        """End the worker without embedding what is still queued (the build failed)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def finish(self, notify: ProgressCallback) -> dict[str, np.ndarray]:
        """Wait for every queued chunk, reporting progress; return the vectors by text hash.

        Raises the first error the embedder raised.
        """
        if self._pending:
            self._submit()
        vectors: dict[str, np.ndarray] = {}
        try:
            for digests, future in self._slices:
                while True:
                    try:
                        matrix = future.result(timeout=2.0)
                        break
                    except FutureTimeout:
                        notify(Progress("embedding", len(vectors), self.queued,
                                        f"embedded {len(vectors)}/{self.queued} chunks"))
                vectors.update(zip(digests, matrix, strict=True))
                notify(Progress("embedding", len(vectors), self.queued,
                                f"embedded {len(vectors)}/{self.queued} chunks"))
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        return vectors


class Builder:
    """Writes the next version: the current one with the changes applied."""

    def __init__(self, settings: Settings, embedder: Embedder, store: Store) -> None:
        """Keep the settings, the embedder used for new chunks and the store written to."""
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.max_tokens = min(
            settings.chunk_max_tokens or embedder.content_tokens, embedder.content_tokens
        )

    def manifest_settings(self) -> dict[str, object]:
        """Chunking settings recorded in the version's metadata."""
        return {"max_tokens": self.max_tokens, "overlap": self.settings.chunk_overlap_sentences,
                "splitter": "sentencex"}

    def run(
        self,
        paths: Sequence[Path],
        *,
        sync: bool,
        rebuild: bool = False,
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Ingest paths into the next version and publish it; returns the report.

        Nothing is written when nothing changed. The plan is made against the version being
        served; if another writer published a newer one meanwhile, the plan is made again
        against that one once this writer holds the store, so no update is lost.
        Raises WriterBusy while another writer is still at work after `writer_wait_seconds`.
        """
        started = time.perf_counter()
        notify = progress or (lambda _p: None)
        roots = [Path(p).resolve() for p in self.settings.reindexed_dirs()] if sync else None
        planned_on, stored, rebuild = self._planning_base(rebuild)
        plan = self._plan(paths, roots, stored, notify)
        if not plan.changes and not (rebuild and planned_on is not None):
            plan.report.seconds = time.perf_counter() - started
            self._remember(plan.report, sync=sync, from_scratch=False)
            return plan.report

        def waiting(line: str) -> None:
            """Say once what this run waits for: another process's write to the index."""
            log.warning("%s", line)
            notify(Progress("waiting", 0, 0, "another process is updating the index"))

        with begin_writer(self.store, fresh=rebuild,
                          wait_seconds=self.settings.writer_wait_seconds,
                          on_wait=waiting) as writer:
            base = writer.base
            from_scratch = rebuild or base is None  # no article of the version before is kept
            if not rebuild and (base.version if base else None) != planned_on:
                log.info("the index changed while this run was planned; planning again")
                stored = writer.stored_articles()
                if base is not None and base.metadata.get("chunking") != self.manifest_settings():
                    writer.delete_articles(list(stored))  # cut every article again
                    stored = {}
                    from_scratch = True
                plan = self._plan(paths, roots, stored, notify)
                if not plan.changes:  # the other writer brought these changes already
                    plan.report.seconds = time.perf_counter() - started
                    self._remember(plan.report, sync=sync, from_scratch=False)
                    return plan.report  # leaving the block aborts: nothing is written
            writer.delete_articles([key for key, _ in plan.update] + plan.remove)
            new_chunks, ahead = self._insert(writer, plan.add + plan.update, notify)
            self._vectors(writer, new_chunks, plan, notify, ahead)
            notify(Progress("grouping", 0, 1, "grouping articles into stories"))
            plan.report.stories = assign_stories(writer)
            notify(Progress("writing", 0, 1, "building the vector index"))
            metadata = {
                "embedding": self.embedder.identity() | {"backend": self.embedder.backend},
                "chunking": self.manifest_settings(),
                "build_seconds": round(time.perf_counter() - started, 3),
            }
            plan.report.generation = writer.commit(metadata)
        plan.report.seconds = time.perf_counter() - started
        self._remember(plan.report, sync=sync, from_scratch=from_scratch)
        notify(Progress("done", 1, 1, plan.report.summary()))
        return plan.report

    def _remember(self, report: IngestReport, *, sync: bool, from_scratch: bool) -> None:
        """Keep what this run did in the state store: every reindex under LAST_REINDEX_KEY,
        every run that wrote a version under LAST_CHANGE_KEY.

        The state store, not the version's metadata: a run that changes nothing writes no
        version, and that it changed nothing is what /stats must say. A failure is logged, not
        raised: the index is written either way, and forgetting costs /stats and /whatsnew a
        sentence.
        """
        outcome = SyncOutcome(
            kind="reindex" if sync else "ingest", finished_at=datetime.now(UTC),
            added=report.added, updated=report.updated, removed=report.removed,
            generation=report.generation, from_scratch=from_scratch and bool(report.generation),
        )
        try:
            state = self.store.state()
            if sync:
                state.set_value(LAST_REINDEX_KEY, outcome.to_json())
            if outcome.changed:
                state.set_value(LAST_CHANGE_KEY, outcome.to_json())
        except Exception as exc:  # whatever the backend raises, the run itself succeeded
            log.warning("could not record what this %s did: %s", outcome.kind, exc)

    def _planning_base(self, rebuild: bool) -> tuple[str | None, dict[str, StoredArticle], bool]:
        """The version served now, its articles (none for a rebuild) and whether to rebuild.

        A version cut with other chunking settings must be rebuilt: every article is cut again.
        """
        try:
            with self.store.reading() as snapshot:
                if snapshot.metadata.get("chunking") != self.manifest_settings():
                    rebuild = True
                stored = {} if rebuild else snapshot.stored_articles()
                return snapshot.version, stored, rebuild
        except StoreEmpty:
            return None, {}, rebuild

    def _plan(
        self, paths: Sequence[Path], roots: list[Path] | None,
        stored: dict[str, StoredArticle], notify: ProgressCallback,
    ) -> Plan:
        """Read the files and compare them with the stored articles."""
        notify(Progress("reading", 0, 0, "reading article files"))
        parsed = iter_articles(
            paths,
            max_bytes=int(self.settings.max_file_mb * 2**20),
            allowed_roots=roots,
        )
        plan = plan_changes(parsed, stored, sync_roots=roots)
        # At INFO: the CLI and /reindex list every skip in their reports, so a terminal showed
        # each one twice at WARNING.
        for item in plan.report.skipped:
            log.info("skipped %s", item)
        return plan

    def _insert(
        self, writer: StoreWriter, articles: list[tuple[str, ParsedArticle]],
        notify: ProgressCallback,
    ) -> tuple[list[tuple[int, str, str]], dict[str, np.ndarray]]:
        """Store articles, their sentences and chunks.

        Returns the new chunks as (chunk id, text hash, text), and the vectors already embedded
        for them by text hash.

        When the new version holds no other chunks (a first build or a rebuild), no vector can
        be reused from it, so new chunks are embedded on a worker thread while later articles
        are chunked. Otherwise `_vectors` embeds what it cannot reuse.
        """
        new_chunks: list[tuple[int, str, str]] = []
        ahead = (
            EmbedAhead(self.embedder, self.settings.embed_batch_size)
            if articles and writer.count_chunks() == 0
            else None
        )
        try:
            self._insert_articles(writer, articles, new_chunks, ahead, notify)
        except BaseException:
            if ahead is not None:
                ahead.stop()
            raise
        return new_chunks, (ahead.finish(notify) if ahead is not None else {})

    def _insert_articles(
        self, writer: StoreWriter, articles: list[tuple[str, ParsedArticle]],
        new_chunks: list[tuple[int, str, str]], ahead: EmbedAhead | None,
        notify: ProgressCallback,
    ) -> None:
        """Chunk and store each article, appending its chunks to new_chunks (and to ahead)."""
        total = len(articles)
        for done, (key, article) in enumerate(articles, start=1):
            spans = chunk_text(
                article.text,
                max_tokens=self.max_tokens,
                overlap=self.settings.chunk_overlap_sentences,
                count_tokens=self.embedder.token_counts,
                token_offsets=self.embedder.token_offsets,
            )
            texts = [article.text[span.start : span.end] for span in spans]
            chunks = tuple(NewChunk(span, text_hash(text)) for span, text in zip(
                spans, texts, strict=True))
            sentences = tuple(sorted({s for span in spans for s in span.sentences},
                                     key=lambda s: s.start))
            chunk_ids = writer.add_article(NewArticle(
                key=key, article=article, content_hash=content_hash(article),
                norm_hash=normalized_text_hash(article.text),
                origin_file=file_origin(article.origin), chunks=chunks, sentences=sentences,
            ))
            for chunk_id, chunk, text in zip(chunk_ids, chunks, texts, strict=True):
                new_chunks.append((chunk_id, chunk.text_hash, text))
                if ahead is not None:
                    ahead.add(chunk.text_hash, text)
            if done % 200 == 0 or done == total:
                notify(Progress("chunking", done, total, f"chunked {done}/{total} articles"))

    def _vectors(
        self,
        writer: StoreWriter,
        new_chunks: list[tuple[int, str, str]],
        plan: Plan,
        notify: ProgressCallback,
        ahead: dict[str, np.ndarray],
    ) -> None:
        """Give every new chunk a vector: reused by text hash, embedded ahead, or embedded now."""
        reusable = writer.reusable_vectors(sorted({h for _, h, _ in new_chunks}))
        ready_ids: list[int] = []
        ready: list[np.ndarray] = []
        # Each distinct text is embedded once, however many chunks of this run repeat it.
        to_embed: dict[str, tuple[str, list[int]]] = {}
        for chunk_id, digest, text in new_chunks:
            vector = reusable.get(digest)
            if vector is None:
                vector = ahead.get(digest)
            if vector is None:
                to_embed.setdefault(digest, (text, []))[1].append(chunk_id)
            else:
                ready_ids.append(chunk_id)
                ready.append(vector)
        if ready_ids:
            writer.set_vectors(ready_ids, np.stack(ready))
        plan.report.chunks_embedded = len(to_embed) + len(
            {digest for _, digest, _ in new_chunks if digest in ahead and digest not in reusable}
        )
        # Reused: from the collection, or a text repeated earlier in this run.
        plan.report.chunks_reused = len(new_chunks) - plan.report.chunks_embedded
        pending = list(to_embed.values())
        total = len(pending)
        for first in range(0, total, EMBED_SLICE):
            batch = pending[first : first + EMBED_SLICE]
            matrix = self.embedder.encode(
                [text for text, _ in batch], batch_size=self.settings.embed_batch_size
            )
            rows = [row for row, (_, ids) in enumerate(batch) for _ in ids]
            writer.set_vectors([i for _, ids in batch for i in ids], matrix[rows])
            done = min(first + EMBED_SLICE, total)
            notify(Progress("embedding", done, total, f"embedded {done}/{total} chunks"))
