from __future__ import annotations

from datetime import date

from bench.news_time import summarise
from bench.quality import question_day


def test_question_day_reads_quiz_dates():
    assert question_day({"question_date": "2023/01/05"}) == date(2023, 1, 5)
    assert question_day({"question_date": "2026-01-08"}) == date(2026, 1, 8)  # later years
    assert question_day({}) is None


def test_summary_per_week_and_verdicts():
    off = [("w1", False, True), ("w1", False, False), ("w2", True, True)]
    on = [("w1", True, True), ("w1", False, True), ("w2", True, False)]
    result = summarise(off, on)
    assert result["overall"] == {
        "questions": 3,
        "hit@1_without": 0.333, "hit@5_without": 0.667,
        "hit@1_with": 0.667, "hit@5_with": 0.667,
    }
    assert result["per_week"]["w1"]["on@5"] == 1.0
    assert result["weeks_where_hit@5_fell"] == ["w2"]
    assert result["raises_hit@5_overall"] is False


def test_a_question_without_its_date_is_asked_today():
    assert question_day({}) is None
