"""/reindex: who may run it, one at a time, and questions keep being answered meanwhile."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import discord
import pytest
from helpers import FakeEngine, make_bot, make_interaction

from bot.errors import NotAllowed, friendly_message
from bot.exts.admin import Admin
from bot.guards import admin_check, may_administer
from index.engine import EngineError


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
    running = asyncio.create_task(admin.reindex.callback(admin, first))
    assert await asyncio.to_thread(engine.reindex_started.wait, 5)

    second = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    await admin.reindex.callback(admin, second)
    refusal = second.response.send_message.await_args
    assert "already running" in refusal.args[0]
    assert refusal.kwargs["ephemeral"] is True

    question = make_interaction(bot, user_id=3)
    await asyncio.wait_for(ask.ask.callback(ask, question, "still there?"), timeout=5)
    assert "The river rose" in question.followup.send.await_args.args[0]
    await asyncio.sleep(0.05)  # progress is relayed while the rebuild runs
    progress = [call.kwargs["content"] for call in first.edit_original_response.await_args_list]
    assert any("embedding 5/10" in text for text in progress)

    engine.reindex_gate.set()
    await asyncio.wait_for(running, timeout=5)
    assert first.edit_original_response.await_args.kwargs["content"].startswith("Reindex done")


async def test_reindex_failure_reports_one_line_and_keeps_serving(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.reindex_error = EngineError("disk full\nwhile writing")
    bot = await make_bot(tmp_path, engine)
    admin = Admin(bot, progress_every=0.01)
    interaction = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    await admin.reindex.callback(admin, interaction)
    final = interaction.edit_original_response.await_args.kwargs["content"]
    assert final == "Reindex failed: disk full while writing. The previous index is still serving."
    assert not admin.running


async def test_result_falls_back_to_the_channel_when_the_token_expired(tmp_path: Path) -> None:
    from helpers import http_error

    bot = await make_bot(tmp_path)
    admin = Admin(bot, progress_every=10)
    interaction = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    interaction.edit_original_response.side_effect = http_error(401, "Invalid Webhook Token")
    await admin.reindex.callback(admin, interaction)
    assert interaction.channel.send.await_args.args[0].startswith("Reindex done")
