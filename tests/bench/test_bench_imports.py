"""The speed benchmarks reach storage through its public API and import no cycle."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
# Where storage is public: the package, the filter reference, and each backend's package.
PUBLIC = {"index.store", "index.store.filters", "index.store.local", "index.store.postgres"}


def imports(name: str) -> list[ast.ImportFrom]:
    """Every `from … import …` of a bench module, at any depth."""
    tree = ast.parse((BENCH / f"{name}.py").read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]


def test_the_store_benchmarks_import_nothing_of_perf() -> None:
    assert not [node.module for node in imports("stores") if node.module == "bench.perf"]
    assert not [node.module for node in imports("measure") if (node.module or "") in (
        "bench.perf", "bench.stores")]


def test_benchmarks_use_only_the_public_store_api() -> None:
    for name in ("perf", "stores"):
        for node in imports(name):
            module = node.module or ""
            if not module.startswith("index.store"):
                continue
            assert module in PUBLIC, f"bench/{name}.py imports {module}"
            exported = getattr(importlib.import_module(module), "__all__", None)
            if exported is not None:
                for alias in node.names:
                    assert alias.name in exported, f"bench/{name}.py: {module}.{alias.name}"
