"""Followed topics: `/follow`, `/unfollow`, `/following`; matches are posted after `/reindex`."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import ArticleBot
from bot.errors import NO_MENTIONS, BadInput, NotAllowed
from bot.guards import is_admin
from bot.render.follows import render_follows
from bot.render.text import choice_name, escape_text, one_line, topic_text
from index.models import Follow

# Short enough to read as one line and to fit an autocomplete label with its id.
TOPIC_CHARS = 90
# Each channel's follows must fit /unfollow's 25 suggestions, and one channel should not
# be able to make every reindex slow.
MAX_FOLLOWS_PER_CHANNEL = 25
AUTOCOMPLETE_CHOICES = 25
# Follow ids are SQLite/PostgreSQL integers (below 2**63): at most 19 digits. Longer digit runs
# are read as a topic, so int() never meets a 5,000-digit number (which it refuses).
FOLLOW_ID_DIGITS = 19


def same_topic(first: str, second: str) -> bool:
    """Topics that differ only in case or spacing are the same topic."""
    return one_line(first).casefold() == one_line(second).casefold()


def find_follow(follows: Sequence[Follow], channel_id: int, id_or_topic: str) -> Follow | None:
    """A follow by id among `follows`, or by topic among those of the channel.

    An id is 1 to FOLLOW_ID_DIGITS ASCII digits, optionally after '#'; anything else is a topic.
    """
    text = id_or_topic.strip().lstrip("#")
    if text.isascii() and text.isdigit() and len(text) <= FOLLOW_ID_DIGITS:
        return next((follow for follow in follows if follow.id == int(text)), None)
    return next((follow for follow in follows
                 if follow.channel_id == channel_id and same_topic(follow.topic, text)), None)


def place_of(interaction: discord.Interaction) -> tuple[int, int]:
    """(server id, channel id); follows live in server channels, so a DM is refused."""
    if interaction.guild is None or interaction.channel_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild.id, interaction.channel_id


class Follows(commands.Cog):
    """Topics a channel follows: new matching articles are posted there after each reindex."""

    def __init__(self, bot: ArticleBot) -> None:
        self.bot = bot

    async def reply(self, interaction: discord.Interaction, contents: list[str]) -> None:
        """Send the (ephemeral, deferred) answer."""
        for content in contents:
            await interaction.followup.send(
                content, ephemeral=True, allowed_mentions=NO_MENTIONS, suppress_embeds=True
            )

    @app_commands.command(name="follow", description="Post new articles on a topic here.")
    @app_commands.describe(topic="What to follow, e.g. 'the rail strike'")
    @app_commands.guild_only()
    async def follow(
        self, interaction: discord.Interaction, topic: app_commands.Range[str, 1, TOPIC_CHARS]
    ) -> None:
        """Follow a topic in this channel."""
        guild_id, channel_id = place_of(interaction)
        topic = one_line(topic)
        if not any(ch.isalnum() for ch in topic):
            raise BadInput("Give a topic with words in it, for example: the rail strike.")
        if len(topic) > TOPIC_CHARS:
            raise BadInput(f"Keep the topic under {TOPIC_CHARS} characters.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        existing = await self.bot.run_engine(
            partial(self.bot.engine.follows, channel_id=channel_id)
        )
        known = next((item for item in existing if same_topic(item.topic, topic)), None)
        if known is not None:
            await self.reply(interaction, [
                f"This channel already follows {topic_text(known.topic)} (id {known.id})."
            ])
            return
        if len(existing) >= MAX_FOLLOWS_PER_CHANNEL:
            raise BadInput(
                f"This channel follows {MAX_FOLLOWS_PER_CHANNEL} topics already; "
                "remove one with /unfollow first."
            )
        added = await self.bot.run_engine(partial(
            self.bot.engine.add_follow, topic, channel_id=channel_id,
            user_id=interaction.user.id, guild_id=guild_id,
        ))
        await self.reply(interaction, [
            f"Following {topic_text(added.topic)} here (id {added.id}). New articles on it "
            "are posted in this channel after each reindex; stop with "
            f"`/unfollow {added.id}`."
        ])

    @app_commands.command(name="unfollow", description="Stop posting new articles on a topic.")
    @app_commands.describe(id_or_topic="The follow's id (see /following) or its topic")
    @app_commands.guild_only()
    async def unfollow(self, interaction: discord.Interaction, id_or_topic: str) -> None:
        """Remove a follow: the member who added it, or an admin, may."""
        guild_id, channel_id = place_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        follows = await self.bot.run_engine(partial(self.bot.engine.follows, guild_id=guild_id))
        found = find_follow(follows, channel_id, id_or_topic)
        if found is None:
            shown = escape_text(one_line(id_or_topic)[:TOPIC_CHARS])
            raise BadInput(f"Nothing followed here matches {shown}; see /following.")
        if found.user_id != interaction.user.id and not is_admin(interaction):
            raise NotAllowed(
                "Only the member who followed this topic, or a server admin, can remove it."
            )
        await self.bot.run_engine(self.bot.engine.remove_follow, found.id)
        await self.reply(interaction, [
            f"Stopped following {topic_text(found.topic)} (id {found.id}) in <#{found.channel_id}>."
        ])

    @unfollow.autocomplete("id_or_topic")
    async def follow_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """This channel's follows whose id or topic contains what was typed."""
        if interaction.guild is None:
            return []
        follows = await self.bot.run_engine(partial(
            self.bot.engine.follows, guild_id=interaction.guild.id,
            channel_id=interaction.channel_id,
        ))
        needle = current.strip().lstrip("#").casefold()
        return [
            app_commands.Choice(name=choice_name(f"{item.id} · {item.topic}"), value=str(item.id))
            for item in follows
            if needle in str(item.id) or needle in item.topic.casefold()
        ][:AUTOCOMPLETE_CHOICES]

    @app_commands.command(name="following", description="The topics followed here, with ids.")
    @app_commands.describe(server="List the follows of every channel in this server")
    @app_commands.guild_only()
    async def following(self, interaction: discord.Interaction, server: bool = False) -> None:
        """List the channel's (or the server's) follows."""
        guild_id, channel_id = place_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        follows = await self.bot.run_engine(partial(
            self.bot.engine.follows, guild_id=guild_id, channel_id=None if server else channel_id
        ))
        await self.reply(interaction, render_follows(follows, whole_server=server))


async def setup(bot: ArticleBot) -> None:
    """Add the cog."""
    await bot.add_cog(Follows(bot))
