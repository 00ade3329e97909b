"""Typed dates and time words in questions have a range: out of it, one clear error, never a crash.

`read_day` (--since, /ask since:) raises only DateError; `check_period` is the one
'since after until' check; `parse_question_time` never raises, whatever the numbers in the
question or the `as_of` day.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.config import Settings
from index.engine import Engine
from index.timeparse import (
    EARLIEST_DAY,
    LATEST_DAY,
    SHOWN_CHARS,
    DateError,
    check_period,
    parse_question_time,
    read_day,
)
from tests.index.fakes import HashingEmbedder

TODAY = date(2023, 3, 15)
SPAN = "from 1800-01-01 to 2199-12-31"


@pytest.mark.parametrize(
    "text",
    [
        "99999999999 days ago",  # was OverflowError: Python int too large to convert to C int
        "99999999999999999999999 days ago",
        "1000000 days ago",  # was OverflowError: date value out of range
        "999999 weeks ago",
        "9999 years ago",  # was ValueError: year -7975 is out of range
        "99999 months ago",
        pytest.param("9" * 5000 + " days ago", id="5000-digit days ago"),  # int() refuses it
        "300 years ago",  # a real date, before EARLIEST_DAY
    ],
)
def test_far_relative_dates_are_refused_with_the_span(text: str) -> None:
    with pytest.raises(DateError, match=SPAN) as raised:
        read_day(text, TODAY)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("text", ["0001-01-01", "1799-12-31", "2200-01-01", "9999-12-31"])
def test_absolute_dates_outside_the_span_are_refused(text: str) -> None:
    with pytest.raises(DateError, match=SPAN):
        read_day(text, TODAY)


def test_the_span_is_inclusive() -> None:
    assert read_day(EARLIEST_DAY.isoformat(), TODAY) == EARLIEST_DAY
    assert read_day(LATEST_DAY.isoformat(), TODAY) == LATEST_DAY
    assert read_day("0 days ago", TODAY) == TODAY
    assert read_day("223 years ago", TODAY) == date(1800, 3, 15)


@pytest.mark.parametrize("today", [date.min, date.max], ids=["date.min", "date.max"])
@pytest.mark.parametrize("text", ["today", "yesterday", "1 day ago", "2 weeks ago"])
def test_a_today_at_the_ends_of_the_calendar_gives_date_error(text: str, today: date) -> None:
    with pytest.raises(DateError, match=SPAN):
        read_day(text, today)


def test_unreadable_text_is_echoed_short() -> None:
    with pytest.raises(DateError, match="YYYY-MM-DD") as raised:
        read_day("x" * 6000, TODAY)
    assert len(str(raised.value)) < SHOWN_CHARS + 120  # fits a Discord message, one line


NUMBERS = st.integers(min_value=0, max_value=10**30).map(str)


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=40),
        st.tuples(NUMBERS, st.sampled_from(["day", "days", "week", "months", "year"])).map(
            lambda pair: f"{pair[0]} {pair[1]} ago"
        ),
        st.tuples(NUMBERS, NUMBERS, NUMBERS).map("-".join),
        st.tuples(NUMBERS, st.sampled_from(["March", "May", "Dec"]), NUMBERS).map(" ".join),
    ),
    today=st.dates(),
)
def test_read_day_raises_nothing_but_date_error(text: str, today: date) -> None:
    try:
        day = read_day(text, today)
    except DateError as error:
        assert "\n" not in str(error)
    else:
        assert EARLIEST_DAY <= day <= LATEST_DAY


def test_check_period_refuses_since_after_until_in_the_shared_words() -> None:
    with pytest.raises(DateError) as raised:
        check_period(date(2024, 1, 2), date(2024, 1, 1))
    assert str(raised.value) == "'since' (2024-01-02) is after 'until' (2024-01-01)."
    check_period(date(2024, 1, 1), date(2024, 1, 1))
    check_period(date(2024, 1, 2), None)
    check_period(None, date(2024, 1, 1))
    check_period(None, None)


HUGE_QUESTIONS = [
    "What happened in the last 99999999999 days?",
    "What happened 99999999999 years ago?",
    "What happened in the past 99,999,999 years?",
    "Who won 999 years ago?",
    "What changed in the past 999 months?",
    "What happened 999 hours ago?",
    "What happened today and yesterday?",
    "What happened between 1 and 7 March?",
]
CALENDAR_ENDS = [date.min, date(1, 1, 2), date(1000, 1, 1), date(9999, 12, 30), date.max]


@pytest.mark.parametrize("as_of", CALENDAR_ENDS, ids=[day.isoformat() for day in CALENDAR_ENDS])
@pytest.mark.parametrize("question", HUGE_QUESTIONS)
def test_question_time_never_raises_at_the_ends_of_the_calendar(
    question: str, as_of: date
) -> None:
    window = parse_question_time(question, as_of).window
    if window is not None and window.since and window.until:
        assert window.since <= window.until


@pytest.fixture
def engine(settings: Settings) -> Engine:
    """A small index of the three test articles."""
    built = Engine.open(settings, create=True, embedder=HashingEmbedder())
    built.reindex()
    return built


@pytest.mark.parametrize("as_of", [None, date.min, date.max], ids=["today", "date.min", "date.max"])
def test_engine_ask_survives_huge_numbers_in_questions(
    engine: Engine, as_of: date | None
) -> None:
    for question in HUGE_QUESTIONS:
        answer = engine.ask(question, as_of=as_of)
        assert answer.question == question
        if answer.period_since and answer.period_until:
            assert answer.period_since <= answer.period_until
