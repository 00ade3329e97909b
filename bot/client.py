"""The bot: receives its settings and engine, loads the cogs, syncs commands on purpose."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import BotSettings
from bot.errors import NO_MENTIONS, ArticleTree, Busy
from bot.feedback import AnswerLog, load_salt
from bot.guards import UserCooldown
from index.config import Settings
from index.engine import Engine, StateStore  # as the engine hands it out: not index.store's
from index.followup import ConversationLog

log = logging.getLogger(__name__)

T = TypeVar("T")
EngineFactory = Callable[[Settings], Engine]
StateFactory = Callable[[Settings], StateStore]

EXTENSIONS = (
    "bot.exts.ask",
    "bot.exts.articles",
    "bot.exts.stats",
    "bot.exts.admin",
    "bot.exts.news",
    "bot.exts.follows",
    "bot.exts.feeds",
)
COMMANDS_HASH_KEY = "commands_sha256"  # in the state store: the last global sync's digest
# How long a question waits for a free engine slot before the user hears "busy".
SLOT_WAIT_SECONDS = 5.0


def make_intents(settings: BotSettings) -> discord.Intents:
    """Default intents, plus Message Content (privileged) when follow-ups are on or
    ask-channels are set: messages that do not mention the bot arrive empty without it."""
    intents = discord.Intents.default()
    intents.message_content = settings.follow_ups or bool(settings.ask_channel_ids)
    return intents


def shard_plan(settings: BotSettings) -> str:
    """Which shards this process runs, for the log: 'shards 0,1 of 4'."""
    if settings.shard_count is None:
        return "shards: as many as Discord recommends, all in this process"
    shard_ids = settings.shard_ids or range(settings.shard_count)
    return f"shards {','.join(map(str, shard_ids))} of {settings.shard_count}"


def command_payload(tree: app_commands.CommandTree[Any]) -> list[dict[str, Any]]:
    """The global commands exactly as `tree.sync()` would send them, in a stable order."""
    payload = [command.to_dict(tree) for command in tree.get_commands()]
    return sorted(payload, key=lambda item: (item.get("type", 1), item["name"]))


def payload_digest(payload: Sequence[dict[str, Any]], application_id: int | None) -> str:
    """A hash of the command definitions (and the application they belong to)."""
    text = json.dumps({"application": application_id, "commands": list(payload)},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ArticleBot(commands.AutoShardedBot):
    """articlebot on Discord: slash commands and mentions, answered from the engine.

    Auto-sharded: without shard settings discord.py asks Discord how many shards to run (one
    below 1000 guilds) and runs them all here, which for one shard is a plain `commands.Bot`.
    With ARTICLEBOT_SHARD_COUNT (and ARTICLEBOT_SHARD_IDS) several processes split the shards;
    they must share one state store, and only the one running shard 0 syncs commands at start.
    """

    def __init__(
        self,
        settings: BotSettings,
        engine_factory: EngineFactory | None = None,
        *,
        state_factory: StateFactory = Engine.open_state,
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
            shard_count=settings.shard_count,
            shard_ids=list(settings.shard_ids) or None,
        )
        self.settings = settings
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._extensions = tuple(extensions)
        self._sync_on_start = sync_on_start
        self.slot_wait_seconds = slot_wait_seconds
        self.query_slots = asyncio.Semaphore(settings.max_concurrent_queries)
        self.ask_cooldown = UserCooldown(
            settings.ask_cooldown_rate, settings.ask_cooldown_seconds, self.take_token
        )
        self.answers = AnswerLog()
        # Follow-ups: each thread's (and answer's) conversation, kept by the bot so a cog
        # reload does not forget it. A cache: the state store keeps every one
        # (Engine.keep_conversation), so a thread goes on after a restart; a thread lives in one
        # guild, so in one shard and one process, and this copy cannot go stale.
        self.conversations = ConversationLog()
        self._state_factory = state_factory
        self._state: StateStore | None = None
        self._owns_state = False  # True when the state store is ours to close, not the engine's
        self._state_lock = asyncio.Lock()
        self._feedback_salt: bytes | None = None
        self._salt_lock = asyncio.Lock()

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

    # --- the bot's state (votes, follows, named values), shared by every bot process
    @property
    def state(self) -> StateStore:
        """The open state store: the engine's, or the bot's own when it runs without one.

        Raises RuntimeError before `load_state` has opened it.
        """
        if self._state is None:
            raise RuntimeError("the state store is not open yet (await load_state())")
        return self._state

    async def load_state(self) -> StateStore:
        """Open the state store off the event loop on first use, and return it.

        With an engine, its store (opening it is blocking too); without one (`articlebot
        sync`), the configured backend's. Raises what opening the store raises.
        """
        if self._state is None:
            async with self._state_lock:
                if self._state is None:
                    await self.load_engine()  # so an engine's store is not opened twice
                    engine = self._engine
                    if engine is not None:
                        self._state = await asyncio.to_thread(lambda: engine.state)
                    else:
                        self._state = await asyncio.to_thread(self._state_factory, self.settings)
                        self._owns_state = True
        return self._state

    async def feedback_salt(self) -> bytes:
        """The salt for voters' hashes, read from (or created once in) the state store."""
        if self._feedback_salt is None:
            async with self._salt_lock:
                if self._feedback_salt is None:
                    state = await self.load_state()
                    self._feedback_salt = await asyncio.to_thread(
                        load_salt, state, self.settings.index_dir
                    )
        return self._feedback_salt

    async def take_token(self, bucket: str, rate: int, per: float, now: float) -> float | None:
        """StateStore.take_token in a worker thread (rate limits shared by every process)."""
        state = await self.load_state()
        return await asyncio.to_thread(state.take_token, bucket, rate, per, now)

    async def store_vote(
        self, question: str, chunk_ids: tuple[int, ...], vote: int, user_hash: str
    ) -> None:
        """Record a 👍 (+1) or 👎 (-1) through the engine, in a worker thread within the slots."""
        await self.run_engine(self.engine.record_feedback, question, chunk_ids, vote, user_hash)

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

    async def connect(self, *, reconnect: bool = True) -> None:
        """Say which shards this process runs, then connect them (`serve` only, not `sync`)."""
        log.info("connecting to Discord: %s", shard_plan(self.settings))
        await super().connect(reconnect=reconnect)

    async def on_message(self, message: discord.Message, /) -> None:
        """Do nothing here: questions are read by the Ask cog, and there are no text commands."""

    async def close(self) -> None:
        """Log out, then release the engine's files and threads, and the bot's own store."""
        await super().close()
        state, self._state = self._state, None
        if self._owns_state and state is not None:
            self._owns_state = False
            await asyncio.to_thread(state.close)
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.close)

    # --- command sync (Discord limits how many commands may be created a day)
    async def synced_digest(self) -> str:
        """The digest of the command set last synced globally ('' when unknown)."""
        try:
            state = await self.load_state()
            return await asyncio.to_thread(state.get_value, COMMANDS_HASH_KEY) or ""
        except Exception as exc:  # whatever the backend raises, syncing again is the safe side
            log.warning("could not read which commands were last synced (%s); syncing", exc)
            return ""

    @property
    def syncs_on_start(self) -> bool:
        """Whether this process may sync commands at start: unless it is given shards without
        shard 0. Processes syncing at once would race and spend Discord's daily create limit.
        """
        return not self.settings.shard_ids or 0 in self.settings.shard_ids

    async def sync_on_start(self) -> None:
        """Sync to the dev guild when one is set; otherwise globally, only if commands changed.

        Only the process running shard 0 does (`syncs_on_start`); `articlebot sync` always can.
        """
        if not self.syncs_on_start:
            log.info("not syncing slash commands: the process running shard 0 does")
            return
        if self.settings.dev_guild_id:
            if await self.synced_digest():
                log.warning(
                    "the commands are also registered globally, so guild %d shows each one "
                    "twice; remove the global ones with: articlebot sync --clear --global",
                    self.settings.dev_guild_id)
            await self.sync_commands(self.settings.dev_guild_id)
            return
        digest = payload_digest(command_payload(self.tree), self.application_id)
        stored = await self.synced_digest()
        if stored == digest:
            log.info("slash commands unchanged since the last sync; not syncing")
            return
        await self.sync_commands(None)

    async def sync_commands(
        self, guild_id: int | None, *, clear: bool = False
    ) -> list[app_commands.AppCommand]:
        """Sync now: to one guild (instant, global commands copied in) or globally.

        With `clear`, remove the commands from there instead (a guild that also has the global
        ones shows each twice).
        """
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            if clear:
                self.tree.clear_commands(guild=guild)
            else:
                self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %d", len(synced), guild_id)
            return synced
        if clear:
            self.tree.clear_commands(guild=None)
        synced = await self.tree.sync()
        # An empty digest after a clear: the next global start registers the commands again.
        digest = "" if clear else payload_digest(command_payload(self.tree), self.application_id)
        try:
            state = await self.load_state()
            await asyncio.to_thread(state.set_value, COMMANDS_HASH_KEY, digest)
        except Exception as exc:  # forgetting costs one more sync at the next start, no more
            log.warning("could not remember the synced commands (%s); will sync again", exc)
        log.info("synced %d commands globally (may take up to an hour to show)", len(synced))
        return synced
