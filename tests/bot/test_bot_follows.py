"""/follow, /unfollow, /following, and posting new articles on followed topics after /reindex."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest
from helpers import FakeEngine, http_error, make_bot, make_interaction

from bot.errors import BadInput, NotAllowed, friendly_message, report_error
from bot.exts.admin import Admin
from bot.exts.follows import MAX_FOLLOWS_PER_CHANNEL, find_follow
from bot.posting import post_follow_matches
from index.models import Follow

ADMIN = discord.Permissions(manage_guild=True)


def replies(interaction: Any) -> list[str]:
    """The follow-ups sent: each ephemeral, pinging nobody."""
    calls = interaction.followup.send.await_args_list
    for call in calls:
        assert call.kwargs["ephemeral"] is True
        assert call.kwargs["allowed_mentions"].to_dict()["parse"] == []
    return [call.args[0] for call in calls]


async def follows_cog(tmp_path: Path, engine: FakeEngine, **overrides: Any) -> Any:
    """The bot's Follows cog."""
    bot = await make_bot(tmp_path, engine, **overrides)
    return bot, bot.get_cog("Follows")


async def test_follow_defers_privately_then_stores_the_follow(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot, cog = await follows_cog(tmp_path, engine)
    interaction = make_interaction(bot, user_id=5, events=engine.events)
    await cog.follow.callback(cog, interaction, "  rail   strike ")
    assert engine.events[0] == "defer"
    interaction.response.defer.assert_awaited_once_with(ephemeral=True, thinking=True)
    assert list(engine.follow_table.values()) == [Follow(1, 42, 7, 5, "rail strike")]
    [reply] = replies(interaction)
    assert "Following rail strike here (id 1)" in reply and "/unfollow 1" in reply

    again = make_interaction(bot, user_id=6)
    await cog.follow.callback(cog, again, "Rail Strike")
    assert "already follows rail strike (id 1)" in replies(again)[0]
    assert len(engine.follow_table) == 1


async def test_follow_is_refused_in_dms_and_without_words(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot, cog = await follows_cog(tmp_path, engine)
    dm = make_interaction(bot, guild=False, events=engine.events)
    with pytest.raises(discord.app_commands.NoPrivateMessage) as refused:
        await cog.follow.callback(cog, dm, "floods")
    assert "not in direct messages" in friendly_message(refused.value)
    with pytest.raises(BadInput):
        await cog.follow.callback(cog, make_interaction(bot, events=engine.events), " ?! ")
    assert engine.events == []  # refused before deferring, so the refusal can be ephemeral
    await report_error(dm, refused.value)
    assert dm.response.send_message.await_args.kwargs["ephemeral"] is True


async def test_a_channel_has_a_follow_cap(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot, cog = await follows_cog(tmp_path, engine)
    for n in range(MAX_FOLLOWS_PER_CHANNEL):
        engine.add_follow(f"topic {n}", channel_id=7, user_id=1, guild_id=42)
    interaction = make_interaction(bot)
    with pytest.raises(BadInput, match="/unfollow"):
        await cog.follow.callback(cog, interaction, "one more")
    assert len(engine.follow_table) == MAX_FOLLOWS_PER_CHANNEL


async def test_commands_are_server_only(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path)
    for name in ("follow", "unfollow", "following"):
        assert bot.tree.get_command(name).guild_only


async def test_owner_removes_by_id_or_topic(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot, cog = await follows_cog(tmp_path, engine)
    first = engine.add_follow("floods", channel_id=7, user_id=5, guild_id=42)
    engine.add_follow("rail strike", channel_id=7, user_id=5, guild_id=42)
    engine.events.clear()
    interaction = make_interaction(bot, user_id=5, events=engine.events)
    await cog.unfollow.callback(cog, interaction, str(first.id))
    assert engine.events[0] == "defer"
    assert "Stopped following floods (id 1) in <#7>" in replies(interaction)[0]
    await cog.unfollow.callback(cog, make_interaction(bot, user_id=5), "Rail  Strike")
    assert engine.follow_table == {}


async def test_others_may_not_remove_a_follow_but_admins_may(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot, cog = await follows_cog(tmp_path, engine, admin_role_ids=[10], admin_user_ids=[30])
    follow = engine.add_follow("floods", channel_id=7, user_id=5, guild_id=42)
    stranger = make_interaction(bot, user_id=6)
    with pytest.raises(NotAllowed) as refused:
        await cog.unfollow.callback(cog, stranger, "1")
    assert follow.id in engine.follow_table
    await report_error(stranger, refused.value)
    assert "Only the member who followed" in replies(stranger)[0]

    for admin in (make_interaction(bot, user_id=7, permissions=ADMIN),
                  make_interaction(bot, user_id=8, roles=[10]),
                  make_interaction(bot, user_id=30)):
        engine.follow_table[follow.id] = follow
        await cog.unfollow.callback(cog, admin, "floods")
        assert engine.follow_table == {}


async def test_unfollow_of_an_unknown_or_foreign_follow(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot, cog = await follows_cog(tmp_path, engine)
    engine.add_follow("floods", channel_id=70, user_id=5, guild_id=4242)  # another server
    interaction = make_interaction(bot, user_id=5, permissions=ADMIN)
    with pytest.raises(BadInput, match="see /following"):
        await cog.unfollow.callback(cog, interaction, "1")
    with pytest.raises(discord.app_commands.NoPrivateMessage):
        await cog.unfollow.callback(cog, make_interaction(bot, guild=False), "1")
    assert len(engine.follow_table) == 1


def test_find_follow() -> None:
    follows = [Follow(1, 42, 7, 5, "floods"), Follow(2, 42, 8, 5, "floods")]
    assert find_follow(follows, 8, "#2") == follows[1]
    assert find_follow(follows, 8, " FLOODS ") == follows[1]
    assert find_follow(follows, 9, "floods") is None
    assert find_follow(follows, 7, "3") is None


async def test_unfollow_autocomplete_offers_the_channels_follows(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot, cog = await follows_cog(tmp_path, engine)
    engine.add_follow("floods", channel_id=7, user_id=5, guild_id=42)
    engine.add_follow("rail strike", channel_id=7, user_id=5, guild_id=42)
    engine.add_follow("rail fares", channel_id=8, user_id=5, guild_id=42)
    choices = await cog.follow_autocomplete(make_interaction(bot), "rail")
    assert [(c.name, c.value) for c in choices] == [("2 · rail strike", "2")]
    assert await cog.follow_autocomplete(make_interaction(bot, guild=False), "") == []


async def test_following_lists_the_channel_or_the_server(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot, cog = await follows_cog(tmp_path, engine)
    engine.add_follow("floods", channel_id=7, user_id=5, guild_id=42)
    engine.add_follow("rail strike", channel_id=8, user_id=6, guild_id=42)
    engine.events.clear()
    channel = make_interaction(bot, events=engine.events)
    await cog.following.callback(cog, channel)
    assert engine.events[0] == "defer"
    [text] = replies(channel)
    assert "**1** · floods · by <@5>" in text and "rail strike" not in text
    server = make_interaction(bot)
    await cog.following.callback(cog, server, True)
    assert "**2** · rail strike · in <#8> · by <@6>" in replies(server)[0]
    with pytest.raises(discord.app_commands.NoPrivateMessage):
        await cog.following.callback(cog, make_interaction(bot, guild=False))


# --- posting after /reindex


def text_channel(channel_id: int) -> MagicMock:
    """A text channel whose sends are recorded."""
    channel = MagicMock(spec=discord.TextChannel, id=channel_id)
    channel.send = AsyncMock()
    return channel


async def test_reindex_posts_new_articles_in_the_followers_channels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = FakeEngine()
    engine.new_article_ids = ["a0001", "a0002"]
    bot = await make_bot(tmp_path, engine)
    for channel_id, topic in ((7, "floods"), (8, "rail"), (9, "gone"), (10, "hidden"),
                              (10, "hidden too")):
        engine.add_follow(topic, channel_id=channel_id, user_id=5, guild_id=42)
    cached, fetched, hidden = text_channel(7), text_channel(8), text_channel(10)
    hidden.send.side_effect = http_error(403, "Missing Access")
    bot.get_channel = MagicMock(side_effect={7: cached, 10: hidden}.get)  # type: ignore[method-assign]

    async def fetch(channel_id: int) -> MagicMock:
        if channel_id == 8:
            return fetched
        raise http_error(404, "Unknown Channel")

    bot.fetch_channel = AsyncMock(side_effect=fetch)  # type: ignore[method-assign]
    admin = Admin(bot, progress_every=10)
    caplog.set_level(logging.WARNING)
    await admin.reindex.callback(admin, make_interaction(bot, permissions=ADMIN))

    assert ("follow_matches", ("a0001", "a0002")) in engine.calls
    for channel, topic in ((cached, "floods"), (fetched, "rail")):
        sent = channel.send.await_args
        assert sent.args[0].startswith(f"**New on {topic}**")
        assert "[Article 2](<https://example.org/2>)" in sent.args[0]
        assert sent.kwargs["allowed_mentions"].to_dict()["parse"] == []
        assert sent.kwargs["suppress_embeds"] is True
    assert hidden.send.await_count == 1  # the second follow there is not tried again
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("channel 9" in w for w in warnings) == 1
    assert sum("channel 10" in w for w in warnings) == 1


async def test_no_new_articles_means_no_matching(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.add_follow("floods", channel_id=7, user_id=5, guild_id=42)
    bot = await make_bot(tmp_path, engine)
    admin = Admin(bot, progress_every=10)
    await admin.reindex.callback(admin, make_interaction(bot, permissions=ADMIN))
    assert not any(call[0] == "follow_matches" for call in engine.calls)


async def test_a_matching_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = FakeEngine()
    engine.follow_matches = MagicMock(side_effect=RuntimeError("boom"))  # type: ignore[method-assign]
    bot = await make_bot(tmp_path, engine)
    assert await post_follow_matches(bot, ["a0001"]) == 0
    assert any("followed topics failed" in r.getMessage() for r in caplog.records)
