"""Posting news to channels: new articles that match followed topics.

Shared by `/reindex` and the scheduled feed sync (cogs do not import each other).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import discord

from bot.client import ArticleBot
from bot.errors import NO_MENTIONS, log_error
from bot.render.follows import render_follow_match
from index.models import ArticleHit, Follow

log = logging.getLogger(__name__)


async def post_follow_matches(bot: ArticleBot, article_ids: Sequence[str]) -> int:
    """Post the new articles matching each followed topic in its channel; messages sent.

    A channel that is gone, or where the bot may not post, is logged once and skipped; a
    failure here never undoes the reindex, so it is logged and not raised.
    """
    try:
        matches = await bot.run_engine(bot.engine.follow_matches, list(article_ids))
    except Exception as error:
        log_error(error, "matching new articles to followed topics")
        return 0
    by_channel: dict[int, list[tuple[Follow, list[ArticleHit]]]] = defaultdict(list)
    for follow, hits in matches:
        if hits:
            by_channel[follow.channel_id].append((follow, hits))
    sent = 0
    for channel_id, channel_matches in by_channel.items():
        channel = await follow_channel(bot, channel_id)
        if channel is None:
            continue
        try:
            for follow, hits in channel_matches:
                for content in render_follow_match(follow, hits):
                    await channel.send(
                        content, allowed_mentions=NO_MENTIONS, suppress_embeds=True
                    )
                    sent += 1
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("cannot post followed topics in channel %d (HTTP %s); skipping it",
                        channel_id, exc.status)
        except discord.HTTPException as exc:
            log.warning("posting followed topics in channel %d failed (HTTP %s): %s",
                        channel_id, exc.status, exc.text)
    return sent


async def follow_channel(bot: ArticleBot, channel_id: int) -> discord.abc.Messageable | None:
    """The channel a follow posts to, from the cache or Discord; None (logged) when unusable."""
    channel = bot.get_channel(channel_id)
    if channel is None:
        try:
            channel = await bot.fetch_channel(channel_id)
        except discord.HTTPException as exc:
            log.warning("followed channel %d is gone or hidden (HTTP %s); skipping it",
                        channel_id, exc.status)
            return None
    if not isinstance(channel, discord.abc.Messageable):
        log.warning("followed channel %d cannot take messages; skipping it", channel_id)
        return None
    return channel
