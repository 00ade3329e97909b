"""The local bot state: feedback votes, follows and named values in `state.sqlite`."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from index.models import Follow
from index.store.base import StateStore

STATE_FILE = "state.sqlite"
_FOLLOW_COLUMNS = "id, guild_id, channel_id, user_id, topic, created_at"

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback(
    user_hash TEXT NOT NULL,
    question TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (user_hash, question, chunk_ids)
);
CREATE TABLE IF NOT EXISTS follows(
    id INTEGER PRIMARY KEY,
    guild_id INTEGER,
    channel_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    topic TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    UNIQUE (channel_id, topic)
);
CREATE TABLE IF NOT EXISTS named_values(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rate_limits(
    bucket TEXT PRIMARY KEY,
    window_start REAL NOT NULL,
    per_seconds REAL NOT NULL,
    used INTEGER NOT NULL
);
"""
# Every this many uses, rate-limit windows that have ended are deleted.
PRUNE_EVERY = 1000


class LocalStateStore(StateStore):
    """A small SQLite database beside the generations, safe to use from several threads."""

    def __init__(self, index_dir: Path) -> None:
        """Open (creating if needed) the state database in the index folder."""
        index_dir.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(index_dir / STATE_FILE, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._uses = 0

    def _record_feedback(
        self, question: str, chunk_ids: list[int], vote: int, user_hash: str
    ) -> None:
        """Store a checked vote; a user's later vote on the same answer replaces the earlier."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO feedback(user_hash, question, chunk_ids, vote) "
                "VALUES (?, ?, ?, ?)",
                (user_hash, question, json.dumps(chunk_ids), vote),
            )

    def feedback_counts(self) -> dict[str, int]:
        """Counts of up and down votes."""
        with self._lock:
            rows = dict(self._conn.execute("SELECT vote, count(*) FROM feedback GROUP BY vote"))
        return {"up": int(rows.get(1, 0)), "down": int(rows.get(-1, 0))}

    def _add_follow(
        self, topic: str, *, channel_id: int, user_id: int, guild_id: int | None
    ) -> Follow:
        """Insert a follow unless the channel follows the topic already; return it."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO follows(guild_id, channel_id, user_id, topic) "
                "VALUES (?, ?, ?, ?)",
                (guild_id, channel_id, user_id, topic),
            )
            row = self._conn.execute(
                f"SELECT {_FOLLOW_COLUMNS} FROM follows WHERE channel_id = ? AND topic = ?",
                (channel_id, topic),
            ).fetchone()
        return Follow(*row)

    def remove_follow(self, follow_id: int) -> bool:
        """Delete a follow; False if there was none with that id."""
        with self._lock, self._conn:
            return self._conn.execute("DELETE FROM follows WHERE id = ?", (follow_id,)).rowcount > 0

    def list_follows(
        self, *, guild_id: int | None = None, channel_id: int | None = None
    ) -> list[Follow]:
        """Follows, optionally of one guild or one channel, oldest first."""
        where, params = [], []
        if guild_id is not None:
            where.append("guild_id = ?")
            params.append(guild_id)
        if channel_id is not None:
            where.append("channel_id = ?")
            params.append(channel_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_FOLLOW_COLUMNS} FROM follows {clause} ORDER BY id", params
            ).fetchall()
        return [Follow(*row) for row in rows]

    def take_token(self, bucket: str, rate: int, per_seconds: float, now: float) -> float | None:
        """Take one use of the bucket's allowance (see StateStore.take_token)."""
        with self._lock, self._conn:
            row = self._conn.execute(
                "SELECT window_start, used FROM rate_limits WHERE bucket = ?", (bucket,)
            ).fetchone()
            if row is None or now >= row[0] + per_seconds:
                window, used = now, 1
            else:
                window, used = float(row[0]), int(row[1]) + 1
            self._conn.execute(
                "INSERT OR REPLACE INTO rate_limits(bucket, window_start, per_seconds, used) "
                "VALUES (?, ?, ?, ?)", (bucket, window, per_seconds, used))
            self._uses += 1
            if self._uses % PRUNE_EVERY == 0:
                self._conn.execute(
                    "DELETE FROM rate_limits WHERE window_start + per_seconds <= ?", (now,))
        return None if used <= rate else window + per_seconds - now

    def get_value(self, key: str) -> str | None:
        """A named value (None when unset)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM named_values WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str) -> None:
        """Set a named value."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO named_values(key, value) VALUES (?, ?)", (key, value)
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
