"""Checks applied before a command reaches the engine: who may run it, cooldown, input.

Shared by the cogs, which do not import one another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import date

import discord
from discord import app_commands

from bot.config import BotSettings
from bot.errors import BadInput, NotAllowed, OnCooldown
from index.timeparse import DateError, check_period, read_day

Clock = Callable[[], float]
# (bucket, rate, per seconds, now) -> seconds to wait, or None: StateStore.take_token, awaited.
Take = Callable[[str, int, float, float], Awaitable[float | None]]
# Longest the cooldown waits for the state store before letting a question through (s).
COOLDOWN_WAIT_SECONDS = 1.0

log = logging.getLogger(__name__)


class UserCooldown:
    """At most `rate` questions per `per` seconds for each user.

    Counted in the bot's state store (`take`, e.g. `ArticleBot.take_token`), so bot processes
    that share a store share each user's allowance. The clock is injectable; it must be wall
    time when processes share a store.
    """

    def __init__(self, rate: int, per: float, take: Take, clock: Clock = time.time) -> None:
        self.rate = rate
        self.per = per
        self._take = take
        self._clock = clock

    async def retry_after(self, user_id: int) -> float | None:
        """Take one question from the user's allowance; seconds to wait if there is none.

        A store that fails (whatever its backend raises) or answers slower than
        COOLDOWN_WAIT_SECONDS lets the question through: an interaction must be answered
        within 3 s, and refusing everyone because the store is down would be worse than no
        cooldown.
        """
        if self.per <= 0:
            return None
        try:
            return await asyncio.wait_for(
                self._take(f"ask:{user_id}", self.rate, self.per, self._clock()),
                COOLDOWN_WAIT_SECONDS,
            )
        except Exception as exc:  # TimeoutError, or the store's own error
            log.warning("question cooldown not checked: %s", exc or "the state store is slow")
            return None

    async def check(self, user_id: int) -> None:
        """Raise OnCooldown when the user has no question left in this window."""
        wait = await self.retry_after(user_id)
        if wait is not None:
            raise OnCooldown(wait)


def clean_question(text: str, max_chars: int) -> str:
    """The question with surrounding space removed; BadInput when empty or too long."""
    question = text.strip()
    if not question:
        raise BadInput("Ask me a question, for example: what did the articles say about floods?")
    if len(question) > max_chars:
        raise BadInput(
            f"That question is {len(question):,} characters long; "
            f"please keep it under {max_chars:,}."
        )
    return question


def parse_day(text: str, today: date | None = None) -> date:
    """A date typed by a user; BadInput when it cannot be read or is out of range.

    The range is index.timeparse's EARLIEST_DAY to LATEST_DAY.
    """
    try:
        return read_day(text, today)
    except DateError as exc:
        raise BadInput(str(exc)) from None


def parse_period(since: str | None, until: str | None) -> tuple[date | None, date | None]:
    """The 'since' and 'until' options as dates; BadInput for unreadable or reversed ones.

    The command line refuses the same dates in the same words (read_day, check_period).
    """
    since_day = parse_day(since) if since and since.strip() else None
    until_day = parse_day(until) if until and until.strip() else None
    try:
        check_period(since_day, until_day)
    except DateError as exc:
        raise BadInput(str(exc)) from None
    return since_day, until_day


def may_administer(
    permissions: discord.Permissions,
    role_ids: Collection[int],
    user_id: int,
    settings: BotSettings,
) -> bool:
    """Manage Server, or an admin role, or an admin user."""
    return (
        permissions.manage_guild
        or user_id in settings.admin_user_ids
        or any(role in settings.admin_role_ids for role in role_ids)
    )


def is_admin(interaction: discord.Interaction) -> bool:
    """Whether the interaction's user may administer the bot in this server."""
    user = interaction.user
    role_ids = [role.id for role in user.roles] if isinstance(user, discord.Member) else []
    settings: BotSettings = interaction.client.settings  # type: ignore[attr-defined]
    return may_administer(interaction.permissions, role_ids, user.id, settings)


def admin_check(interaction: discord.Interaction) -> bool:
    """The run-time check behind /reindex (Discord's default permissions can be overridden)."""
    if interaction.guild is None:
        raise app_commands.NoPrivateMessage()
    if not is_admin(interaction):
        raise NotAllowed(
            "Only members with Manage Server, or an admin role or user set for this bot, "
            "can reindex."
        )
    return True
