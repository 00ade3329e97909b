"""The tree-wide error handler, the logging redaction, and the vote buttons."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from pathlib import Path

import discord
import pytest
from helpers import FakeEngine, MemoryState, http_error, make_bot, make_interaction, make_state

from bot.errors import GENERIC_FAILURE, SEND_FALLBACK, OnCooldown, report_error
from bot.feedback import SALT_KEY, VoteButton, load_salt, record_vote, user_hash
from bot.log import FILTERED_LOGGERS, REDACTED, RedactingFilter, setup_logging

FAKE_TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789AB"


async def test_unexpected_error_is_logged_and_answered_politely(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(tmp_path)
    interaction = make_interaction(bot)
    await interaction.response.defer(thinking=True)
    error = discord.app_commands.CommandInvokeError(
        bot.tree.get_command("ask"), ZeroDivisionError("boom")
    )
    with caplog.at_level(logging.ERROR):
        await bot.tree.on_error(interaction, error)
    sent = interaction.followup.send.await_args
    assert sent.args[0] == GENERIC_FAILURE and sent.kwargs["ephemeral"] is True
    assert "ZeroDivisionError" in caplog.text


async def test_expected_refusal_uses_response_when_not_done(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path)
    interaction = make_interaction(bot)
    await report_error(interaction, OnCooldown(12.2))
    sent = interaction.response.send_message.await_args
    assert "Try again in 12s" in sent.args[0] and sent.kwargs["ephemeral"] is True
    interaction.followup.send.assert_not_awaited()


@pytest.mark.parametrize("status", [400, 403, 429, 500])
async def test_failed_send_logs_once_and_tries_one_fallback(
    tmp_path: Path, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(tmp_path)
    interaction = make_interaction(bot)
    await interaction.response.defer()
    interaction.followup.send.side_effect = http_error(status)
    with caplog.at_level(logging.WARNING):
        await report_error(interaction, OnCooldown(3))
    contents = [call.args[0] for call in interaction.followup.send.await_args_list]
    assert contents[1:] == [SEND_FALLBACK]
    assert len(contents) == 2
    assert caplog.text.count("could not send a reply") == 1


async def test_expired_interaction_is_not_retried(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path)
    interaction = make_interaction(bot)
    interaction.response.send_message.side_effect = http_error(404, "Unknown interaction")
    await report_error(interaction, OnCooldown(3))
    assert interaction.response.send_message.await_count == 1


def test_redacting_filter_cleans_messages_args_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(["s3cret-value"]))
    logger = logging.getLogger("discord.http.test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token %s and s3cret-value", FAKE_TOKEN)
        try:
            raise RuntimeError(f"Authorization: Bot {FAKE_TOKEN}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert FAKE_TOKEN not in output and "s3cret-value" not in output
    assert output.count(REDACTED) == 3


async def test_votes_are_pseudonymous_and_replaceable(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    key = bot.answers.add("What happened?", [100, 101])
    up, down = VoteButton("up", key), VoteButton("down", key)
    assert re.fullmatch(r"articlebot:vote:up:[0-9a-f]{16}", up.item.custom_id)

    interaction = make_interaction(bot, user_id=555)
    await up.callback(interaction)
    [(question, chunks, voter)] = engine.votes
    assert (question, chunks) == ("What happened?", (100, 101))
    assert voter == user_hash(await bot.feedback_salt(), 555) and "555" not in voter
    assert "Thanks" in interaction.response.send_message.await_args.args[0]

    again = make_interaction(bot, user_id=555)
    await up.callback(again)
    assert "already recorded" in again.response.send_message.await_args.args[0]

    change = make_interaction(bot, user_id=555)
    await down.callback(change)
    assert list(engine.votes.values()) == [-1]
    assert "Changed" in change.response.send_message.await_args.args[0]
    assert change.response.send_message.await_args.kwargs["ephemeral"] is True


async def test_vote_on_a_forgotten_answer_is_answered(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path)
    interaction = make_interaction(bot)
    await VoteButton("up", "0" * 16).callback(interaction)
    assert "too old" in interaction.response.send_message.await_args.args[0]


def test_salt_is_created_once_in_the_state_store(tmp_path: Path) -> None:
    memory = MemoryState()
    state = make_state(memory)
    salt = load_salt(state, tmp_path / "index")
    assert load_salt(state, tmp_path / "index") == salt and len(salt) == 32
    assert memory.values == {SALT_KEY: salt.hex()}
    assert state.set_value.call_count == 1
    assert not (tmp_path / "index").exists()  # nothing written beside the index any more


def test_an_old_salt_file_is_adopted_so_old_votes_still_match(tmp_path: Path) -> None:
    (tmp_path / "feedback.salt").write_text("ab" * 32, encoding="ascii")
    memory = MemoryState()
    assert load_salt(make_state(memory), tmp_path) == bytes.fromhex("ab" * 32)
    assert memory.values[SALT_KEY] == "ab" * 32
    (tmp_path / "feedback.salt").write_text("cd" * 32, encoding="ascii")
    assert load_salt(make_state(memory), tmp_path) == bytes.fromhex("ab" * 32)  # adopted once


def test_an_unreadable_stored_salt_is_replaced(tmp_path: Path) -> None:
    memory = MemoryState()
    memory.values[SALT_KEY] = "not hex"
    salt = load_salt(make_state(memory), None)
    assert len(salt) == 32 and memory.values[SALT_KEY] == salt.hex()


async def test_the_bot_reads_the_salt_off_the_loop_once(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    first, second = await asyncio.gather(bot.feedback_salt(), bot.feedback_salt())
    assert first == second == bytes.fromhex(engine.memory.values[SALT_KEY])
    assert engine.state_store.get_value.call_count == 2  # one read, one read-back after creating


async def test_record_vote_needs_no_bot(tmp_path: Path) -> None:
    """The vote logic takes what it needs as arguments (feedback.py does not know the bot)."""
    from bot.feedback import AnswerLog

    bot = await make_bot(tmp_path)
    answers = AnswerLog()
    key = answers.add("Why?", [7])
    stored: list[tuple[object, ...]] = []

    async def store(*args: object) -> None:
        stored.append(args)

    interaction = make_interaction(bot, user_id=9)
    await record_vote(answers, b"salt", store, interaction, key, -1)
    assert stored == [("Why?", (7,), -1, user_hash(b"salt", 9))]


def test_setup_logging_redacts_records_from_every_logger() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)]
    try:
        setup_logging("DEBUG", secrets=[FAKE_TOKEN])
        logging.getLogger("discord.gateway.sub").debug("IDENTIFY %s", {"token": FAKE_TOKEN})
        logging.getLogger("some.library").info("Bot %s", FAKE_TOKEN[::-1][::-1])
    finally:
        root.handlers, root.level = saved_handlers, saved_level
        for name in FILTERED_LOGGERS:
            logging.getLogger(name).filters.clear()
    output = stream.getvalue()
    assert FAKE_TOKEN not in output and output.count(REDACTED) == 2


async def test_autocomplete_errors_are_only_logged(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path)
    interaction = make_interaction(bot)
    interaction.type = discord.InteractionType.autocomplete
    await report_error(interaction, OnCooldown(3))
    interaction.response.send_message.assert_not_awaited()
