"""The local backend: FAISS vectors and SQLite rows in generations on one disk."""

from __future__ import annotations

from index.store.local.store import LocalStore, LocalWriter

__all__ = ["LocalStore", "LocalWriter"]
