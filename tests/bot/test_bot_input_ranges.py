"""Every number and date a slash command takes has a range; out of it, a clear ephemeral refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import FakeEngine, make_bot, make_interaction

from bot.client import command_payload
from bot.errors import GENERIC_FAILURE, BadInput, report_error
from bot.exts.follows import find_follow
from index.models import Follow

SPAN = "give one from 1800-01-01 to 2199-12-31."
NUMBER_TYPES = {4: "integer", 10: "number"}  # Discord's option types


def options(payload: list[dict[str, Any]], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(/command sub option, option) for every option in a command-tree payload."""
    for item in payload:
        name = f"{path} {item['name']}".strip()
        if item.get("type") in (None, 1, 2) and "options" in item:  # command, (sub)group
            yield from options(item["options"], name)
        elif "type" in item and item["type"] not in (1, 2):
            yield f"/{name}", item


async def test_every_numeric_option_carries_min_and_max_in_the_synced_payload(
    tmp_path: Path,
) -> None:
    bot = await make_bot(tmp_path)
    numeric = {name: option for name, option in options(command_payload(bot.tree))
               if option["type"] in NUMBER_TYPES}
    assert "/articles recent count" in numeric  # the walk reaches sub-commands
    for name, option in numeric.items():
        assert "min_value" in option and "max_value" in option, name
        assert option["min_value"] >= 1 and option["max_value"] <= 25, name


async def refused(interaction: Any, error: BaseException) -> str:
    """The one ephemeral line the user sees for `error` (a reply, or a follow-up once deferred)."""
    await report_error(interaction, error)
    sent = interaction.response.send_message.await_args_list
    sent += interaction.followup.send.await_args_list
    [call] = sent
    assert call.kwargs["ephemeral"] is True
    return call.args[0]


@pytest.mark.parametrize(
    ("command", "args", "kwargs"),
    [
        pytest.param("Ask", ("q",), {"since": "99999999999 days ago"},
                     id="ask-since-days"),  # was "Something went wrong"
        pytest.param("Ask", ("q",), {"until": "9999 years ago"}, id="ask-until-years"),
        pytest.param("Ask", ("q",), {"since": "0001-01-01"}, id="ask-since-year-1"),
        pytest.param("News", ("floods",), {"since": "1000000 days ago"},
                     id="timeline-since-days"),
        pytest.param("News", ("floods",), {"until": "99999999999999999999999 days ago"},
                     id="timeline-until-days"),
        pytest.param("News", (), {"since": "999999 weeks ago"}, id="whatsnew-since-weeks"),
    ],
)
async def test_dates_out_of_range_are_refused_clearly_before_defer(
    tmp_path: Path, command: str, args: tuple[str, ...], kwargs: dict[str, str]
) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog(command)
    callback = {"Ask": "ask", "News": "timeline" if args else "whatsnew"}[command]
    interaction = make_interaction(bot, events=engine.events)
    with pytest.raises(BadInput) as raised:
        await getattr(cog, callback).callback(cog, interaction, *args, **kwargs)
    assert engine.events == []  # neither deferred nor asked
    text = await refused(interaction, raised.value)
    assert text != GENERIC_FAILURE
    assert text.endswith(SPAN) and "\n" not in text


async def test_a_very_long_date_is_refused_in_a_message_that_fits(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("Ask")
    interaction = make_interaction(bot, events=engine.events)
    with pytest.raises(BadInput) as raised:
        await cog.ask.callback(cog, interaction, "q", since="9" * 5999 + "x")
    text = await refused(interaction, raised.value)
    assert "YYYY-MM-DD" in text and len(text) < 300


async def test_unfollow_with_a_huge_number_is_a_clear_refusal(tmp_path: Path) -> None:
    engine = FakeEngine()
    bot = await make_bot(tmp_path, engine)
    cog = bot.get_cog("Follows")
    engine.add_follow("floods", channel_id=7, user_id=5, guild_id=42)  # an id to compare with
    interaction = make_interaction(bot, user_id=5)
    with pytest.raises(BadInput, match="see /following") as raised:
        await cog.unfollow.callback(cog, interaction, "#" + "9" * 5000)  # int() refuses these
    assert len(await refused(interaction, raised.value)) < 300


def test_follow_ids_are_ascii_numbers_of_at_most_19_digits() -> None:
    follows = [Follow(1, 42, 7, 5, "floods"), Follow(2**63 - 1, 42, 7, 5, "²")]
    assert find_follow(follows, 7, "#1") == follows[0]
    assert find_follow(follows, 7, str(2**63 - 1)) == follows[1]
    assert find_follow(follows, 7, "²") == follows[1]  # a digit to str.isdigit, not to int()
    assert find_follow(follows, 7, "١") is None  # Arabic-Indic one: a topic, not id 1
    assert find_follow(follows, 7, "9" * 20) is None
