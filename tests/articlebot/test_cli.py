"""The command line as a user meets it: one-line errors, JSON output, the demo's files."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from articlebot.cli import answer_json, app, format_answer
from bot.config import BotSettings
from index.config import Settings
from index.engine import Engine
from index.models import (
    Answer,
    ArticleHit,
    ArticleInfo,
    Caveat,
    Coverage,
    NotAnswered,
    Quote,
)

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `articlebot` in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "articlebot", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120,
    )


def canned_answer(**changes: Any) -> Answer:
    """An answer quoting one article, with `changes` applied."""
    article = ArticleInfo("a1", "Bridge reopens", "Daily Planet", "https://example.org/1",
                          date(2023, 3, 12))
    quote = Quote("The bridge reopened on Monday.", article, 1, 0, 30, 0.9)
    fields: dict[str, Any] = {
        "question": "When did the bridge reopen?", "quotes": (quote,),
        "results": (ArticleHit(article, 0.9, 1, quote.text),), "answered": True,
        "confidence": "high", "coverage": Coverage(3, date(2023, 1, 2), date(2023, 3, 12)),
    }
    fields.update(changes)
    return Answer(**fields)


def test_missing_index_is_one_line_and_exit_1(tmp_path: Path):
    result = run_cli("ask", "anything", "--index", str(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: no index in {tmp_path / 'none'}; build one with: articlebot reindex "
        "(or articlebot ingest PATH)"
    ]


def test_bad_date_option_is_one_line(tmp_path: Path):
    result = run_cli("ask", "x", "--since", "someday", "--index", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--since" in result.stderr


def test_bad_setting_is_one_line(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-c", "from articlebot.cli import main; main()", "stats"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"ARTICLEBOT_EMBED_BACKEND": "gpu", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: setting embed_backend")


def test_ask_json_prints_the_answer(settings, embedder, monkeypatch):
    engine = Engine.open(settings, create=True, embedder=embedder)
    engine.reindex()
    monkeypatch.setattr("articlebot.cli._engine", lambda *a, **k: engine)
    result = CliRunner().invoke(app, ["ask", "When did the harbour bridge reopen?", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["answered"] and data["quotes"][0]["article"]["title"]
    assert "note" in data and "reason" in data and "caveat" in data
    text = format_answer(engine.ask("When did the harbour bridge reopen?"))
    assert "reopened on Monday" in text and "Confidence:" in text


def test_unanswered_text_words_the_facts():
    answer = canned_answer(
        quotes=(), answered=False, confidence="none", reason=NotAnswered.NOTHING_RELEVANT,
        period_since=date(2023, 2, 27), period_until=date(2023, 3, 5),
    )
    assert format_answer(answer).splitlines()[:2] == [
        "No article between 27 February 2023 and 5 March 2023 answers this; the collection "
        "spans 2 January 2023 – 12 March 2023.",
        "The collection holds 3 articles.",
    ]
    lone = canned_answer(quotes=(), answered=False, confidence="none",
                         reason=NotAnswered.NOTHING_RELEVANT,
                         coverage=Coverage(1, date(2023, 1, 2), date(2023, 1, 2)))
    assert "The collection holds 1 article." in format_answer(lone).splitlines()
    no_words = canned_answer(quotes=(), results=(), answered=False, confidence="none",
                             reason=NotAnswered.NO_WORDS)
    assert format_answer(no_words).splitlines()[0] == "The question has no words."


def test_caveat_is_a_note_under_the_quotes():
    stale = canned_answer(caveat=Caveat.STALE, newest=date(2023, 3, 12))
    assert "Note: the latest article on this is from 12 March 2023." in format_answer(stale)
    assert "Note:" not in format_answer(canned_answer())


def test_json_keeps_the_note_in_words_beside_the_facts():
    data = answer_json(canned_answer(caveat=Caveat.STALE, newest=date(2023, 3, 12)))
    assert data["caveat"] == "stale" and data["newest"] == "2023-03-12"
    assert data["note"] == "the latest article on this is from 12 March 2023"
    assert answer_json(canned_answer())["note"] == ""
    json.dumps(data)  # JSON-ready


def test_bot_commands_get_the_bot_settings_and_the_rest_the_engine_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    seen: list[object] = []
    monkeypatch.setattr("bot.run.serve", lambda settings: seen.append(settings) or 0)
    monkeypatch.setattr("bot.run.sync_commands", lambda settings, guild: seen.append(settings) or 0)

    def no_engine(settings: Settings, **_: object) -> Engine:
        seen.append(settings)
        raise SystemExit(0)

    monkeypatch.setattr("articlebot.cli._engine", no_engine)
    runner = CliRunner()
    for args in (["serve"], ["sync", "--guild", "5"], ["stats"]):
        result = runner.invoke(app, [*args, "--index", str(tmp_path)])
        assert result.exit_code == 0, result.output
    serve_settings, sync_settings, stats_settings = seen
    assert isinstance(serve_settings, BotSettings) and isinstance(sync_settings, BotSettings)
    assert type(stats_settings) is Settings and stats_settings.index_dir == tmp_path


def test_eval_and_bench_are_sub_commands_with_help():
    runner = CliRunner()
    for args in (["eval", "--help"], ["eval", "squad", "--help"], ["bench", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output
    assert "squad" in runner.invoke(app, ["eval", "--help"]).output


def test_python_m_articlebot_runs_the_cli(tmp_path: Path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "ask" in result.stdout and "serve" in result.stdout


def test_samples_for_the_demo_exist():
    questions = (ROOT / "samples" / "questions.txt").read_text(encoding="utf-8").splitlines()
    assert len([q for q in questions if q.strip()]) >= 4
    assert len(list((ROOT / "samples" / "articles").iterdir())) >= 6


def test_migrate_errors_are_one_line(tmp_path: Path):
    result = run_cli("migrate", "--from", "local", "--to", "postgres",
                     "--index", str(tmp_path / "none"), "--database-url",
                     "postgresql://nobody@127.0.0.1:1/none", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: nothing to copy: {tmp_path / 'none'} holds no collection"]
    same = run_cli("migrate", "--from", "local", "--to", "local", cwd=tmp_path)
    assert same.returncode == 1 and "same backend" in same.stderr
