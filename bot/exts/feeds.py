"""Feeds: synced on a schedule (new articles posted to followed topics) and `/feeds` for admins."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.client import ArticleBot
from bot.errors import NO_MENTIONS, log_error
from bot.guards import admin_check
from bot.posting import post_follow_matches
from bot.render.admin import render_feeds

log = logging.getLogger(__name__)


class Feeds(commands.Cog):
    """Keeps the collection in step with the feeds of `feeds_file`."""

    def __init__(self, bot: ArticleBot) -> None:
        self.bot = bot
        self.sync_loop = tasks.loop(minutes=bot.settings.feeds_interval_minutes)(self.sync_once)
        self.sync_loop.error(self._loop_failed)

    async def cog_load(self) -> None:
        """Start the schedule when feeds are set (the first sync runs at once)."""
        if self.bot.settings.feeds_file is not None:
            self.sync_loop.start()

    async def cog_unload(self) -> None:
        """Stop the schedule."""
        self.sync_loop.cancel()

    async def sync_once(self) -> None:
        """One scheduled sync: fetch, ingest, tell the other cogs, post followed topics.

        Skipped while a reindex runs (the next round catches up); a failure is logged and the
        schedule goes on.
        """
        if self.bot.engine.reindexing:
            log.info("feed sync skipped: a reindex is running")
            return
        try:
            report = await self.bot.run_engine(self.bot.engine.sync_feeds, slot=False)
        except Exception as error:
            log_error(error, "syncing feeds")
            return
        for result in report.feeds:
            if result.status == "error":
                log.warning("feed %s failed: %s: %s", result.url, result.error_kind, result.error)
        log.info("feed sync: %s", report.summary())
        if report.ingest is not None and report.ingest.changed:
            self.bot.dispatch("index_updated")
            if report.ingest.new_article_ids:
                await post_follow_matches(self.bot, report.ingest.new_article_ids)

    async def _loop_failed(self, error: BaseException) -> None:
        log_error(error, "the feed schedule")

    @app_commands.command(name="feeds", description="The feeds followed and how they fare.")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(admin_check)
    async def feeds(self, interaction: discord.Interaction) -> None:
        """Each feed with its last fetch, status and article count (only the admin sees it)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        states = await self.bot.run_engine(self.bot.engine.feed_states)
        for content in render_feeds(states):
            await interaction.followup.send(content, ephemeral=True, allowed_mentions=NO_MENTIONS,
                                            suppress_embeds=True)


async def setup(bot: ArticleBot) -> None:
    """Add the cog."""
    await bot.add_cog(Feeds(bot))
