"""/ask's label, /timeline and /whatsnew."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from helpers import FakeEngine, make_article, make_bot, make_interaction

from bot.errors import BadInput, OnCooldown, report_error
from bot.exts.ask import build_filters
from index.models import (
    LAST_CHANGE_KEY,
    LAST_REINDEX_KEY,
    Quote,
    SearchFilters,
    Story,
    SyncOutcome,
)


def assert_sent_safely(interaction: object) -> list[str]:
    """Every follow-up pinged nobody and showed no previews; their contents."""
    calls = interaction.followup.send.await_args_list  # type: ignore[attr-defined]
    assert calls
    for call in calls:
        assert call.kwargs["allowed_mentions"].to_dict()["parse"] == []
        assert call.kwargs["suppress_embeds"] is True
        assert len(call.args[0]) <= 2000
    return [call.args[0] for call in calls]


def test_label_becomes_a_filter() -> None:
    assert build_filters(None, None, None, " truenews ") == SearchFilters(labels=("truenews",))
    assert build_filters(None, None, None, "  ").labels == ()


async def test_ask_passes_the_label(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("Ask")
    await cog.ask.callback(cog, make_interaction(bot), "Who won?", None, None, None, "fakenews")
    assert engine.calls[-1][2] == SearchFilters(labels=("fakenews",))


async def test_timeline_defers_then_sends_dated_quotes_in_order(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.timeline_quotes = [
        Quote("Then @everyone left.", make_article(9), 1, 0, 20, 0.4,
              also=(make_article(11, source="The Bugle"),)),
        Quote("First it rained.", make_article(3), 2, 0, 16, 0.8),
    ]
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("News")
    interaction = make_interaction(bot, events=engine.events)
    await cog.timeline.callback(cog, interaction, " the flood ", "2023-01-02", "2023-01-20")
    assert engine.events[:2] == ["defer", "timeline"]
    interaction.response.defer.assert_awaited_once_with(thinking=True)
    assert engine.calls[-1] == ("timeline", "the flood", date(2023, 1, 2), date(2023, 1, 20))
    [content] = assert_sent_safely(interaction)
    assert content.startswith("**Timeline:** the flood (2 – 20 Jan 2023)")
    assert content.index("First it rained.") < content.index("left.")
    assert "@everyone" not in content
    assert "Also reported by: [The Bugle](<https://example.org/11>)" in content


async def test_timeline_with_nothing_says_so(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path)
    cog = bot.get_cog("News")
    interaction = make_interaction(bot)
    await cog.timeline.callback(cog, interaction, "nothing")
    assert "No article tells of this." in assert_sent_safely(interaction)[0]


@pytest.mark.parametrize(
    "options",
    [{"topic": "  "}, {"topic": "x", "since": "blorp"},
     {"topic": "x", "since": "2023-05-01", "until": "2023-01-01"}],
)
async def test_timeline_refuses_bad_input_ephemerally_before_defer(
    tmp_path: Path, options: dict[str, str]
) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("News")
    interaction = make_interaction(bot, events=engine.events)
    with pytest.raises(BadInput) as raised:
        await cog.timeline.callback(cog, interaction, **options)
    assert engine.events == []
    await report_error(interaction, raised.value)
    assert interaction.response.send_message.await_args.kwargs["ephemeral"] is True


async def test_timeline_shares_the_question_cooldown(tmp_path: Path) -> None:
    bot = await make_bot(tmp_path, ask_cooldown_rate=1, ask_cooldown_seconds=60)
    cog = bot.get_cog("News")
    await cog.timeline.callback(cog, make_interaction(bot), "floods")
    with pytest.raises(OnCooldown):
        await cog.timeline.callback(cog, make_interaction(bot), "floods")


async def test_whatsnew_lists_stories_with_their_other_outlets(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.stories = [
        Story(make_article(5), also=(make_article(6, source="The Bugle"),
                                     make_article(7, source="Gotham Gazette"))),
        Story(make_article(4, title="Quiet [day]")),
    ]
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("News")
    interaction = make_interaction(bot, events=engine.events)
    await cog.whatsnew.callback(cog, interaction)
    assert engine.events[:2] == ["defer", "whatsnew"]
    assert engine.calls[-1] == ("whatsnew", None)
    [content] = assert_sent_safely(interaction)
    assert content.startswith("**What's new since the last reindex**")
    assert "+2 more outlets: [The Bugle](<https://example.org/6>)" in content
    assert r"[Quiet \[day\]](<https://example.org/4>)" in content

    dated = make_interaction(bot)
    engine.stories = []
    await cog.whatsnew.callback(cog, dated, "2023-03-01")
    assert engine.calls[-1] == ("whatsnew", date(2023, 3, 1))
    assert assert_sent_safely(dated) == ["Nothing new since 1 Mar 2023."]


async def test_whatsnew_refuses_an_unreadable_date_before_defer(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("News")
    interaction = make_interaction(bot, events=engine.events)
    with pytest.raises(BadInput):
        await cog.whatsnew.callback(cog, interaction, "someday maybe")
    assert engine.events == []


async def test_whatsnew_after_a_no_op_reindex_does_not_list_everything(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.stories = [Story(make_article(n)) for n in range(1, 6)]  # the first build: all of them
    first = SyncOutcome("reindex", datetime(2023, 2, 1, 10, tzinfo=UTC), added=23,
                        generation="gen-000001", from_scratch=True)
    noop = SyncOutcome("reindex", datetime(2023, 2, 3, 9, tzinfo=UTC))
    engine.memory.values.update(
        {LAST_CHANGE_KEY: first.to_json(), LAST_REINDEX_KEY: noop.to_json()})
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("News")
    interaction = make_interaction(bot, events=engine.events)
    await cog.whatsnew.callback(cog, interaction)
    [content] = assert_sent_safely(interaction)
    assert content.startswith("Nothing new: the index was built from scratch <t:")
    assert "Article" not in content
    assert "whatsnew" not in engine.events  # nothing to look up
