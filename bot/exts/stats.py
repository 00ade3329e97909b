"""`/stats`: figures about the index and the feedback it has had."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import ArticleBot
from bot.errors import NO_MENTIONS
from bot.render.admin import render_stats


class Stats(commands.Cog):
    """Shows what the index holds."""

    def __init__(self, bot: ArticleBot) -> None:
        self.bot = bot

    @app_commands.command(name="stats", description="What the collection and the index hold.")
    async def stats(self, interaction: discord.Interaction) -> None:
        """Articles, passages, outlets, dates, model, index size, last reindex, feedback."""
        await interaction.response.defer(thinking=True)
        figures = await self.bot.run_engine(self.bot.engine.stats)
        feedback = await self.bot.run_engine(self.bot.engine.feedback_counts)
        last_reindex, _ = await self.bot.run_engine(self.bot.engine.sync_outcomes, slot=False)
        await interaction.followup.send(
            embed=render_stats(figures, feedback, last_reindex), allowed_mentions=NO_MENTIONS
        )


async def setup(bot: ArticleBot) -> None:
    """Add the cog."""
    await bot.add_cog(Stats(bot))
