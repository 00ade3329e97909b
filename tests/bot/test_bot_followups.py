"""Follow-ups: the intent they need (and what happens when Discord refuses it), which messages
are questions, the conversation that goes with a follow-up, and the in-channel fallback."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest
from helpers import (
    BOT_USER_ID,
    FakeEngine,
    http_error,
    make_answer,
    make_bot,
    make_settings,
    make_user,
)

from bot import run
from bot.client import ArticleBot, make_intents
from bot.exts.ask import Ask, echoed_question, looks_like_question
from bot.render.answer import render_answer
from index.followup import Conversation
from index.models import Answer, SearchFilters

TOKEN = "MTA5.GAbCdE.abc"
ASK_CHANNEL = 77
THREAD_ID = 555


class RecordingEngine(FakeEngine):
    """FakeEngine that also records the conversation each question came with."""

    def __init__(self, answer: Answer | None = None) -> None:
        super().__init__(answer)
        self.contexts: list[Any] = []

    def ask(
        self, question: str, filters: SearchFilters | None = None, *, as_of: date | None = None,
        context: Any = None,
    ) -> Answer:
        self.contexts.append(context)
        return super().ask(question, filters, as_of=as_of, context=context)


class AsyncIter:
    """What `channel.history()` returns: an async iterator over messages."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = iter(items)

    def __aiter__(self) -> AsyncIter:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None


def sent_message(message_id: int) -> MagicMock:
    """A message the bot sent."""
    message = MagicMock(spec=discord.Message)
    message.id = message_id
    return message


def make_thread(thread_id: int = THREAD_ID, owner_id: int = BOT_USER_ID,
                parent_id: int = 7) -> MagicMock:
    """A thread, by default the bot's own; what it sends gets ids 9001, 9002, …"""
    thread = MagicMock(spec=discord.Thread)
    thread.id = thread_id
    thread.owner_id = owner_id
    thread.parent_id = parent_id
    ids = iter(range(9001, 9100))
    thread.send = AsyncMock(side_effect=lambda *a, **k: sent_message(next(ids)))
    thread.history = MagicMock(return_value=AsyncIter([]))
    return thread


def make_text_channel(channel_id: int = 7) -> MagicMock:
    """A server text channel; what it sends gets ids 8001, 8002, …"""
    channel = MagicMock(spec=discord.TextChannel)
    channel.id = channel_id
    ids = iter(range(8001, 8100))
    channel.send = AsyncMock(side_effect=lambda *a, **k: sent_message(next(ids)))
    return channel


def make_message(
    channel: Any, content: str, *, mention: bool = False, replies_to: Any = None,
    message_id: int = 4242,
) -> MagicMock:
    """A member's message in a channel or thread, maybe a reply."""
    message = MagicMock(spec=discord.Message)
    message.id = message_id
    message.content = content
    message.author = make_user(5)
    message.mentions = [make_user(BOT_USER_ID, bot=True)] if mention else []
    message.guild = MagicMock(spec=discord.Guild)
    message.channel = channel
    message.reference = (MagicMock(spec=discord.MessageReference, resolved=replies_to)
                         if replies_to is not None else None)
    message.create_thread = AsyncMock(return_value=make_thread(thread_id=message_id))
    message.reply = AsyncMock()
    message.to_reference = MagicMock(return_value=MagicMock(spec=discord.MessageReference))
    return message


def bot_answer(message_id: int, question: str) -> MagicMock:
    """One of the bot's answers, as it renders them."""
    message = sent_message(message_id)
    message.author = make_user(BOT_USER_ID, bot=True)
    message.content = render_answer(make_answer(question=question), {})[0]
    return message


async def ask_cog(tmp_path: Path, engine: FakeEngine, **overrides: Any) -> Ask:
    bot = await make_bot(tmp_path, engine, **overrides)
    return bot.get_cog("Ask")  # type: ignore[return-value]


# --- the intent


def test_follow_ups_ask_for_message_content_by_default(tmp_path: Path) -> None:
    assert make_intents(make_settings(tmp_path)).message_content is True
    assert make_intents(make_settings(tmp_path, follow_ups=False)).message_content is False
    with_channels = make_settings(tmp_path, follow_ups=False, ask_channel_ids=[ASK_CHANNEL])
    assert make_intents(with_channels).message_content is True


def test_follow_ups_setting_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTICLEBOT_FOLLOW_UPS", "false")
    assert make_settings(tmp_path).follow_ups is False


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """ArticleBot.start replaced: the first start is refused with close code 4014 (when it
    asks for Message Content), later ones run; records each start's message-content intent."""
    seen: list[bool] = []

    async def start(self: ArticleBot, token: str, *, reconnect: bool = True) -> None:
        seen.append(self.intents.message_content)
        if self.intents.message_content:
            raise discord.PrivilegedIntentsRequired(0)

    monkeypatch.setattr(ArticleBot, "start", start)
    monkeypatch.setattr(run, "setup_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(sys, "setswitchinterval", lambda interval: None)
    return seen


def test_a_refused_intent_costs_only_follow_ups_with_one_warning(
    tmp_path: Path, starts: list[bool], caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(tmp_path, discord_token=TOKEN)
    settings.index_dir.mkdir()
    with caplog.at_level(logging.WARNING):
        assert run.serve(settings) == run.EXIT_OK
    assert starts == [True, False]  # refused, then connected again without the intent
    # discord.py's own (no voice support) aside
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and not r.name.startswith("discord")]
    assert warnings == [run.FOLLOW_UPS_REFUSED]
    assert "ARTICLEBOT_FOLLOW_UPS=false" in warnings[0]
    assert capsys.readouterr().err == ""


def test_a_refused_intent_with_ask_channels_stops_with_one_line(
    tmp_path: Path, starts: list[bool], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, discord_token=TOKEN, ask_channel_ids=[ASK_CHANNEL])
    settings.index_dir.mkdir()
    assert run.serve(settings) == run.EXIT_CONFIG
    assert starts == [True]  # no second try: ask-channels cannot work without the intent
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ask-channels need the Message Content intent" in err


# --- which messages are questions


@pytest.mark.parametrize(
    ("text", "question"),
    [("who won?", True), ("Really?!", True), ("(why?)", True), ("what happened to the river", True),
     ("Did the bridge reopen", True), ("thanks!", False), ("lol", False),
     ("good morning everyone", False), ("I think so.", False), ("", False)],
)
def test_looks_like_question(text: str, question: bool) -> None:
    assert looks_like_question(text) is question


async def test_ask_channel_small_talk_gets_nothing(tmp_path: Path) -> None:
    engine = FakeEngine()
    cog = await ask_cog(tmp_path, engine, ask_channel_ids=[ASK_CHANNEL])
    channel = make_text_channel(ASK_CHANNEL)
    small_talk = make_message(channel, "thanks, that was great")
    assert cog.question_in(small_talk) is None
    await cog.on_message(small_talk)
    assert engine.calls == []
    small_talk.reply.assert_not_awaited()
    small_talk.create_thread.assert_not_awaited()
    assert cog.question_in(make_message(channel, "How did the vote go")) == "How did the vote go"
    # Addressed by a mention, a message is a question even without a question mark.
    assert cog.question_in(make_message(channel, f"<@{BOT_USER_ID}> river", mention=True)) == (
        "river")


async def test_messages_in_the_bots_thread_and_replies_are_follow_ups(tmp_path: Path) -> None:
    cog = await ask_cog(tmp_path, FakeEngine())
    own = make_thread()
    assert cog.question_in(make_message(own, "thanks")) == "thanks"  # no mention needed
    assert cog.conversation_key(make_message(own, "Why?")) == THREAD_ID
    answer = bot_answer(9001, "Who won?")
    reply = make_message(make_text_channel(), "And after that?", replies_to=answer)
    assert cog.question_in(reply) == "And after that?"
    assert cog.conversation_key(reply) == 9001
    others = make_thread(owner_id=12345)
    assert cog.question_in(make_message(others, "Why?")) is None
    assert cog.conversation_key(make_message(make_text_channel(), "Why?")) is None


# --- the conversation goes with the follow-up


async def test_a_follow_up_in_the_thread_is_asked_with_the_conversation(tmp_path: Path) -> None:
    engine = RecordingEngine()
    cog = await ask_cog(tmp_path, engine)
    first = make_message(make_text_channel(), f"<@{BOT_USER_ID}> What happened to the river?",
                         mention=True, message_id=THREAD_ID)
    await cog.on_message(first)
    assert engine.contexts == [None]  # a new question has no conversation
    thread = first.create_thread.return_value
    await cog.on_message(make_message(thread, "Why?", message_id=2))
    quoted = tuple(quote.article.id for quote in engine.answer.quotes)
    assert engine.contexts[-1] == Conversation(("What happened to the river?",), quoted)
    assert engine.calls[-1][1] == "Why?"
    await cog.on_message(make_message(thread, "And in March?", message_id=3))
    assert engine.contexts[-1].questions == ("What happened to the river?", "Why?")


async def test_a_reply_to_an_answer_in_the_channel_is_asked_with_its_conversation(
    tmp_path: Path,
) -> None:
    engine = RecordingEngine()
    cog = await ask_cog(tmp_path, engine)
    channel = make_text_channel()
    first = make_message(channel, f"<@{BOT_USER_ID}> Who won the election?", mention=True)
    first.create_thread.side_effect = http_error(403, "Missing Permissions")
    await cog.on_message(first)
    answer = bot_answer(8001, "Who won the election?")  # the id the channel gave the answer
    await cog.on_message(make_message(channel, "By how much?", replies_to=answer))
    assert engine.contexts[-1] is not None
    assert engine.contexts[-1].questions == ("Who won the election?",)
    assert engine.contexts[-1].article_ids == ("a0001",)


async def test_a_forgotten_thread_is_restored_from_the_bots_answers(tmp_path: Path) -> None:
    engine = RecordingEngine()
    cog = await ask_cog(tmp_path, engine)  # a fresh bot: a restart forgot every thread
    thread = make_thread()
    chatter = make_message(thread, "nice", message_id=10)
    # Newest first, as Discord gives history.
    thread.history.return_value = AsyncIter([
        bot_answer(31, "When was power restored?"), chatter,
        bot_answer(30, "How many homes lost power in Storm Odile?"),
    ])
    await cog.on_message(make_message(thread, "Why?", message_id=40))
    assert engine.contexts[-1] == Conversation(
        ("How many homes lost power in Storm Odile?", "When was power restored?"))
    assert thread.history.call_args.kwargs["limit"] > 0


async def test_a_thread_whose_history_cannot_be_read_is_answered_without_context(
    tmp_path: Path,
) -> None:
    engine = RecordingEngine()
    cog = await ask_cog(tmp_path, engine)
    thread = make_thread()
    thread.history.side_effect = http_error(403, "Missing Access")
    await cog.on_message(make_message(thread, "Why?"))
    assert engine.contexts == [None]
    thread.send.assert_awaited()


def test_echoed_question_reads_the_bots_own_answers() -> None:
    content = render_answer(make_answer(question="Who won? *really* <@1>"), {})[0]
    assert "won" in echoed_question(content) and "really" in echoed_question(content)
    assert echoed_question("Too many questions. Try again in 5 seconds.") == ""


# --- no thread: a reply in the channel


async def test_without_a_thread_the_answer_replies_to_the_question(tmp_path: Path) -> None:
    long_quotes = tuple(f"Passage {n} " + "word " * 380 for n in range(3))
    engine = FakeEngine(make_answer(texts=long_quotes))  # several messages
    cog = await ask_cog(tmp_path, engine)
    channel = make_text_channel()
    question = make_message(channel, f"<@{BOT_USER_ID}> what happened?", mention=True)
    question.create_thread.side_effect = http_error(403, "Missing Permissions")
    await cog.on_message(question)
    calls = channel.send.await_args_list
    assert len(calls) > 1
    question.to_reference.assert_called_once_with(fail_if_not_exists=False)
    assert calls[0].kwargs["reference"] is question.to_reference.return_value
    assert all("reference" not in call.kwargs for call in calls[1:])
    for call in calls:
        mentions = call.kwargs["allowed_mentions"].to_dict()
        assert mentions["parse"] == [] and mentions.get("replied_user") is not True
    question.reply.assert_not_awaited()  # not an error reply


async def test_the_conversation_log_is_the_bots_and_survives_a_cog_reload(
    tmp_path: Path,
) -> None:
    engine = RecordingEngine()
    cog = await ask_cog(tmp_path, engine)
    bot = cog.bot
    first = make_message(make_text_channel(), f"<@{BOT_USER_ID}> Who won?", mention=True,
                         message_id=THREAD_ID)
    await cog.on_message(first)
    await bot.reload_extension("bot.exts.ask")
    reloaded: Ask = bot.get_cog("Ask")  # type: ignore[assignment]
    await reloaded.on_message(make_message(first.create_thread.return_value, "Why?"))
    assert engine.contexts[-1] is not None and engine.contexts[-1].questions == ("Who won?",)
    await asyncio.sleep(0)
