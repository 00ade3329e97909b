"""Several bot processes, each running some of Discord's shards: settings, construction, sync."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import discord
import pytest
from discord.ext import commands
from helpers import FakeEngine, make_bot, make_settings, make_state
from pydantic import ValidationError

from bot.client import ArticleBot, shard_plan
from bot.config import BotSettings


def env_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> BotSettings:
    """Settings read from these ARTICLEBOT_ variables only (no .env file)."""
    for name in ("ARTICLEBOT_SHARD_COUNT", "ARTICLEBOT_SHARD_IDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(f"ARTICLEBOT_{name.upper()}", value)
    return BotSettings(_env_file=None)


# --- settings


@pytest.mark.parametrize(
    ("env", "count", "ids"),
    [
        ({}, None, []),
        ({"shard_count": "4"}, 4, []),
        ({"shard_count": "4", "shard_ids": "0, 1"}, 4, [0, 1]),
        ({"shard_count": "4", "shard_ids": "3"}, 4, [3]),
        ({"shard_count": "4", "shard_ids": "[2,3]"}, 4, [2, 3]),
        ({"shard_count": "1", "shard_ids": "0"}, 1, [0]),
        ({"shard_count": "4", "shard_ids": ""}, 4, []),  # empty counts as unset
    ],
)
def test_shard_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], count: int | None, ids: list[int]
) -> None:
    settings = env_settings(monkeypatch, **env)
    assert settings.shard_count == count
    assert settings.shard_ids == ids


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"shard_ids": "0,1"}, ("ARTICLEBOT_SHARD_IDS", "ARTICLEBOT_SHARD_COUNT")),
        ({"shard_count": "4", "shard_ids": "0,4"}, ("ARTICLEBOT_SHARD_IDS", "shard 4", "0..3")),
        ({"shard_count": "2", "shard_ids": "-1"}, ("ARTICLEBOT_SHARD_IDS", "shard -1")),
        ({"shard_count": "4", "shard_ids": "1,1"}, ("ARTICLEBOT_SHARD_IDS", "more than once")),
        ({"shard_count": "0"}, ("shard_count",)),
        ({"shard_count": "-2", "shard_ids": "0"}, ("shard_count",)),
        ({"shard_count": "4", "shard_ids": "0,one"}, ("shard_ids",)),
    ],
)
def test_bad_shard_settings_are_refused_in_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        env_settings(monkeypatch, **env)
    first = caught.value.errors()[0]
    # What `articlebot` prints: the field's location (none for the model validator) and msg.
    shown = ".".join(str(part) for part in first["loc"]) + " " + first["msg"]
    assert "\n" not in shown
    for name in names:
        assert name in shown


# --- the bot discord.py builds


async def test_without_shard_settings_discord_decides(tmp_path: Path) -> None:
    """Auto-sharded with no count: nothing is fixed until Discord says how many at connect."""
    bot = await make_bot(tmp_path, load=False)
    assert isinstance(bot, commands.AutoShardedBot)
    assert bot.shard_count is None and bot.shard_ids is None
    assert bot._connection.shard_count is None
    # Before connecting it looks as a plain Bot does: no latency yet, no guilds, not ready.
    assert math.isnan(bot.latency) and not bot.guilds and not bot.is_ready()
    assert shard_plan(bot.settings) == "shards: as many as Discord recommends, all in this process"
    await bot.close()


@pytest.mark.parametrize(
    ("overrides", "count", "ids", "plan"),
    [
        ({"shard_count": 4, "shard_ids": [0, 1]}, 4, [0, 1], "shards 0,1 of 4"),
        ({"shard_count": 4, "shard_ids": [3]}, 4, [3], "shards 3 of 4"),
        ({"shard_count": 2}, 2, None, "shards 0,1 of 2"),  # every shard in this process
    ],
)
async def test_the_bot_gets_the_configured_shards(
    tmp_path: Path, overrides: dict[str, Any], count: int, ids: list[int] | None, plan: str
) -> None:
    bot = await make_bot(tmp_path, load=False, **overrides)
    assert bot.shard_count == count and bot.shard_ids == ids
    assert bot._connection.shard_count == count
    assert shard_plan(bot.settings) == plan
    await bot.close()


async def test_launch_opens_only_this_processes_shards(tmp_path: Path) -> None:
    """discord.py's own launch, offline: the given shards, the fixed count, no gateway lookup."""
    bot = await make_bot(tmp_path, load=False, shard_count=4, shard_ids=[1, 3])
    bot.http.get_bot_gateway = AsyncMock()  # type: ignore[method-assign]
    bot.launch_shard = AsyncMock()  # type: ignore[method-assign]
    await bot.launch_shards()
    assert [call.args[1] for call in bot.launch_shard.await_args_list] == [1, 3]
    assert [call.kwargs["initial"] for call in bot.launch_shard.await_args_list] == [True, False]
    bot.http.get_bot_gateway.assert_not_awaited()
    assert list(bot._connection.shard_ids) == [1, 3] and bot._connection.shard_count == 4
    await bot.close()


async def test_launch_without_settings_runs_what_discord_recommends(tmp_path: Path) -> None:
    """A small bot: Discord recommends one shard, so one connection, as with a plain Bot."""
    bot = await make_bot(tmp_path, load=False)
    bot.http.get_bot_gateway = AsyncMock(  # type: ignore[method-assign]
        return_value=(1, "wss://gateway.discord.gg", {})
    )
    bot.launch_shard = AsyncMock()  # type: ignore[method-assign]
    await bot.launch_shards()
    assert [call.args[1] for call in bot.launch_shard.await_args_list] == [0]
    assert bot.shard_count == 1
    await bot.close()


async def test_connect_logs_the_shards_of_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    connect = AsyncMock()
    monkeypatch.setattr(discord.AutoShardedClient, "connect", connect)
    bot = await make_bot(tmp_path, load=False, shard_count=4, shard_ids=[0, 1])
    with caplog.at_level("INFO", logger="bot.client"):
        await bot.connect()
    assert "shards 0,1 of 4" in caplog.text
    connect.assert_awaited_once()
    await bot.close()


# --- only the process running shard 0 syncs commands at start


@pytest.mark.parametrize(
    ("overrides", "syncs"),
    [
        ({}, True),
        ({"shard_count": 4}, True),  # one process runs every shard, 0 among them
        ({"shard_count": 4, "shard_ids": [0]}, True),
        ({"shard_count": 4, "shard_ids": [2, 0]}, True),
        ({"shard_count": 4, "shard_ids": [1]}, False),
        ({"shard_count": 4, "shard_ids": [2, 3]}, False),
    ],
)
async def test_only_the_process_with_shard_0_syncs_at_start(
    tmp_path: Path, overrides: dict[str, Any], syncs: bool
) -> None:
    engine = FakeEngine()
    bot = ArticleBot(make_settings(tmp_path, **overrides), lambda _settings: engine,  # type: ignore[arg-type,return-value]
                     state_factory=lambda _settings: make_state(), sync_on_start=True)
    await bot._async_setup_hook()
    bot._connection.application_id = 1234
    bot.tree.sync = AsyncMock(return_value=[])  # type: ignore[method-assign]
    await bot.setup_hook()  # what login() runs: cogs, then the sync if due
    assert bot.syncs_on_start is syncs
    assert bot.tree.sync.await_count == (1 if syncs else 0)
    assert ("commands_sha256" in engine.memory.values) is syncs
    await bot.close()


async def test_a_process_without_shard_0_leaves_the_dev_guild_alone_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(tmp_path, shard_count=2, shard_ids=[1], dev_guild_id=4242)
    bot.tree.sync = AsyncMock(return_value=[])  # type: ignore[method-assign]
    with caplog.at_level("INFO", logger="bot.client"):
        await bot.sync_on_start()
    bot.tree.sync.assert_not_awaited()
    assert "shard 0" in caplog.text
    # `articlebot sync` is deliberate and works from any process.
    await bot.sync_commands(None)
    assert bot.tree.sync.await_count == 1
    await bot.close()
