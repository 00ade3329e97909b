"""Offline stand-ins for the engine, its state store and discord.py objects (spec'd mocks)."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock, create_autospec

import discord

from bot.client import ArticleBot
from bot.config import BotSettings
from index.build import sync_outcomes
from index.engine import ReindexInProgressError
from index.feeds import FeedResult, FeedSource, FeedState, FeedSyncReport
from index.followup import CONVERSATION_KEY, Conversation
from index.models import (
    Answer,
    ArticleDetail,
    ArticleHit,
    ArticleInfo,
    Caveat,
    Coverage,
    Follow,
    IndexStats,
    IngestReport,
    NotAnswered,
    Progress,
    Quote,
    SearchFilters,
    Story,
    SyncOutcome,
)
from index.store.base import StateStore

BOT_USER_ID = 999


def make_article(
    n: int = 1, title: str = "", url: str = "", source: str = "Daily Planet",
    labels: tuple[str, ...] = (),
) -> ArticleInfo:
    """An article record."""
    return ArticleInfo(
        id=f"a{n:04d}",
        title=title or f"Article {n}",
        source=source,
        url=url or f"https://example.org/{n}",
        published=date(2023, 1, min(n, 28)),
        labels=labels,
    )


def make_answer(
    question: str = "What happened?",
    texts: Sequence[str] = ("The river rose by two metres.",),
    answered: bool = True,
    article: ArticleInfo | None = None,
    reason: NotAnswered | None = None,
    caveat: Caveat | None = None,
    newest: date | None = None,
) -> Answer:
    """A canned answer with one quote per text; unanswered ones default to NOTHING_RELEVANT."""
    quotes = tuple(
        Quote(text=text, article=article or make_article(i + 1), chunk_id=100 + i, start=0,
              end=len(text), score=1.0 - i / 10)
        for i, text in enumerate(texts)
    ) if answered else ()
    results = tuple(ArticleHit(q.article, q.score, q.chunk_id, q.text) for q in quotes)
    return Answer(
        question=question,
        quotes=quotes,
        results=results,
        answered=answered,
        confidence="high" if answered else "none",
        coverage=Coverage(120, date(2023, 1, 1), date(2023, 2, 26)),
        reason=None if answered else (reason or NotAnswered.NOTHING_RELEVANT),
        caveat=caveat if answered else None,
        newest=newest,
    )


class MemoryState:
    """The bot-state store's methods, in memory (wrapped by `make_state` in a spec'd mock)."""

    def __init__(self) -> None:
        self.votes: dict[tuple[str, tuple[int, ...], str], int] = {}
        self.follow_table: dict[int, Follow] = {}
        self.values: dict[str, str] = {}
        self.windows: dict[str, tuple[float, int]] = {}  # rate-limit bucket -> (start, used)
        self.closed = False
        self._next_follow = 1

    def record_feedback(
        self, question: str, chunk_ids: Sequence[int], vote: int, user_hash: str
    ) -> None:
        if vote not in (-1, 1):
            raise ValueError("vote must be +1 or -1")
        self.votes[(question, tuple(chunk_ids), user_hash)] = vote

    def feedback_counts(self) -> dict[str, int]:
        values = list(self.votes.values())
        return {"up": values.count(1), "down": values.count(-1)}

    def take_token(self, bucket: str, rate: int, per_seconds: float, now: float) -> float | None:
        window, used = self.windows.get(bucket, (now, 0))
        if now >= window + per_seconds:
            window, used = now, 0
        self.windows[bucket] = (window, used + 1)
        return None if used + 1 <= rate else window + per_seconds - now

    def add_follow(
        self, topic: str, *, channel_id: int, user_id: int, guild_id: int | None = None
    ) -> Follow:
        topic = " ".join(topic.split())
        if not topic:
            raise ValueError("a followed topic needs words")
        for follow in self.follow_table.values():
            if follow.channel_id == channel_id and follow.topic == topic:
                return follow
        follow = Follow(self._next_follow, guild_id, channel_id, user_id, topic)
        self._next_follow += 1
        self.follow_table[follow.id] = follow
        return follow

    def remove_follow(self, follow_id: int) -> bool:
        return self.follow_table.pop(follow_id, None) is not None

    def list_follows(
        self, *, guild_id: int | None = None, channel_id: int | None = None
    ) -> list[Follow]:
        return [f for f in self.follow_table.values()
                if (guild_id is None or f.guild_id == guild_id)
                and (channel_id is None or f.channel_id == channel_id)]

    def get_value(self, key: str) -> str | None:
        return self.values.get(key)

    def set_value(self, key: str, value: str) -> None:
        self.values[key] = value

    def close(self) -> None:
        self.closed = True


def public_methods(cls: type) -> list[str]:
    """Names of a class's public callables (its own and inherited), properties left out."""
    return sorted(name for name, member in inspect.getmembers(cls)
                  if not name.startswith("_") and callable(member))


def make_state(memory: MemoryState | None = None) -> Any:
    """A StateStore mock (spec_set on the real class: signatures are checked on every call)
    whose methods act on `memory`."""
    memory = memory or MemoryState()
    state = create_autospec(StateStore, instance=True, spec_set=True)
    for name in public_methods(StateStore):
        getattr(state, name).side_effect = getattr(memory, name)
    return state


class FakeEngine:
    """The Engine methods the bot calls, with canned results and a call log.

    Its public methods and properties keep Engine's signatures (tests/bot/test_fake_engine.py
    checks); test knobs are instance attributes. Follows and votes go to a spec'd in-memory
    state store, as Engine's go to its StateStore.
    """

    def __init__(self, answer: Answer | None = None, n_articles: int = 23) -> None:
        self.answer = answer or make_answer()
        self.articles = [make_article(n) for n in range(1, n_articles + 1)]
        self.calls: list[tuple[Any, ...]] = []
        self.events: list[str] = []
        self.memory = MemoryState()
        self.state_store = make_state(self.memory)
        self.votes = self.memory.votes
        self.follow_table = self.memory.follow_table
        self.reindex_gate: threading.Event | None = None
        self.reindex_started = threading.Event()
        self.reindex_error: Exception | None = None
        self._write_lock = threading.Lock()
        self.closed = False
        self.timeline_quotes: list[Quote] = []
        self.stories: list[Story] = []
        self.new_article_ids: list[str] = []

    @property
    def state(self) -> Any:
        return self.state_store

    def ask(
        self, question: str, filters: SearchFilters | None = None, *, as_of: date | None = None,
        context: Any = None,
    ) -> Answer:
        self.events.append("ask")
        self.calls.append(("ask", question, filters))
        return self.answer

    def timeline(
        self, topic: str, since: date | None = None, until: date | None = None,
        *, limit: int = 15,
    ) -> list[Quote]:
        self.events.append("timeline")
        self.calls.append(("timeline", topic, since, until))
        return list(self.timeline_quotes)

    def whatsnew(self, since: date | None = None, *, limit: int = 10) -> list[Story]:
        self.events.append("whatsnew")
        self.calls.append(("whatsnew", since))
        return list(self.stories)[:limit]

    def add_follow(
        self, topic: str, *, channel_id: int, user_id: int, guild_id: int | None = None
    ) -> Follow:
        self.events.append("add_follow")
        return self.state.add_follow(topic, channel_id=channel_id, user_id=user_id,
                                     guild_id=guild_id)

    def remove_follow(self, follow_id: int) -> bool:
        self.events.append("remove_follow")
        return self.state.remove_follow(follow_id)

    def follows(
        self, *, guild_id: int | None = None, channel_id: int | None = None
    ) -> list[Follow]:
        self.events.append("follows")
        return self.state.list_follows(guild_id=guild_id, channel_id=channel_id)

    def follow_matches(self, article_ids: Sequence[str]) -> list[tuple[Follow, list[ArticleHit]]]:
        self.calls.append(("follow_matches", tuple(article_ids)))
        hits = [ArticleHit(a, 0.9, 1, "passage") for a in self.articles if a.id in article_ids]
        return [(follow, hits) for follow in self.state.list_follows()]

    def recent_articles(
        self, limit: int = 10, offset: int = 0, source: str | None = None
    ) -> list[ArticleInfo]:
        self.calls.append(("recent_articles", limit, offset, source))
        return self.articles[offset:offset + limit]

    def count_articles(self, source: str | None = None) -> int:
        return len(self.articles)

    def article(self, id_or_title: str) -> ArticleDetail | None:
        found = [a for a in self.articles if id_or_title in (a.id, a.title)]
        return ArticleDetail(found[0], "It began on a Monday.", 3, 880) if found else None

    def search_titles(self, text: str, limit: int = 25) -> list[ArticleInfo]:
        return [a for a in self.articles if text.lower() in a.title.lower()][:limit]

    def sources(self) -> list[str]:
        self.calls.append(("sources",))
        return ["Daily Planet", "Gotham Gazette", "The Bugle"]

    def stats(self) -> IndexStats:
        return IndexStats(
            n_articles=len(self.articles), n_chunks=70, sources=(("Daily Planet", 23),),
            first=date(2023, 1, 1), last=date(2023, 1, 23), model="all-MiniLM-L6-v2", dim=384,
            index_type="flat", index_bytes=123_456, generation="g000002",
            built_at="2023-02-01T10:00:00", build_seconds=12.5,
        )

    def reindex(self, progress: Any = None, *, rebuild: bool = False) -> IngestReport:
        if not self._write_lock.acquire(blocking=False):
            raise ReindexInProgressError("a reindex is already running")
        try:
            self.reindex_started.set()
            if progress:
                progress(Progress("embedding", 5, 10))
            if self.reindex_gate is not None:
                # Held until the test opens the gate; the limit only keeps a failed test
                # from hanging, and outlasts every wait in the tests however busy the machine.
                self.reindex_gate.wait(timeout=120)
            if self.reindex_error is not None:
                raise self.reindex_error
            return IngestReport(added=2, unchanged=21, seconds=1.5,
                                new_article_ids=list(self.new_article_ids))
        finally:
            self._write_lock.release()

    @property
    def reindexing(self) -> bool:
        return self._write_lock.locked()

    def record_feedback(
        self, question: str, chunk_ids: Sequence[int], vote: int, user_hash: str
    ) -> None:
        self.state.record_feedback(question, chunk_ids, vote, user_hash)

    def feedback_counts(self) -> dict[str, int]:
        return self.state.feedback_counts()

    def sync_outcomes(self) -> tuple[SyncOutcome | None, SyncOutcome | None]:
        return sync_outcomes(self.state)

    def conversation(self, key: int) -> Conversation | None:
        return Conversation.from_json(self.state.get_value(CONVERSATION_KEY.format(key)))

    def keep_conversation(self, keys: Sequence[int], conversation: Conversation) -> None:
        for key in keys:
            self.state.set_value(CONVERSATION_KEY.format(key), conversation.to_json())

    def sync_feeds(self, progress: Any = None, *, ingest: bool = True) -> FeedSyncReport:
        self.events.append("sync_feeds")
        self.calls.append(("sync_feeds", ingest))
        result = FeedResult("https://feeds.example/rss", "ok", new=len(self.new_article_ids))
        report = FeedSyncReport([result], requests=3)
        if ingest:
            report.ingest = IngestReport(added=len(self.new_article_ids),
                                         new_article_ids=list(self.new_article_ids))
        return report

    def feed_states(self) -> list[tuple[FeedSource, FeedState]]:
        return [(FeedSource("https://feeds.example/rss", "Feeds Example"),
                 FeedState(status="ok", last_fetch="2023-02-01T10:00:00+00:00", articles=4))]

    def close(self) -> None:
        self.closed = True


def make_settings(tmp_path: Path, **overrides: Any) -> BotSettings:
    """The bot's settings, reading no environment or .env file."""
    return BotSettings(_env_file=None, index_dir=tmp_path / "index", **overrides)


async def make_bot(
    tmp_path: Path, engine: FakeEngine | None = None, load: bool = True, **overrides: Any
) -> ArticleBot:
    """A bot with a fake engine and (optionally) every cog loaded; never logs in."""
    fake = engine or FakeEngine()
    bot = ArticleBot(make_settings(tmp_path, **overrides), lambda _settings: fake,  # type: ignore[arg-type,return-value]
                     state_factory=lambda _settings: make_state(),
                     sync_on_start=False, slot_wait_seconds=0.2)
    await bot._async_setup_hook()  # binds the bot to the running loop, as `async with` would
    if load:
        await bot.setup_hook()
    else:
        await bot.load_engine()
    bot._connection.user = make_user(BOT_USER_ID, bot=True)  # type: ignore[assignment]
    return bot


def make_user(user_id: int = 1, bot: bool = False, roles: Sequence[int] = ()) -> MagicMock:
    """A guild member."""
    member = MagicMock(spec=discord.Member)
    member.id = user_id
    member.bot = bot
    member.roles = [MagicMock(spec=discord.Role, id=role) for role in roles]
    member.mention = f"<@{user_id}>"
    return member


def make_interaction(
    bot: ArticleBot,
    user_id: int = 1,
    guild: bool = True,
    permissions: discord.Permissions | None = None,
    roles: Sequence[int] = (),
    events: list[str] | None = None,
) -> MagicMock:
    """A slash-command interaction whose response tracks `is_done` like the real one."""
    events = events if events is not None else []
    state = {"done": False}

    def mark(name: str) -> Any:
        def effect(*args: Any, **kwargs: Any) -> None:
            events.append(name)
            state["done"] = True
        return effect

    interaction = MagicMock(spec=discord.Interaction)
    interaction.client = bot
    interaction.user = make_user(user_id, roles=roles)
    interaction.guild = MagicMock(spec=discord.Guild, id=42) if guild else None
    interaction.permissions = permissions or discord.Permissions.none()
    interaction.command = None
    interaction.channel = MagicMock(spec=discord.TextChannel, id=7)
    interaction.channel_id = 7 if guild else 8
    interaction.message = None
    interaction.type = discord.InteractionType.application_command

    response = MagicMock(spec=discord.InteractionResponse)
    response.is_done.side_effect = lambda: state["done"]
    response.defer = AsyncMock(side_effect=mark("defer"))
    response.send_message = AsyncMock(side_effect=mark("send_message"))
    response.edit_message = AsyncMock(side_effect=mark("edit_message"))
    interaction.response = response

    followup = MagicMock(spec=discord.Webhook)
    followup.send = AsyncMock(side_effect=lambda *a, **k: events.append("followup"))
    interaction.followup = followup
    interaction.edit_original_response = AsyncMock()
    interaction.events = events
    return interaction


def http_error(status: int, message: str = "error") -> discord.HTTPException:
    """An HTTPException as discord.py raises it, without a network."""
    response = MagicMock()
    response.status = status
    response.reason = message
    cls = {403: discord.Forbidden, 404: discord.NotFound}.get(status, discord.HTTPException)
    return cls(response, {"message": message, "code": 0})
