"""Text on the command line that is not UTF-8 is refused in one line, by every command.

On POSIX, Python reads each byte of the command line that is not UTF-8 as a lone surrogate
(U+DC80 to U+DCFF, PEP 383); such text can be neither stored, searched nor printed, so a
command that took it ended in a traceback. Paths are not text: a file name may be any bytes.
"""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Union, get_args, get_origin, get_type_hints

import pytest
import typer
from typer.testing import CliRunner

from articlebot.cli import CliError, app

# Sub-applications mounted from bench/, with parsers of their own.
MOUNTED = {"eval", "bench"}
NOT_UTF8 = "\udcff\udcfe question"  # the bytes ff fe, as Python reads them from argv
# A value each parser accepts, for required parameters that refuse the plain "x" (so a
# command line fails on the parameter under test, not on an earlier one).
ACCEPTED = {"from_store": "local", "to_store": "memory"}


def plain_type(hint: object) -> object:
    """The type a hint names once `X | None` is taken apart."""
    if get_origin(hint) in (Union, types.UnionType):
        (hint,) = (arg for arg in get_args(hint) if arg is not type(None))
    return hint


def commands() -> Iterator[tuple[str, typer.models.CommandInfo]]:
    """Every command of `articlebot` (the mounted bench groups aside), by its name."""
    for info in app.registered_commands:
        assert info.callback is not None
        yield info.name or info.callback.__name__.replace("_", "-"), info


def text_params() -> list[tuple[str, str]]:
    """(command, parameter) for every parameter typed str or list[str]."""
    found = []
    for name, info in commands():
        hints = get_type_hints(info.callback)
        found += [(name, param) for param, hint in hints.items()
                  if param != "return" and plain_type(hint) in (str, list[str])]
    return found


def args_with(command: str, bad_param: str, value: str) -> list[str]:
    """A command line for `command`: `value` in `bad_param`, a plain value in every other
    required parameter."""
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    info = dict(commands())[command]
    hints = get_type_hints(info.callback)
    args = [command]
    for param in click_command.params:
        given = value if param.name == bad_param else None
        if given is None and param.required:
            kind = plain_type(hints[param.name])
            given = next(iter(kind)).value if isinstance(kind, type) and issubclass(
                kind, Enum) else ACCEPTED.get(param.name, "x")
        if given is None:
            continue
        args += [given] if not param.opts[0].startswith("-") else [param.opts[0], given]
    return args


def test_the_walk_finds_the_text_parameters():
    found = set(text_params())
    assert {("ask", "question"), ("ask", "source"), ("articles", "source"),
            ("article", "id_or_title"), ("timeline", "topic"), ("fetch", "urls"),
            ("migrate", "database_url")} <= found
    assert not {name for name, _ in found} & MOUNTED


@pytest.mark.parametrize(("command", "param"), text_params())
def test_text_that_is_not_utf8_is_refused_in_one_line(command, param, monkeypatch, tmp_path):
    def no_engine(*_args, **_kwargs):
        raise AssertionError("the engine was opened with text that is not UTF-8")

    monkeypatch.setattr("articlebot.cli._engine", no_engine)
    monkeypatch.setenv("ARTICLEBOT_INDEX_DIR", str(tmp_path))
    result = CliRunner().invoke(app, args_with(command, param, NOT_UTF8))
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Invalid value for "), lines
    assert "not UTF-8 text (byte 0xff at character 1)" in lines[0]


def test_bytes_on_a_real_command_line_are_one_line_and_paths_stay_any_bytes(tmp_path: Path):
    def run(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "articlebot", *args], capture_output=True,
                              cwd=tmp_path, timeout=120)

    for args in ([b"ask", b"\xff\xfe question"], [b"ask", b"q", b"--source", b"Caf\xe9"],
                 [b"article", b"\xff"], [b"articles", b"--source", b"\xff"],
                 [b"timeline", b"\xff"]):
        result = run(*args, "--index", str(tmp_path / "none"))
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.decode("utf-8", "backslashreplace").splitlines()
        assert line.startswith("error: Invalid value for ") and "not UTF-8 text" in line
    # A path is not text: a folder whose name is not UTF-8 is looked for, and named.
    result = run("ask", "q", "--index", bytes(tmp_path) + b"/\xff")
    assert result.returncode == 1
    assert result.stderr.startswith(b"error: no index in " + bytes(tmp_path))


def test_utf8_text_reaches_the_command_unchanged(monkeypatch):
    asked: list[str] = []

    class Engine:
        def article(self, id_or_title: str) -> None:
            asked.append(id_or_title)

    monkeypatch.setattr("articlebot.cli._engine", lambda *_args, **_kwargs: Engine())
    result = CliRunner().invoke(app, ["article", "Café 東京 — ok?"])
    assert asked == ["Café 東京 — ok?"]
    assert isinstance(result.exception, CliError)  # no such article, in one line
