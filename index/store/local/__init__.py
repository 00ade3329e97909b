"""The local backend: FAISS vectors and SQLite rows in generations on one disk.

Public: the store, its writer, and `vectors`, the FAISS index it builds (`bench.perf scale`
measures that index itself, beside any store).
"""

from __future__ import annotations

from index.store.local import vectors
from index.store.local.store import LocalStore, LocalWriter

__all__ = ["LocalStore", "LocalWriter", "vectors"]
