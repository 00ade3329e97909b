"""The in-memory backend: a collection in this process's memory, written from the protocols alone.

For tests and trials: nothing touches a disk or a server, and nothing outlives the process.
It is the smallest complete backend (its snapshot and writer take every read and the write
logic from `index.store.scan`), so it is also the example to start a new backend from.
"""

from __future__ import annotations

from index.store.memory.store import MemoryCollection, MemoryStateStore, MemoryStore, collection

__all__ = ["MemoryCollection", "MemoryStateStore", "MemoryStore", "collection"]
