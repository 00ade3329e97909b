"""articlebot's engine: ingest, chunk, embed, store, retrieve and answer, with no Discord in it."""

from __future__ import annotations

__version__ = "0.1.0"
