"""The storage interface's shape: narrow protocols, each with its contract, joined by Snapshot.

These fail when a protocol grows a method another one already owns, when a snapshot method
belongs to no protocol, or when a contract stops being written where a backend author reads it.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from index.store import (
    ArticleCatalogue,
    DenseSearch,
    KeywordSearch,
    Snapshot,
    StateStore,
    Store,
    StoreWriter,
    VersionInfo,
)
from index.store.scan import ScanSnapshot, ScanWriter

READ_PROTOCOLS = (VersionInfo, DenseSearch, KeywordSearch, ArticleCatalogue)
PROTOCOLS = (*READ_PROTOCOLS, StoreWriter, StateStore, Store)


def abstract(cls: type) -> set[str]:
    """The methods a subclass must write."""
    return set(getattr(cls, "__abstractmethods__", ()))


def test_a_snapshot_is_exactly_the_read_protocols_joined() -> None:
    for protocol in READ_PROTOCOLS:
        assert issubclass(Snapshot, protocol)
    assert abstract(Snapshot) == set().union(*(abstract(p) for p in READ_PROTOCOLS))
    public = {name for name, _ in inspect.getmembers(Snapshot) if not name.startswith("_")}
    owned = set().union(*({n for n in dir(p) if not n.startswith("_")} for p in READ_PROTOCOLS))
    assert public == owned


def test_the_read_protocols_share_no_method_but_the_chunk_count() -> None:
    seen: dict[str, type] = {}
    for protocol in READ_PROTOCOLS:
        for name in abstract(protocol):
            if name in seen and name != "count_chunks":  # BM25's N is the catalogue's count
                pytest.fail(f"{name} is in both {seen[name].__name__} and {protocol.__name__}")
            seen.setdefault(name, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_every_protocol_and_method_says_what_it_promises(protocol: type) -> None:
    assert inspect.getdoc(protocol)
    for name in abstract(protocol):
        assert inspect.getdoc(getattr(protocol, name)), f"{protocol.__name__}.{name}"


def test_the_keyword_protocol_names_its_analyser() -> None:
    doc = inspect.getdoc(KeywordSearch) or ""
    assert "index.text.tokens" in doc and "index.text.stem" in doc


def test_the_full_interface_is_fifty_two_methods() -> None:
    """What a backend writing every read itself implements (fewer with `index.store.scan`)."""
    counts = {p.__name__: len(abstract(p)) for p in (Snapshot, StoreWriter, StateStore, Store)}
    assert counts == {"Snapshot": 24, "StoreWriter": 12, "StateStore": 9, "Store": 7}


def test_a_backend_on_the_scan_defaults_writes_at_most_26_methods() -> None:
    """Its snapshot writes VersionInfo and two primitives, its writer two, and its store and
    state store theirs; every read and the write logic come from `index.store.scan`."""
    assert abstract(ScanSnapshot) == abstract(VersionInfo) | {"_records", "_vectors"}
    assert abstract(ScanWriter) == {"_publish", "_release"}
    must_write = {p.__name__: len(abstract(p))
                  for p in (ScanSnapshot, ScanWriter, StateStore, Store)}
    assert must_write == {"ScanSnapshot": 6, "ScanWriter": 2, "StateStore": 9, "Store": 7}
    assert sum(must_write.values()) == 24 <= 26


def test_the_memory_backend_is_written_from_the_protocols_alone() -> None:
    """It imports the interface and the scan defaults, never another backend."""
    folder = Path(__file__).resolve().parents[3] / "index" / "store" / "memory"
    imported = {node.module or "" for path in folder.glob("*.py")
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.ImportFrom)}
    ours = {name for name in imported if name.startswith("index")}
    assert ours <= {"index.models", "index.store.base", "index.store.scan",
                    "index.store.memory.store"}
