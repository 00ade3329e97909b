"""Does reading time in questions help? News quiz hit@1/5 with and without time handling.

Each question is asked as of its own `question_date` ("this week" is that week), once with
time handling off (`time_handling=False`: no periods, no recency preference) and once on.
Reported overall and per quiz week. Usage:

    python -m bench.news_time [--corpus PATH] [--questions PATH] [--json]
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bench.quality import (
    NEWS_CORPUS,
    NEWS_QUESTIONS,
    OneLineErrorsCommand,
    news_index,
    outcome_of,
    passage_hit,
    question_day,
    read_jsonl,
)
from index.config import load_settings

if TYPE_CHECKING:
    from index.engine import Engine


def hits(engine: Engine, rows: Sequence[dict[str, Any]], *, time_handling: bool) -> list[tuple]:
    """(week, hit@1, hit@5) of each question asked as of its own date."""
    engine.settings.time_handling = time_handling
    found = []
    for row in rows:
        answer = engine.ask(str(row["question"]), as_of=question_day(row))
        outcome = outcome_of(answer, 0.0)
        answers = [str(a) for a in row.get("answers") or ()]
        found.append(
            (str(row["week"]), passage_hit(outcome, answers, 1), passage_hit(outcome, answers, 5))
        )
    return found


def summarise(off: list[tuple], on: list[tuple]) -> dict[str, Any]:
    """Overall and per-week hit rates for both modes, and whether time handling helped."""
    weeks: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for (week, h1_off, h5_off), (_, h1_on, h5_on) in zip(off, on, strict=True):
        cells = weeks[week]
        cells["off@1"].append(h1_off)
        cells["off@5"].append(h5_off)
        cells["on@1"].append(h1_on)
        cells["on@5"].append(h5_on)

    def rate(values: Sequence[int]) -> float:
        """Share of hits, rounded."""
        return round(sum(values) / max(1, len(values)), 3)

    per_week = {
        week: {"questions": len(cells["off@1"])} | {key: rate(v) for key, v in cells.items()}
        for week, cells in sorted(weeks.items())
    }
    overall = {
        "questions": len(off),
        "hit@1_without": rate([h for _, h, _ in off]),
        "hit@5_without": rate([h for _, _, h in off]),
        "hit@1_with": rate([h for _, h, _ in on]),
        "hit@5_with": rate([h for _, _, h in on]),
    }
    lowered = [w for w, cells in per_week.items() if cells["on@5"] < cells["off@5"]]
    return {
        "overall": overall,
        "per_week": per_week,
        "weeks_where_hit@5_fell": lowered,
        "raises_hit@5_overall": overall["hit@5_with"] > overall["hit@5_without"],
    }


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(cls=OneLineErrorsCommand)
def compare(
    corpus: Annotated[
        Path, typer.Option("--corpus", help="The news corpus: JSON Lines, optionally gzipped.")
    ] = NEWS_CORPUS,
    questions: Annotated[
        Path,
        typer.Option("--questions", help="The news quiz: JSON Lines, optionally gzipped, with "
                     "'question', 'answers', 'question_date' (YYYY/MM/DD) and 'week' a line."),
    ] = NEWS_QUESTIONS,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole comparison as indented JSON.")
    ] = False,
) -> None:
    """Does reading time in questions help? News quiz hit@1/5 with time handling off and on.

    Each question is asked as of its own question_date ("this week" is that week), once with
    time_handling off (no periods, no recency preference) and once on; overall and per quiz
    week. Uses the settings from the environment and .env; the index is cached under var/eval/.
    """
    engine = news_index(load_settings(), corpus)
    rows = read_jsonl(questions)
    try:
        result = summarise(
            hits(engine, rows, time_handling=False), hits(engine, rows, time_handling=True)
        )
    finally:
        engine.close()
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(json.dumps(result["overall"]), "weeks where hit@5 fell:",
              result["weeks_where_hit@5_fell"] or "none")
        for week, cells in result["per_week"].items():
            print(week, cells)


if __name__ == "__main__":
    app()
