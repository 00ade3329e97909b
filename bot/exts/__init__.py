"""Cogs, loaded as discord.py extensions by the bot."""

from __future__ import annotations
