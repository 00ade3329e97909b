"""articlebot's Discord adapter: turns engine answers into messages."""

from __future__ import annotations
