"""A build that cannot write (read-only folder, full disk) says so in one line and changes nothing.

These machines run the tests as root, for whom permissions do not stop a write, so the
failures are injected where the file system would raise them.
"""

from __future__ import annotations

import errno
import sqlite3
import sys

import pytest

from index.engine import Engine, IndexWriteError
from index.store.local import generations, vectors
from index.store.local.store import LocalWriter

FAISS_ENOSPC = RuntimeError(
    "Error in void faiss::write_index(const Index*, const char*, int) at io.cpp:73: Error: "
    "'f' failed: could not open /idx/gen-000002.building/vectors.faiss for writing: "
    "No space left on device")


def read_only(*_args, **_kwargs):
    raise PermissionError(errno.EACCES, "Permission denied", "/idx/gen-000002.building")


def disk_full_in_sqlite(*_args, **_kwargs):
    raise sqlite3.OperationalError("database or disk is full")


def disk_full_in_faiss(*_args, **_kwargs):
    raise FAISS_ENOSPC


CASES = {
    "read-only folder": ((generations, "next_building_dir", read_only),
                         "permission denied (/idx/gen-000002.building)"),
    "disk full (SQLite)": ((LocalWriter, "add_article", disk_full_in_sqlite),
                           "database or disk is full"),
    "disk full (FAISS)": ((vectors, "write_index", disk_full_in_faiss),
                          "no space left on device"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_failed_write_is_one_line_naming_cause_and_folder(settings, embedder, monkeypatch,
                                                           case):
    engine = Engine.open(settings, create=True, embedder=embedder)
    engine.reindex()
    before = engine.stats().generation
    (settings.article_dirs[0] / "new.txt").write_text("Tram line opens\n\nThe new tram runs.\n")
    (target, name, failure), cause = CASES[case]
    monkeypatch.setattr(target, name, failure)
    with pytest.raises(IndexWriteError) as raised:
        engine.reindex()
    assert str(raised.value) == (f"cannot write the index in {settings.index_dir}: {cause}; "
                                 "the index is unchanged")
    monkeypatch.undo()
    # The state was fine and stays so: the same generation serves, and the next build works.
    assert engine.stats().generation == before
    assert engine.ask("When did the harbour bridge reopen?").answered
    assert not list(settings.index_dir.glob("*.building"))
    assert engine.reindex().added == 1


def test_the_cli_prints_the_write_failure_as_one_line(settings, embedder, monkeypatch, capsys):
    from articlebot import cli

    engine = Engine.open(settings, create=True, embedder=embedder)
    monkeypatch.setattr(cli, "_engine", lambda *args, **kwargs: engine)
    monkeypatch.setattr(vectors, "write_index", disk_full_in_faiss)
    monkeypatch.setattr(sys, "argv", ["articlebot", "reindex"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: cannot write the index in {settings.index_dir}: no space left on device; "
        "the index is unchanged"]
