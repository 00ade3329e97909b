"""The command line as a user meets it: one-line errors, JSON output, the demo's files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from typer.testing import CliRunner

from articlebot import wording
from articlebot.cli import CliError, answer_json, app, format_answer, format_article_line
from bot.config import BotSettings
from index.config import Settings
from index.engine import Engine
from index.models import (
    Answer,
    ArticleHit,
    ArticleInfo,
    Caveat,
    Confidence,
    Coverage,
    NotAnswered,
    OutsideFilters,
    Quote,
    SearchFilters,
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
        f"error: no index in {tmp_path / 'none'}; build one with: articlebot reindex --index "
        f"{tmp_path / 'none'} (or articlebot ingest --index {tmp_path / 'none'} PATH)"
    ]


def test_missing_default_index_names_no_folder_in_the_command(tmp_path: Path):
    result = run_cli("ask", "anything", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "; build one with: articlebot reindex (or articlebot ingest PATH)")


def test_a_missing_data_file_is_one_line(tmp_path: Path):
    missing = tmp_path / "dev-v1.1.json.gz"
    result = run_cli("eval", "squad", "--squad", str(missing), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: no such file: {missing}"]


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
    answer = engine.ask("When did the harbour bridge reopen?")
    text = click.unstyle(format_answer(answer))
    assert "reopened on Monday" in text
    assert wording.sentence(wording.confidence_text(answer.confidence)) in text.splitlines()


def test_article_json_gives_its_size_and_listings_no_sizes_they_do_not_know(
        settings, embedder, monkeypatch):
    engine = Engine.open(settings, create=True, embedder=embedder)
    engine.reindex()
    monkeypatch.setattr("articlebot.cli._engine", lambda *a, **k: engine)
    asked = json.loads(CliRunner().invoke(
        app, ["ask", "When did the harbour bridge reopen?", "--json"]).output)
    quoted = asked["quotes"][0]["article"]
    assert "n_chunks" not in quoted and "n_chars" not in quoted  # once always 0 here
    shown = CliRunner().invoke(app, ["article", quoted["id"], "--json"])
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    with engine.store.reading() as snapshot:
        _, text, n_chunks = snapshot.find_article(quoted["id"])
    assert detail["n_chunks"] == n_chunks >= 1 and detail["n_chars"] == len(text)


def test_demo_without_its_samples_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("articlebot.cli.SAMPLES_DIR", tmp_path / "samples")
    result = CliRunner().invoke(app, ["demo", "--index", str(tmp_path / "index")])
    assert isinstance(result.exception, CliError)
    assert str(result.exception).startswith(f"the sample articles are not in {tmp_path}")
    assert not (tmp_path / "index").exists()


def test_a_filter_that_matches_nothing_shows_as_an_empty_part(settings, embedder, monkeypatch):
    engine = Engine.open(settings, create=True, embedder=embedder)
    engine.reindex()
    monkeypatch.setattr("articlebot.cli._engine", lambda *a, **k: engine)
    asked = CliRunner().invoke(app, ["ask", "When did the harbour bridge reopen?",
                                     "--source", "Nowhere Gazette"])
    assert asked.exit_code == 0, asked.output
    assert "The part asked about (from Nowhere Gazette) holds 0 articles." in asked.output
    listed = CliRunner().invoke(app, ["articles", "--source", "Nowhere Gazette"])
    assert listed.output == "No articles from Nowhere Gazette.\n"


def test_unanswered_text_words_the_facts():
    answer = canned_answer(
        quotes=(), answered=False, confidence="none", reason=NotAnswered.NOTHING_RELEVANT,
        period_since=date(2023, 2, 27), period_until=date(2023, 3, 5),
    )
    assert format_answer(answer).splitlines()[:2] == [
        "No article for 27 Feb – 5 Mar 2023 answers this.",
        "The part asked about (27 Feb – 5 Mar 2023) holds 3 articles from 2023-01-02 to "
        "2023-03-12.",
    ]
    lone = canned_answer(quotes=(), answered=False, confidence="none",
                         reason=NotAnswered.NOTHING_RELEVANT,
                         coverage=Coverage(1, date(2023, 1, 2), date(2023, 1, 2)))
    assert ("The collection covers 1 article from 2023-01-02 to 2023-01-02."
            in format_answer(lone).splitlines())
    no_words = canned_answer(quotes=(), results=(), answered=False, confidence="none",
                             reason=NotAnswered.NO_WORDS)
    assert format_answer(no_words).splitlines() == [
        "No article in the collection answers this.",
        "The collection covers 3 articles from 2023-01-02 to 2023-03-12.",
        "The question has no words.",
    ]


def test_the_cli_words_an_unanswered_question_as_the_bot_does():
    from bot.render.answer import not_answered_text

    answer = canned_answer(
        quotes=(), results=(), answered=False, confidence="none",
        reason=NotAnswered.NOTHING_RELEVANT, coverage=Coverage(0, None, None),
        collection=Coverage(3, date(2023, 1, 2), date(2023, 3, 12)),
        period_since=date(2023, 2, 27), period_until=date(2023, 3, 5), period_phrase="last week",
        filters=SearchFilters(sources=("Daily Planet",)),
    )
    assert format_answer(answer) == not_answered_text(answer)


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
    monkeypatch.setattr("bot.run.sync_commands",
                        lambda settings, guild, clear=False: seen.append(settings) or 0)

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


def test_only_the_eval_and_bench_commands_load_bench(tmp_path: Path):
    """`articlebot --help` and every other command run without importing bench; `eval` and
    `bench` import it when they run."""
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from articlebot.cli import app\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.split('.')[0] == 'bench')\n"
        "print(loaded())\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['ask', '--help']).exit_code == 0\n"
        "print(loaded())\n"
        "assert CliRunner().invoke(app, ['eval', '--help']).exit_code == 0\n"
        "print('bench.quality' in loaded())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]", "True"]


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
    unknown = run_cli("migrate", "--from", "nosql", "--to", "local", cwd=tmp_path)
    assert unknown.returncode == 2
    (line,) = unknown.stderr.strip().splitlines()
    assert line.startswith("error: Invalid value for '--from': unknown store 'nosql' "
                           "(choose local, postgres, memory)"), line


def test_quotes_from_one_article_share_one_attribution():
    bridge = ArticleInfo("a1", "Bridge reopens", "Daily Planet", "https://example.org/1",
                         date(2023, 3, 12))
    ferry = ArticleInfo("a2", "Ferries stop", "The Bugle", "https://example.org/2",
                        date(2023, 3, 13))
    quotes = (
        Quote("The bridge reopened on Monday.", bridge, 1, 0, 30, 0.9),
        Quote("Ferries stop next week.", ferry, 2, 0, 23, 0.85),
        Quote("Cables were replaced.", bridge, 3, 40, 61, 0.8),
    )
    lines = format_answer(canned_answer(quotes=quotes)).splitlines()
    attributions = [line.strip() for line in lines if line.strip().startswith("— ")]
    assert attributions == ["— Bridge reopens, Daily Planet, 2023-03-12",
                            "— Ferries stop, The Bugle, 2023-03-13"]
    text = "\n".join(lines)
    assert text.index("reopened on Monday") < text.index("Cables were replaced") < text.index(
        "— Bridge reopens") < text.index("Ferries stop next week")


def test_a_filter_that_left_out_the_answer_is_not_blamed_on_the_collection():
    answer = canned_answer(
        quotes=(), answered=False, confidence="none", reason=NotAnswered.FILTERED,
        filters=SearchFilters(since=date(2024, 1, 1)), outside=OutsideFilters(1, 1, ("since",)),
    )
    assert format_answer(answer).splitlines()[0] == (
        "No article within the filters answers this; 1 undated article may answer; "
        "ask without since."
    )


@pytest.mark.parametrize("source", ["", "Daily Planet", "The Coastal Herald", "x" * 40])
def test_an_article_line_keeps_outlet_and_title_apart(source: str):
    article = ArticleInfo("a1b2c3d4e5f6", "Storm Odile", source, "", date(2024, 11, 4))
    line = format_article_line(article)
    assert line.startswith("a1b2c3d4e5f6  2024-11-04  ")
    outlet, title = line.removeprefix("a1b2c3d4e5f6  2024-11-04  ").rsplit("  ", 1)
    assert outlet.strip() == (source or "-") and title == "Storm Odile"


# The line the CLI prints for each confidence, in articlebot.wording's words (low and none
# share theirs; the README's example is answered, so either reads back the same).
CONFIDENCE_BY_SENTENCE = {wording.sentence(wording.confidence_text(level)): level
                          for level in reversed(Confidence)}


def test_the_readme_example_is_what_the_cli_prints():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```\n? ", 1)[1].split("\n```", 1)[0].splitlines()[1:]
    quote, source, score, confidence = block[:4]
    title, outlet, day, labels = re.fullmatch(
        r"    — (.+), (.+), (undated|\d{4}-\d\d-\d\d)(?: \[(.+)\])?", source).groups()
    article = ArticleInfo("a1", title, "" if outlet == "unknown outlet" else outlet, "",
                          None if day == "undated" else date.fromisoformat(day),
                          labels=tuple(labels.split(", ")) if labels else ())
    text = re.fullmatch(r"  “(.+)”", quote).group(1)
    answer = canned_answer(
        quotes=(Quote(text, article, 1, 0, len(text),
                      float(re.fullmatch(r"      \(score (.+)\)", score).group(1))),),
        results=(), confidence=CONFIDENCE_BY_SENTENCE[confidence],
    )
    assert format_answer(answer).splitlines() == block[:4]
    assert block[4] == "Articles:"
    assert all(re.fullmatch(r"  \d\. \[\d\.\d{3}\] [0-9a-f]{12}  (-{10}|\d{4}-\d\d-\d\d)  .+", line)
               for line in block[5:])


def test_sync_goes_where_serve_syncs_and_never_both():
    from articlebot.cli import sync_target

    assert sync_target(None, False, 4242) == 4242  # the dev guild, as `serve` does
    assert sync_target(None, False, None) is None  # globally
    assert sync_target(None, True, 4242) is None  # --global forces it
    assert sync_target(77, False, 4242) == 77
    with pytest.raises(CliError, match="--guild and --global"):
        sync_target(77, True, None)


def test_the_answer_in_a_quote_is_bold_on_a_terminal_only():
    from articlebot.cli import quote_text
    from index.models import Span

    article = ArticleInfo("a1", "Storm", "Herald", "", None)
    text = "Gusts of 130 km/h left\n about 12,000 homes dark."
    start = text.index("12,000")
    quote = Quote(text, article, 1, 0, len(text), 0.9, answer=Span(start, start + 6))
    assert quote_text(quote) == (
        "Gusts of 130 km/h left about " + typer.style("12,000", bold=True) + " homes dark.")
    assert click.unstyle(quote_text(quote)) == "Gusts of 130 km/h left about 12,000 homes dark."
    assert quote_text(Quote(text, article, 1, 0, len(text), 0.9)) == click.unstyle(
        quote_text(quote))
