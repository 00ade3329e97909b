"""The bot: receives its settings and engine, loads the cogs, syncs commands on purpose."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import NO_MENTIONS, ArticleTree, Busy
from bot.feedback import AnswerLog, load_salt
from bot.guards import UserCooldown
from index.config import Settings
from index.engine import Engine

log = logging.getLogger(__name__)

T = TypeVar("T")
EngineFactory = Callable[[Settings], Engine]

EXTENSIONS = (
    "bot.exts.ask",
    "bot.exts.articles",
    "bot.exts.stats",
    "bot.exts.admin",
    "bot.exts.news",
    "bot.exts.follows",
)
COMMANDS_HASH_FILE = "commands.sha256"
# How long a question waits for a free engine slot before the user hears "busy".
SLOT_WAIT_SECONDS = 5.0


def make_intents(settings: Settings) -> discord.Intents:
    """Default intents (none privileged); message content only when ask-channels are set."""
    intents = discord.Intents.default()
    intents.message_content = bool(settings.ask_channel_ids)
    return intents


def command_payload(tree: app_commands.CommandTree[Any]) -> list[dict[str, Any]]:
    """The global commands exactly as `tree.sync()` would send them, in a stable order."""
    payload = [command.to_dict(tree) for command in tree.get_commands()]
    return sorted(payload, key=lambda item: (item.get("type", 1), item["name"]))


def payload_digest(payload: Sequence[dict[str, Any]], application_id: int | None) -> str:
    """A hash of the command definitions (and the application they belong to)."""
    text = json.dumps({"application": application_id, "commands": list(payload)},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ArticleBot(commands.Bot):
    """articlebot on Discord: slash commands and mentions, answered from the engine."""

    def __init__(
        self,
        settings: Settings,
        engine_factory: EngineFactory | None = None,
        *,
        extensions: Sequence[str] = EXTENSIONS,
        sync_on_start: bool = True,
        slot_wait_seconds: float = SLOT_WAIT_SECONDS,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=make_intents(settings),
            allowed_mentions=NO_MENTIONS,
            tree_cls=ArticleTree,
        )
        self.settings = settings
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._extensions = tuple(extensions)
        self._sync_on_start = sync_on_start
        self.slot_wait_seconds = slot_wait_seconds
        self.query_slots = asyncio.Semaphore(settings.max_concurrent_queries)
        self.ask_cooldown = UserCooldown(
            settings.ask_cooldown_rate, settings.ask_cooldown_seconds
        )
        self.answers = AnswerLog()
        self._feedback_salt: bytes | None = None

    # --- the engine
    @property
    def engine(self) -> Engine:
        """The loaded engine (loaded in `setup_hook`)."""
        if self._engine is None:
            raise RuntimeError("the engine is not loaded yet")
        return self._engine

    async def load_engine(self) -> None:
        """Open the engine off the event loop (loading the model takes seconds)."""
        if self._engine is None and self._engine_factory is not None:
            self._engine = await asyncio.to_thread(self._engine_factory, self.settings)

    @property
    def feedback_salt(self) -> bytes:
        """The salt for voters' hashes, read or created beside the index on first use."""
        if self._feedback_salt is None:
            self._feedback_salt = load_salt(self.settings.index_dir)
        return self._feedback_salt

    async def run_engine(self, fn: Callable[..., T], *args: Any, slot: bool = True) -> T:
        """Call an engine method in a worker thread; the single way cogs reach the engine.

        With `slot` (the default) the call takes one of `max_concurrent_queries` slots and
        raises Busy when none frees up within `slot_wait_seconds`; a reindex passes
        slot=False, as it runs for minutes and must not starve questions.
        """
        if not slot:
            return await asyncio.to_thread(fn, *args)
        try:
            await asyncio.wait_for(self.query_slots.acquire(), timeout=self.slot_wait_seconds)
        except TimeoutError:
            raise Busy() from None
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            self.query_slots.release()

    # --- lifecycle
    async def setup_hook(self) -> None:
        """Load the engine (when given a factory) and the cogs, then sync commands if due."""
        await self.load_engine()
        for extension in self._extensions:
            await self.load_extension(extension)
        if self._sync_on_start:
            await self.sync_on_start()

    async def on_message(self, message: discord.Message, /) -> None:
        """Do nothing here: questions are read by the Ask cog, and there are no text commands."""

    async def close(self) -> None:
        """Log out, then release the engine's files and threads."""
        await super().close()
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.close)

    # --- command sync (Discord limits how many commands may be created a day)
    @property
    def commands_hash_path(self) -> Path:
        """Where the hash of the last globally synced command set is kept."""
        return self.settings.index_dir / COMMANDS_HASH_FILE

    async def sync_on_start(self) -> None:
        """Sync to the dev guild when one is set; otherwise globally, only if commands changed."""
        if self.settings.dev_guild_id:
            await self.sync_commands(self.settings.dev_guild_id)
            return
        digest = payload_digest(command_payload(self.tree), self.application_id)
        try:
            stored = self.commands_hash_path.read_text(encoding="ascii").strip()
        except OSError:
            stored = ""
        if stored == digest:
            log.info("slash commands unchanged since the last sync; not syncing")
            return
        await self.sync_commands(None)

    async def sync_commands(self, guild_id: int | None) -> list[app_commands.AppCommand]:
        """Sync now: to one guild (instant, global commands copied in) or globally."""
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %d", len(synced), guild_id)
            return synced
        synced = await self.tree.sync()
        digest = payload_digest(command_payload(self.tree), self.application_id)
        try:
            self.commands_hash_path.parent.mkdir(parents=True, exist_ok=True)
            self.commands_hash_path.write_text(digest + "\n", encoding="ascii")
        except OSError as exc:
            log.warning("could not remember the synced commands (%s); will sync again", exc)
        log.info("synced %d commands globally (may take up to an hour to show)", len(synced))
        return synced
