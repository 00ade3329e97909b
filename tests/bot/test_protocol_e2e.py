"""The real bot (`articlebot serve`, a real engine) against a fake Discord on 127.0.0.1.

Each scenario runs `bot.run.serve` in a thread of its own, as it would run in its own
process, over a tiny index of invented articles (hashing embedder: no model loads), with
discord.py pointed at `fake_discord.FakeDiscord`. Scenarios assert on the requests the bot
sent; after each, `assert_discord_rules` checks every recorded request against Discord's
limits and the project's rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket
from fake_discord import (
    INTERACTION_DEADLINE,
    MESSAGE_CONTENT,
    WAIT_SECONDS,
    FakeDiscord,
    Interaction,
    Recorded,
    command_problems,
    content_problem,
)

from bot import run
from bot.client import ArticleBot
from bot.config import BotSettings
from bot.log import FILTERED_LOGGERS
from index.config import Settings
from index.engine import Engine
from tests.index.fakes import HashingEmbedder

T = TypeVar("T")
MODEL = "test-hashing"
# Invented articles (front matter gives outlet and date; /articles lists newest first).
ARTICLES = {
    "lighthouse.md": (
        "Kestrel Point lighthouse reopens", "The Harbour Gazette", "2024-03-04",
        "The lighthouse at Kestrel Point reopened to visitors on Saturday after two years "
        "of restoration work. The repairs were paid for by the Kestrel Harbour Trust, which "
        "raised the money from local families.\n\nThe keeper's cottage now houses a small "
        "museum about the shipwrecks along the coast.",
    ),
    "bakery.md": (
        "Millbrook bakery wins the sourdough prize", "Millbrook Post", "2024-03-10",
        "A family bakery in Millbrook won the national sourdough prize on Tuesday. The judges "
        "praised its rye loaf, which is baked in a wood-fired oven every morning.",
    ),
    "tram.md": (
        "Tram line to the university opens", "City Courier", "2024-02-20",
        "The new tram line between the central station and the university carried its first "
        "passengers on Monday. Trams run every eight minutes during the day.",
    ),
    "owl.md": (
        "Snowy owl seen on Harrow Moor", "Moorland Times", "2024-01-15",
        "Birdwatchers recorded a snowy owl on Harrow Moor for the first time in forty years. "
        "The bird was seen near the old quarry at dawn.",
    ),
    "library.md": (
        "Library opens on Sundays", "City Courier", "2024-01-05",
        "The central library will open on Sunday afternoons from February, after a petition "
        "signed by three thousand readers.",
    ),
}
EXTRA_ARTICLE = (
    "Ferry timetable changes for spring", "The Harbour Gazette", "2024-03-12",
    "The island ferry will sail twice a day from April, with an extra crossing on Fridays.",
)
LIGHTHOUSE_QUESTION = "When did the Kestrel Point lighthouse reopen?"
LIGHTHOUSE_QUOTE = "reopened to visitors on Saturday"


def unbold(content: str) -> str:
    """Message text without the bold that marks the answer inside a quote."""
    return content.replace("**", "")


TRAM_QUESTION = "When did the tram line to the university open?"
TRAM_QUOTE = "carried its first passengers on Monday"
FOLLOW_UP_QUESTION = "Who paid for the repairs?"
FOLLOW_UP_QUOTE = "paid for by the Kestrel Harbour Trust"


def write_article(folder: Path, name: str, title: str, source: str, day: str, text: str) -> None:
    """One Markdown article with front matter."""
    front = f"---\ntitle: {title}\nsource: {source}\ndate: {day}\n"
    front += f"url: https://news.example/{name.removesuffix('.md')}\n---\n\n"
    (folder / name).write_text(front + text + "\n", encoding="utf-8")


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    """The article folder."""
    folder = tmp_path / "articles"
    folder.mkdir()
    for name, (title, source, day, text) in ARTICLES.items():
        write_article(folder, name, title, source, day, text)
    return folder


@pytest.fixture
def index_dir(tmp_path: Path, articles: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A built index; the engine `serve` opens gets the same hashing embedder."""
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", article_dirs=[articles],
                        model=MODEL)
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder(MODEL))
    try:
        engine.reindex()
    finally:
        engine.close()
    monkeypatch.setattr("index.engine.make_embedder",
                        lambda model, backend, cache_dir=None: HashingEmbedder(model))
    return settings.index_dir


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """The fake Discord, with discord.py's REST base and default gateway pointed at it."""
    server = FakeDiscord()
    await server.start()
    monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
    # Used on reconnects that start afresh: never the real gateway.
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url))
    yield server
    await server.stop()
    assert_discord_rules(server)


@pytest.fixture(autouse=True)
def process_settings() -> Iterator[None]:
    """Undo what `serve` changes process-wide: log filters and levels, the switch interval."""
    interval = sys.getswitchinterval()
    loggers = [logging.getLogger(name) for name in FILTERED_LOGGERS]
    saved = [(logger, logger.level, logger.filters[:]) for logger in loggers]
    yield
    sys.setswitchinterval(interval)
    for logger, level, filters in saved:
        logger.setLevel(level)
        logger.filters[:] = filters


class Served:
    """`articlebot serve` running in its own thread (and event loop), as in its own process."""

    def __init__(self, settings: BotSettings, monkeypatch: pytest.MonkeyPatch) -> None:
        self.settings = settings
        self.bots: list[ArticleBot] = []
        self.observed = False  # whether the test awaited the exit (and saw what it raised)
        monkeypatch.setattr(run, "ArticleBot", self._make)
        self.exit: asyncio.Future[int] = asyncio.ensure_future(
            asyncio.to_thread(run.serve, settings)
        )

    def _make(self, *args: Any, **kwargs: Any) -> ArticleBot:
        """Build the bot exactly as `serve` asks, keeping a handle to stop it."""
        bot = ArticleBot(*args, **kwargs)
        self.bots.append(bot)
        return bot

    async def ended(self) -> int:
        """serve's exit code once it returns by itself (what it raises, it raises here)."""
        self.observed = True
        return await asyncio.wait_for(asyncio.shield(self.exit), WAIT_SECONDS)

    async def stop(self) -> int:
        """Close the bot (as a shutdown does) and return serve's exit code."""
        for bot in self.bots:
            loop = getattr(bot, "loop", None)
            if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed():
                asyncio.run_coroutine_threadsafe(bot.close(), loop)
        self.observed = True
        return await asyncio.wait_for(asyncio.shield(self.exit), WAIT_SECONDS)


@pytest.fixture
async def serve_bot(
    tmp_path: Path, articles: Path, index_dir: Path, fake: FakeDiscord,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Callable[..., Served]]:
    """Start `serve` with the given settings overrides; every start is stopped afterwards."""
    started: list[Served] = []

    def start(**overrides: Any) -> Served:
        values = dict(discord_token=fake.token, index_dir=index_dir, article_dirs=[articles],
                      model=MODEL, min_score=0.05, min_answer_score=0.0,
                      admin_role_ids=[fake.admin_role_id])
        settings = BotSettings(_env_file=None, **{**values, **overrides})
        started.append(Served(settings, monkeypatch))
        return started[-1]

    yield start
    unseen = [served for served in started if not served.observed]
    for served in started:
        if not served.exit.done():
            with contextlib.suppress(Exception):
                await served.stop()
    crashes = [served.exit.exception() for served in unseen if served.exit.done()]
    assert [crash for crash in crashes if crash is not None] == [], "serve raised"


async def until(served: Served, awaitable: Awaitable[T]) -> T:
    """What `awaitable` gives; fails at once if serve ends first, TimeoutError after a while."""
    task = asyncio.ensure_future(awaitable)
    await asyncio.wait([task, served.exit], timeout=WAIT_SECONDS,
                       return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
        assert not served.exit.done(), f"serve ended first: {served.exit}"
        raise TimeoutError("the bot did not get there")
    return task.result()


async def ready(fake: FakeDiscord, served: Served) -> None:
    """Wait until the bot is connected and has its guild."""
    await until(served, fake.ready.wait())


# ------------------------------------------------------------------ what every scenario obeys


def is_callback(interaction: Interaction) -> Callable[[Recorded], bool]:
    """Matches the interaction's callback (its first response)."""
    return lambda r: r.path == f"/interactions/{interaction.id}/{interaction.token}/callback"


def is_followup(interaction: Interaction) -> Callable[[Recorded], bool]:
    """Matches a follow-up message sent through the interaction's webhook."""
    return lambda r: r.method == "POST" and r.path.endswith(f"/{interaction.token}")


def is_edit_of_original(interaction: Interaction) -> Callable[[Recorded], bool]:
    """Matches an edit of the interaction's original response."""
    return lambda r: (r.method == "PATCH"
                      and r.path.endswith(f"/{interaction.token}/messages/@original"))


def is_post_to(channel_id: int) -> Callable[[Recorded], bool]:
    """Matches a message the bot sent to a channel (or thread)."""
    return lambda r: r.method == "POST" and r.path == f"/channels/{channel_id}/messages"


def mention_problem(payload: dict[str, Any]) -> str | None:
    """Why a message payload could ping someone, or None: the project sends none."""
    mentions = payload.get("allowed_mentions")
    if mentions is None:
        return "no allowed_mentions (Discord's default pings everyone mentioned)"
    if mentions.get("parse") or mentions.get("users") or mentions.get("roles"):
        return f"allowed_mentions lets pings through: {mentions}"
    if mentions.get("replied_user"):
        return "a reply that pings its author"
    return None


def assert_discord_rules(fake: FakeDiscord) -> None:
    """Every recorded request within Discord's rules and the project's."""
    assert fake.unknown_routes == [], "routes the fake does not know (add them to it)"
    assert fake.rejections == [], "requests Discord would refuse"
    for request in fake.requests:
        payload = request.message_payload()
        if payload is not None:
            assert mention_problem(payload) is None, (request.method, request.path, payload)
    for interaction in fake.interactions.values():
        first = next((r for r in fake.requests if is_callback(interaction)(r)), None)
        assert first is not None, f"interaction {interaction.payload['data']} never answered"
        assert first.at - interaction.at <= INTERACTION_DEADLINE


def test_the_rules_catch_what_discord_refuses() -> None:
    """The checks above can fail: each catches the payload it is there for."""
    good = {"name": "ask", "description": "Ask", "type": 1, "options": [
        {"name": "question", "description": "What", "type": 3, "required": True}]}
    assert command_problems(good) == []
    assert command_problems({**good, "name": "Ask"})
    assert command_problems({**good, "description": "x" * 101})
    assert command_problems({**good, "options": [{**good["options"][0], "name": "x" * 33}]})
    assert command_problems({**good, "options": [
        {"name": f"o{i}", "description": "d", "type": 3} for i in range(26)]})
    assert command_problems({**good, "options": [{**good["options"][0], "choices": [
        {"name": f"c{i}", "value": f"v{i}"} for i in range(26)]}]})
    assert command_problems({**good, "options": [
        {"name": "a", "description": "d", "type": 3},
        {"name": "b", "description": "d", "type": 3, "required": True}]})
    long_choices = [{"name": f"{i:02d}" + "n" * 98, "value": "v" * 100} for i in range(20)]
    assert any("characters in all" in problem for problem in command_problems(
        {**good, "options": [{**good["options"][0], "choices": long_choices}]}))
    assert content_problem({"content": "x" * 2000}) is None
    assert content_problem({"content": "x" * 2001})
    assert content_problem({"embeds": [{"description": "x" * 4097}]})
    assert mention_problem({"content": "hi", "allowed_mentions": {"parse": []}}) is None
    assert mention_problem({"content": "hi"})
    assert mention_problem({"allowed_mentions": {"parse": ["users"]}})
    assert mention_problem({"allowed_mentions": {"parse": [], "users": ["1"]}})
    assert mention_problem({"allowed_mentions": {"parse": [], "replied_user": True}})


# ------------------------------------------------------------------ scenarios


async def test_ask_is_deferred_in_time_and_answered_with_the_quote(
    fake: FakeDiscord, serve_bot: Callable[..., Served]
) -> None:
    served = serve_bot()
    await ready(fake, served)
    synced = await fake.wait_for(lambda r: r.method == "PUT" and r.path.endswith("/commands"))
    assert synced.path == f"/applications/{fake.app_id}/commands"  # global: no dev guild
    assert {"ask", "articles", "reindex"} <= {command["name"] for command in synced.body}
    assert [p for command in synced.body for p in command_problems(command)] == []

    asked = await fake.slash(fake.asker, "ask", [
        {"name": "question", "type": 3, "value": LIGHTHOUSE_QUESTION}])
    callback = await fake.wait_for(is_callback(asked))
    assert callback.body["type"] == 5  # deferred: "articlebot is thinking…"
    assert callback.at - asked.at < INTERACTION_DEADLINE
    answer = await fake.wait_for(is_followup(asked))
    assert LIGHTHOUSE_QUOTE in unbold(answer.body["content"])
    assert "on **Saturday**" in answer.body["content"]  # the answer a "when" asks for, in bold
    assert answer.body["flags"] & 64 == 0  # public
    assert await served.stop() == run.EXIT_OK


async def test_articles_pages_for_the_asker_only(
    fake: FakeDiscord, serve_bot: Callable[..., Served]
) -> None:
    served = serve_bot()
    await ready(fake, served)
    listed = await fake.slash(fake.asker, "articles", [
        {"name": "recent", "type": 1, "options": [{"name": "count", "type": 4, "value": 2}]}])
    first = await fake.wait_for(is_followup(listed))
    page = first.body["embeds"][0]
    assert page["footer"]["text"].startswith("Page 1 of 3")
    assert "Millbrook bakery" in page["description"]
    buttons = {button["label"]: button for row in first.body["components"]
               for button in row["components"]}
    assert buttons["Previous"]["disabled"] and not buttons["Next"]["disabled"]
    message_id = int(first.response["id"])

    stranger = await fake.press(fake.other, message_id, buttons["Next"]["custom_id"])
    refused = await fake.wait_for(is_callback(stranger))
    assert refused.body["type"] == 4 and refused.body["data"]["flags"] & 64  # ephemeral
    assert "Only the person who asked" in refused.body["data"]["content"]

    turned = await fake.press(fake.asker, message_id, buttons["Next"]["custom_id"])
    acknowledged = await fake.wait_for(is_callback(turned))
    assert acknowledged.body["type"] == 6  # deferred update of the pressed message
    edit = await fake.wait_for(is_edit_of_original(turned))
    page = edit.body["embeds"][0]
    assert page["footer"]["text"].startswith("Page 2 of 3")
    assert "Tram line" in page["description"] and "Millbrook" not in page["description"]
    # The stranger's press changed nothing: the only edit is the asker's.
    edits = [r for r in fake.requests if r.method == "PATCH"]
    assert edits == [edit]


@pytest.mark.parametrize("who", ["admin", "owner"])
async def test_reindex_is_for_admins_and_reports_its_result(
    fake: FakeDiscord, serve_bot: Callable[..., Served], articles: Path, who: str
) -> None:
    served = serve_bot()
    await ready(fake, served)
    refused_run = await fake.slash(fake.other, "reindex")
    refused = await fake.wait_for(is_callback(refused_run))
    assert refused.body["type"] == 4 and refused.body["data"]["flags"] & 64
    assert "Only members with Manage Server" in refused.body["data"]["content"]

    write_article(articles, "ferry.md", *EXTRA_ARTICLE)
    # The owner has Manage Server; the admin only a role in ARTICLEBOT_ADMIN_ROLE_IDS.
    allowed = await fake.slash(fake.owner if who == "owner" else fake.admin, "reindex")
    progress = await fake.wait_for(is_callback(allowed))
    assert progress.body["type"] == 4 and not progress.body["data"].get("flags")
    assert progress.body["data"]["content"].startswith("Reindexing")
    result = await fake.wait_for(
        lambda r: is_edit_of_original(allowed)(r) and "done" in r.body.get("content", ""))
    assert result.body["content"].startswith("Reindex done: added 1,")


async def mention_answered_in_thread(fake: FakeDiscord, question: str) -> tuple[int, Recorded]:
    """Someone mentions the bot with a question; the thread it opens and the answer there."""
    asked = await fake.say(fake.asker, question, mention_bot=True)
    opened = await fake.wait_for(
        lambda r: r.path == f"/channels/{fake.channel_id}/messages/{asked}/threads")
    assert opened.status == 201 and opened.body["name"]
    thread_id = int(opened.response["id"])
    return thread_id, await fake.wait_for(is_post_to(thread_id))


async def test_a_mention_opens_a_thread_with_the_answer(
    fake: FakeDiscord, serve_bot: Callable[..., Served]
) -> None:
    served = serve_bot()
    await ready(fake, served)
    _thread_id, answer = await mention_answered_in_thread(fake, TRAM_QUESTION)
    assert TRAM_QUOTE in unbold(answer.body["content"])
    assert not [r for r in fake.requests if is_post_to(fake.channel_id)(r)]  # none in channel


async def test_a_follow_up_in_the_thread_is_answered_there(
    fake: FakeDiscord, serve_bot: Callable[..., Served]
) -> None:
    served = serve_bot()
    await ready(fake, served)
    thread_id, first = await mention_answered_in_thread(fake, LIGHTHOUSE_QUESTION)
    assert fake.identifies[-1].intents & MESSAGE_CONTENT, "follow-ups need message content"
    await fake.say(fake.asker, FOLLOW_UP_QUESTION, thread_id)  # no mention
    answer = await fake.wait_for(lambda r: is_post_to(thread_id)(r) and r.at > first.at)
    assert FOLLOW_UP_QUOTE in unbold(answer.body["content"])
    # Answered in place: no second thread, nothing in the channel.
    assert len([r for r in fake.requests if r.path.endswith("/threads")]) == 1
    assert not [r for r in fake.requests if is_post_to(fake.channel_id)(r)]


async def test_without_thread_permission_the_answer_replies_to_the_question(
    fake: FakeDiscord, serve_bot: Callable[..., Served]
) -> None:
    fake.refuse_threads = True
    served = serve_bot()
    await ready(fake, served)
    asked = await fake.say(fake.asker, TRAM_QUESTION, mention_bot=True)
    refused = await fake.wait_for(lambda r: r.path.endswith(f"/messages/{asked}/threads"))
    assert refused.status == 403
    answer = await fake.wait_for(is_post_to(fake.channel_id))
    assert TRAM_QUOTE in unbold(answer.body["content"])
    assert int(answer.body.get("message_reference", {}).get("message_id", 0)) == asked
    assert mention_problem(answer.body) is None  # the reply pings nobody


async def test_a_refused_token_stops_with_one_clear_line(
    fake: FakeDiscord, serve_bot: Callable[..., Served],
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    served = serve_bot(discord_token="wrong-bot.token.for-tests")
    assert await served.ended() == run.EXIT_CONFIG
    err = capsys.readouterr().err
    assert err == ("articlebot: Discord refused the token; reset it in the developer portal "
                   "and update DISCORD_TOKEN.\n")
    assert [(r.path, r.status) for r in fake.requests] == [("/users/@me", 401)]
    assert fake.identifies == []
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_without_the_content_intent_the_bot_goes_on_without_it(
    fake: FakeDiscord, serve_bot: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    fake.portal_intents = 0  # Message Content is off in the developer portal
    served = serve_bot()
    first, second = await until(served, fake.wait_identifies(2))
    assert first.intents & MESSAGE_CONTENT  # asked for, for follow-ups
    assert not second.intents & MESSAGE_CONTENT
    assert first.intents & ~MESSAGE_CONTENT == second.intents  # nothing else dropped
    await ready(fake, served)
    asked = await fake.slash(fake.asker, "ask", [
        {"name": "question", "type": 3, "value": LIGHTHOUSE_QUESTION}])
    answer = await fake.wait_for(is_followup(asked))
    assert LIGHTHOUSE_QUOTE in unbold(answer.body["content"])
    warnings = [r for r in caplog.records if "Message Content intent" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.exc_info]


async def test_ask_channels_without_the_content_intent_stop_with_one_clear_line(
    fake: FakeDiscord, serve_bot: Callable[..., Served],
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    fake.portal_intents = 0
    served = serve_bot(ask_channel_ids=[fake.channel_id])
    assert await served.ended() == run.EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "need the Message Content intent" in err
    assert len(fake.identifies) == 1 and fake.identifies[0].intents & MESSAGE_CONTENT
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_token_refused_by_the_gateway_stops_with_one_clear_line(
    fake: FakeDiscord, serve_bot: Callable[..., Served],
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    """Reset between login and IDENTIFY (close 4004): the same line as a refused login."""
    fake.close_code = 4004
    served = serve_bot()
    assert await served.ended() == run.EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Discord refused the token" in err
    assert not [r for r in caplog.records if r.exc_info]


async def test_in_an_ask_channel_only_questions_are_answered(
    fake: FakeDiscord, serve_bot: Callable[..., Served]
) -> None:
    served = serve_bot(ask_channel_ids=[fake.channel_id])
    await ready(fake, served)
    assert fake.identifies[-1].intents & MESSAGE_CONTENT
    chatter = await fake.say(fake.asker, "thanks, that was useful")
    asked = await fake.say(fake.other, TRAM_QUESTION)
    opened = await fake.wait_for(lambda r: r.path.endswith("/threads"))
    answer = await fake.wait_for(is_post_to(asked))  # in the thread opened from the question
    assert TRAM_QUOTE in unbold(answer.body["content"])
    # The chatter came first and was read first: nothing answered it, not even a refusal.
    assert opened.path == f"/channels/{fake.channel_id}/messages/{asked}/threads"
    assert not [r for r in fake.requests if str(chatter) in r.path
                or is_post_to(fake.channel_id)(r)]
