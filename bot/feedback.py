"""👍/👎 buttons under answers, and the pseudonymous record of who voted.

This module does not know the bot's class: the buttons reach what they need through
`VoteHost`, which the bot satisfies, and `record_vote` is given it explicitly.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import discord

from bot.errors import report_error, send_ephemeral

log = logging.getLogger(__name__)

SALT_KEY = "feedback_salt"  # the salt's name in the bot's state store
LEGACY_SALT_FILE = "feedback.salt"  # where the salt was kept before the state store held it
SALT_BYTES = 32
VOTES = {"up": 1, "down": -1}
VOTE_EMOJI = {1: "👍", -1: "👎"}
# Answers remembered for voting; older ones (and those from before a restart) get a polite no.
ANSWERS_REMEMBERED = 5_000

# Stores one vote: (question, quoted chunk ids, +1 or -1, voter's hash).
StoreVote = Callable[[str, tuple[int, ...], int, str], Awaitable[None]]


class ValueStore(Protocol):
    """The part of the bot's state store the salt needs (StateStore has it)."""

    def get_value(self, key: str) -> str | None:
        """A named value, None when unset."""
        ...

    def set_value(self, key: str, value: str) -> None:
        """Set a named value."""
        ...


class VoteHost(Protocol):
    """What a pressed vote button needs from the bot (`interaction.client`)."""

    answers: AnswerLog

    async def feedback_salt(self) -> bytes:
        """The salt for voters' hashes."""
        ...

    async def store_vote(
        self, question: str, chunk_ids: tuple[int, ...], vote: int, user_hash: str
    ) -> None:
        """Store one vote."""
        ...


def _salt_from_hex(text: str | None) -> bytes | None:
    """A salt written as hex, or None when absent or unreadable."""
    try:
        salt = bytes.fromhex(text.strip()) if text else b""
    except ValueError:
        return None
    return salt or None


def load_salt(state: ValueStore, index_dir: Path | None = None) -> bytes:
    """The random salt for voters' hashes (never the token), kept in the bot's state store.

    Created once when missing. A `feedback.salt` file in `index_dir` from before the state
    store held the salt is adopted, so old votes keep matching their voters. Blocking (the
    store may be a database): call it off the event loop. Raises what the store raises.
    """
    stored = state.get_value(SALT_KEY)
    salt = _salt_from_hex(stored)
    if salt is not None:
        return salt
    if stored is not None:
        log.warning("the stored feedback salt is unreadable; starting a new one")
    if index_dir is not None:
        try:
            salt = _salt_from_hex((index_dir / LEGACY_SALT_FILE).read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError):
            salt = None
    salt = salt or secrets.token_bytes(SALT_BYTES)
    state.set_value(SALT_KEY, salt.hex())
    # Two bot processes sharing the store may both have found it empty; reading back what the
    # store kept narrows (the store has no set-if-absent to close) the window in which they
    # would hash voters with different salts.
    return _salt_from_hex(state.get_value(SALT_KEY)) or salt


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
            # The bot satisfies VoteHost; a Protocol cannot be checked with isinstance here.
            host = cast(VoteHost, interaction.client)
            await record_vote(host.answers, await host.feedback_salt(), host.store_vote,
                              interaction, self.key, self.vote)
        except Exception as error:  # the View's own handler would only log it
            await report_error(interaction, error)


async def record_vote(
    answers: AnswerLog,
    salt: bytes,
    store_vote: StoreVote,
    interaction: discord.Interaction,
    key: str,
    vote: int,
) -> None:
    """Store one user's vote (+1/-1) on an answer; a later press replaces the earlier one.

    The answer is looked up by `key` in `answers`; the voter is stored as a hash salted with
    `salt`. Raises what `store_vote` raises (the button reports it to the user).
    """
    entry = answers.get(key)
    if entry is None:
        await send_ephemeral(
            interaction, "That answer is too old for feedback now; ask again to vote."
        )
        return
    voter = user_hash(salt, interaction.user.id)
    if entry.votes.get(voter) == vote:
        await send_ephemeral(interaction, f"Your {VOTE_EMOJI[vote]} is already recorded.")
        return
    changed = voter in entry.votes
    await store_vote(entry.question, entry.chunk_ids, vote, voter)
    entry.votes[voter] = vote
    verb = "Changed your vote to" if changed else "Thanks, recorded your"
    await send_ephemeral(interaction, f"{verb} {VOTE_EMOJI[vote]}.")


def vote_view(key: str) -> discord.ui.View:
    """The row of 👍/👎 buttons for one answer."""
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton("up", key))
    view.add_item(VoteButton("down", key))
    return view
