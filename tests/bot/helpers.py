"""Offline stand-ins for the engine and for discord.py objects (spec'd mocks)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord

from bot.client import ArticleBot
from index.config import Settings
from index.engine import ReindexInProgressError
from index.models import (
    Answer,
    ArticleDetail,
    ArticleHit,
    ArticleInfo,
    Coverage,
    Follow,
    IndexStats,
    IngestReport,
    Progress,
    Quote,
    SearchFilters,
    Story,
)

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
        n_chunks=3,
    )


def make_answer(
    question: str = "What happened?",
    texts: Sequence[str] = ("The river rose by two metres.",),
    answered: bool = True,
    article: ArticleInfo | None = None,
    note: str = "",
) -> Answer:
    """A canned answer with one quote per text."""
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
        note=note,
    )


class FakeEngine:
    """Implements the Engine methods the bot calls, with canned results and a call log."""

    def __init__(self, answer: Answer | None = None, n_articles: int = 23) -> None:
        self.answer = answer or make_answer()
        self.articles = [make_article(n) for n in range(1, n_articles + 1)]
        self.calls: list[tuple[Any, ...]] = []
        self.events: list[str] = []
        self.votes: dict[tuple[str, tuple[int, ...], str], int] = {}
        self.reindex_gate: threading.Event | None = None
        self.reindex_started = threading.Event()
        self.reindex_error: Exception | None = None
        self._write_lock = threading.Lock()
        self.closed = False
        self.timeline_quotes: list[Quote] = []
        self.stories: list[Story] = []
        self.follow_table: dict[int, Follow] = {}
        self.removed_follows = 0
        self.new_article_ids: list[str] = []

    def ask(
        self, question: str, filters: SearchFilters | None = None, *, as_of: date | None = None
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
        topic = " ".join(topic.split())
        for follow in self.follow_table.values():
            if follow.channel_id == channel_id and follow.topic == topic:
                return follow
        follow = Follow(len(self.follow_table) + 1 + self.removed_follows, guild_id,
                        channel_id, user_id, topic)
        self.follow_table[follow.id] = follow
        return follow

    def remove_follow(self, follow_id: int) -> bool:
        self.events.append("remove_follow")
        if self.follow_table.pop(follow_id, None) is None:
            return False
        self.removed_follows += 1
        return True

    def follows(
        self, *, guild_id: int | None = None, channel_id: int | None = None
    ) -> list[Follow]:
        self.events.append("follows")
        return [f for f in self.follow_table.values()
                if (guild_id is None or f.guild_id == guild_id)
                and (channel_id is None or f.channel_id == channel_id)]

    def follow_matches(self, article_ids: Sequence[str]) -> list[tuple[Follow, list[ArticleHit]]]:
        self.calls.append(("follow_matches", tuple(article_ids)))
        hits = [ArticleHit(a, 0.9, 1, "passage") for a in self.articles if a.id in article_ids]
        return [(follow, hits) for follow in self.follow_table.values()]

    def recent_articles(
        self, limit: int = 10, offset: int = 0, source: str | None = None
    ) -> list[ArticleInfo]:
        self.calls.append(("recent_articles", limit, offset, source))
        return self.articles[offset:offset + limit]

    def count_articles(self, source: str | None = None) -> int:
        return len(self.articles)

    def article(self, id_or_title: str) -> ArticleDetail | None:
        found = [a for a in self.articles if id_or_title in (a.id, a.title)]
        return ArticleDetail(found[0], "It began on a Monday.") if found else None

    def search_titles(self, text: str, limit: int = 25) -> list[ArticleInfo]:
        return [a for a in self.articles if text.lower() in a.title.lower()][:limit]

    def sources(self) -> list[str]:
        self.calls.append(("sources",))
        return ["Daily Planet", "Gotham Gazette", "The Bugle"]

    def coverage(self, filters: SearchFilters | None = None) -> Coverage:
        return Coverage(len(self.articles), date(2023, 1, 1), date(2023, 1, 28))

    def stats(self) -> IndexStats:
        return IndexStats(
            n_articles=len(self.articles), n_chunks=70, sources=(("Daily Planet", 23),),
            first=date(2023, 1, 1), last=date(2023, 1, 23), model="all-MiniLM-L6-v2", dim=384,
            index_type="flat", index_bytes=123_456, generation="g000002",
            built_at="2023-02-01T10:00:00", build_seconds=12.5,
        )

    def reindex(self, progress: Any = None) -> IngestReport:
        if not self._write_lock.acquire(blocking=False):
            raise ReindexInProgressError("a reindex is already running")
        try:
            self.reindex_started.set()
            if progress:
                progress(Progress("embedding", 5, 10))
            if self.reindex_gate is not None:
                self.reindex_gate.wait(timeout=10)
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
        self.votes[(question, tuple(chunk_ids), user_hash)] = vote

    def feedback_counts(self) -> dict[str, int]:
        values = list(self.votes.values())
        return {"up": values.count(1), "down": values.count(-1)}

    def close(self) -> None:
        self.closed = True


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings that read no environment or .env file."""
    return Settings(_env_file=None, index_dir=tmp_path / "index", **overrides)


async def make_bot(
    tmp_path: Path, engine: FakeEngine | None = None, load: bool = True, **overrides: Any
) -> ArticleBot:
    """A bot with a fake engine and (optionally) every cog loaded; never logs in."""
    fake = engine or FakeEngine()
    bot = ArticleBot(make_settings(tmp_path, **overrides), lambda _settings: fake,  # type: ignore[arg-type,return-value]
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
