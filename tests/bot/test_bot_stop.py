"""`articlebot serve` as a container runs it: SIGTERM (`docker stop`) ends it cleanly and fast.

The bot runs in a process of its own (`python -m tests.bot.serve_fake`: the CLI's `serve`
against the fake Discord on 127.0.0.1, over a tiny hashing-embedder index), as PID 1 would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot import run
from bot.health import check, read_status, status_path
from tests.bot.serve_fake import READY

ROOT = Path(__file__).resolve().parents[2]
# How long the bot may take to connect (s): far above what it takes (about a second).
CONNECT_SECONDS = 60.0
# What `docker stop` allows before the container counts as slow to stop (s); its own kill
# comes at 10 s.
STOP_SECONDS = 2.0


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A connected `serve` process and its index folder; killed afterwards if still running."""
    index_dir = tmp_path / "index"
    env = {**os.environ, "ARTICLEBOT_INDEX_DIR": str(index_dir), "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bot.serve_fake"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    try:
        deadline = time.monotonic() + CONNECT_SECONDS
        seen: list[str] = []
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.strip() == READY:
                break
        assert seen and seen[-1].strip() == READY, (tmp_path / "serve.log").read_text()
        yield process, index_dir
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def test_sigterm_ends_serve_with_exit_0_without_waiting_out_the_grace(serving) -> None:
    """SIGTERM ends serve by itself, cleanly and without waiting out the grace.

    Structural, not timed: with no question in flight `stop` takes every slot at once and
    closes, so nothing waits on a timer; how long the process took depends on the machine, so
    it is printed (against STOP_SECONDS) and never asserted.
    """
    process, index_dir = serving
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=CONNECT_SECONDS)
    took = time.monotonic() - sent
    logged = (index_dir.parent / "serve.log").read_text()
    print(f"\nserve stopped {took:.2f} s after SIGTERM (docker stop wants {STOP_SECONDS:.0f} s)")
    assert code == 0, logged
    assert "stopping: finishing the questions in flight" in logged  # the SIGTERM path
    assert "questions still running" not in logged  # the grace was not waited out
    assert "Traceback" not in logged
    status = read_status(status_path(index_dir))
    assert (status.connected, status.problem) == (False, "stopped")
    assert check(index_dir)[0] is False


def test_serve_reports_itself_healthy_while_connected(serving) -> None:
    _process, index_dir = serving
    # The status is rewritten on READY, which discord.py dispatches once the guilds arrived.
    deadline = time.monotonic() + CONNECT_SECONDS
    healthy, line = check(index_dir)
    while not healthy and time.monotonic() < deadline:
        time.sleep(0.1)
        healthy, line = check(index_dir)
    assert healthy, line
    assert "connected, index readable (2 articles)" in line


class SlotBot:
    """What `run.stop` touches of a bot: its settings, its query slots, close()."""

    def __init__(self, slots: int) -> None:
        self.settings = SimpleNamespace(max_concurrent_queries=slots)
        self.query_slots = asyncio.Semaphore(slots)
        self.closed = asyncio.Event()

    async def close(self) -> None:
        self.closed.set()


async def test_stop_lets_a_question_in_flight_finish_before_closing() -> None:
    bot = SlotBot(slots=2)
    await bot.query_slots.acquire()  # a question is being answered
    stopping = asyncio.ensure_future(run.stop(bot, grace=3600.0))  # type: ignore[arg-type]
    for _ in range(20):
        await asyncio.sleep(0)
    assert not bot.closed.is_set()
    assert bot.query_slots.locked()  # the free slot is taken: no new question starts
    bot.query_slots.release()  # the answer is sent
    await stopping
    assert bot.closed.is_set()


async def test_stop_closes_after_the_grace_when_a_question_hangs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = SlotBot(slots=3)
    await bot.query_slots.acquire()  # never released
    await run.stop(bot, grace=0.01)  # type: ignore[arg-type]
    assert bot.closed.is_set()
    assert "stopping with questions still running, unanswered: 1" in caplog.text
