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
from bot.exts.ask import Ask, looks_like_question
from bot.render.answer import render_answer
from index.config import Settings
from index.engine import Engine, IndexUnavailableError
from index.followup import Conversation
from index.models import Answer, SearchFilters
from tests.index.conftest import ARTICLES
from tests.index.fakes import HashingEmbedder

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


async def test_after_a_restart_the_thread_goes_on_from_the_state_store(
    tmp_path: Path,
) -> None:
    engine = RecordingEngine()
    cog = await ask_cog(tmp_path, engine)
    first = make_message(make_text_channel(), f"<@{BOT_USER_ID}> What happened to the river?",
                         mention=True, message_id=THREAD_ID)
    await cog.on_message(first)
    thread = first.create_thread.return_value
    await cog.on_message(make_message(thread, "Why?", message_id=2))
    await cog.bot.close()
    # A fresh bot (its ConversationLog empty) over the same state store, as after a restart.
    restarted = RecordingEngine()
    restarted.state_store = engine.state_store
    cog = await ask_cog(tmp_path, restarted)
    assert len(cog.bot.conversations) == 0
    await cog.on_message(make_message(thread, "And in March?", message_id=3))
    quoted = tuple(quote.article.id for quote in engine.answer.quotes)
    assert restarted.contexts == [
        Conversation(("What happened to the river?", "Why?"), quoted)]
    thread.history.assert_not_called()  # nothing reads the bot's own messages back


async def test_a_restart_over_the_same_index_continues_the_thread(tmp_path: Path) -> None:
    """The real engine and its local state store: a new bot, on a new Engine over the same
    index folder, takes up the thread where the old one left it."""
    folder = tmp_path / "articles"
    folder.mkdir()
    for name, text in ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", article_dirs=[folder],
                        model="test-hashing", min_score=0.05, min_answer_score=0.0)
    builder = Engine.open(settings, create=True, embedder=HashingEmbedder())
    builder.reindex()
    builder.close()
    engine = Engine.open(settings, embedder=HashingEmbedder())
    cog = await ask_cog(tmp_path, engine)  # type: ignore[arg-type]
    first = make_message(make_text_channel(), f"<@{BOT_USER_ID}> When did the harbour bridge "
                         "reopen?", mention=True, message_id=THREAD_ID)
    await cog.on_message(first)
    thread = first.create_thread.return_value
    thread.send.assert_awaited()
    await cog.bot.close()  # closes the engine and its store

    cog = await ask_cog(tmp_path, Engine.open(settings, embedder=HashingEmbedder()))  # type: ignore[arg-type]
    follow_up = make_message(thread, "Why?", message_id=2)
    kept = await cog.conversation_for(follow_up)
    assert kept is not None and kept.questions == ("When did the harbour bridge reopen?",)
    assert kept.article_ids  # the articles the first answer quoted
    await cog.on_message(follow_up)
    assert thread.send.await_count >= 2
    await cog.bot.close()


async def test_after_a_restart_a_reply_to_an_answer_goes_on_from_the_state_store(
    tmp_path: Path,
) -> None:
    engine = RecordingEngine()
    cog = await ask_cog(tmp_path, engine)
    channel = make_text_channel()
    first = make_message(channel, f"<@{BOT_USER_ID}> Who won the election?", mention=True)
    first.create_thread.side_effect = http_error(403, "Missing Permissions")
    await cog.on_message(first)
    restarted = RecordingEngine()
    restarted.state_store = engine.state_store
    cog = await ask_cog(tmp_path, restarted)
    answer = bot_answer(8001, "Something else entirely")  # its words are not read
    await cog.on_message(make_message(channel, "By how much?", replies_to=answer))
    assert restarted.contexts == [Conversation(("Who won the election?",), ("a0001",))]


async def test_a_thread_with_no_kept_conversation_is_answered_without_context(
    tmp_path: Path,
) -> None:
    engine = RecordingEngine()
    cog = await ask_cog(tmp_path, engine)
    thread = make_thread()
    await cog.on_message(make_message(thread, "Why?"))
    assert engine.contexts == [None]
    thread.send.assert_awaited()
    thread.history.assert_not_called()


async def test_a_failing_state_store_costs_the_context_not_the_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    engine = RecordingEngine()
    cog = await ask_cog(tmp_path, engine)
    engine.state_store.get_value.side_effect = IndexUnavailableError("the database is down")
    engine.state_store.set_value.side_effect = IndexUnavailableError("the database is down")
    thread = make_thread()
    with caplog.at_level(logging.WARNING, logger="bot.exts.ask"):
        await cog.on_message(make_message(thread, "Why?"))
    assert engine.contexts == [None]
    thread.send.assert_awaited()
    assert "could not read a conversation" in caplog.text
    assert "could not keep a conversation" in caplog.text


def test_a_conversation_survives_its_json_and_a_bad_value_is_none() -> None:
    conversation = Conversation(("Who won? “really”",), ("a1", "a2"))
    assert Conversation.from_json(conversation.to_json()) == conversation
    for bad in (None, "", "not json", "[]", '{"questions": ["q"]}', "{}"):
        assert Conversation.from_json(bad) is None


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
