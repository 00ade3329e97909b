"""Benchmarks and evaluations of articlebot, runnable as python -m bench.<name>."""

from __future__ import annotations
