"""👍/👎 buttons under answers, and the pseudonymous record of who voted."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from bot.errors import report_error, send_ephemeral

if TYPE_CHECKING:
    from bot.client import ArticleBot

log = logging.getLogger(__name__)

SALT_FILE = "feedback.salt"
VOTES = {"up": 1, "down": -1}
VOTE_EMOJI = {1: "👍", -1: "👎"}
# Answers remembered for voting; older ones (and those from before a restart) get a polite no.
ANSWERS_REMEMBERED = 5_000


def load_salt(index_dir: Path) -> bytes:
    """The random salt stored beside the index, created on first use (never the token)."""
    path = index_dir / SALT_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        pass
    salt = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(salt.hex())
    return salt


def user_hash(salt: bytes, user_id: int) -> str:
    """sha256(salt + user id): stable per user, yet not the user's id."""
    return hashlib.sha256(salt + str(user_id).encode()).hexdigest()


@dataclass(slots=True)
class AnsweredQuestion:
    """What a vote refers to: the question and the passages quoted for it."""

    question: str
    chunk_ids: tuple[int, ...]
    votes: dict[str, int] = field(default_factory=dict)  # user hash -> last vote


class AnswerLog:
    """The most recent answers, by the key carried in their buttons' custom ids."""

    def __init__(self, capacity: int = ANSWERS_REMEMBERED) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, AnsweredQuestion] = OrderedDict()

    def add(self, question: str, chunk_ids: Sequence[int]) -> str:
        """Remember an answer; returns its key (random, meaningless outside this process)."""
        key = secrets.token_hex(8)
        self._entries[key] = AnsweredQuestion(question, tuple(chunk_ids))
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return key

    def get(self, key: str) -> AnsweredQuestion | None:
        """The answer for a key, if still remembered."""
        return self._entries.get(key)


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"articlebot:vote:(?P<vote>up|down):(?P<key>[0-9a-f]{16})",
):
    """A 👍 or 👎 button; it keeps working (with a polite answer) after a restart."""

    def __init__(self, vote: str, key: str) -> None:
        self.vote = VOTES[vote]
        self.key = key
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                emoji=VOTE_EMOJI[self.vote],
                custom_id=f"articlebot:vote:{vote}:{key}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> VoteButton:
        """Rebuild the button from a pressed custom id."""
        return cls(match["vote"], match["key"])

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        """Record the vote and acknowledge it privately."""
        try:
            await record_vote(interaction.client, interaction, self.key, self.vote)  # type: ignore[arg-type]
        except Exception as error:  # the View's own handler would only log it
            await report_error(interaction, error)


async def record_vote(
    bot: ArticleBot, interaction: discord.Interaction, key: str, vote: int
) -> None:
    """Store one user's vote on an answer; a later press replaces the earlier one."""
    entry = bot.answers.get(key)
    if entry is None:
        await send_ephemeral(
            interaction, "That answer is too old for feedback now; ask again to vote."
        )
        return
    voter = user_hash(bot.feedback_salt, interaction.user.id)
    if entry.votes.get(voter) == vote:
        await send_ephemeral(interaction, f"Your {VOTE_EMOJI[vote]} is already recorded.")
        return
    changed = voter in entry.votes
    await bot.run_engine(bot.engine.record_feedback, entry.question, entry.chunk_ids, vote, voter)
    entry.votes[voter] = vote
    verb = "Changed your vote to" if changed else "Thanks, recorded your"
    await send_ephemeral(interaction, f"{verb} {VOTE_EMOJI[vote]}.")


def vote_view(key: str) -> discord.ui.View:
    """The row of 👍/👎 buttons for one answer."""
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton("up", key))
    view.add_item(VoteButton("down", key))
    return view
