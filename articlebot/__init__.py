"""articlebot's application layer: the command line and the wording people read."""

from __future__ import annotations
