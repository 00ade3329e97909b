"""/ask, questions by message, cooldown, length and concurrency limits."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest
from helpers import (
    BOT_USER_ID,
    FakeEngine,
    MemoryState,
    make_answer,
    make_bot,
    make_interaction,
    make_user,
)

from bot import guards
from bot.errors import BadInput, Busy, OnCooldown, report_error
from bot.exts.ask import Ask, build_filters, strip_mentions
from bot.feedback import VoteButton
from bot.guards import UserCooldown, clean_question, parse_day
from index.models import SearchFilters
from index.store import StoreError


async def test_ask_defers_before_the_engine_and_mentions_nobody(tmp_path: Path) -> None:
    engine = FakeEngine(make_answer(question="Who won? @everyone"))
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("Ask")
    interaction = make_interaction(bot, events=engine.events)

    await cog.ask.callback(cog, interaction, "Who won? @everyone", "Daily Planet", "2023-01-02")

    assert engine.events == ["defer", "ask", "followup"]
    interaction.response.defer.assert_awaited_once_with(thinking=True)
    _, question, filters = engine.calls[-1]
    assert question == "Who won? @everyone"
    assert filters == SearchFilters(sources=("Daily Planet",), since=date(2023, 1, 2))
    kwargs = interaction.followup.send.await_args.kwargs
    assert kwargs["allowed_mentions"].to_dict() == discord.AllowedMentions.none().to_dict()
    assert kwargs["allowed_mentions"].to_dict()["parse"] == []
    assert kwargs["suppress_embeds"] is True
    assert [type(item) for item in kwargs["view"].children] == [VoteButton, VoteButton]
    assert "@everyone" not in interaction.followup.send.await_args.args[0]


async def test_unanswered_question_gets_no_vote_buttons(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path, FakeEngine(make_answer(answered=False)))
    cog = bot.get_cog("Ask")
    interaction = make_interaction(bot)
    await cog.ask.callback(cog, interaction, "Anything?")
    assert "view" not in interaction.followup.send.await_args.kwargs
    assert "No article" in interaction.followup.send.await_args.args[0]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"question": "   "}, BadInput),
        ({"question": "x" * 501}, BadInput),
        ({"question": "ok", "since": "not a date at all"}, BadInput),
        ({"question": "ok", "since": "2023-05-01", "until": "2023-01-01"}, BadInput),
    ],
)
async def test_bad_input_is_refused_ephemerally_before_defer(
    tmp_path: Path, options: dict[str, str], error: type[Exception]
) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("Ask")
    interaction = make_interaction(bot, events=engine.events)
    with pytest.raises(error) as raised:
        await cog.ask.callback(cog, interaction, **options)
    assert engine.events == []  # neither deferred nor asked
    await report_error(interaction, raised.value)
    interaction.response.send_message.assert_awaited_once()
    assert interaction.response.send_message.await_args.kwargs["ephemeral"] is True


async def test_cooldown_applies_per_user(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path, ask_cooldown_rate=2, ask_cooldown_seconds=60)
    cog = bot.get_cog("Ask")
    for _ in range(2):
        await cog.ask.callback(cog, make_interaction(bot, user_id=1), "q")
    with pytest.raises(OnCooldown):
        await cog.ask.callback(cog, make_interaction(bot, user_id=1), "q")
    await cog.ask.callback(cog, make_interaction(bot, user_id=2), "q")


async def test_cooldown_with_a_fake_clock() -> None:
    now = [1000.0]
    state = MemoryState()

    async def take(bucket: str, rate: int, per: float, at: float) -> float | None:
        return state.take_token(bucket, rate, per, at)

    cooldown = UserCooldown(rate=2, per=10, take=take, clock=lambda: now[0])
    assert await cooldown.retry_after(1) is None
    assert await cooldown.retry_after(1) is None
    wait = await cooldown.retry_after(1)
    assert wait == pytest.approx(10)
    now[0] += 4
    assert await cooldown.retry_after(1) == pytest.approx(6)
    assert await cooldown.retry_after(2) is None
    now[0] += 6.5
    assert await cooldown.retry_after(1) is None
    with pytest.raises(OnCooldown, match="Try again in"):
        await cooldown.check(1)
        await cooldown.check(1)


async def test_zero_window_means_no_cooldown() -> None:
    async def take(bucket: str, rate: int, per: float, at: float) -> float | None:
        raise AssertionError("no window, no store")

    cooldown = UserCooldown(rate=1, per=0, take=take, clock=lambda: 5.0)
    assert all([await cooldown.retry_after(1) is None for _ in range(10)])


async def test_a_failing_or_slow_state_store_lets_questions_through() -> None:
    async def broken(bucket: str, rate: int, per: float, at: float) -> float | None:
        raise StoreError("the index database at postgresql://db:5432/x is unavailable")

    async def slow(bucket: str, rate: int, per: float, at: float) -> float | None:
        await asyncio.sleep(30)
        return 5.0

    for take in (broken, slow):
        cooldown = UserCooldown(rate=1, per=60, take=take)
        cooldown_wait = guards.COOLDOWN_WAIT_SECONDS
        guards.COOLDOWN_WAIT_SECONDS = 0.05
        try:
            assert await cooldown.retry_after(1) is None
        finally:
            guards.COOLDOWN_WAIT_SECONDS = cooldown_wait


def test_question_length_limit() -> None:
    assert clean_question("  hi  ", 10) == "hi"
    with pytest.raises(BadInput, match="under 10"):
        clean_question("x" * 11, 10)


async def test_concurrency_cap_says_busy(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path, max_concurrent_queries=1)
    await bot.query_slots.acquire()  # another question holds the only slot
    cog = bot.get_cog("Ask")
    interaction = make_interaction(bot)
    with pytest.raises(Busy):
        await cog.ask.callback(cog, interaction, "q")
    bot.query_slots.release()
    await report_error(interaction, Busy())
    assert "busy" in interaction.followup.send.await_args.args[0]
    assert interaction.followup.send.await_args.kwargs["ephemeral"] is True


async def test_run_engine_caps_parallel_calls(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path, max_concurrent_queries=2)
    bot.slot_wait_seconds = 5
    running = []
    peak = []

    def work() -> None:
        running.append(1)
        peak.append(len(running))
        import time
        time.sleep(0.05)
        running.pop()

    await asyncio.gather(*(bot.run_engine(work) for _ in range(6)))
    assert max(peak) <= 2


def test_parse_day_forms() -> None:
    today = date(2023, 3, 15)
    assert parse_day("2023-01-05", today) == date(2023, 1, 5)
    assert parse_day("3 March 2023", today) == date(2023, 3, 3)
    assert parse_day("March 2022", today) == date(2022, 3, 1)
    assert parse_day("yesterday", today) == date(2023, 3, 14)
    assert parse_day("2 weeks ago", today) == date(2023, 3, 1)
    with pytest.raises(BadInput, match="YYYY-MM-DD"):
        parse_day("blorp", today)


def test_build_filters() -> None:
    assert build_filters(None, None, None) == SearchFilters()
    assert build_filters(" X ", "", " ").sources == ("X",)


async def test_source_autocomplete_is_cached_and_refreshed(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("Ask")
    interaction = make_interaction(bot)
    choices = await cog.source_autocomplete(interaction, "gaz")
    assert [choice.value for choice in choices] == ["Gotham Gazette"]
    await cog.source_autocomplete(interaction, "")
    assert engine.calls.count(("sources",)) == 1
    await cog.on_index_updated()
    await cog.source_autocomplete(interaction, "")
    assert engine.calls.count(("sources",)) == 2


# --- questions by message


def make_message(
    bot: object, content: str, *, mention: bool = True, author_bot: bool = False,
    guild: bool = True, channel_id: int = 7, reply_to_bot: bool = False,
) -> MagicMock:
    """A message in a text channel."""
    message = MagicMock(spec=discord.Message)
    message.content = content
    message.author = make_user(5, bot=author_bot)
    message.mentions = [make_user(BOT_USER_ID, bot=True)] if mention else []
    message.guild = MagicMock(spec=discord.Guild) if guild else None
    channel = MagicMock(spec=discord.TextChannel if guild else discord.DMChannel)
    channel.id = channel_id
    message.channel = channel
    if reply_to_bot:
        resolved = MagicMock(spec=discord.Message)
        resolved.author = make_user(BOT_USER_ID, bot=True)
        message.reference = MagicMock(spec=discord.MessageReference, resolved=resolved)
    else:
        message.reference = None
    thread = MagicMock(spec=discord.Thread)
    thread.send = AsyncMock()
    message.create_thread = AsyncMock(return_value=thread)
    message.reply = AsyncMock()
    return message


async def test_mention_is_answered_in_a_new_thread(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog: Ask = bot.get_cog("Ask")  # type: ignore[assignment]
    message = make_message(bot, f"<@{BOT_USER_ID}> what happened to the river?")
    await cog.on_message(message)
    assert engine.calls[-1][1] == "what happened to the river?"
    message.create_thread.assert_awaited_once()
    assert message.create_thread.await_args.kwargs["name"] == "what happened to the river?"
    thread = message.create_thread.return_value
    sent = thread.send.await_args
    assert sent.kwargs["allowed_mentions"].to_dict()["parse"] == []
    assert "> The river rose" in sent.args[0]


async def test_reply_to_the_bot_is_a_question(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog: Ask = bot.get_cog("Ask")  # type: ignore[assignment]
    await cog.on_message(make_message(bot, "and after that?", mention=False, reply_to_bot=True))
    assert engine.calls[-1][1] == "and after that?"


async def test_messages_not_for_the_bot_are_ignored(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog: Ask = bot.get_cog("Ask")  # type: ignore[assignment]
    await cog.on_message(make_message(bot, "chatting", mention=False))
    await cog.on_message(make_message(bot, f"<@{BOT_USER_ID}> hi", author_bot=True))
    assert engine.calls == []


async def test_ask_channel_messages_are_questions(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine, ask_channel_ids=[77])
    assert bot.intents.message_content is True
    cog: Ask = bot.get_cog("Ask")  # type: ignore[assignment]
    await cog.on_message(make_message(bot, "who won?", mention=False, channel_id=77))
    assert engine.calls[-1][1] == "who won?"


async def test_message_limits_get_a_short_reply(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine, max_question_chars=10)
    cog: Ask = bot.get_cog("Ask")  # type: ignore[assignment]
    message = make_message(bot, f"<@{BOT_USER_ID}> " + "x" * 50)
    await cog.on_message(message)
    assert engine.calls == []
    assert "under 10" in message.reply.await_args.args[0]
    assert message.reply.await_args.kwargs["mention_author"] is False


async def test_dm_is_answered_in_place(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog: Ask = bot.get_cog("Ask")  # type: ignore[assignment]
    message = make_message(bot, "what happened?", mention=False, guild=False)
    message.channel.send = AsyncMock()
    await cog.on_message(message)
    message.create_thread.assert_not_awaited()
    message.channel.send.assert_awaited_once()


def test_strip_mentions() -> None:
    assert strip_mentions(f"<@{BOT_USER_ID}> hi <@!{BOT_USER_ID}>", BOT_USER_ID) == "hi"


def test_intents_without_follow_ups_or_ask_channels_are_not_privileged(tmp_path: Path) -> None:
    from helpers import make_settings

    from bot.client import make_intents

    intents = make_intents(make_settings(tmp_path, follow_ups=False))
    assert not (intents.message_content or intents.members or intents.presences)
