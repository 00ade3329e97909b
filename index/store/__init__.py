"""Storage of a generation: SQLite (articles, chunks, FTS5) and FAISS (vectors)."""

from __future__ import annotations
