"""Tests for index.timeparse: time expressions in questions and the recency weight."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index import timeparse
from index.timeparse import ParsedQuestion, parse_question_time, recency_weight

AS_OF = date(2023, 3, 15)  # a Wednesday
D = date
QUESTIONS = Path(__file__).resolve().parents[3] / "shared" / "data" / "news2023"
QUESTIONS_FILE = QUESTIONS / "questions-8w.jsonl.gz"

# (question, as_of, since, until, recency, cleaned text)
WINDOWS = [
    ("What happened today?", AS_OF, D(2023, 3, 14), D(2023, 3, 16), False, "What happened?"),
    ("Who resigned yesterday?", AS_OF, D(2023, 3, 13), D(2023, 3, 15), False, "Who resigned?"),
    (
        "Who died this week?",
        AS_OF,
        D(2023, 3, 8),  # Monday the 13th, but at least 7 days back
        AS_OF,
        True,
        "Who died?",
    ),
    ("Who died this week?", D(2023, 3, 19), D(2023, 3, 12), D(2023, 3, 19), True, "Who died?"),
    (
        "What did Congress pass last week?",
        AS_OF,
        D(2023, 3, 6),
        D(2023, 3, 12),
        False,
        "What did Congress pass?",
    ),
    (
        "Which bank failed this month?",
        D(2023, 3, 20),
        D(2023, 3, 1),
        D(2023, 3, 20),
        True,
        "Which bank failed?",
    ),
    (
        "What did the Fed do last month?",
        AS_OF,
        D(2023, 2, 1),
        D(2023, 2, 28),
        False,
        "What did the Fed do?",
    ),
    (
        "What happened in March?",
        D(2023, 6, 1),
        D(2023, 3, 1),
        D(2023, 3, 31),
        False,
        "What happened?",
    ),
    (
        "What happened in March?",
        D(2023, 1, 20),
        D(2022, 3, 1),
        D(2022, 3, 31),
        False,
        "What happened?",
    ),
    ("What happened in March 2022?", AS_OF, D(2022, 3, 1), D(2022, 3, 31), False, "What happened?"),
    ("How many layoffs since January?", AS_OF, D(2023, 1, 1), AS_OF, False, "How many layoffs?"),
    (
        "Who won the most medals in 2022?",
        AS_OF,
        D(2022, 1, 1),
        D(2022, 12, 31),
        False,
        "Who won the most medals?",
    ),
    (
        "What did inflation do during 2022?",
        AS_OF,
        D(2022, 1, 1),
        D(2022, 12, 31),
        False,
        "What did inflation do?",
    ),
    ("Best films of 2022?", AS_OF, D(2022, 1, 1), D(2022, 12, 31), False, "Best films?"),
    (
        "How did stocks do over the past month?",
        AS_OF,
        D(2023, 2, 15),
        AS_OF,
        True,
        "How did stocks do?",
    ),
    ("Any storms in the past 3 days?", AS_OF, D(2023, 3, 12), AS_OF, True, "Any storms?"),
    ("Any storms in the past two weeks?", AS_OF, D(2023, 3, 1), AS_OF, True, "Any storms?"),
    ("Any strikes in the past 2 months?", AS_OF, D(2023, 1, 15), AS_OF, True, "Any strikes?"),
    ("Any strikes in the last 5 days?", AS_OF, D(2023, 3, 10), AS_OF, True, "Any strikes?"),
    (
        "What did Biden say last Monday?",
        AS_OF,
        D(2023, 3, 12),
        D(2023, 3, 14),
        False,
        "What did Biden say?",
    ),
    (
        "What did Biden say last Wednesday?",
        AS_OF,
        D(2023, 3, 7),
        D(2023, 3, 9),
        False,
        "What did Biden say?",
    ),
    ("Who spoke on Tuesday?", AS_OF, D(2023, 3, 13), D(2023, 3, 15), False, "Who spoke?"),
    (
        "Denaro was arrested Monday after how many years?",
        D(2023, 1, 20),
        D(2023, 1, 15),
        D(2023, 1, 17),
        False,
        "Denaro was arrested after how many years?",
    ),
    ("What happened on 12 March?", AS_OF, D(2023, 3, 11), D(2023, 3, 13), False, "What happened?"),
    ("What happened on March 12?", AS_OF, D(2023, 3, 11), D(2023, 3, 13), False, "What happened?"),
    (
        "What happened March 12, 2022?",
        AS_OF,
        D(2022, 3, 11),
        D(2022, 3, 13),
        False,
        "What happened?",
    ),
    (
        "Who was arrested on Jan. 8?",
        AS_OF,
        D(2023, 1, 7),
        D(2023, 1, 9),
        False,
        "Who was arrested?",
    ),
    ("What happened on 2023-02-01?", AS_OF, D(2023, 1, 31), D(2023, 2, 2), False, "What happened?"),
    ("Strikes between 1 and 7 March?", AS_OF, D(2023, 3, 1), D(2023, 3, 8), False, "Strikes?"),
    ("Strikes on March 1-7?", AS_OF, D(2023, 3, 1), D(2023, 3, 8), False, "Strikes?"),
    (
        "Floods from January to March?",
        D(2023, 5, 1),
        D(2023, 1, 1),
        D(2023, 3, 31),
        False,
        "Floods?",
    ),
    ("Floods from November to February?", AS_OF, D(2022, 11, 1), D(2023, 2, 28), False, "Floods?"),
    ("How many layoffs this year?", AS_OF, D(2023, 1, 1), AS_OF, True, "How many layoffs?"),
    (
        "Who won the title last year?",
        AS_OF,
        D(2022, 1, 1),
        D(2022, 12, 31),
        False,
        "Who won the title?",
    ),
    (
        "What was in the news in early March?",
        AS_OF,
        D(2023, 3, 1),
        D(2023, 3, 10),
        False,
        "What was in the news?",
    ),
    (
        "What was announced two weeks ago?",
        AS_OF,
        D(2023, 2, 26),
        D(2023, 3, 4),
        False,
        "What was announced?",
    ),
    (
        "Who performed this past weekend?",
        D(2023, 1, 27),
        D(2023, 1, 21),
        D(2023, 1, 23),
        False,
        "Who performed?",
    ),
    ("Which rates rose in recent weeks?", AS_OF, D(2023, 2, 15), AS_OF, True, "Which rates rose?"),
    (
        "She retired in 2018, but made it official this week. Who?",
        AS_OF,
        D(2018, 1, 1),
        AS_OF,
        True,
        "She retired, but made it official. Who?",
    ),
]

RECENCY_ONLY = [
    ("What is the latest on Ukraine?", "What is the on Ukraine?"),
    ("Which seed did the FDA recently add to its list?", "Which seed did the FDA add to its list?"),
    ("Show me the newest articles about AI", "Show me the articles about AI"),
]

NOT_TIME = [
    "What did Theresa May say about Brexit?",
    "Who led the march on Washington?",
    "What did the Sunday Times report?",
    "Why did the union call a week-long strike?",
    "What are popular New Year's resolutions?",
    "Who won the 2022 World Cup?",
    "Who will co-chair this year's Met Gala?",
    "What did the Jan. 6 committee find?",
    "Who won on Super Tuesday?",
    "What may happen to rates?",
    "What is celebrated every 16 January?",
    "Which teams play in the Super Bowl on March 20?",  # 5 days after AS_OF: a future event
    "Will the law change in 2030?",
    "What is the Ides of March?",
    "Who played in the last week of the season?",
]


@pytest.mark.parametrize(("question", "as_of", "since", "until", "recency", "text"), WINDOWS)
def test_windows(
    question: str, as_of: date, since: date, until: date, recency: bool, text: str
) -> None:
    parsed = parse_question_time(question, as_of)
    assert parsed.window is not None, question
    assert (parsed.window.since, parsed.window.until) == (since, until)
    assert parsed.window.recency is recency
    assert parsed.text == text
    assert all(part in question for part in parsed.window.phrase.split(", "))


@pytest.mark.parametrize(("question", "text"), RECENCY_ONLY)
def test_recency_words_set_recency_without_window(question: str, text: str) -> None:
    parsed = parse_question_time(question, AS_OF)
    assert parsed.window is not None
    assert (parsed.window.since, parsed.window.until) == (None, None)
    assert parsed.window.recency
    assert parsed.text == text


@pytest.mark.parametrize("question", NOT_TIME)
def test_words_that_are_not_time_are_kept(question: str) -> None:
    assert parse_question_time(question, AS_OF) == ParsedQuestion(text=question, window=None)


def test_question_made_only_of_time_keeps_its_text() -> None:
    parsed = parse_question_time("yesterday?", AS_OF)
    assert parsed.window is not None
    assert parsed.text == "yesterday?"


def test_day_without_year_in_the_past_goes_to_last_year() -> None:
    parsed = parse_question_time("What happened on 20 December?", D(2023, 1, 5))
    assert parsed.window is not None
    assert parsed.window.since == D(2022, 12, 19)


def test_possessive_and_hyphenated_forms_are_not_stripped() -> None:
    assert parse_question_time("this week's top story", AS_OF).window is None
    assert parse_question_time("a 2022-23 season record", AS_OF).window is None


def test_recency_weight() -> None:
    assert recency_weight(AS_OF, AS_OF) == 1.0
    assert recency_weight(AS_OF - timedelta(days=30), AS_OF) == pytest.approx(0.5)
    assert recency_weight(AS_OF - timedelta(days=10), AS_OF, half_life_days=10) == 0.5
    assert 0 < recency_weight(D(1990, 1, 1), AS_OF) < recency_weight(D(2023, 1, 1), AS_OF)
    assert recency_weight(AS_OF + timedelta(days=3), AS_OF) == 1.0
    undated = recency_weight(None, AS_OF)
    assert recency_weight(AS_OF - timedelta(days=365), AS_OF) < undated < 0.5


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=200),
    as_of=st.dates(min_value=D(1990, 1, 1), max_value=D(2090, 12, 31)),
)
def test_never_raises_and_windows_are_sane(text: str, as_of: date) -> None:
    parsed = parse_question_time(text, as_of)
    window = parsed.window
    if window is not None:
        if window.since and window.until:
            assert window.since <= window.until
        if window.until:
            assert window.until <= as_of + timedelta(days=1)
    if any(ch.isalnum() for ch in text):
        assert any(ch.isalnum() for ch in parsed.text)


TIME_WORDS = st.sampled_from(
    [
        "this week", "last week", "yesterday", "in March", "on Tuesday", "since January",
        "in 2022", "recently", "over the past month", "March 12", "last Monday", "today",
        "between 1 and 7 March", "from January to March", "Sunday", "May", "in May 2023",
    ]
)  # fmt: skip
WORDS = st.sampled_from(["Who", "won", "the", "vote", "Biden", "storm", "strike", "March", ","])


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.one_of(TIME_WORDS, WORDS), min_size=1, max_size=12),
    as_of=st.dates(min_value=D(2000, 1, 1), max_value=D(2040, 12, 31)),
)
def test_mixed_time_and_words(parts: list[str], as_of: date) -> None:
    text = " ".join(parts) + "?"
    parsed = parse_question_time(text, as_of)
    window = parsed.window
    if window is not None and window.since and window.until:
        assert window.since <= window.until <= as_of + timedelta(days=1)
    if any(word in parts for word in ("Who", "won", "vote", "Biden", "storm", "strike")):
        assert any(ch.isalpha() for ch in parsed.text)


class CountingPattern:
    """Stands in for the combined rule pattern, counting the texts it scans."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.scanned: list[str] = []

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        self.scanned.append(text)
        return self.pattern.finditer(text)


def test_fast_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    """The work per question is one scan of one pattern compiled at import, nothing more.

    Counted, not timed (a loaded machine would fail a time bound): what made parsing cost
    ~0.1 ms a question is that every rule is one alternation scanned once, and that no
    pattern is compiled per question. The time is printed (-s), never asserted.
    """
    questions = [row[0] for row in WINDOWS] + NOT_TIME
    counting = CountingPattern(timeparse._PATTERN)
    monkeypatch.setattr(timeparse, "_PATTERN", counting)
    compiled: list[object] = []
    compile_pattern = re.compile
    monkeypatch.setattr(re, "compile", lambda *args, **kwargs: compiled.append(args[0])
                        or compile_pattern(*args, **kwargs))
    start = time.perf_counter()
    for question in questions:
        parse_question_time(question, AS_OF)
    took_ms = (time.perf_counter() - start) * 1000
    assert counting.scanned == questions  # one scan each
    assert compiled == []
    print(f"\n{took_ms / len(questions):.3f} ms per question ({len(questions)} questions)")


@pytest.mark.slow
@pytest.mark.skipif(not QUESTIONS_FILE.exists(), reason=f"shared data absent: {QUESTIONS_FILE}")
def test_news_quiz_questions() -> None:
    with gzip.open(QUESTIONS_FILE, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    assert len(rows) == 240
    windowed = this_week = 0
    for row in rows:
        as_of = date(*map(int, row["question_date"].split("/")))
        parsed = parse_question_time(row["question"], as_of)
        assert parsed.text
        if parsed.window is None:
            continue
        windowed += 1
        if "this week" in row["question"].lower():
            this_week += 1
            assert "this week" not in parsed.text.lower()
            assert parsed.window.until == as_of
    print(f"{windowed} of {len(rows)} news questions got a window ({this_week} 'this week')")
    assert windowed >= 110
    assert this_week >= 70
