"""The command tree's sync payload, deliberate syncing, and the serve/sync entry points."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from unittest.mock import AsyncMock

import pytest
from helpers import FakeEngine, MemoryState, make_bot, make_settings, make_state

from bot.client import COMMANDS_HASH_KEY, ArticleBot, command_payload
from bot.run import serve, sync_commands, token_problem
from index.engine import Engine

SNAPSHOT = Path(__file__).parent / "snapshots" / "commands.json"


async def test_command_payload_matches_the_snapshot(tmp_path: Path) -> None:
    """Changing a command changes what is synced; update deliberately with UPDATE_SNAPSHOTS=1."""
    bot = await make_bot(tmp_path)
    payload = command_payload(bot.tree)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert payload == json.loads(SNAPSHOT.read_text("utf-8"))


async def test_global_sync_happens_only_when_commands_change(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    bot._connection.application_id = 1234
    bot.tree.sync = AsyncMock(return_value=[])
    await bot.sync_on_start()
    await bot.sync_on_start()
    assert bot.tree.sync.await_count == 1
    # Kept in the engine's state store, which other bot processes share; no file beside it.
    assert len(engine.memory.values[COMMANDS_HASH_KEY]) == 64
    assert not (tmp_path / "index" / "commands.sha256").exists()

    bot.tree.remove_command("stats")
    await bot.sync_on_start()
    assert bot.tree.sync.await_count == 2

    await bot.sync_commands(None)  # `articlebot sync` forces it
    assert bot.tree.sync.await_count == 3


async def test_dev_guild_gets_an_instant_copy(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path, dev_guild_id=4242)
    bot._connection.application_id = 1234
    bot.tree.sync = AsyncMock(return_value=[])
    await bot.sync_on_start()
    guild = bot.tree.sync.await_args.kwargs["guild"]
    assert guild.id == 4242
    assert {cmd.name for cmd in bot.tree.get_commands(guild=guild)} >= {"ask", "reindex"}
    assert COMMANDS_HASH_KEY not in bot.engine.memory.values  # type: ignore[attr-defined]


async def test_a_dev_guild_beside_global_commands_is_warned_and_clear_removes_them(
    tmp_path: Path, caplog
) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine, dev_guild_id=4242)
    bot._connection.application_id = 1234
    bot.tree.sync = AsyncMock(return_value=[])
    await bot.sync_commands(None)  # someone ran `articlebot sync --global` once
    caplog.set_level(logging.WARNING)
    await bot.sync_on_start()
    assert "guild 4242 shows each one twice" in caplog.text
    assert "articlebot sync --clear --global" in caplog.text
    await bot.sync_commands(None, clear=True)
    assert bot.tree.get_commands() == [] and bot.tree.sync.await_args.kwargs == {}
    assert engine.memory.values[COMMANDS_HASH_KEY] == ""  # the next global start syncs again
    caplog.clear()
    await bot.sync_on_start()
    assert "twice" not in caplog.text


async def test_sync_without_an_engine_uses_its_own_state_store(tmp_path: Path) -> None:
    """`articlebot sync` runs without an engine: the bot opens the store, off the loop, once."""
    memory = MemoryState()
    opened: list[object] = []

    def open_store(settings: object) -> object:
        opened.append(settings)
        return make_state(memory)

    bot = ArticleBot(make_settings(tmp_path), None, state_factory=open_store,  # type: ignore[arg-type]
                     extensions=(), sync_on_start=False)
    await bot._async_setup_hook()
    bot.tree.sync = AsyncMock(return_value=[])
    await bot.sync_commands(None)
    await bot.sync_commands(None)
    assert len(opened) == 1 and bot.state.get_value(COMMANDS_HASH_KEY)
    await bot.close()
    assert memory.closed


async def test_a_failing_state_store_costs_only_an_extra_sync(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = FakeEngine()
    engine.state_store.get_value.side_effect = OSError("disk gone")
    engine.state_store.set_value.side_effect = OSError("disk gone")
    bot = await make_bot(tmp_path, engine)
    bot.tree.sync = AsyncMock(return_value=[])
    await bot.sync_on_start()
    assert bot.tree.sync.await_count == 1
    assert "could not read" in caplog.text and "could not remember" in caplog.text


async def test_close_releases_the_engine(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    await bot.load_state()
    await bot.close()
    assert engine.closed
    assert not engine.memory.closed  # the engine's store is the engine's to close


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("", "not set"),
        ("Bot abc.def.ghi", "without the 'Bot ' prefix"),
        ("just-one-part", "does not look like"),
        ("MTA5.GAbCdE.abc", None),
    ],
)
def test_token_problem(token: str, expected: str | None) -> None:
    problem = token_problem(token)
    assert (problem is None) if expected is None else (expected in (problem or ""))


def test_serve_without_token_explains_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve(make_settings(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DISCORD_TOKEN is not set" in err
    assert sync_commands(make_settings(tmp_path), None) == 2


def test_serve_without_index_explains_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, discord_token="MTA5.GAbCdE.abc")
    assert serve(settings) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no index at" in err and "Traceback" not in err


def test_serve_looks_for_a_folder_only_where_the_backend_keeps_one(tmp_path: Path) -> None:
    # The check before login asks the storage registry (through the engine), not a name.
    assert Engine.index_folder(make_settings(tmp_path)) == tmp_path / "index"
    assert Engine.index_folder(make_settings(tmp_path, store="memory")) is None
    assert Engine.index_folder(make_settings(tmp_path, store="postgres")) is None
