"""Follows: `/following`, and the posts of new articles on a followed topic."""

from __future__ import annotations

from collections.abc import Sequence

from bot.render.articles import article_line
from bot.render.text import CONTENT_LIMIT, MAX_FOLLOW_HITS, SEPARATOR, pack, topic_text
from index.models import ArticleHit, Follow


def follow_line(follow: Follow, *, with_channel: bool) -> str:
    """'**3** · topic · in #channel · by @user' (mentions render as names, pinging nobody)."""
    parts = [f"**{follow.id}**", topic_text(follow.topic)]
    if with_channel:
        parts.append(f"in <#{follow.channel_id}>")
    parts.append(f"by <@{follow.user_id}>")
    return SEPARATOR.join(parts)


def render_follows(follows: Sequence[Follow], *, whole_server: bool) -> list[str]:
    """`/following`: the follows of a channel or a server, with their ids."""
    where = "this server" if whole_server else "this channel"
    if not follows:
        return [f"Nothing is followed in {where}. Start with `/follow topic`."]
    lines = [f"**Followed in {where}** (remove with `/unfollow id`):"]
    lines += [follow_line(follow, with_channel=whole_server) for follow in follows]
    return pack(lines, CONTENT_LIMIT, "\n")


def render_follow_match(follow: Follow, hits: Sequence[ArticleHit]) -> list[str]:
    """New articles on a followed topic, posted in the follow's channel."""
    lines = [f"**New on {topic_text(follow.topic)}**",
             f"-# followed here as {follow.id}; stop with `/unfollow {follow.id}`"]
    lines += [article_line(hit.article) for hit in hits[:MAX_FOLLOW_HITS]]
    if len(hits) > MAX_FOLLOW_HITS:
        lines.append(f"…and {len(hits) - MAX_FOLLOW_HITS} more.")
    return pack(lines, CONTENT_LIMIT, "\n")
