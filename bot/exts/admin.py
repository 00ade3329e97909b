"""`/reindex`: rebuild the index while questions keep being answered; then post followed news."""

from __future__ import annotations

import asyncio
import functools
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import ArticleBot
from bot.errors import NO_MENTIONS, friendly_message, log_error, send_ephemeral
from bot.guards import admin_check
from bot.posting import post_follow_matches
from bot.render.admin import (
    render_failure,
    render_ingest_report,
    render_progress,
    render_skipped,
)
from index.models import IngestReport, Progress

log = logging.getLogger(__name__)

# Discord allows about five edits per message per five seconds; one every five is polite.
PROGRESS_EVERY_SECONDS = 5.0
# The reindex message is public; why it failed may name server paths, so that goes elsewhere.
FAILED_PUBLICLY = ("Reindex failed. The previous index is still serving. The reason went to "
                   "the log and, privately, to whoever ran the reindex.")


def failure_reason(error: BaseException) -> str:
    """Why a reindex failed, in words for the admin who ran it (only they see it).

    An OS error gives its description without the file name (the log has the whole error);
    anything else reads as the bot's errors always do (`friendly_message`).
    """
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return friendly_message(error)


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
        """Rebuild in the background; the old index answers until the new one is ready.

        The channel sees progress and counts; what failed or could not be read (server
        paths, OS errors) goes only to the admin, ephemerally, and to the log.
        """
        if self.running or self.bot.engine.reindexing:
            await interaction.response.send_message(
                "A reindex is already running; wait for it to finish.", ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        self.running = True
        try:
            await interaction.response.send_message(
                "Reindexing: starting…", allowed_mentions=NO_MENTIONS
            )
            text, report, private = await self._run(interaction)
            await self._announce(interaction, text)
            if private:
                await send_ephemeral(interaction, private)
            if report is not None and report.new_article_ids:
                await post_follow_matches(self.bot, report.new_article_ids)
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

    async def _run(
        self, interaction: discord.Interaction
    ) -> tuple[str, IngestReport | None, str]:
        """Run the reindex with progress updates.

        Returns the text for the channel, the report (None on failure) and the text for the
        admin alone ('' when there is nothing more to tell).
        """
        relay = ProgressRelay()
        updates = asyncio.create_task(relay.relay(interaction, self.progress_every))
        feeds_note = ""
        try:
            if self.bot.settings.feeds_file is not None:
                # Fetched items are written to feeds_dir, which the reindex reads: one version.
                feeds = await self.bot.run_engine(
                    functools.partial(self.bot.engine.sync_feeds, ingest=False), slot=False)
                feeds_note = f"\nFeeds: {feeds.summary()}."
            report = await self.bot.run_engine(self.bot.engine.reindex, relay.update, slot=False)
        except Exception as error:
            log_error(error, "reindex")
            return FAILED_PUBLICLY, None, render_failure("Reindex", failure_reason(error))
        finally:
            updates.cancel()
        self.bot.dispatch("index_updated")
        log.info("reindex done: %s", report.summary())
        return (render_ingest_report(report) + feeds_note, report,
                render_skipped(report.skipped))


async def setup(bot: ArticleBot) -> None:
    """Add the cog."""
    await bot.add_cog(Admin(bot))
