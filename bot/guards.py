"""Limits applied before a question reaches the engine: cooldown and question length."""

from __future__ import annotations

import time
from collections.abc import Callable

from discord import app_commands

from bot.errors import BadInput, OnCooldown

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
