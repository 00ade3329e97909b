"""/articles recent, /article and /stats."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import AsyncMock, MagicMock

import discord
from helpers import FakeEngine, make_bot, make_interaction

from bot.exts.articles import RecentArticlesView


async def test_recent_articles_pages_for_the_asker_only(tmp_path: Path) -> None:
    engine = FakeEngine(n_articles=23)
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("Articles")
    interaction = make_interaction(bot, user_id=1, events=engine.events)
    await cog.recent.callback(cog, interaction, 10, None)
    assert engine.events[0] == "defer"
    sent = interaction.followup.send.await_args.kwargs
    view: RecentArticlesView = sent["view"]
    assert sent["embed"].footer.text == "Page 1 of 3 · 23 articles"
    assert sent["embed"].description.count("\n") == 9
    assert view.previous.disabled and not view.next.disabled

    stranger = make_interaction(bot, user_id=2)
    assert await view.interaction_check(stranger) is False
    refusal = stranger.response.send_message.await_args
    assert "Only the person who asked" in refusal.args[0]
    assert refusal.kwargs["ephemeral"] is True

    asker = make_interaction(bot, user_id=1)
    assert await view.interaction_check(asker) is True
    await view.next.callback(asker)
    await view.next.callback(asker)
    edited = asker.edit_original_response.await_args.kwargs
    assert edited["embed"].footer.text == "Page 3 of 3 · 23 articles"
    assert edited["embed"].description.count("•") == 3
    assert engine.calls[-1] == ("recent_articles", 10, 20, None)
    assert view.next.disabled and not view.previous.disabled


async def test_pages_disable_on_timeout(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path)
    view = RecentArticlesView(bot, 1, None, 5, 23)
    view.message = MagicMock(spec=discord.Message)
    view.message.edit = AsyncMock()
    await view.on_timeout()
    assert all(item.disabled for item in view.children)
    view.message.edit.assert_awaited_once()


async def test_article_details_and_title_autocomplete(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path)
    cog = bot.get_cog("Articles")
    interaction = make_interaction(bot)
    choices = await cog.title_autocomplete(interaction, "article 1")
    assert choices[0].value == "a0001" and choices[0].name.startswith("Article 1")
    await cog.article.callback(cog, interaction, "a0001")
    embed = interaction.followup.send.await_args.kwargs["embed"]
    assert embed.title == "Article 1"
    assert "It began on a Monday." in embed.description

    missing = make_interaction(bot)
    await cog.article.callback(cog, missing, "nope")
    assert "No article matches" in missing.followup.send.await_args.args[0]


async def test_stats(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.record_feedback("q", [1], 1, "h1")
    engine.record_feedback("q", [1], -1, "h2")
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("Stats")
    interaction = make_interaction(bot)
    await cog.stats.callback(cog, interaction)
    embed = interaction.followup.send.await_args.kwargs["embed"]
    fields = {field.name: field.value for field in embed.fields}
    assert fields["Articles"] == "23"
    assert fields["Dates"] == "2023-01-01 to 2023-01-23"
    assert fields["Index"] == "flat (local), 120.6 KiB"
    assert fields["Feedback"] == "👍 1 · 👎 1"
    assert "12.5s" in fields["Last reindex"]
