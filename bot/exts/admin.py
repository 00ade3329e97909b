"""`/reindex`: rebuild the index from the article folders while questions keep being answered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import ArticleBot
from bot.errors import NO_MENTIONS, NotAllowed, log_error
from bot.render import render_failure, render_ingest_report, render_progress
from index.config import Settings
from index.models import Progress

log = logging.getLogger(__name__)

# Discord allows about five edits per message per five seconds; one every five is polite.
PROGRESS_EVERY_SECONDS = 5.0


def may_administer(
    permissions: discord.Permissions,
    role_ids: Collection[int],
    user_id: int,
    settings: Settings,
) -> bool:
    """Manage Server, or an admin role, or an admin user."""
    return (
        permissions.manage_guild
        or user_id in settings.admin_user_ids
        or any(role in settings.admin_role_ids for role in role_ids)
    )


def admin_check(interaction: discord.Interaction) -> bool:
    """The run-time check behind /reindex (Discord's default permissions can be overridden)."""
    if interaction.guild is None:
        raise app_commands.NoPrivateMessage()
    user = interaction.user
    role_ids = [role.id for role in user.roles] if isinstance(user, discord.Member) else []
    settings: Settings = interaction.client.settings  # type: ignore[attr-defined]
    if not may_administer(interaction.permissions, role_ids, user.id, settings):
        raise NotAllowed(
            "Only members with Manage Server, or an admin role or user set for this bot, "
            "can reindex."
        )
    return True


class ProgressRelay:
    """Carries the latest progress from the worker thread to one message, edited now and then."""

    def __init__(self) -> None:
        self.latest: Progress | None = None

    def update(self, progress: Progress) -> None:
        """Called from the worker thread: only swaps a reference, which is thread-safe."""
        self.latest = progress

    async def relay(self, interaction: discord.Interaction, every: float) -> None:
        """Edit the progress message when something changed, at most once per `every` seconds."""
        shown: Progress | None = None
        while True:
            await asyncio.sleep(every)
            current = self.latest
            if current is None or current == shown:
                continue
            shown = current
            try:
                await interaction.edit_original_response(
                    content=render_progress(current), allowed_mentions=NO_MENTIONS
                )
            except discord.HTTPException as exc:
                log.warning("could not update reindex progress (HTTP %s); stopping", exc.status)
                return


class Admin(commands.Cog):
    """Keeps the index in sync with the article folders."""

    def __init__(self, bot: ArticleBot, progress_every: float = PROGRESS_EVERY_SECONDS) -> None:
        self.bot = bot
        self.progress_every = progress_every
        self.running = False

    @app_commands.command(name="reindex", description="Sync the index with the article folders.")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(admin_check)
    async def reindex(self, interaction: discord.Interaction) -> None:
        """Rebuild in the background; the old index answers until the new one is ready."""
        if self.running or self.bot.engine.reindexing:
            await interaction.response.send_message(
                "A reindex is already running; wait for it to finish.", ephemeral=True
            )
            return
        self.running = True
        try:
            await interaction.response.send_message(
                "Reindexing: starting…", allowed_mentions=NO_MENTIONS
            )
            await self._announce(interaction, await self._run(interaction))
        finally:
            self.running = False

    async def _announce(self, interaction: discord.Interaction, text: str) -> None:
        """Put the result in the progress message; a long run can outlive its 15-minute token."""
        try:
            await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
            return
        except discord.HTTPException as exc:
            log.warning("could not edit the reindex message (HTTP %s)", exc.status)
        channel = interaction.channel
        if isinstance(channel, discord.abc.Messageable):
            try:
                await channel.send(text, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException as exc:
                log.warning("could not post the reindex result (HTTP %s)", exc.status)

    async def _run(self, interaction: discord.Interaction) -> str:
        """Run the reindex with progress updates; the final message text."""
        relay = ProgressRelay()
        updates = asyncio.create_task(relay.relay(interaction, self.progress_every))
        try:
            report = await self.bot.run_engine(self.bot.engine.reindex, relay.update, slot=False)
        except Exception as error:
            log_error(error, "reindex")
            return render_failure("Reindex", error) + ". The previous index is still serving."
        finally:
            updates.cancel()
        self.bot.dispatch("index_updated")
        log.info("reindex done: %s", report.summary())
        return render_ingest_report(report)


async def setup(bot: ArticleBot) -> None:
    """Add the cog."""
    await bot.add_cog(Admin(bot))
