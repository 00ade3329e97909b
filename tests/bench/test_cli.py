"""The benchmarks' command lines: help everywhere, one-line errors, options reaching the work.

Nothing here runs a benchmark: the functions that do the work are replaced by fakes that
record what they were asked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from bench import news_time, perf, quality, stories_sample

APPS = {"quality": quality.app, "perf": perf.app, "news_time": news_time.app,
        "stories_sample": stories_sample.app}
SUBCOMMANDS = {
    "quality": ["squad", "news", "calibrate", "sweep"],
    "perf": ["embed", "ingest", "query", "scale", "_ingest-worker", "_query-worker"],
}


def invoke(app: typer.Typer, *args: str) -> Any:
    """Run an app on these arguments, as `python -m bench.<name>` would."""
    return CliRunner().invoke(app, list(args), prog_name="bench")


def every_command() -> list[tuple[str, list[str]]]:
    """(app, arguments before --help) for each app and each of its sub-commands."""
    cases = [(name, []) for name in APPS]
    cases += [(name, [command]) for name, commands in SUBCOMMANDS.items() for command in commands]
    return cases


@pytest.mark.parametrize(("name", "command"), every_command(),
                         ids=lambda value: value if isinstance(value, str) else " ".join(value))
def test_help_works_for_every_command(name: str, command: list[str]) -> None:
    result = invoke(APPS[name], *command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


@pytest.mark.parametrize("name", list(APPS))
def test_every_command_and_option_has_help_text(name: str) -> None:
    root = get_command(APPS[name])
    commands = getattr(root, "commands", {"": root})
    assert set(commands) >= set(SUBCOMMANDS.get(name, []))
    for command_name, command in commands.items():
        assert command.help, f"{name} {command_name} has no help"
        for param in command.params:
            assert getattr(param, "help", None), f"{name} {command_name} {param.name} has no help"


def test_the_apps_list_their_public_commands_and_hide_the_workers() -> None:
    result = invoke(perf.app, "--help")
    for command in ("embed", "ingest", "query", "scale"):
        assert command in result.stdout
    assert "_query-worker" not in result.stdout
    assert "_ingest-worker" not in result.stdout


@pytest.mark.parametrize(("name", "args"), [
    ("quality", ["squad", "--bogus"]),
    ("quality", ["sweep", "--limit", "5", "--bogus", "1"]),
    ("perf", ["scale", "--bogus"]),
    ("news_time", ["--bogus"]),
    ("stories_sample", ["--bogus"]),
])
def test_an_unknown_option_exits_2_with_a_one_line_error(name: str, args: list[str]) -> None:
    result = invoke(APPS[name], *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: No such option: --bogus")


@pytest.mark.parametrize(("name", "args", "message"), [
    ("quality", ["squad", "--set", "bm25_weight"], "expected NAME=VALUE"),
    ("quality", ["news", "--set", "bm25_wieght=0.4"], "no setting named 'bm25_wieght'"),
    ("quality", ["sweep", "--grid", "{"], "not JSON"),
    ("quality", ["sweep", "--grid", '{"bm25_weight": 0.4}'], "expected a list of objects"),
    ("quality", ["squad", "--title", "heading"], "--title"),
    ("quality", ["squad", "--limit", "0"], "--limit"),
    ("quality", ["ranking"], "No such command 'ranking'"),
    ("perf", ["scale", "--sizes", "100000,lots"], "expected positive integers"),
    ("perf", ["scale", "--kinds", "ivf,annoy"], "'annoy' is not one of flat, ivf, hnsw"),
    ("perf", ["embed", "--backends", "openvino,cuda"], "'cuda' is not one of"),
    ("perf", ["ingest", "--backend", "cuda"], "--backend"),
    ("perf", ["_query-worker", "--index", "x"], "Missing option '--backend'. Choose from: auto"),
])
def test_bad_values_are_one_line_errors(name: str, args: list[str], message: str) -> None:
    result = invoke(APPS[name], *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]


@pytest.mark.parametrize(("name", "args"), [
    ("quality", ["squad", "--squad", "{data}/squad/dev.json.gz"]),
    ("quality", ["news", "--corpus", "{data}/news/corpus.jsonl.gz"]),
])
def test_a_missing_data_set_is_a_one_line_error(name: str, args: list[str], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quality, "DATA_ROOT", tmp_path)
    result = invoke(APPS[name], *(arg.format(data=tmp_path) for arg in args))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: no such file: {args[-1].format(data=tmp_path)} (the evaluation data sets: "
        "see docs/quality.md)"]


def test_no_arguments_prints_the_help() -> None:
    result = invoke(quality.app)
    assert result.exit_code == 2
    assert "squad" in result.output and "calibrate" in result.output


# --- quality: the options reach the evaluations


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Replace each evaluation by a fake that records its arguments and returns figures."""
    recorded: list[tuple[str, dict[str, Any]]] = []

    def fake(name: str, names: list[str]) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            recorded.append((name, dict(zip(names, args, strict=False)) | kwargs))
            return [{"row": 1}] if name == "sweep" else {"recall@1": 1.0}

        return run

    monkeypatch.setattr(quality, "eval_squad", fake("squad", ["settings", "data", "limit"]))
    monkeypatch.setattr(quality, "eval_news",
                        fake("news", ["settings", "corpus", "questions", "limit"]))
    monkeypatch.setattr(quality, "calibrate",
                        fake("calibrate", ["settings", "squad", "corpus", "questions"]))
    monkeypatch.setattr(quality, "sweep", fake("sweep", ["settings", "grid", "squad", "corpus",
                                                         "questions", "sample"]))
    return recorded


def test_squad_prints_one_json_object(calls: list[tuple[str, dict[str, Any]]]) -> None:
    result = invoke(quality.app, "squad", "--json", "--limit", "5", "--set", "bm25_weight=0.4",
                    "--title", "prefix")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"recall@1": 1.0}
    (name, kwargs), = calls
    assert name == "squad"
    assert kwargs["limit"] == 5 and kwargs["title_mode"] == "prefix"
    assert kwargs["data"] == quality.SQUAD_DATA
    assert kwargs["settings"].bm25_weight == 0.4


def test_news_and_calibrate_take_their_files_and_limits(
    calls: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    corpus, questions = tmp_path / "corpus.jsonl.gz", tmp_path / "questions.jsonl"
    assert invoke(quality.app, "news", "--corpus", str(corpus), "--questions", str(questions),
                  "--limit", "7").exit_code == 0
    assert invoke(quality.app, "calibrate", "--json").exit_code == 0
    assert invoke(quality.app, "calibrate", "--limit", "2000", "--set", "min_score=0.5",
                  "--set", "embed_backend=torch").exit_code == 0
    news, default, limited = calls
    assert news[1]["corpus"] == corpus and news[1]["questions"] == questions
    assert news[1]["limit"] == 7
    assert default[1]["sample"] == 3000
    assert limited[1]["sample"] == 2000
    assert limited[1]["settings"].min_score == 0.5
    assert limited[1]["settings"].embed_backend == "torch"


def test_sweep_grid_and_squad_only(calls: list[tuple[str, dict[str, Any]]]) -> None:
    assert invoke(quality.app, "sweep", "--json").exit_code == 0
    result = invoke(quality.app, "sweep", "--squad-only", "--limit", "3000", "--grid",
                    '[{"bm25_weight": 0.4}, {"candidates": 100}]')
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == '{"row": 1}'
    default, chosen = (kwargs for _, kwargs in calls)
    assert default["grid"] == quality.DEFAULT_GRID
    assert default["corpus"] == quality.NEWS_CORPUS and default["sample"] is None
    assert chosen["grid"] == [{"bm25_weight": 0.4}, {"candidates": 100}]
    assert chosen["corpus"] is None and chosen["sample"] == 3000


# --- perf: the options reach the benchmarks, and the workers' arguments parse


def test_scale_as_the_performance_doc_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[perf.ScaleOptions] = []
    monkeypatch.setattr(perf, "bench_scale", lambda options: seen.append(options) or {"ok": 1})
    result = invoke(perf.app, "scale", "--sizes", "5000000", "--kinds", "ivf", "--nprobe",
                    "128,256,512,1024", "--vectors-from", "var/bench/x", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] == 1
    assert "machine" in json.loads(result.stdout)
    assert seen == [perf.ScaleOptions(sizes="5000000", kinds="ivf", nprobe="128,256,512,1024",
                                      vectors_from=Path("var/bench/x"))]


def test_perf_defaults_are_the_options_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    for name in ("bench_embed", "bench_ingest", "bench_query", "bench_scale"):
        monkeypatch.setattr(perf, name, lambda options: seen.append(options) or {})
    for command in ("embed", "ingest", "query", "scale"):
        assert invoke(perf.app, command).exit_code == 0
    assert seen == [perf.EmbedOptions(), perf.IngestOptions(), perf.QueryOptions(),
                    perf.ScaleOptions()]


def test_ingest_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[perf.IngestOptions] = []
    monkeypatch.setattr(perf, "bench_ingest", lambda options: seen.append(options) or {})
    result = invoke(perf.app, "ingest", "--corpus", "c.jsonl.gz", "--backend", "torch",
                    "--index", "idx", "--added", "5", "--baseline-chunks", "16",
                    "--baseline-rounds", "1")
    assert result.exit_code == 0, result.output
    assert seen == [perf.IngestOptions(Path("c.jsonl.gz"), "torch", Path("idx"), 5, 16, 1)]


def test_query_worker_parses_what_the_query_benchmark_passes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    passed: list[list[str]] = []

    def fake_run_worker(arguments: list[str]) -> dict[str, Any]:
        passed.append(list(arguments))
        return {"news_single": {"p50_ms": 2.0}}

    monkeypatch.setattr(perf, "run_worker", fake_run_worker)
    monkeypatch.setattr(perf, "news_question_texts", lambda: ["news?"] * 3)
    monkeypatch.setattr(perf, "squad_question_texts", lambda count: ["squad?"] * count)
    perf.bench_query(perf.QueryOptions(index=tmp_path, backends="openvino,torch", squad=2,
                                       concurrency=4, faiss_threads=1))
    assert [arguments[0] for arguments in passed] == ["_query-worker"] * 2

    received: list[perf.QueryWorkerOptions] = []
    monkeypatch.setattr(perf, "query_worker", lambda options: received.append(options) or {"a": 1})
    for arguments in passed:
        result = invoke(perf.app, *arguments)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"a": 1}
    assert [options.backend for options in received] == ["openvino", "torch"]
    first = received[0]
    assert first.index == tmp_path and first.news == 3
    assert first.concurrency == 4 and first.faiss_threads == 1
    assert first.questions.name == "questions.json"
    assert isinstance(first.started, float) and first.started > 0


def test_ingest_worker_parses_what_the_ingest_benchmark_passes(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[perf.IngestWorkerOptions] = []
    monkeypatch.setattr(perf, "ingest_worker", lambda options: received.append(options) or {"a": 1})
    # as bench_ingest builds it: ["_ingest-worker", "--index", dir, "--backend", name, file]
    result = invoke(perf.app, "_ingest-worker", "--index", "idx", "--backend", "openvino-int8",
                    "head.jsonl")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"a": 1}
    assert received == [perf.IngestWorkerOptions(Path("idx"), "openvino-int8", Path("head.jsonl"))]


# --- the single-command programs


def test_news_time_takes_its_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    opened: list[Path] = []

    class FakeEngine:
        def close(self) -> None:
            pass

    monkeypatch.setattr(news_time, "news_index",
                        lambda settings, corpus: opened.append(corpus) or FakeEngine())
    monkeypatch.setattr(news_time, "read_jsonl", lambda path: [])
    monkeypatch.setattr(news_time, "hits", lambda engine, rows, time_handling: [])
    result = invoke(news_time.app, "--corpus", str(tmp_path / "c.jsonl.gz"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["overall"]["questions"] == 0
    assert opened == [tmp_path / "c.jsonl.gz"]


def test_stories_sample_passes_the_grouping_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    rows = [{"doc_id": "a", "title": "T", "text": "x", "source": "s", "publish_date": None}]
    grouped: list[dict[str, Any]] = []
    monkeypatch.setattr(stories_sample, "read_corpus", lambda path, limit: rows[:limit])
    monkeypatch.setattr(stories_sample, "embed", lambda rows, cache: np.zeros((len(rows), 2)))
    monkeypatch.setattr(stories_sample, "group_stories",
                        lambda articles, **kwargs: grouped.append(kwargs) or {"a": "a"})
    result = invoke(stories_sample.app, "--limit", "1", "--max-days", "5",
                    "--text-threshold", "0.6", "--vector-threshold", "0.9")
    assert result.exit_code == 0, result.output
    assert grouped == [{"max_days": 5, "text_threshold": 0.6, "vector_threshold": 0.9}]
    assert "1 articles -> 1 stories" in result.stdout
