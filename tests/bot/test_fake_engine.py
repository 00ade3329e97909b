"""The bot's test doubles cannot drift from what they stand in for, nor the bot's layering rot."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import FakeEngine, MemoryState, public_methods

from index.engine import Engine
from index.store.base import StateStore

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"
# `self.bot.engine.ask`, `self._engine.state`, `engine.close`: whatever the bot reaches for.
ENGINE_USE = re.compile(r"engine\.([A-Za-z_]\w*)")


def shape(function: Any) -> list[tuple[str, Any, Any]]:
    """A signature as (name, kind, default) per parameter: annotations left out, since the
    fake's may be spelled differently (strings, Any) for the same thing."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def own_public(cls: type) -> dict[str, Any]:
    """The public methods and properties a class defines itself."""
    return {name: member for name, member in vars(cls).items() if not name.startswith("_")}


def test_every_fake_engine_member_is_on_engine_with_the_same_signature() -> None:
    for name, fake in own_public(FakeEngine).items():
        real = inspect.getattr_static(Engine, name, None)
        assert real is not None, f"FakeEngine.{name} is not on Engine"
        if isinstance(fake, property):
            assert isinstance(real, property), f"Engine.{name} is not a property"
            continue
        assert callable(real) and not isinstance(real, property), f"Engine.{name} is no method"
        assert shape(fake) == shape(real), f"FakeEngine.{name} differs from Engine.{name}"


def test_every_engine_member_the_bot_uses_is_on_the_fake() -> None:
    used = {name for path in BOT.rglob("*.py")
            for name in ENGINE_USE.findall(path.read_text(encoding="utf-8"))}
    assert {"ask", "record_feedback", "state"} <= used  # the pattern still finds them
    missing = sorted(name for name in used if name not in own_public(FakeEngine))
    assert not missing, f"the bot calls Engine members FakeEngine lacks: {missing}"


def test_memory_state_has_exactly_the_state_store_methods() -> None:
    assert public_methods(MemoryState) == public_methods(StateStore)
    for name in public_methods(StateStore):
        real, fake = getattr(StateStore, name), getattr(MemoryState, name)
        assert shape(fake) == shape(real), f"MemoryState.{name} differs from StateStore.{name}"


def test_cogs_do_not_import_each_other() -> None:
    for path in (BOT / "exts").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [node.module or "" for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom)]
        imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names]
        assert not [name for name in imported if name.startswith("bot.exts")], path.name


def test_feedback_does_not_import_the_bot_class() -> None:
    """No circle: client imports feedback, never the other way, not even for type checking."""
    source = (BOT / "feedback.py").read_text(encoding="utf-8")
    assert "bot.client" not in source
    check = ("import sys, bot.feedback; "
             "sys.exit('bot.client' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
