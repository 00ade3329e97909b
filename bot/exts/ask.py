"""Questions: `/ask`, and messages that mention the bot, reply to it, or sit in an ask-channel."""

from __future__ import annotations

import functools
import logging
import re

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import ArticleBot
from bot.errors import NO_MENTIONS, UserFacingError, friendly_message, log_error
from bot.feedback import VoteButton, vote_view
from bot.guards import clean_question, parse_period
from bot.render.answer import render_answer
from bot.render.text import choice_name, thread_name
from index.engine import EngineError
from index.followup import Conversation
from index.models import Answer, SearchFilters
from index.text import tokens

log = logging.getLogger(__name__)

AUTOCOMPLETE_CHOICES = 25
# In an ask-channel, a message that starts with one of these is a question (so is one that
# ends with "?"); anything else there is small talk and gets no answer.
QUESTION_WORDS = frozenset(
    """who what when where why how which is are was were do does did can could will would
    should has have had""".split()
)
# What may follow a question mark at the end of a question: "really?!", "(why?)", "what?”".
_AFTER_QUESTION_MARK = " \t\n!.)]}\"'”’»…"


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


def looks_like_question(text: str) -> bool:
    """Whether a message reads as a question: it ends with "?" (or "？"), or its first word is
    a question word (QUESTION_WORDS). "thanks!", "lol" and "good morning" do not."""
    if text.rstrip(_AFTER_QUESTION_MARK).endswith(("?", "？")):
        return True
    first = tokens(text)[:1]
    return bool(first) and first[0] in QUESTION_WORDS


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

    async def answer(
        self, question: str, filters: SearchFilters, context: Conversation | None = None
    ) -> Answer:
        """Ask the engine (in a worker thread, within the concurrency cap); `context` is the
        conversation of a follow-up (a new question is asked without one, as by /ask)."""
        ask = self.bot.engine.ask
        if context is not None:
            ask = functools.partial(ask, context=context)
        return await self.bot.run_engine(ask, question, filters)

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
        """The question a message asks the bot, or None when it is not addressed to it.

        Addressed: a mention, a reply to the bot, a message in the bot's own thread (a
        follow-up), a direct message, or a question in an ask-channel. In an ask-channel,
        where nobody addresses the bot, only questions count (`looks_like_question`).
        """
        me = self.bot.user
        if me is None or message.author.bot or message.author.id == me.id:
            return None
        mentioned = any(user.id == me.id for user in message.mentions)
        replied = self._replied_answer(message) is not None
        in_own_thread = self._own_thread(message) is not None
        channel_ids = set(self.bot.settings.ask_channel_ids)
        in_ask_channel = message.channel.id in channel_ids or (
            isinstance(message.channel, discord.Thread) and message.channel.parent_id in channel_ids
        )
        direct = message.guild is None
        addressed = mentioned or replied or in_own_thread or direct
        if not (addressed or in_ask_channel):
            return None
        question = strip_mentions(message.content, me.id)
        # Without the message-content intent, unaddressed messages arrive empty: skip them.
        if not question and not (mentioned or direct):
            return None
        if not addressed and not looks_like_question(question):
            return None  # small talk in an ask-channel: nothing, not even a refusal
        return question

    def _own_thread(self, message: discord.Message) -> discord.Thread | None:
        """The bot's own thread the message is in, if it is in one."""
        me = self.bot.user
        channel = message.channel
        if me is not None and isinstance(channel, discord.Thread) and channel.owner_id == me.id:
            return channel
        return None

    def _replied_answer(self, message: discord.Message) -> discord.Message | None:
        """The bot's message this message replies to, if it replies to one."""
        me = self.bot.user
        resolved = message.reference.resolved if message.reference else None
        if me is not None and isinstance(resolved, discord.Message) and resolved.author.id == me.id:
            return resolved
        return None

    def conversation_key(self, message: discord.Message) -> int | None:
        """Where a follow-up's conversation is kept: the bot's thread it is in, else the id of
        the bot's answer it replies to. None: a new question, with no conversation."""
        thread = self._own_thread(message)
        if thread is not None:
            return thread.id
        replied = self._replied_answer(message)
        return replied.id if replied is not None else None

    async def conversation_for(self, message: discord.Message) -> Conversation | None:
        """The conversation a follow-up belongs to, or None for a new question.

        From the bot's ConversationLog, else from the state store, which keeps every one
        (`remember`), so a thread goes on after a restart. A state store that fails costs the
        context, not the answer.
        """
        key = self.conversation_key(message)
        if key is None:
            return None
        remembered = self.bot.conversations.get(key)
        if remembered is not None:
            return remembered
        try:
            kept = await self.bot.run_engine(self.bot.engine.conversation, key, slot=False)
        except EngineError as exc:
            log.warning("could not read a conversation from the state store (%s); no context",
                        exc)
            return None
        if kept is not None:
            self.bot.conversations.put([key], kept)
        return kept

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Answer a message addressed to the bot: in a new thread, or in the thread (or
        direct messages) it came from; a follow-up in the context of its conversation."""
        question = self.question_in(message)
        if question is None:
            return
        try:
            question = await self.check_question(message.author.id, question)
        except UserFacingError as refusal:
            await self._reply(message, refusal.message)
            return
        try:
            context = await self.conversation_for(message)
            destination, reference = await self._destination(message, question)
            async with destination.typing():
                answer = await self.answer(question, SearchFilters(), context)
            contents, view = self.render(answer)
            sent: list[discord.Message] = []
            for index, content in enumerate(contents):
                extra: dict[str, object] = {}
                if index == 0 and reference is not None:
                    extra["reference"] = reference
                if index == len(contents) - 1 and view:
                    extra["view"] = view
                sent.append(await destination.send(
                    content, allowed_mentions=NO_MENTIONS, suppress_embeds=True, **extra
                ))
            await self.remember(question, answer, context, destination, sent)
        except Exception as error:
            log_error(error, f"question by message from user {message.author.id}")
            await self._reply(message, friendly_message(error))

    async def remember(
        self,
        question: str,
        answer: Answer,
        context: Conversation | None,
        destination: discord.abc.Messageable,
        sent: list[discord.Message],
    ) -> None:
        """Keep the conversation under the thread answered in and under each answer message,
        so messages in the thread and replies to an answer are follow-ups to it: in the bot's
        ConversationLog and in the state store (a failure there is logged; the answer stands).
        """
        article_ids = [quote.article.id for quote in answer.quotes]
        conversation = (context or Conversation()).then(question, article_ids)
        keys = [message.id for message in sent if message is not None]
        if isinstance(destination, discord.Thread):
            keys.append(destination.id)
        self.bot.conversations.put(keys, conversation)
        try:
            await self.bot.run_engine(self.bot.engine.keep_conversation, keys, conversation,
                                      slot=False)
        except EngineError as exc:
            log.warning("could not keep a conversation in the state store (%s)", exc)

    async def _destination(
        self, message: discord.Message, question: str
    ) -> tuple[discord.abc.Messageable, discord.MessageReference | None]:
        """Where to answer, and what the answer replies to: the message's thread or DM; else
        a new thread from the message; when that fails, the channel, replying to the
        question (pinging nobody) so the answer is not cut off from it."""
        channel = message.channel
        if message.guild is None or isinstance(channel, discord.Thread):
            return channel, None
        try:
            return await message.create_thread(name=thread_name(question)), None
        except discord.HTTPException as exc:
            # No thread permission, or not a channel that has threads: answer in place.
            log.info("could not open a thread (%s); answering in the channel", exc)
            return channel, message.to_reference(fail_if_not_exists=False)

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
