"""Browsing: `/articles recent` (paged) and `/article` (one article's details)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import ArticleBot
from bot.errors import NO_MENTIONS, report_error, send_ephemeral
from bot.render.articles import render_article, render_article_page
from bot.render.text import choice_name
from index.models import ArticleInfo

PAGE_TIMEOUT_SECONDS = 300.0
AUTOCOMPLETE_CHOICES = 25


class RecentArticlesView(discord.ui.View):
    """Previous/Next buttons that only the person who asked can press."""

    def __init__(
        self,
        bot: ArticleBot,
        owner_id: int,
        source: str | None,
        per_page: int,
        total: int,
        timeout: float = PAGE_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(timeout=timeout)
        self.bot = bot
        self.owner_id = owner_id
        self.source = source
        self.per_page = per_page
        self.total = total
        self.page = 0
        self.message: discord.Message | None = None
        self._update_buttons()

    @property
    def pages(self) -> int:
        """How many pages there are (at least one)."""
        return max(1, math.ceil(self.total / self.per_page))

    def _update_buttons(self) -> None:
        """Grey out the buttons that lead nowhere."""
        self.previous.disabled = self.page <= 0
        self.next.disabled = self.page >= self.pages - 1

    async def fetch_page(self) -> list[ArticleInfo]:
        """The articles on the current page."""
        return await self.bot.run_engine(
            self.bot.engine.recent_articles, self.per_page, self.page * self.per_page, self.source
        )

    def embed(self, articles: list[ArticleInfo]) -> discord.Embed:
        """The current page as an embed."""
        return render_article_page(articles, self.page, self.pages, self.total, self.source)

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Only the asker may page; everyone else is told so privately."""
        if interaction.user.id == self.owner_id:
            return True
        await send_ephemeral(interaction, "Only the person who asked can page through these.")
        return False

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        """Move by `step` pages and show the result."""
        self.page = min(max(self.page + step, 0), self.pages - 1)
        self._update_buttons()
        # Acknowledge first: the engine may take longer than Discord's three seconds.
        await interaction.response.defer()
        articles = await self.fetch_page()
        await interaction.edit_original_response(embed=self.embed(articles), view=self)

    @discord.ui.button(label="Previous", emoji="◀️", style=discord.ButtonStyle.secondary)
    async def previous(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        """Show the previous page."""
        await self._turn(interaction, -1)

    @discord.ui.button(label="Next", emoji="▶️", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        """Show the next page."""
        await self._turn(interaction, 1)

    async def on_timeout(self) -> None:
        """Disable the buttons once nobody can use them any more."""
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        if self.message is not None:
            # The message may be gone or its token expired: then nothing is left to disable.
            with contextlib.suppress(discord.HTTPException):
                await self.message.edit(view=self)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any], /
    ) -> None:
        """Same treatment as command errors."""
        await report_error(interaction, error)


class Articles(commands.Cog):
    """Lists and shows articles in the collection."""

    articles = app_commands.Group(name="articles", description="Browse the collection.")

    def __init__(self, bot: ArticleBot) -> None:
        self.bot = bot

    @articles.command(name="recent", description="The newest articles, a page at a time.")
    @app_commands.describe(count="Articles per page (1-25)", source="Only this outlet")
    async def recent(
        self,
        interaction: discord.Interaction,
        count: app_commands.Range[int, 1, 25] = 10,
        source: str | None = None,
    ) -> None:
        """List the newest articles with Previous/Next buttons."""
        await interaction.response.defer(thinking=True)
        source = source.strip() if source and source.strip() else None
        total = await self.bot.run_engine(self.bot.engine.count_articles, source)
        view = RecentArticlesView(self.bot, interaction.user.id, source, count, total)
        articles = await view.fetch_page()
        view.message = await interaction.followup.send(
            embed=view.embed(articles), view=view, allowed_mentions=NO_MENTIONS, wait=True
        )

    @recent.autocomplete("source")
    async def recent_source_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Outlets, from the Ask cog's cache when it is loaded."""
        ask = self.bot.get_cog("Ask")
        if ask is not None:
            return await ask.source_autocomplete(interaction, current)  # type: ignore[attr-defined]
        return []

    @app_commands.command(name="article", description="One article's details and opening.")
    @app_commands.describe(id_or_title="The article's id, or (part of) its title")
    async def article(self, interaction: discord.Interaction, id_or_title: str) -> None:
        """Show one article."""
        await interaction.response.defer(thinking=True)
        detail = await self.bot.run_engine(self.bot.engine.article, id_or_title.strip())
        if detail is None:
            await interaction.followup.send(
                "No article matches that id or title.", allowed_mentions=NO_MENTIONS
            )
            return
        await interaction.followup.send(
            embed=render_article(detail, self.bot.settings.caution_labels),
            allowed_mentions=NO_MENTIONS,
        )

    @article.autocomplete("id_or_title")
    async def title_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Titles containing what was typed; the chosen value is the article id."""
        found = await self.bot.run_engine(
            self.bot.engine.search_titles, current.strip(), AUTOCOMPLETE_CHOICES
        )
        return [
            app_commands.Choice(name=choice_name(f"{info.title} ({info.source})"),
                                value=info.id[:100])
            for info in found[:AUTOCOMPLETE_CHOICES]
        ]


async def setup(bot: ArticleBot) -> None:
    """Add the cog."""
    await bot.add_cog(Articles(bot))
