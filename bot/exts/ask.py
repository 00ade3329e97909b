"""Questions: `/ask`, and messages that mention the bot, reply to it, or sit in an ask-channel."""

from __future__ import annotations

import logging
import re

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import ArticleBot
from bot.errors import NO_MENTIONS, UserFacingError, friendly_message, log_error
from bot.feedback import VoteButton, vote_view
from bot.guards import clean_question, parse_period
from bot.render import choice_name, render_answer, thread_name
from index.models import Answer, SearchFilters

log = logging.getLogger(__name__)

AUTOCOMPLETE_CHOICES = 25


def build_filters(
    source: str | None, since: str | None, until: str | None, label: str | None = None
) -> SearchFilters:
    """SearchFilters from the /ask options; BadInput for unreadable, out-of-range or reversed
    dates (see bot.guards.parse_period)."""
    since_day, until_day = parse_period(since, until)
    sources = (source.strip(),) if source and source.strip() else ()
    labels = (label.strip(),) if label and label.strip() else ()
    return SearchFilters(sources=sources, since=since_day, until=until_day, labels=labels)


def strip_mentions(content: str, user_id: int) -> str:
    """The message text without mentions of the bot."""
    return re.sub(rf"<@!?{user_id}>", " ", content).strip()


class Ask(commands.Cog):
    """Answers questions with quotes from the articles."""

    def __init__(self, bot: ArticleBot) -> None:
        self.bot = bot
        self._sources: list[str] | None = None

    # --- shared by /ask and messages
    async def check_question(self, user_id: int, question: str) -> str:
        """Apply the length limit and the per-user cooldown; raise what the user must hear."""
        question = clean_question(question, self.bot.settings.max_question_chars)
        await self.bot.ask_cooldown.check(user_id)
        return question

    async def answer(self, question: str, filters: SearchFilters) -> Answer:
        """Ask the engine (in a worker thread, within the concurrency cap)."""
        return await self.bot.run_engine(self.bot.engine.ask, question, filters)

    def render(self, answer: Answer) -> tuple[list[str], discord.ui.View | None]:
        """Message contents and, when quotes were given, the vote buttons for the last one."""
        contents = render_answer(answer, self.bot.settings.caution_labels)
        if not (answer.answered and answer.quotes):
            return contents, None
        key = self.bot.answers.add(answer.question, [quote.chunk_id for quote in answer.quotes])
        return contents, vote_view(key)

    # --- /ask
    @app_commands.command(name="ask", description="Ask a question; I answer with quotes.")
    @app_commands.describe(
        question="What you want to know",
        source="Only articles from this outlet",
        since="Only articles published on or after this date (YYYY-MM-DD)",
        until="Only articles published on or before this date (YYYY-MM-DD)",
        label="Only articles with this label (e.g. truenews)",
    )
    async def ask(
        self,
        interaction: discord.Interaction,
        question: str,
        source: str | None = None,
        since: str | None = None,
        until: str | None = None,
        label: str | None = None,
    ) -> None:
        """Answer a question from the articles, quoting them."""
        # Refusals come before defer so they can still be ephemeral.
        question = clean_question(question, self.bot.settings.max_question_chars)
        filters = build_filters(source, since, until, label)
        await self.bot.ask_cooldown.check(interaction.user.id)
        await interaction.response.defer(thinking=True)
        answer = await self.answer(question, filters)
        contents, view = self.render(answer)
        for index, content in enumerate(contents):
            last = index == len(contents) - 1
            await interaction.followup.send(
                content,
                allowed_mentions=NO_MENTIONS,
                suppress_embeds=True,
                **({"view": view} if last and view else {}),
            )

    @ask.autocomplete("source")
    async def source_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Outlets in the index that contain what was typed."""
        if self._sources is None:
            self._sources = await self.bot.run_engine(self.bot.engine.sources)
        needle = current.lower().strip()
        matches = [name for name in self._sources if needle in name.lower()]
        return [app_commands.Choice(name=choice_name(name), value=name[:100])
                for name in matches[:AUTOCOMPLETE_CHOICES]]

    @commands.Cog.listener()
    async def on_index_updated(self) -> None:
        """Forget cached outlets after a reindex."""
        self._sources = None

    # --- questions by message
    def question_in(self, message: discord.Message) -> str | None:
        """The question a message asks the bot, or None when it is not addressed to it."""
        me = self.bot.user
        if me is None or message.author.bot or message.author.id == me.id:
            return None
        mentioned = any(user.id == me.id for user in message.mentions)
        resolved = message.reference.resolved if message.reference else None
        replied = isinstance(resolved, discord.Message) and resolved.author.id == me.id
        in_own_thread = (
            isinstance(message.channel, discord.Thread) and message.channel.owner_id == me.id
        )
        channel_ids = set(self.bot.settings.ask_channel_ids)
        in_ask_channel = message.channel.id in channel_ids or (
            isinstance(message.channel, discord.Thread) and message.channel.parent_id in channel_ids
        )
        direct = message.guild is None
        if not (mentioned or replied or in_own_thread or in_ask_channel or direct):
            return None
        question = strip_mentions(message.content, me.id)
        # Without the message-content intent, unaddressed messages arrive empty: skip them.
        if not question and not (mentioned or direct):
            return None
        return question

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Answer a message addressed to the bot, in a thread."""
        question = self.question_in(message)
        if question is None:
            return
        try:
            question = await self.check_question(message.author.id, question)
        except UserFacingError as refusal:
            await self._reply(message, refusal.message)
            return
        try:
            destination = await self._thread_for(message, question)
            async with destination.typing():
                answer = await self.answer(question, SearchFilters())
            contents, view = self.render(answer)
            for index, content in enumerate(contents):
                last = index == len(contents) - 1
                await destination.send(
                    content,
                    allowed_mentions=NO_MENTIONS,
                    suppress_embeds=True,
                    **({"view": view} if last and view else {}),
                )
        except Exception as error:
            log_error(error, f"question by message from user {message.author.id}")
            await self._reply(message, friendly_message(error))

    async def _thread_for(
        self, message: discord.Message, question: str
    ) -> discord.abc.Messageable:
        """Where to answer: the message's thread or DM, else a new thread from the message."""
        channel = message.channel
        if message.guild is None or isinstance(channel, discord.Thread):
            return channel
        try:
            return await message.create_thread(name=thread_name(question))
        except discord.HTTPException as exc:
            # No thread permission, or not a channel that has threads: answer in place.
            log.info("could not open a thread (%s); answering in the channel", exc)
            return channel

    async def _reply(self, message: discord.Message, text: str) -> None:
        """A short reply that pings nobody; failures are logged once, not retried."""
        try:
            await message.reply(text, mention_author=False, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            log.warning("could not reply to a message (HTTP %s): %s", exc.status, exc.text)


async def setup(bot: ArticleBot) -> None:
    """Add the cog and the vote buttons (which also answer presses from before a restart)."""
    bot.add_dynamic_items(VoteButton)
    await bot.add_cog(Ask(bot))
