"""State that outlives index generations: feedback votes (and, later, follows)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

STATE_FILE = "state.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback(
    user_hash TEXT NOT NULL,
    question TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (user_hash, question, chunk_ids)
);
"""


class StateStore:
    """A small SQLite database beside the generations, safe to use from several threads."""

    def __init__(self, index_dir: Path) -> None:
        """Open (creating if needed) the state database in the index folder."""
        index_dir.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(index_dir / STATE_FILE, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def record_feedback(
        self, question: str, chunk_ids: Sequence[int], vote: int, user_hash: str
    ) -> None:
        """Store a vote; a user's later vote on the same answer replaces the earlier one."""
        if vote not in (-1, 1):
            raise ValueError("vote must be +1 or -1")
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO feedback(user_hash, question, chunk_ids, vote) "
                "VALUES (?, ?, ?, ?)",
                (user_hash, question, json.dumps(sorted(int(i) for i in chunk_ids)), vote),
            )

    def feedback_counts(self) -> dict[str, int]:
        """Counts of up and down votes."""
        with self._lock:
            rows = dict(self._conn.execute("SELECT vote, count(*) FROM feedback GROUP BY vote"))
        return {"up": int(rows.get(1, 0)), "down": int(rows.get(-1, 0))}

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
