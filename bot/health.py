"""The bot's status file and `articlebot health`, the container's health check.

`serve` writes a small JSON file beside its index every HEARTBEAT_SECONDS: whether the bot is
connected to Discord, whether its index answered a read, and when it last looked. `articlebot
health` reads that file, so the check costs neither a Discord connection nor an engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.client import ArticleBot

log = logging.getLogger(__name__)

# How often `serve` rewrites the status file (s).
HEARTBEAT_SECONDS = 15.0
# A status older than this (s) means the bot stopped writing it (hung or gone): four missed
# heartbeats, so one slow engine read does not make a healthy bot unhealthy.
MAX_AGE_SECONDS = 4 * HEARTBEAT_SECONDS
# How long a heartbeat waits for the index to answer a read (s).
INDEX_READ_SECONDS = 10.0


@dataclass(frozen=True)
class Status:
    """What `serve` last said about itself; `updated` is a Unix time (s)."""

    pid: int
    connected: bool
    index_readable: bool
    articles: int | None
    updated: float
    problem: str = ""


def status_path(index_dir: Path) -> Path:
    """The status file of the bot serving `index_dir`: beside it, `<index>.status.json`.

    Beside rather than inside, so no store ever finds a file of the bot's among its own.
    """
    return index_dir.with_name(f"{index_dir.name}.status.json")


def write_status(path: Path, status: Status) -> None:
    """Replace the status file atomically (a reader never sees half of one).

    Raises OSError when the folder cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(asdict(status)), encoding="utf-8")
    os.replace(partial, path)


def read_status(path: Path) -> Status:
    """The status in the file. Raises OSError when unreadable, ValueError when malformed."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return Status(**data)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a status file ({exc})") from None


def assess(status: Status, now: float, max_age: float = MAX_AGE_SECONDS) -> tuple[bool, str]:
    """Whether the bot is healthy, and one line saying why; `now` and `max_age` in seconds."""
    age = now - status.updated
    if not math.isfinite(age) or age > max_age:
        return False, f"no status for {age:.0f} s (the bot is stopped or hung)"
    if not status.connected:
        return False, f"not connected to Discord{_because(status)}"
    if not status.index_readable:
        return False, f"the index is not readable{_because(status)}"
    return True, f"connected, index readable ({status.articles} articles), {age:.0f} s ago"


def _because(status: Status) -> str:
    """': <problem>' when the status names one."""
    return f": {status.problem}" if status.problem else ""


def check(index_dir: Path, now: Callable[[], float] = time.time) -> tuple[bool, str]:
    """Health of the bot serving `index_dir`, from its status file, as (healthy, one line)."""
    path = status_path(index_dir)
    try:
        status = read_status(path)
    except FileNotFoundError:
        return False, f"no status file at {path}: `articlebot serve` has not started here"
    except (OSError, ValueError) as exc:
        return False, f"cannot read {path}: {exc}"
    return assess(status, now())


def is_connected(bot: ArticleBot) -> bool:
    """Whether every shard of the bot holds an open gateway connection."""
    if bot.is_closed() or not bot.is_ready():
        return False
    return all(not shard.is_closed() for shard in bot.shards.values())


async def probe(bot: ArticleBot) -> Status:
    """The bot's status now: its connection, and a cheap read of its index."""
    articles: int | None = None
    problem = ""
    try:
        engine = bot.engine
    except RuntimeError:  # not loaded yet
        problem = "the engine is not open"
    else:
        try:
            async with asyncio.timeout(INDEX_READ_SECONDS):
                articles = await asyncio.to_thread(engine.count_articles)
        except Exception as exc:  # any failure to read is what the health check reports
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Status(pid=os.getpid(), connected=is_connected(bot),
                  index_readable=articles is not None, articles=articles,
                  updated=time.time(), problem=problem)


async def report(
    bot: ArticleBot, path: Path, wake: asyncio.Event, done: asyncio.Event,
    every: float = HEARTBEAT_SECONDS,
) -> None:
    """Write the bot's status to `path` every `every` seconds, and at once when `wake` is set
    (on connecting and disconnecting), until `done` is set (then wake it too).

    Ends by the flag rather than by cancellation: Python 3.11's `asyncio.wait_for` loses a
    cancellation that arrives as the awaited event fires (python/cpython#86296), and a
    disconnect sets `wake` just as `serve` ends; a reporter lost so kept `serve` from ending.
    """
    while not done.is_set():
        try:
            write_status(path, await probe(bot))
        except OSError as exc:
            log.warning("could not write the status file %s: %s", path, exc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await wake.wait()
        wake.clear()


def write_stopped(path: Path) -> None:
    """Say the bot has stopped (a stopped bot is unhealthy at once, not after MAX_AGE)."""
    with contextlib.suppress(OSError):
        write_status(path, Status(pid=os.getpid(), connected=False, index_readable=False,
                                  articles=None, updated=time.time(), problem="stopped"))
