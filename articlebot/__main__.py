"""`python -m articlebot`: the command line, as the `articlebot` script runs it."""

from __future__ import annotations

from articlebot.cli import main

if __name__ == "__main__":
    main()
