"""Feeds in the bot: `/feeds` rendering, the scheduled sync and `/reindex` syncing feeds."""

from __future__ import annotations

from unittest.mock import AsyncMock

import discord

from bot.render.admin import render_feeds
from bot.render.text import CONTENT_LIMIT
from index.feeds import FeedSource, FeedState


def test_feeds_show_last_fetch_status_and_articles():
    feeds = [
        (FeedSource("https://one.example/rss", "One News", ("uk",)),
         FeedState(status="ok", last_fetch="2026-11-30T12:00:00+00:00", articles=1)),
        (FeedSource("https://two.example/atom"),
         FeedState(status="error", error_kind="http 404", error="HTTP 404",
                   last_fetch="2026-11-30T12:00:00+00:00")),
        (FeedSource("https://three.example/feed"), FeedState()),
    ]
    text = "\n".join(render_feeds(feeds))
    assert text.splitlines()[0] == "**3 feeds**, 1 failing"
    assert ("• <https://one.example/rss> (One News) — ok, fetched <t:1796040000:R>, 1 article"
            in text)
    assert "• <https://two.example/atom> — failed (http 404: HTTP 404), fetched" in text
    assert "• <https://three.example/feed> — waiting, not fetched yet, 0 articles" in text


def test_many_feeds_fit_messages_and_deceive_nobody():
    feeds = [(FeedSource(f"https://feed{n}.example/rss", "Out\u202eLET [x](https://evil)"),
              FeedState(status="error", error_kind="unparsable", error="x" * 900))
             for n in range(60)]
    messages = render_feeds(feeds)
    assert len(messages) > 1 and all(len(m) <= CONTENT_LIMIT for m in messages)
    assert all("\u202e" not in m and "](https://evil)" not in m for m in messages)


def test_no_feeds_says_how_to_set_them():
    assert "ARTICLEBOT_FEEDS_FILE" in render_feeds([])[0]


async def test_a_scheduled_sync_posts_new_articles_to_followers(tmp_path):
    import asyncio
    from unittest.mock import MagicMock

    from helpers import FakeEngine, make_bot

    from bot.exts.feeds import Feeds

    engine = FakeEngine()
    engine.new_article_ids = ["a0001"]
    bot = await make_bot(tmp_path, engine)  # no feeds_file: the schedule is not started
    assert not bot.get_cog("Feeds").sync_loop.is_running()
    engine.add_follow("storm", channel_id=7, user_id=5, guild_id=42)
    channel = MagicMock(spec=discord.TextChannel)
    channel.send = AsyncMock()
    bot.get_channel = MagicMock(return_value=channel)  # type: ignore[method-assign]
    updated = []

    async def on_index_updated() -> None:
        updated.append(True)

    bot.add_listener(on_index_updated)
    await Feeds(bot).sync_once()
    await asyncio.sleep(0)
    assert ("sync_feeds", True) in engine.calls and updated == [True]
    assert channel.send.await_count == 1
    assert channel.send.await_args.kwargs["allowed_mentions"].to_dict()["parse"] == []


async def test_reindex_syncs_the_feeds_into_the_same_version(tmp_path):
    from helpers import FakeEngine, make_bot, make_interaction

    from bot.exts.admin import Admin

    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine, feeds_file=tmp_path / "feeds.txt")
    cog = Admin(bot, progress_every=0.01)
    interaction = make_interaction(bot, permissions=discord.Permissions(manage_guild=True))
    await cog.reindex.callback(cog, interaction)
    # Written, not ingested: the reindex reads them (the schedule's own sync ingests).
    assert engine.calls.count(("sync_feeds", False)) == 1
    assert bot.get_cog("Feeds").sync_loop.is_running()  # feeds set: the schedule runs
    final = interaction.edit_original_response.await_args.kwargs["content"]
    assert "Feeds: feeds: 1 (0 unchanged, 0 failed)" in final
