"""News: `/timeline` (how a story developed) and `/whatsnew` (the newest stories)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import ArticleBot
from bot.errors import NO_MENTIONS
from bot.guards import clean_question, parse_day, parse_period
from bot.render.news import render_timeline, render_whatsnew


class News(commands.Cog):
    """Follows stories through time and across outlets."""

    def __init__(self, bot: ArticleBot) -> None:
        self.bot = bot

    async def send_all(self, interaction: discord.Interaction, contents: list[str]) -> None:
        """Send message contents as follow-ups that ping nobody and show no link previews."""
        for content in contents:
            await interaction.followup.send(
                content, allowed_mentions=NO_MENTIONS, suppress_embeds=True
            )

    @app_commands.command(name="timeline", description="How a story developed, oldest first.")
    @app_commands.describe(
        topic="The story, e.g. 'the rail strike'",
        since="Only articles published on or after this date (YYYY-MM-DD)",
        until="Only articles published on or before this date (YYYY-MM-DD)",
    )
    async def timeline(
        self,
        interaction: discord.Interaction,
        topic: str,
        since: str | None = None,
        until: str | None = None,
    ) -> None:
        """One dated, linked quote per story about the topic, in date order."""
        # Refusals come before defer so they can still be ephemeral.
        topic = clean_question(topic, self.bot.settings.max_question_chars)
        since_day, until_day = parse_period(since, until)
        await self.bot.ask_cooldown.check(interaction.user.id)
        await interaction.response.defer(thinking=True)
        quotes = await self.bot.run_engine(self.bot.engine.timeline, topic, since_day, until_day)
        await self.send_all(
            interaction,
            render_timeline(topic, quotes, since_day, until_day, self.bot.settings.caution_labels),
        )

    @app_commands.command(name="whatsnew", description="The newest stories, across outlets.")
    @app_commands.describe(
        since="Stories published on or after this date (default: what the last reindex added)"
    )
    async def whatsnew(self, interaction: discord.Interaction, since: str | None = None) -> None:
        """The newest stories, each with the other outlets that told it.

        Without `since`: what the latest reindex that changed the index brought in (the
        state store keeps what each run did: Engine.sync_outcomes).
        """
        since_day = parse_day(since) if since and since.strip() else None
        await interaction.response.defer(thinking=True)
        last_reindex = last_change = None
        if since_day is None:
            last_reindex, last_change = await self.bot.run_engine(
                self.bot.engine.sync_outcomes, slot=False)
        # After a build from scratch every article is "what it brought in": nothing to look up.
        stories = [] if last_change is not None and last_change.from_scratch else (
            await self.bot.run_engine(self.bot.engine.whatsnew, since_day))
        await self.send_all(interaction, render_whatsnew(
            stories, since_day, last_reindex=last_reindex, last_change=last_change))


async def setup(bot: ArticleBot) -> None:
    """Add the cog."""
    await bot.add_cog(News(bot))
