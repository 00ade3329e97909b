"""Checks applied before a command reaches the engine: who may run it, cooldown, input.

Shared by the cogs, which do not import one another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from datetime import date

import discord
from discord import app_commands

from bot.config import BotSettings
from bot.errors import BadInput, NotAllowed, OnCooldown
from index.timeparse import read_day

Clock = Callable[[], float]
# Forget idle users once this many are tracked, so the table cannot grow without bound.
PRUNE_AT = 10_000


class UserCooldown:
    """At most `rate` questions per `per` seconds for each user; the clock is injectable."""

    def __init__(self, rate: int, per: float, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.per = per
        self._clock = clock
        self._buckets: dict[int, app_commands.Cooldown] = {}

    def _now(self) -> float:
        """The clock, kept above zero (discord.py's Cooldown treats 0 as 'use time.time()')."""
        return max(self._clock(), 1e-9)

    def retry_after(self, user_id: int) -> float | None:
        """Take one question from the user's allowance; seconds to wait if there is none."""
        if self.per <= 0:
            return None
        now = self._now()
        if len(self._buckets) >= PRUNE_AT:
            self._prune(now)
        bucket = self._buckets.setdefault(user_id, app_commands.Cooldown(self.rate, self.per))
        return bucket.update_rate_limit(now)

    def check(self, user_id: int) -> None:
        """Raise OnCooldown when the user has no question left in this window."""
        wait = self.retry_after(user_id)
        if wait is not None:
            raise OnCooldown(wait)

    def _prune(self, now: float) -> None:
        """Drop users whose window has passed."""
        idle = [user for user, bucket in self._buckets.items()
                if bucket.get_tokens(now) == bucket.rate]
        for user in idle:
            del self._buckets[user]


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
    """A date typed by a user; BadInput with the accepted forms when it cannot be read."""
    try:
        return read_day(text, today)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def parse_period(since: str | None, until: str | None) -> tuple[date | None, date | None]:
    """The 'since' and 'until' options as dates; BadInput for unreadable or reversed ones."""
    since_day = parse_day(since) if since and since.strip() else None
    until_day = parse_day(until) if until and until.strip() else None
    if since_day and until_day and since_day > until_day:
        raise BadInput(f"'since' ({since_day}) is after 'until' ({until_day}).")
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
