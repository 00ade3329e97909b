"""The command line as a user meets it: one-line errors, JSON output, the demo's files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from index.cli import app, format_answer
from index.engine import Engine

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `articlebot` in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-c", "from index.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120,
    )


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
        [sys.executable, "-c", "from index.cli import main; main()", "stats"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"ARTICLEBOT_EMBED_BACKEND": "gpu", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: setting embed_backend")


def test_ask_json_prints_the_answer(settings, embedder, monkeypatch):
    engine = Engine.open(settings, create=True, embedder=embedder)
    engine.reindex()
    monkeypatch.setattr("index.cli._engine", lambda *a, **k: engine)
    result = CliRunner().invoke(app, ["ask", "When did the harbour bridge reopen?", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["answered"] and data["quotes"][0]["article"]["title"]
    text = format_answer(engine.ask("When did the harbour bridge reopen?"))
    assert "reopened on Monday" in text and "Confidence:" in text


def test_samples_for_the_demo_exist():
    questions = (ROOT / "samples" / "questions.txt").read_text(encoding="utf-8").splitlines()
    assert len([q for q in questions if q.strip()]) >= 4
    assert len(list((ROOT / "samples" / "articles").iterdir())) >= 6
