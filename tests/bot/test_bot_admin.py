"""/reindex: who may run it, one at a time, and questions keep being answered meanwhile."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import discord
import pytest
from helpers import FakeEngine, make_bot, make_interaction

from bot.errors import NotAllowed, friendly_message
from bot.exts.admin import Admin
from bot.guards import admin_check, may_administer
from bot.render.admin import render_ingest_report, render_skipped
from bot.render.text import CONTENT_LIMIT
from index.engine import EngineError
from index.models import LAST_REINDEX_KEY, IngestReport, SkippedItem, SyncOutcome

ARTICLES = "/srv/articlebot/articles"
# How long a test waits for the bot to reach a state (s): far above what any step takes,
# however busy the machine; only a broken bot ever reaches it.
WAIT_SECONDS = 60.0


class SkippingEngine(FakeEngine):
    """A FakeEngine whose reindex could not read some files (their paths are server paths)."""

    def __init__(self, skipped: int) -> None:
        super().__init__()
        self.skipped = [SkippedItem(f"{ARTICLES}/feed-{n}.jsonl", f"cannot read {ARTICLES}/x")
                        for n in range(skipped)]

    def reindex(self, progress: Any = None, *, rebuild: bool = False) -> IngestReport:
        report = super().reindex(progress, rebuild=rebuild)
        return dataclasses.replace(report, skipped=list(self.skipped))


def public_texts(interaction: MagicMock) -> list[str]:
    """Every message a /reindex run showed to the channel (not the ephemeral ones)."""
    texts = []
    for call in interaction.response.send_message.await_args_list:
        if not call.kwargs.get("ephemeral"):
            texts.append(call.args[0] if call.args else call.kwargs["content"])
    texts += [call.kwargs["content"] for call in interaction.edit_original_response.await_args_list]
    texts += [call.args[0] for call in interaction.channel.send.await_args_list]
    for call in interaction.followup.send.await_args_list:
        if not call.kwargs.get("ephemeral"):
            texts.append(call.args[0] if call.args else call.kwargs["content"])
    return texts


def private_texts(interaction: MagicMock) -> list[str]:
    """The ephemeral messages only the admin who ran /reindex saw."""
    calls = [*interaction.response.send_message.await_args_list,
             *interaction.followup.send.await_args_list]
    return [call.args[0] if call.args else call.kwargs["content"]
            for call in calls if call.kwargs.get("ephemeral")]


def test_may_administer(tmp_path: Path) -> None:
    from helpers import make_settings

    settings = make_settings(tmp_path, admin_role_ids=[10], admin_user_ids=[20])
    none = discord.Permissions.none()
    assert may_administer(discord.Permissions(manage_guild=True), [], 1, settings)
    assert may_administer(none, [3, 10], 1, settings)
    assert may_administer(none, [], 20, settings)
    assert not may_administer(none, [3], 1, settings)


async def test_check_refuses_a_non_admin_and_a_dm(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path, admin_role_ids=[10])
    with pytest.raises(NotAllowed) as refused:
        admin_check(make_interaction(bot))
    assert "Manage Server" in friendly_message(refused.value)
    with pytest.raises(discord.app_commands.NoPrivateMessage) as dm:
        admin_check(make_interaction(bot, guild=False, permissions=discord.Permissions.all()))
    assert "server" in friendly_message(dm.value)
    assert admin_check(make_interaction(bot, roles=[10]))
    assert admin_check(make_interaction(bot, permissions=discord.Permissions(manage_guild=True)))


async def test_reindex_command_is_guild_only_with_default_permissions(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path)
    command = bot.tree.get_command("reindex")
    assert command.guild_only
    assert command.default_permissions == discord.Permissions(manage_guild=True)
    assert [check.__name__ for check in command.checks] == ["admin_check"]


async def test_reindex_runs_and_reports(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path)
    cog = Admin(bot, progress_every=0.01)
    interaction = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    updated = []

    async def on_index_updated() -> None:
        updated.append(True)

    bot.add_listener(on_index_updated)
    await cog.reindex.callback(cog, interaction)
    interaction.response.send_message.assert_awaited_once()
    final = interaction.edit_original_response.await_args.kwargs["content"]
    assert final.startswith("Reindex done: added 2")
    await asyncio.sleep(0)  # let the dispatched event run
    assert updated == [True]
    assert not cog.running


async def test_second_reindex_is_refused_and_questions_are_answered_meanwhile(
    tmp_path: Path,
) -> None:
    engine = FakeEngine()
    engine.reindex_gate = threading.Event()
    bot = await make_bot(tmp_path, engine)
    admin = Admin(bot, progress_every=0.01)
    ask = bot.get_cog("Ask")
    first = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    relayed = asyncio.Event()

    async def edit(**kwargs: Any) -> None:
        if "embedding 5/10" in kwargs["content"]:
            relayed.set()

    first.edit_original_response.side_effect = edit
    running = asyncio.create_task(admin.reindex.callback(admin, first))
    assert await asyncio.to_thread(engine.reindex_started.wait, WAIT_SECONDS)

    second = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    await admin.reindex.callback(admin, second)
    refusal = second.response.send_message.await_args
    assert "already running" in refusal.args[0]
    assert refusal.kwargs["ephemeral"] is True

    question = make_interaction(bot, user_id=3)
    await asyncio.wait_for(ask.ask.callback(ask, question, "still there?"), timeout=WAIT_SECONDS)
    assert "The river rose" in question.followup.send.await_args.args[0]
    # Progress is relayed while the rebuild runs (the gate is still shut): wait for it, with a
    # deadline only a broken relay reaches, however busy the machine.
    await asyncio.wait_for(relayed.wait(), timeout=WAIT_SECONDS)
    assert not running.done()

    engine.reindex_gate.set()
    await asyncio.wait_for(running, timeout=WAIT_SECONDS)
    assert first.edit_original_response.await_args.kwargs["content"].startswith("Reindex done")


@pytest.mark.parametrize(("error", "reason"), [
    (EngineError("disk full\nwhile writing"), "disk full while writing"),
    (OSError(28, "No space left on device", "/srv/articlebot/index/g000003/vectors.npy"),
     "No space left on device"),
    (PermissionError(13, "Permission denied", f"{ARTICLES}/secret"), "Permission denied"),
])
async def test_reindex_failure_tells_the_admin_privately_and_keeps_serving(
    tmp_path: Path, error: Exception, reason: str
) -> None:
    engine = FakeEngine()
    engine.reindex_error = error
    bot = await make_bot(tmp_path, engine)
    admin = Admin(bot, progress_every=0.01)
    interaction = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    await admin.reindex.callback(admin, interaction)
    final = interaction.edit_original_response.await_args.kwargs["content"]
    assert final.startswith("Reindex failed. The previous index is still serving.")
    assert not any("/srv" in text or reason in text for text in public_texts(interaction))
    assert private_texts(interaction) == [f"Reindex failed: {reason}."]
    assert "/srv" not in private_texts(interaction)[0]  # not even the admin needs OSError paths
    assert not admin.running


@pytest.mark.parametrize(("count", "words"), [(1, "1 item"), (2, "2 items")])
async def test_skipped_files_go_to_the_admin_privately_never_to_the_channel(
    tmp_path: Path, count: int, words: str
) -> None:
    bot = await make_bot(tmp_path, SkippingEngine(count))
    admin = Admin(bot, progress_every=0.01)
    interaction = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    await admin.reindex.callback(admin, interaction)
    final = interaction.edit_original_response.await_args.kwargs["content"]
    assert final.startswith("Reindex done: added 2")
    assert f"Could not read {words};" in final
    assert not any(ARTICLES in text for text in public_texts(interaction))
    [private] = private_texts(interaction)
    assert private.count(f"{ARTICLES}/feed-") == count  # the admin can find them


async def test_skipped_files_stay_private_when_the_result_falls_back_to_the_channel(
    tmp_path: Path,
) -> None:
    from helpers import http_error

    bot = await make_bot(tmp_path, SkippingEngine(3))
    admin = Admin(bot, progress_every=10)
    interaction = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    interaction.edit_original_response.side_effect = http_error(401, "Invalid Webhook Token")
    await admin.reindex.callback(admin, interaction)
    [posted] = [call.args[0] for call in interaction.channel.send.await_args_list]
    assert posted.startswith("Reindex done") and "Could not read 3 items;" in posted
    assert not any(ARTICLES in text for text in public_texts(interaction))


@pytest.mark.parametrize("count", [1, 2])
def test_the_reindex_summary_counts_agree_with_their_nouns(count: int) -> None:
    report = IngestReport(added=count, chunks_embedded=count, chunks_reused=count)
    text = render_ingest_report(report)
    # "label count" throughout, so no count stands before a noun it could disagree with.
    assert text.startswith(f"Reindex done: added {count}, updated 0,")
    assert f"chunks: embedded {count}, reused {count}; 0.0s" in text
    assert not re.search(r"\b1 \w+s\b", text)


async def test_result_falls_back_to_the_channel_when_the_token_expired(tmp_path: Path) -> None:
    from helpers import http_error

    bot = await make_bot(tmp_path)
    admin = Admin(bot, progress_every=10)
    interaction = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    interaction.edit_original_response.side_effect = http_error(401, "Invalid Webhook Token")
    await admin.reindex.callback(admin, interaction)
    assert interaction.channel.send.await_args.args[0].startswith("Reindex done")


def test_the_admin_list_of_skipped_items_fits_one_message_and_counts_the_rest() -> None:
    skipped = [SkippedItem(f"{ARTICLES}/{'deep/' * 60}feed-{n}.jsonl:{n}", "not UTF-8 or cp1252 "
                           "text" + " *x*" * 50) for n in range(5000)]
    text = render_skipped(skipped)
    assert len(text) <= CONTENT_LIMIT
    assert text.startswith("The reindex could not read 5,000 items:\n")
    listed = text.count("\n• ")
    assert 1 <= listed < 5000
    assert text.endswith(f"\n…and {5000 - listed:,} more; the log lists them all.")
    assert render_skipped(skipped[:1]).startswith("The reindex could not read 1 item:\n")
    assert render_skipped([]) == ""


async def test_stats_after_a_reindex_that_changed_nothing_say_so(tmp_path: Path) -> None:
    engine = FakeEngine()
    finished = datetime(2023, 2, 3, 9, 30, tzinfo=UTC)
    engine.memory.values[LAST_REINDEX_KEY] = SyncOutcome("reindex", finished).to_json()
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("Stats")
    interaction = make_interaction(bot)
    await cog.stats.callback(cog, interaction)
    embed = interaction.followup.send.await_args.kwargs["embed"]
    value = {field.name: field.value for field in embed.fields}["Last reindex"]
    stamp = int(finished.timestamp())
    assert value.startswith(f"<t:{stamp}:R> (<t:{stamp}:f>) — nothing changed\nIndex built <t:")
