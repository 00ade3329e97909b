"""The engine facade: one object the CLI, the bot and the benchmarks talk to."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from index import questions
from index.build import Builder, sync_outcomes
from index.config import Settings
from index.embedding import Embedder, EmbeddingError, backend_description, make_embedder
from index.followup import CONVERSATION_KEY, Conversation
from index.models import (
    Answer,
    ArticleDetail,
    ArticleInfo,
    Follow,
    IndexStats,
    IngestReport,
    Progress,
    Quote,
    SearchFilters,
    Story,
    SyncOutcome,
)
from index.models import ArticleHit as Hit
from index.reading import ReaderError, reader_for
from index.store import (
    IdentityMismatch,
    Snapshot,
    StateStore,
    Store,
    StoreEmpty,
    StoreError,
    WriterBusy,
    index_folder,
    make_store,
    open_state,
)
from index.text import clean

if TYPE_CHECKING:
    from index.feeds import FeedSource, FeedState, FeedSyncer, FeedSyncReport

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]


# Named value in the state store: "1" while fetched articles wait for their ingest.
FEEDS_PENDING_KEY = "feeds_pending_ingest"


class EngineError(Exception):
    """A failure with a message fit to show a user as one line."""


class IndexMissingError(EngineError):
    """No usable index exists yet at the configured place."""


class IndexMismatchError(EngineError):
    """The index was built with another model, dimension or settings."""


class ReindexInProgressError(EngineError):
    """A reindex is already running."""


class IndexWriteError(EngineError):
    """A build could not write (read-only folder, full disk); the previous version serves."""


class IndexUnavailableError(EngineError):
    """The store cannot be reached or used now (e.g. its database server is down)."""


class Engine:
    """Answers questions from a store and keeps the store in sync with article files.

    Thread-safe: questions may run in several threads while one reindex builds the next
    version; the new version replaces the old one atomically when complete.
    """

    def __init__(
        self, settings: Settings, *, embedder: Embedder | None = None,
        store: Store | None = None,
    ) -> None:
        """Create an engine; nothing is loaded until `load` or the first use.

        Raises EngineError when the `store` setting names no known backend.
        """
        self.settings = settings
        self._embedder: Embedder | None = embedder
        try:
            self.store = store or make_store(settings)
        except StoreError as exc:
            raise EngineError(str(exc)) from exc
        self._load_lock = threading.Lock()
        self._write_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        create: bool = False,
        repair: bool = False,
        embedder: Embedder | None = None,
    ) -> Engine:
        """Load the model and the current version of the collection (blocking).

        Without `create`, a missing index is an error that says how to build one. With
        `repair` (a rebuild is about to run), a damaged index or one built with another model
        is set aside instead of refused.
        """
        engine = cls(settings, embedder=embedder)
        engine.load(create=create, repair=repair)
        return engine

    def load(self, *, create: bool = False, repair: bool = False) -> None:
        """Load the embedder and start serving the store's current version.

        Raises IndexMissingError, IndexMismatchError or EngineError.
        """
        # Name the folder in the command when it is not the default one, or the command
        # given would build the default index instead.
        folder = index_folder(self.settings)
        named = ("" if folder is None or folder == Settings.model_fields["index_dir"].default
                 else f" --index {folder}")
        missing = IndexMissingError(
            f"no index in {self.store.location}; build one with: articlebot reindex{named} "
            f"(or articlebot ingest{named} PATH)"
        )
        try:
            if not create and not self.store.exists():
                raise missing  # before loading the model: nothing to serve anyway
            serving = self.store.open(self.embedder.identity(), repair=repair)
        except IdentityMismatch as exc:
            raise IndexMismatchError(str(exc)) from exc
        except StoreError as exc:
            raise EngineError(str(exc)) from exc
        if not serving and not create:
            raise missing
        try:  # the reader loads now (once per process), so a bad one is one line at start
            reader_for(self.settings)
        except ReaderError as exc:
            raise EngineError(str(exc)) from exc

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use."""
        if self._embedder is None:
            with self._load_lock:
                if self._embedder is None:
                    try:
                        self._embedder = make_embedder(
                            self.settings.model,
                            self.settings.embed_backend,
                            cache_dir=self.settings.model_cache_dir,
                        )
                    except EmbeddingError as exc:
                        raise EngineError(str(exc)) from exc
        return self._embedder

    @property
    def state(self) -> StateStore:
        """The bot's state (votes, follows, named values), opened on first use."""
        return self.store.state()

    @staticmethod
    def open_state(settings: Settings) -> StateStore:
        """The configured backend's state store alone, without an engine or its model (what
        `articlebot sync` keeps the synced commands' digest in). Raises StoreError."""
        return open_state(settings)

    @staticmethod
    def index_folder(settings: Settings) -> Path | None:
        """The folder the configured backend keeps its collection in, None when it keeps it
        elsewhere (a database server, memory): `index.store.index_folder`, for callers that do
        not reach storage themselves (the bot checks it before it logs in)."""
        return index_folder(settings)

    @contextmanager
    def _reading(self) -> Iterator[Snapshot]:
        """Hold the current version for one call; a reindex may replace it meanwhile.

        Raises IndexMissingError when nothing serves, IndexUnavailableError when the store
        fails (a database that is down).
        """
        try:
            with self.store.reading() as snapshot:
                yield snapshot
        except StoreEmpty as exc:
            raise IndexMissingError(
                f"the index in {self.store.location} is empty; add articles with: "
                "articlebot ingest PATH (or articlebot reindex)"
            ) from exc
        except IdentityMismatch as exc:
            raise IndexMismatchError(str(exc)) from exc
        except StoreError as exc:
            raise IndexUnavailableError(str(exc)) from exc

    # --- questions
    def ask(
        self, question: str, filters: SearchFilters | None = None, *, as_of: date | None = None,
        context: Conversation | None = None,
    ) -> Answer:
        """Answer a question with verbatim quotes, or abstain when nothing is relevant.

        Time words in the question ("last week", "in March") become a period, relative to
        `as_of` (today by default), that lifts passages published in it. `context` is the
        conversation a follow-up question belongs to (index.followup).
        """
        with self._reading() as snapshot:
            return questions.answer_question(
                snapshot, self.embedder, self.settings, clean(question), filters or SearchFilters(),
                as_of or date.today(), context,
            )

    # --- news
    def timeline(
        self, topic: str, since: date | None = None, until: date | None = None,
        *, limit: int = 15,
    ) -> list[Quote]:
        """How a story developed: the best quote of each matching story, oldest first."""
        with self._reading() as snapshot:
            return questions.timeline(
                snapshot, self.embedder, self.settings, clean(topic), since, until, limit
            )

    def whatsnew(self, since: date | None = None, *, limit: int = 10) -> list[Story]:
        """The newest stories (grouped across outlets) published since a date.

        Without a date: the articles the latest reindex brought in.
        """
        with self._reading() as snapshot:
            ingested_since = None if since else snapshot.metadata.get("build_started")
            rows = snapshot.articles_since(
                published_since=since, ingested_since=ingested_since, limit=limit * 10
            )
            order: list[str] = []
            for _, story_id in rows:
                if story_id not in order:
                    order.append(story_id)
            members = snapshot.story_members(order[:limit])
            stories = []
            for story_id in order[:limit]:
                articles = sorted(members.get(story_id, []),
                                  key=lambda a: a.published or date.min, reverse=True)
                if articles:
                    stories.append(Story(article=articles[0], also=tuple(articles[1:])))
            return stories

    # --- follows (bot state, kept outside versions like feedback)
    def add_follow(
        self, topic: str, *, channel_id: int, user_id: int, guild_id: int | None = None
    ) -> Follow:
        """Follow a topic in a channel."""
        with _unavailable():
            return self.state.add_follow(topic, channel_id=channel_id, user_id=user_id,
                                         guild_id=guild_id)

    def remove_follow(self, follow_id: int) -> bool:
        """Stop following; False if there was no such follow."""
        with _unavailable():
            return self.state.remove_follow(follow_id)

    def follows(
        self, *, guild_id: int | None = None, channel_id: int | None = None
    ) -> list[Follow]:
        """Followed topics, optionally of one guild or channel."""
        with _unavailable():
            return self.state.list_follows(guild_id=guild_id, channel_id=channel_id)

    def follow_matches(self, article_ids: Sequence[str]) -> list[tuple[Follow, list[Hit]]]:
        """For each followed topic, the given (new) articles that match it well enough."""
        follows = self.follows()
        if not follows or not article_ids:
            return []
        with self._reading() as snapshot:
            chunk_ids = snapshot.chunk_ids_of_articles(article_ids)
            if not chunk_ids:
                return []
            rows = snapshot.chunk_rows(chunk_ids)
            topics = self.embedder.encode([f.topic for f in follows], batch_size=32)
            matches = []
            for follow, topic_vector in zip(follows, topics, strict=True):
                best: dict[str, tuple[float, int]] = {}
                scores = snapshot.dense_scores(topic_vector, chunk_ids)
                for chunk_id, score in zip(chunk_ids, scores, strict=True):
                    key = rows[chunk_id].article_key
                    good = score >= self.settings.follow_min_score
                    if good and score > best.get(key, (-1.0, 0))[0]:
                        best[key] = (float(score), chunk_id)
                if best:
                    infos = snapshot.articles(list(best))
                    hits = sorted(
                        (Hit(infos[key], round(score, 4), cid, rows[cid].text)
                         for key, (score, cid) in best.items()),
                        key=lambda h: -h.score,
                    )
                    matches.append((follow, hits))
            return matches

    # --- browsing
    def recent_articles(
        self, limit: int = 10, offset: int = 0, source: str | None = None
    ) -> list[ArticleInfo]:
        """Articles newest first (by published date, then ingest order)."""
        with self._reading() as snapshot:
            return snapshot.recent_articles(limit, offset, source)

    def count_articles(self, source: str | None = None) -> int:
        """How many articles (of one source) the index holds."""
        with self._reading() as snapshot:
            return snapshot.count_articles(source)

    def article(self, id_or_title: str) -> ArticleDetail | None:
        """One article by id (or unique id prefix), else by exact or closest title."""
        with self._reading() as snapshot:
            found = snapshot.find_article(clean(id_or_title))
        if found is None:
            return None
        info, text, n_chunks = found
        return ArticleDetail(article=info, opening=_opening(text), n_chunks=n_chunks,
                             n_chars=len(text))

    def search_titles(self, text: str, limit: int = 25) -> list[ArticleInfo]:
        """Articles whose title contains the text, for autocomplete."""
        with self._reading() as snapshot:
            return snapshot.search_titles(clean(text), limit)

    def sources(self) -> list[str]:
        """The outlets in the index, most articles first."""
        with self._reading() as snapshot:
            return [source for source, _ in snapshot.sources()]

    def stats(self) -> IndexStats:
        """Figures about the serving version."""
        with self._reading() as snapshot:
            metadata = snapshot.metadata
            cover = snapshot.coverage()
            capabilities = snapshot.capabilities
            return IndexStats(
                n_articles=cover.n_articles,
                n_chunks=snapshot.count_chunks(),
                sources=tuple(snapshot.sources()),
                first=cover.first,
                last=cover.last,
                model=str(metadata.get("embedding", {}).get("model", "")),
                dim=int(metadata.get("embedding", {}).get("dim", 0)),
                index_type=str(metadata.get("index_type", "")),
                index_bytes=snapshot.size_bytes(),
                generation=snapshot.version,
                built_at=str(metadata.get("built_at", "")),
                build_seconds=float(metadata.get("build_seconds", 0.0)),
                store=capabilities.backend,
                dense_search=capabilities.dense_search,
                embed_backend=self._backend_description(),
            )

    def _backend_description(self) -> str:
        """How questions and articles are embedded here (loads and measures nothing)."""
        loaded = self._embedder
        if loaded is not None and loaded.choice is not None:
            return f"auto: {loaded.choice.summary()}"
        if loaded is not None:
            return f"{loaded.backend or self.settings.embed_backend} (set)"
        return backend_description(self.settings.model, self.settings.embed_backend,
                                   self.settings.model_cache_dir)

    # --- writing
    def ingest(
        self, paths: Sequence[Path], progress: ProgressCallback | None = None
    ) -> IngestReport:
        """Add or update the articles found in these files or folders."""
        return self._build(list(paths), sync=False, progress=progress)

    def reindex(
        self, progress: ProgressCallback | None = None, *, rebuild: bool = False
    ) -> IngestReport:
        """Sync the index with the configured article folders: new, changed, removed."""
        return self._build(
            self.settings.reindexed_dirs(), sync=True, progress=progress, rebuild=rebuild
        )

    # --- feeds (index/feeds)
    def feeds(self) -> list[FeedSource]:
        """The feeds of the `feeds_file` setting (none without it). Raises EngineError for a
        file that cannot be read or has a bad line."""
        from index.feeds import FeedListError, read_feed_list  # httpx, feedparser: on use

        if self.settings.feeds_file is None:
            return []
        try:
            return read_feed_list(self.settings.feeds_file)
        except FeedListError as exc:
            raise EngineError(str(exc)) from exc

    def feed_states(self) -> list[tuple[FeedSource, FeedState]]:
        """Each feed with what the last syncs kept of it (last fetch, status, articles)."""
        from index.feeds import FeedState, feed_state_key

        with _unavailable():
            return [(feed, FeedState.from_json(self.state.get_value(feed_state_key(feed.url))))
                    for feed in self.feeds()]

    def sync_feeds(
        self, progress: ProgressCallback | None = None, *, ingest: bool = True
    ) -> FeedSyncReport:
        """Fetch every feed, write new and changed items as article files, ingest them.

        The returned report names each feed's outcome; its `ingest` is the ingest report.
        With `ingest=False` the files are only written (a reindex, which reads feeds_dir,
        follows). Raises EngineError for a bad feeds file, IndexWriteError when the index's
        state or the fetched articles' folder cannot be written, and what `ingest` raises.
        """
        feeds = self.feeds()
        with self._feeds_pending_after_failure(ingest), self._writing_feeds(), \
                self._syncer() as syncer:
            report = syncer.sync(feeds)
        if not ingest:
            return report
        with self._writing_feeds():
            # Set while files written by a sync wait for their ingest: if that ingest fails, the
            # next sync ingests the whole folder (unchanged files cost a hash check), so an
            # item is never left out because its file was already written.
            pending = self.state.get_value(FEEDS_PENDING_KEY) == "1"
            if report.written or pending:
                self.state.set_value(FEEDS_PENDING_KEY, "1")
        if report.written or pending:
            paths = [self.settings.feeds_dir] if pending else report.written
            report.ingest = self.ingest(paths, progress)
            with self._writing_feeds():
                self.state.set_value(FEEDS_PENDING_KEY, "")
        return report

    def fetch_pages(self, urls: Sequence[str]) -> FeedSyncReport:
        """Fetch single article pages and ingest them (`articlebot fetch URL…`).

        Raises IndexWriteError as `sync_feeds` does, and what `ingest` raises.
        """
        with self._feeds_pending_after_failure(True), self._writing_feeds(), \
                self._syncer() as syncer:
            report = syncer.fetch_pages(list(urls))
        if report.written:
            report.ingest = self.ingest(report.written)
        return report

    @contextmanager
    def _writing_feeds(self) -> Iterator[None]:
        """Turn a failed write of a sync (a read-only folder, a full disk, a file where a
        folder goes) into one line as a failed ingest is (IndexWriteError), naming the folder:
        the fetched articles' when the failure names a path in it, else the index's. Anything
        else stays as it was (a bug stays a traceback)."""
        try:
            with _unavailable():
                yield
        except EngineError:
            raise
        except Exception as exc:
            cause = self.store.write_failure(exc)
            if cause is None:
                raise
            folder = self.settings.feeds_dir
            filename = getattr(exc, "filename", None)
            where = (f"the fetched articles in {folder}"
                     if filename and Path(str(filename)).is_relative_to(folder)
                     else f"the index in {self.store.location}")
            raise IndexWriteError(
                f"cannot write {where}: {cause}; the index is unchanged") from exc

    @contextmanager
    def _feeds_pending_after_failure(self, ingest: bool) -> Iterator[None]:
        """After a sync that failed part-way (`ingest`: one whose files were to be ingested),
        have the next sync ingest the whole folder: files written before the failure would
        otherwise wait for a reindex. Best effort: the state may be what failed."""
        try:
            yield
        except IndexWriteError:
            if ingest:
                with contextlib.suppress(Exception):
                    self.state.set_value(FEEDS_PENDING_KEY, "1")
            raise

    @contextmanager
    def _syncer(self) -> Iterator[FeedSyncer]:
        """A feed syncer with the settings' fetch policy (its connections closed after).

        The fetched articles' folder is made first: one that cannot be made fails the sync
        at once, not each of its items.
        """
        from index.feeds import FeedSyncer, Fetcher, FetchPolicy

        settings = self.settings
        settings.feeds_dir.mkdir(parents=True, exist_ok=True)
        fetcher = Fetcher(FetchPolicy(
            timeout_seconds=settings.fetch_timeout_seconds,
            max_bytes=int(settings.fetch_max_mb * 2**20),
            per_host=settings.fetch_per_host,
            host_delay_seconds=settings.fetch_host_delay_seconds,
            allow_private=settings.fetch_allow_private,
        ))
        try:
            yield FeedSyncer(fetcher, self.state, settings.feeds_dir,
                             max_items_per_feed=settings.feeds_max_items_per_feed,
                             max_items_per_sync=settings.feeds_max_items_per_sync)
        finally:
            fetcher.close()

    def _build(
        self, paths: list[Path], *, sync: bool, progress: ProgressCallback | None,
        rebuild: bool = False,
    ) -> IngestReport:
        """Write the next version and serve it; the current one serves until then."""
        if not self._write_lock.acquire(blocking=False):
            raise ReindexInProgressError("a reindex is already running")
        try:
            builder = Builder(self.settings, self.embedder, self.store)
            return builder.run(paths, sync=sync, rebuild=rebuild, progress=progress)
        except WriterBusy as exc:
            raise ReindexInProgressError(str(exc)) from exc
        except IdentityMismatch as exc:
            raise IndexMismatchError(str(exc)) from exc
        except StoreError as exc:
            raise IndexUnavailableError(str(exc)) from exc
        except Exception as exc:
            cause = self.store.write_failure(exc)
            if cause is None:
                raise
            raise IndexWriteError(
                f"cannot write the index in {self.store.location}: {cause}; the index is "
                "unchanged") from exc
        finally:
            self._write_lock.release()

    @property
    def reindexing(self) -> bool:
        """True while an ingest or reindex is building a new version."""
        return self._write_lock.locked()

    # --- feedback (bot state, so it survives reindexing)
    def record_feedback(
        self, question: str, chunk_ids: Sequence[int], vote: int, user_hash: str
    ) -> None:
        """Store a 👍 (+1) or 👎 (-1) on an answer."""
        with _unavailable():
            self.state.record_feedback(question, chunk_ids, vote, user_hash)

    def feedback_counts(self) -> dict[str, int]:
        """Counts of votes: {'up': n, 'down': m}."""
        with _unavailable():
            return self.state.feedback_counts()

    def sync_outcomes(self) -> tuple[SyncOutcome | None, SyncOutcome | None]:
        """What the latest reindex did, and the latest run that wrote a version; either None
        when none was recorded or the record is unreadable (index.build.sync_outcomes).

        Raises IndexUnavailableError when the state store fails.
        """
        with _unavailable():
            return sync_outcomes(self.state)

    # --- conversations (bot state, so a thread's follow-ups outlive a restart)
    def conversation(self, key: int) -> Conversation | None:
        """The conversation kept under a key (a thread's id, an answer message's), or None
        (none kept, or a value that holds none). Raises IndexUnavailableError when the state
        store fails."""
        with _unavailable():
            return Conversation.from_json(self.state.get_value(CONVERSATION_KEY.format(key)))

    def keep_conversation(self, keys: Sequence[int], conversation: Conversation) -> None:
        """Keep a conversation under each of these keys (a thread, the answers sent in it),
        replacing what they held: named values CONVERSATION_KEY, never pruned (each is well
        under 1 KB). Raises IndexUnavailableError when the state store fails."""
        text = conversation.to_json()
        with _unavailable():
            for key in keys:
                self.state.set_value(CONVERSATION_KEY.format(key), text)

    def close(self) -> None:
        """Release files (questions still running finish on the version they hold)."""
        self.store.close()


@contextmanager
def _unavailable() -> Iterator[None]:
    """Turn the store's failures into the engine's one-line IndexUnavailableError."""
    try:
        yield
    except StoreError as exc:
        raise IndexUnavailableError(str(exc)) from exc


def _opening(text: str, limit: int = 600) -> str:
    """The article's first paragraph, cut at a word boundary past `limit` characters."""
    paragraph = text.strip().split("\n\n", 1)[0].strip()
    if len(paragraph) <= limit:
        return paragraph
    return paragraph[:limit].rsplit(" ", 1)[0] + "…"
