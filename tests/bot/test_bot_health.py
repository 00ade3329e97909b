"""`articlebot health`: the status file `serve` keeps beside its index, read and judged."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from articlebot.cli import app
from bot.health import (
    MAX_AGE_SECONDS,
    Status,
    assess,
    check,
    read_status,
    status_path,
    write_status,
)

NOW = 1_800_000_000.0  # a Unix time (s); every test passes its clock


def status(**changes: object) -> Status:
    """A healthy status written at NOW, with `changes`."""
    values: dict[str, object] = dict(pid=7, connected=True, index_readable=True, articles=12,
                                     updated=NOW, problem="")
    values.update(changes)
    return Status(**values)  # type: ignore[arg-type]


def test_a_fresh_connected_status_with_a_readable_index_is_healthy() -> None:
    healthy, line = assess(status(), NOW + 5)
    assert healthy and line == "connected, index readable (12 articles), 5 s ago"


def test_each_kind_of_trouble_is_unhealthy_and_named() -> None:
    stale = assess(status(), NOW + MAX_AGE_SECONDS + 1)
    offline = assess(status(connected=False, problem="gateway closed"), NOW)
    unreadable = assess(status(index_readable=False, articles=None,
                               problem="IndexUnavailableError: gone"), NOW)
    assert stale == (False, f"no status for {MAX_AGE_SECONDS + 1:.0f} s (the bot is stopped "
                            "or hung)")
    assert offline == (False, "not connected to Discord: gateway closed")
    assert unreadable == (False, "the index is not readable: IndexUnavailableError: gone")


def test_the_status_file_sits_beside_the_index_and_is_replaced_whole(tmp_path: Path) -> None:
    index_dir = tmp_path / "data" / "index"
    path = status_path(index_dir)
    assert path == tmp_path / "data" / "index.status.json"
    write_status(path, status(articles=1))
    write_status(path, status(articles=2))
    assert read_status(path).articles == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.status.json"]


def test_a_missing_or_broken_status_file_is_unhealthy_in_one_line(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    healthy, line = check(index_dir, now=lambda: NOW)
    assert not healthy and line.startswith("no status file at ")
    status_path(index_dir).write_text("{not json", encoding="utf-8")
    healthy, line = check(index_dir, now=lambda: NOW)
    assert not healthy and line.startswith("cannot read ")
    status_path(index_dir).write_text(json.dumps({"pid": 1}), encoding="utf-8")
    healthy, line = check(index_dir, now=lambda: NOW)
    assert not healthy and "is not a status file" in line


def test_articlebot_health_exits_0_when_healthy_and_1_when_not(tmp_path: Path) -> None:
    # The command reads the real clock; a status written just now is fresh whatever the load.
    index_dir = tmp_path / "index"
    write_status(status_path(index_dir), status(updated=time.time()))
    result = CliRunner().invoke(app, ["health", "--index", str(index_dir)])
    assert result.exit_code == 0 and result.output.startswith("healthy: connected")
    write_status(status_path(index_dir), status(connected=False, problem="stopped"))
    result = CliRunner().invoke(app, ["health", "--index", str(index_dir)])
    assert result.exit_code == 1
