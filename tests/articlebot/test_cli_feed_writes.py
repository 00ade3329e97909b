"""`sync-feeds` and `fetch` that cannot write say so in one line, as `ingest` does.

Where they could not write the index (a file in its place, a read-only folder, a full disk) or
the folder of fetched articles, they ended in a traceback. These machines run the tests as
root, for whom permissions do not stop a write, so those failures are injected where the file
system would raise them; a file in a folder's place is real.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from pathlib import Path

import pytest

from articlebot import cli
from bench.localweb import Page, Web, article_page, rss
from index.config import Settings
from index.engine import FEEDS_PENDING_KEY, Engine
from index.feeds import sync
from index.store.local.state import LocalStateStore
from tests.index.fakes import HashingEmbedder
from tests.index.feeds.conftest import web

__all__ = ["web"]

STORY = ("Tram line opens", ["The new tram line to the harbour opened on Monday morning.",
                             "Riders queued before dawn for the first ride."])
READ_ONLY = "attempt to write a readonly database"
DISK_FULL = "database or disk is full"


@pytest.fixture
def settings(tmp_path: Path, web: Web) -> Settings:
    """Settings following one feed of one story on the test server."""
    web.routes["/news/tram"] = Page(article_page(*STORY))
    web.routes["/rss"] = Page(rss([("guid-tram", web.url("/news/tram"), STORY[0])]),
                              "application/rss+xml")
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(web.url("/rss") + "\n", encoding="utf-8")
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "bridge.txt").write_text(
        "Bridge reopens\n\nThe harbour bridge reopened on Monday.\n", encoding="utf-8")
    return Settings(_env_file=None, index_dir=tmp_path / "index",
                    article_dirs=[tmp_path / "articles"], model="test-hashing",
                    feeds_file=feeds, feeds_dir=tmp_path / "fetched",
                    fetch_allow_private=True, fetch_host_delay_seconds=0,
                    fetch_timeout_seconds=5.0)


def run(monkeypatch, capsys, settings: Settings, *args: str) -> tuple[int, list[str]]:
    """Run `articlebot ARGS` on an engine with these settings: exit code, stderr lines."""
    def engine(*_args, **_kwargs) -> Engine:
        return Engine.open(settings, create=True, embedder=HashingEmbedder())

    monkeypatch.setattr(cli, "_engine", engine)
    monkeypatch.setattr(sys, "argv", ["articlebot", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return exited.value.code, capsys.readouterr().err.strip().splitlines()


def commands(web: Web) -> dict[str, list[str]]:
    """The commands that fetch, by name, with their arguments."""
    return {"sync-feeds": ["sync-feeds"], "fetch": ["fetch", web.url("/news/tram")]}


@pytest.mark.parametrize("command", ["sync-feeds", "fetch"])
def test_an_index_folder_that_is_a_file_is_one_line_as_for_ingest(
    command, settings, web, tmp_path, monkeypatch, capsys
):
    in_the_way = tmp_path / "index"
    in_the_way.write_text("not a folder", encoding="utf-8")
    expected = [f"error: cannot write the index in {in_the_way}: file exists ({in_the_way}); "
                "the index is unchanged"]
    assert run(monkeypatch, capsys, settings, "ingest", str(tmp_path / "articles")) == (
        1, expected)
    assert run(monkeypatch, capsys, settings, *commands(web)[command]) == (1, expected)


@pytest.mark.parametrize("cause", [READ_ONLY, DISK_FULL])
def test_a_sync_whose_state_cannot_be_written_is_one_line(
    cause, settings, monkeypatch, capsys
):
    def cannot_write(*_args, **_kwargs):
        raise sqlite3.OperationalError(cause)

    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    engine.reindex()
    monkeypatch.setattr(LocalStateStore, "set_value", cannot_write)
    assert run(monkeypatch, capsys, settings, "sync-feeds") == (1, [
        f"error: cannot write the index in {settings.index_dir}: {cause}; "
        "the index is unchanged"])
    monkeypatch.undo()
    assert engine.count_articles() == 1
    # Nothing was lost: once the state can be written, the next sync adds the story.
    assert run(monkeypatch, capsys, settings, "sync-feeds")[0] == 0
    assert engine.count_articles() == 2


@pytest.mark.parametrize("command", ["sync-feeds", "fetch"])
def test_a_fetched_articles_folder_that_is_a_file_is_one_line(
    command, settings, web, monkeypatch, capsys
):
    folder = settings.feeds_dir
    folder.write_text("not a folder", encoding="utf-8")
    assert run(monkeypatch, capsys, settings, *commands(web)[command]) == (1, [
        f"error: cannot write the fetched articles in {folder}: file exists ({folder}); "
        "the index is unchanged"])


def test_a_read_only_fetched_articles_folder_is_one_line(settings, web, monkeypatch, capsys):
    page = settings.feeds_dir / "pages" / "0123456789abcdef.json"

    def read_only(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(page))

    monkeypatch.setattr(sync, "_write_atomically", read_only)
    assert run(monkeypatch, capsys, settings, *commands(web)["fetch"]) == (1, [
        f"error: cannot write the fetched articles in {settings.feeds_dir}: permission denied "
        f"({page}); the index is unchanged"])
    monkeypatch.undo()
    # Pages written before such a failure wait for an ingest: the next sync ingests the folder.
    state = Engine.open(settings, create=True, embedder=HashingEmbedder()).state
    assert state.get_value(FEEDS_PENDING_KEY) == "1"
    # Nothing was lost: the same command works once the folder can be written.
    assert run(monkeypatch, capsys, settings, *commands(web)["fetch"])[0] == 0
