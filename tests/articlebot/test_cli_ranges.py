"""Every number and date the command line takes has a range, refused in one line when out of it."""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from articlebot.cli import app, main
from bot.errors import BadInput
from bot.guards import parse_period


def run_main(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run the `articlebot` entry point in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["articlebot", *args])
    try:
        main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    else:
        code = 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(command path, command) for every command people can run, sub-commands included."""
    for name, command in group.commands.items():
        if command.hidden:  # the benchmarks' subprocess workers, which the parent calls
            continue
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def is_number(annotation: Any) -> bool:
    """True for int and float annotations, optional ones included (bool is not a number)."""
    is_union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is (
        typing.Union
    )
    members = typing.get_args(annotation) if is_union else (annotation,)
    return any(member in (int, float) for member in members)


def test_every_numeric_option_has_a_minimum_and_a_maximum() -> None:
    root = typer.main.get_command(app)
    numeric = {
        f"{path} {param.opts[0]}": (param.min, param.max)
        for path, command in commands(root)
        for param in command.params
        if is_number(param.type_descriptor.annotation)
    }
    assert "articles --recent" in numeric and "bench scale --k" in numeric  # the walk works
    unbounded = sorted(name for name, (low, high) in numeric.items() if low is None or high is None)
    assert unbounded == []


OUT_OF_RANGE = {  # id: (arguments, option, words of the refusal)
    "articles-recent-huge": (["articles", "--recent", "100000000000000000000"], "--recent",
                             "less than or equal"),  # was an OverflowError traceback
    "articles-recent-negative": (["articles", "--recent", "-1"], "--recent",
                                 "greater than or equal to 1"),  # printed every article
    "articles-recent-over": (["articles", "--recent", "1001"], "--recent",
                             "less than or equal to 1000"),
    "timeline-limit-negative": (["timeline", "rail strike", "--limit", "-5"], "--limit",
                                "greater than or equal to 1"),  # silently found nothing
    "timeline-limit-over": (["timeline", "rail strike", "--limit", "101"], "--limit",
                            "less than or equal to 100"),
    "whatsnew-limit-zero": (["whatsnew", "--limit", "0"], "--limit", "greater than or equal to 1"),
    "sync-guild-zero": (["sync", "--guild", "0"], "--guild", "greater than or equal to 1"),
    "sync-guild-over": (["sync", "--guild", str(2**64)], "--guild", "less than or equal"),
    "eval-squad-limit-zero": (["eval", "squad", "--limit", "0"], "--limit",
                              "greater than or equal to 1"),
    "eval-calibrate-limit-over": (["eval", "calibrate", "--limit", "10000001"], "--limit",
                                  "less than or equal"),
    "bench-scale-k-over": (["bench", "scale", "--k", "5000"], "--k", "less than or equal to 1024"),
    "bench-scale-noise-over": (["bench", "scale", "--noise", "2"], "--noise",
                               "less than or equal to 1"),
    "bench-scale-sizes-huge": (["bench", "scale", "--sizes", "9" * 30], "--sizes",
                               "positive integers up to 1,000,000,000"),
    "bench-query-concurrency-over": (["bench", "query", "--concurrency", "100000"],
                                     "--concurrency", "less than or equal"),
    "bench-stores-ef-search-zero": (["bench", "stores", "scale", "--database-url",
                                     "postgresql://x", "--ef-search", "0"], "--ef-search",
                                    "positive integers up to 100,000"),
}


@pytest.mark.parametrize(
    ("args", "option", "words"), OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys()
)
def test_numbers_out_of_range_are_refused_in_one_line(
    args: list[str], option: str, words: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err  # no usage text, no boxed panel
    assert err.startswith(f"error: Invalid value for '{option}'")
    assert words in err


def test_help_states_the_ranges() -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    for args, shown in ((["articles", "--help"], "1<=x<=1000"),
                        (["timeline", "--help"], "1<=x<=100"),
                        (["ask", "--help"], "1800-01-01 to")):
        result = runner.invoke(app, args, terminal_width=200)
        assert result.exit_code == 0
        assert shown in result.output


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["ask", "q", "--since", "99999999999 days ago"],
                     id="ask-since-days"),  # was an OverflowError traceback
        pytest.param(["ask", "q", "--until", "9999 years ago"], id="ask-until-years"),
        pytest.param(["ask", "q", "--as-of", "0001-01-01"], id="ask-as-of-year-1"),
        pytest.param(["timeline", "rail strike", "--since", "1000000 days ago"],
                     id="timeline-since-days"),
        pytest.param(["whatsnew", "--since", "99999999999999999999999 days ago"],
                     id="whatsnew-since-days"),
    ],
)
def test_dates_out_of_range_are_refused_in_one_line(
    args: list[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_main([*args, "--index", str(tmp_path / "none")], monkeypatch, capsys)
    assert code == 1
    assert out == ""
    option = next(arg for arg in args if arg.startswith("--"))
    assert err.strip().splitlines() == [
        f"error: {option}: {args[args.index(option) + 1]!r} is outside the dates I can use: "
        "give one from 1800-01-01 to 2199-12-31."
    ]


@pytest.mark.parametrize("command", [["ask", "q"], ["timeline", "rail strike"]],
                         ids=["ask", "timeline"])
def test_since_after_until_is_refused_in_the_bots_words(
    command: list[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    args = [*command, "--since", "2024-01-02", "--until", "2024-01-01",
            "--index", str(tmp_path / "none")]
    code, out, err = run_main(args, monkeypatch, capsys)
    assert code == 1 and out == ""
    with pytest.raises(BadInput) as bot_refusal:
        parse_period("2024-01-02", "2024-01-01")
    assert err.strip().splitlines() == [f"error: {bot_refusal.value.message}"]
    assert bot_refusal.value.message == "'since' (2024-01-02) is after 'until' (2024-01-01)."


@pytest.mark.parametrize("settings_class", ["index.config:Settings", "bot.config:BotSettings"])
def test_every_numeric_engine_setting_has_a_lower_and_an_upper_bound(settings_class: str) -> None:
    import importlib

    from annotated_types import Ge, Gt, Le, Lt

    module, name = settings_class.split(":")
    Settings = getattr(importlib.import_module(module), name)
    unbounded = []
    for name, field in Settings.model_fields.items():
        if not is_number(field.annotation):
            continue
        kinds = {type(rule) for rule in field.metadata}
        if not (kinds & {Ge, Gt} and kinds & {Le, Lt}):
            unbounded.append(name)
    assert unbounded == []


def test_a_setting_out_of_range_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("ARTICLEBOT_CANDIDATES", "100000000000000000000")
    code, out, err = run_main(["stats"], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: setting candidates: Input should be less than or equal to 1000"
    ]
