"""Entry points for `articlebot serve` and `articlebot sync`: one line on failure, no traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

import discord

from bot import health
from bot.client import ArticleBot
from bot.config import BotSettings
from bot.log import RedactingFilter, setup_logging
from index.engine import Engine, EngineError

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_FAILED = 1
# Engine threads running pure-Python code hold the GIL for whole switch intervals; at the
# default 5 ms, four of them stall the event loop (heartbeats, interactions) up to ~200 ms.
# At 1 ms the loop waits at most a few tens of ms (tests/bot/test_bot_reliability.py).
SWITCH_INTERVAL_SECONDS = 0.001
# Logged once when Discord refuses the Message Content intent that only follow-ups asked for.
FOLLOW_UPS_REFUSED = (
    "the Message Content intent is off in the developer portal: follow-up questions in "
    "threads need it; continuing without them — enable it or set ARTICLEBOT_FOLLOW_UPS=false"
)


# Gateway close code for an invalid token (Discord's "Authentication failed").
GATEWAY_BAD_TOKEN = 4004
# On SIGTERM, how long `serve` lets the questions in flight finish before it closes (s):
# `docker stop` kills after 10 s, and a stopped container should be gone within 2.
STOP_GRACE_SECONDS = 1.0
# discord.py events after which the status file is rewritten at once (`articlebot health`).
STATUS_EVENTS = ("on_ready", "on_resumed", "on_disconnect", "on_shard_ready",
                 "on_shard_resumed", "on_shard_disconnect")


def token_problem(token: str) -> str | None:
    """Why a token cannot be a bot token, or None when it looks usable."""
    if not token:
        return ("DISCORD_TOKEN is not set: put the bot token from the Discord developer portal "
                "into .env (see docs/discord.md).")
    if token.lower().startswith("bot "):
        return "DISCORD_TOKEN should be the token alone, without the 'Bot ' prefix."
    if any(char.isspace() for char in token) or token.count(".") != 2:
        return ("DISCORD_TOKEN does not look like a bot token (three parts separated by dots); "
                "copy it again from the developer portal's Bot page.")
    return None


def _token(settings: BotSettings) -> str:
    """The token as plain text ('' when unset)."""
    return settings.discord_token.get_secret_value().strip() if settings.discord_token else ""


def _fail(message: str, code: int, secrets: Sequence[str] = ()) -> int:
    """Print one line to stderr, secrets and token-shaped strings redacted; return the code.

    Error texts from Discord or the network can quote a request, so they may hold the token.
    """
    print(f"articlebot: {RedactingFilter(secrets).redact(message)}", file=sys.stderr)
    return code


def _index_problem(settings: BotSettings) -> str | None:
    """Why there is no index to serve, or None when the folder exists.

    Only a backend that keeps its collection in `index_dir` is checked here
    (`Engine.index_folder`, as the storage registry says); a database is checked when the
    engine opens.
    """
    folder = Engine.index_folder(settings)
    if folder is not None and not folder.is_dir():
        return (f"no index at {folder}: build one first with `articlebot reindex` "
                "(or set ARTICLEBOT_INDEX_DIR).")
    return None


def serve(settings: BotSettings) -> int:
    """Run the bot until stopped; returns an exit code."""
    token = _token(settings)
    problem = token_problem(token) or _index_problem(settings)
    if problem:
        return _fail(problem, EXIT_CONFIG)
    setup_logging(settings.log_level, secrets=[token])
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    try:
        asyncio.run(_serve(settings, token))
    except KeyboardInterrupt:
        return EXIT_OK
    except discord.LoginFailure:
        return _fail("Discord refused the token; reset it in the developer portal and update "
                     "DISCORD_TOKEN.", EXIT_CONFIG)
    except discord.PrivilegedIntentsRequired:
        return _fail("ask-channels need the Message Content intent: enable it on the developer "
                     "portal's Bot page, or clear ARTICLEBOT_ASK_CHANNEL_IDS.", EXIT_CONFIG)
    except EngineError as error:
        return _fail(str(error), EXIT_CONFIG, [token])
    except discord.ConnectionClosed as error:
        # The gateway refused the session after a good login: 4004 is a token reset since.
        if error.code == GATEWAY_BAD_TOKEN:
            return _fail("Discord refused the token; reset it in the developer portal and "
                         "update DISCORD_TOKEN.", EXIT_CONFIG)
        return _fail(f"Discord closed the connection (code {error.code})", EXIT_FAILED, [token])
    except (discord.HTTPException, discord.GatewayNotFound, OSError) as error:
        return _fail(f"could not reach Discord: {error}", EXIT_FAILED, [token])
    return EXIT_OK


async def _serve(settings: BotSettings, token: str) -> None:
    """Open the engine, connect, and run until the connection ends.

    When Discord refuses the Message Content intent (gateway close 4014) and only follow-ups
    asked for it, log FOLLOW_UPS_REFUSED and run again without it; with ask-channels set,
    PrivilegedIntentsRequired propagates (they cannot work without it).
    """
    try:
        await _run(settings, token)
    except discord.PrivilegedIntentsRequired:
        if settings.ask_channel_ids or not settings.follow_ups:
            raise
        log.warning(FOLLOW_UPS_REFUSED)
        # discord.py closed the first bot (and with it the engine) on the 4014, and a closed
        # client is not reused: a new one opens the engine again, once, at start.
        await _run(settings.model_copy(update={"follow_ups": False}), token)


async def _run(settings: BotSettings, token: str) -> None:
    """One bot, with its own engine, until its connection ends or SIGTERM stops it.

    Meanwhile its status goes to `health.status_path(index_dir)` for `articlebot health`.
    """
    async with ArticleBot(settings, Engine.open) as bot:
        status = health.status_path(settings.index_dir)
        wake = asyncio.Event()

        async def rewrite(*_args: object) -> None:
            wake.set()

        for event in STATUS_EVENTS:
            bot.add_listener(rewrite, event)
        done = asyncio.Event()
        reporter = asyncio.create_task(health.report(bot, status, wake, done))
        try:
            with _stop_on_sigterm(bot):
                await bot.start(token)
        finally:
            done.set()
            wake.set()
            # The reporter ends at its next check of `done`: at once, or after its index read
            # (bounded by health.INDEX_READ_SECONDS).
            await asyncio.wait([reporter])
            await asyncio.to_thread(health.write_stopped, status)


@contextlib.contextmanager
def _stop_on_sigterm(bot: ArticleBot) -> Iterator[None]:
    """While inside, SIGTERM (`docker stop`) stops the bot as `stop` does, and `serve` returns
    EXIT_OK. Only the main thread receives signals; elsewhere (tests) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    stopping: set[asyncio.Task[None]] = set()  # holds the task until it is done

    def on_sigterm() -> None:
        if not stopping:
            task = loop.create_task(stop(bot))
            stopping.add(task)

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def stop(bot: ArticleBot, grace: float = STOP_GRACE_SECONDS) -> None:
    """Let the engine calls in flight finish (up to `grace` seconds, taking every query slot so
    no new one starts), then close the gateway, the HTTP session and the engine.

    A question still running after `grace` finishes on the index version it holds (the engine
    closes around it) but is not answered; nothing is left half-written either way, as the
    stores commit whole transactions.
    """
    log.info("stopping: finishing the questions in flight, then closing the connection")
    taken = 0
    deadline = asyncio.get_running_loop().time() + grace
    with contextlib.suppress(TimeoutError):
        for _ in range(bot.settings.max_concurrent_queries):
            left = deadline - asyncio.get_running_loop().time()
            await asyncio.wait_for(bot.query_slots.acquire(), max(left, 0.0))
            taken += 1
    if taken < bot.settings.max_concurrent_queries:
        log.warning("stopping with questions still running, unanswered: %d",
                    bot.settings.max_concurrent_queries - taken)
    await bot.close()


def sync_commands(settings: BotSettings, guild_id: int | None, *, clear: bool = False) -> int:
    """Push the slash commands to Discord now: to one guild, or globally when guild_id is None;
    with `clear`, remove them from there."""
    token = _token(settings)
    problem = token_problem(token)
    if problem:
        return _fail(problem, EXIT_CONFIG)
    setup_logging(settings.log_level, secrets=[token])
    try:
        count = asyncio.run(_sync(settings, token, guild_id, clear))
    except discord.LoginFailure:
        return _fail("Discord refused the token; reset it in the developer portal.", EXIT_CONFIG)
    except discord.Forbidden:
        return _fail(f"the bot is not in guild {guild_id} with the applications.commands scope; "
                     "invite it with the URL in docs/discord.md.", EXIT_CONFIG)
    except (discord.HTTPException, OSError) as error:
        return _fail(f"sync failed: {error}", EXIT_FAILED, [token])
    where = f"guild {guild_id} (visible now)" if guild_id else "every server (may take an hour)"
    if clear:
        print(f"Removed the commands from {where}.")
    else:
        print(f"Synced {count} commands to {where}.")
    return EXIT_OK


async def _sync(settings: BotSettings, token: str, guild_id: int | None, clear: bool) -> int:
    """Log in over HTTP only (no gateway, no engine), load the cogs and sync."""
    async with ArticleBot(settings, None, sync_on_start=False) as bot:
        await bot.login(token)  # runs setup_hook, which loads the cogs
        return len(await bot.sync_commands(guild_id, clear=clear))
