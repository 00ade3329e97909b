"""The PostgreSQL bot state: votes, follows, rate limits and named values beside the collection."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from index.models import Follow
from index.store.base import StateStore

if TYPE_CHECKING:
    from index.store.postgres.store import PostgresStore

# Every this many uses, rate-limit windows that have ended are deleted.
PRUNE_EVERY = 1000


class PostgresStateStore(StateStore):
    """Votes, follows and named values in the collection's database, shared by every process."""

    def __init__(self, store: PostgresStore) -> None:
        """Use the store's pool."""
        self._store = store
        self._uses = 0

    def _record_feedback(
        self, question: str, chunk_ids: list[int], vote: int, user_hash: str
    ) -> None:
        """Store a checked vote; a later vote on the same answer replaces the earlier one."""
        with self._store.connection() as conn:
            conn.execute(
                "INSERT INTO feedback(user_hash, question, chunk_ids, vote) VALUES "
                "(%s, %s, %s, %s) ON CONFLICT (user_hash, question, chunk_ids) DO UPDATE SET "
                "vote = excluded.vote, created_at = now()",
                (user_hash, question, json.dumps(chunk_ids), vote))

    def feedback_counts(self) -> dict[str, int]:
        """Counts of up and down votes."""
        with self._store.connection() as conn:
            rows = dict(conn.execute("SELECT vote, count(*) FROM feedback GROUP BY vote"
                                     ).fetchall())
        return {"up": int(rows.get(1, 0)), "down": int(rows.get(-1, 0))}

    def _add_follow(
        self, topic: str, *, channel_id: int, user_id: int, guild_id: int | None
    ) -> Follow:
        """Insert a follow unless the channel follows the topic already; return it."""
        with self._store.connection() as conn:
            conn.execute("INSERT INTO follows(guild_id, channel_id, user_id, topic) VALUES "
                         "(%s, %s, %s, %s) ON CONFLICT (channel_id, topic) DO NOTHING",
                         (guild_id, channel_id, user_id, topic))
            row = conn.execute(
                "SELECT id, guild_id, channel_id, user_id, topic, created_at::text FROM follows "
                "WHERE channel_id = %s AND topic = %s", (channel_id, topic)).fetchone()
        return Follow(*row)

    def remove_follow(self, follow_id: int) -> bool:
        """Delete a follow; False if there was none."""
        with self._store.connection() as conn:
            return conn.execute("DELETE FROM follows WHERE id = %s", (follow_id,)).rowcount > 0

    def list_follows(
        self, *, guild_id: int | None = None, channel_id: int | None = None
    ) -> list[Follow]:
        """Follows, optionally of one guild or channel, oldest first."""
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT id, guild_id, channel_id, user_id, topic, created_at::text FROM follows "
                "WHERE (%(g)s::bigint IS NULL OR guild_id = %(g)s) AND (%(c)s::bigint IS NULL "
                "OR channel_id = %(c)s) ORDER BY id", {"g": guild_id, "c": channel_id}
            ).fetchall()
        return [Follow(*row) for row in rows]

    def take_token(self, bucket: str, rate: int, per_seconds: float, now: float) -> float | None:
        """Take one use of the bucket's allowance, atomically for every process."""
        with self._store.connection() as conn:
            window, used = conn.execute(
                "INSERT INTO rate_limits(bucket, window_start, per_seconds, used) VALUES "
                "(%(b)s, %(now)s, %(per)s, 1) ON CONFLICT (bucket) DO UPDATE SET "
                "window_start = CASE WHEN rate_limits.window_start + rate_limits.per_seconds "
                "<= %(now)s THEN %(now)s ELSE rate_limits.window_start END, "
                "used = CASE WHEN rate_limits.window_start + rate_limits.per_seconds "
                "<= %(now)s THEN 1 ELSE rate_limits.used + 1 END, per_seconds = %(per)s "
                "RETURNING window_start, used",
                {"b": bucket, "now": now, "per": per_seconds}).fetchone()
            self._uses += 1
            if self._uses % PRUNE_EVERY == 0:
                conn.execute("DELETE FROM rate_limits WHERE window_start + per_seconds <= %s",
                             (now,))
        return None if used <= rate else float(window) + per_seconds - now

    def get_value(self, key: str) -> str | None:
        """A named value."""
        with self._store.connection() as conn:
            row = conn.execute("SELECT value FROM named_values WHERE key = %s",
                               (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str) -> None:
        """Set a named value."""
        with self._store.connection() as conn:
            conn.execute("INSERT INTO named_values(key, value) VALUES (%s, %s) ON CONFLICT "
                         "(key) DO UPDATE SET value = excluded.value", (key, value))

    def close(self) -> None:
        """Close the store's pool, as the local state store closes its database."""
        self._store.close()
