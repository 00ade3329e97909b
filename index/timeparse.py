"""Find the time a question asks about ("this week", "in March 2023") and turn it into dates.

The window is about *publication* dates: it tells retrieval which articles to prefer or keep.
A compact regex grammar covers the expressions people use in news questions; calendar arithmetic
comes from `datetime` and `dateutil.relativedelta`. `dateparser.search.search_dates` was tried
and rejected: about 4 ms a question (20x the budget), it returns points rather than periods, and
it is over-eager ("the march on" -> a date in March, "Theresa May" -> May, "in 50,000 years").

Rules worth knowing:
- A time expression used as a modifier of a noun is not a window: "the 2022 World Cup",
  "this year's Oscars", "a week-long strike", "May's government", "Sunday Times".
- A bare month needs a lead word ("in", "during", "since", "from", "until", "before", "by",
  "throughout"); a bare year too, and "of 2022" counts. "May" must be capitalised unless a
  year follows it, so the verb "may" is never a month.
- A month or day without a year is the most recent one not after `as_of`; but if this year's
  one starts at most 31 days after `as_of`, the question speaks of the near future ("the
  Super Bowl on February 12", asked on 2 February) and there is no window.
- "this week" runs from Monday to `as_of` but reaches back at least 7 days (people say "this
  week" of the last seven days, and reports lag events); likewise "this month"/"this year".
- Windows never reach past `as_of`. One-day windows (today, yesterday, a weekday, a date) get
  one day of slack on each side because publication lags the event and time zones differ, so
  their `until` may be `as_of + 1 day`.
- "recently", "latest", "newest", "currently" set `recency` with no window: a hard 30-day cut
  would empty the answer for a collection that is older than `as_of`. Windows that end at
  `as_of` ("this week", "this month", "in the past 3 days", "in recent weeks") also set
  `recency`; fixed periods ("last week", "in March") do not.
- A bare weekday ("arrested Monday") is a day unless a capitalised word or an article is next to
  it ("Super Tuesday", "Sunday Times", "a Sunday"); a show's name used bare ("is Wednesday
  based on a book?") is a known false positive.
- Several expressions in one question give the smallest window that holds them all, so a
  filter built from it never drops what one of them asked for.
- An expression whose dates would leave the calendar (an `as_of` near year 1 or 9999) is not
  a window: a question never fails on its time words.

Dates people type (`read_day`: --since, /ask since:) must lie from EARLIEST_DAY to
LATEST_DAY; anything else, and a 'since' after an 'until' (`check_period`), raises DateError,
whose message is one sentence for the user.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dateutil import parser as date_parser
from dateutil.relativedelta import relativedelta

ONE_DAY = timedelta(days=1)
# A day or month named without a year, this close ahead of as_of, is a future event.
NEAR_FUTURE_DAYS = 31
# "this week/month/year" reaches back at least this far (see _this_period).
THIS_PERIOD_MIN_DAYS = 7
# recency_weight for an article with no date: below a year-old article, above nothing.
UNDATED_WEIGHT = 0.1
# The dates a person may type: wider than any news archive, and far enough inside
# date.min/date.max that a day of slack or "N years ago" never leaves the calendar.
EARLIEST_DAY = date(1800, 1, 1)
LATEST_DAY = date(2199, 12, 31)
# "N days ago" needs at most 6 digits to reach EARLIEST_DAY; longer numbers are refused before
# int() (which refuses over 4,300 digits) or date arithmetic (which overflows) sees them.
MAX_AGO_DIGITS = 6


class DateError(ValueError):
    """A date a person typed that cannot be used; the message is one sentence to show them."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A span of publication dates a question asks about."""

    since: date | None
    until: date | None  # inclusive
    phrase: str  # the matched text, e.g. "last Monday"
    recency: bool  # prefer newer articles inside the window


@dataclass(frozen=True, slots=True)
class ParsedQuestion:
    """A question split into the text to retrieve with and the time it asks about."""

    text: str  # the question with the time expressions removed, tidy whitespace
    window: TimeWindow | None


@dataclass(frozen=True, slots=True)
class _Span:
    """One resolved time expression: its dates and whether it leans to the newest."""

    since: date | None
    until: date | None
    recency: bool
    one_day: bool = False  # a single day with slack, which may end a day after as_of


_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "couple": 2, "few": 3, "several": 5,
}  # fmt: skip

# Lowercase "may" is the verb; it is a month only capitalised or before a year.
_MONTH = (
    r"(?:jan(?:uary|\.)?|feb(?:ruary|\.)?|mar(?:ch|\.)?|apr(?:il|\.)?|(?-i:May)|may(?=\s+\d{4})"
    r"|june?|july?|aug(?:ust|\.)?|sep(?:t(?:ember)?)?\.?|oct(?:ober|\.)?|nov(?:ember|\.)?"
    r"|dec(?:ember|\.)?)(?![\w'’-])"
)
_YEAR = r"(?:19|20)\d{2}(?![\w'’-])"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
# Full names only: "sat", "wed" and "Sun" are words and a newspaper far more often than days.
_WEEKDAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_NUMBER = (
    r"(?:\d{1,3}|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|(?:a\s+)?couple(?:\s+of)?|(?:a\s+)?few|several)"
)
_UNIT = r"(?:hours?|days?|weeks?|months?|years?)"
_END = r"(?![\w'’-])"  # not glued to a word, a possessive or a hyphenated compound
_LEAD = r"(?:(?P<lead>in|during|throughout|since|from|until|till|before|by|on|of)\s+)"
_PART = r"(?:(?P<part>early|mid|late)[\s-]+)"

# Capitalised words that turn a weekday into a name: "Super Tuesday", "Sunday Times".
_WEEKDAY_NAME_BEFORE = re.compile(r"[A-Z][\w'’]*\s+$")
_WEEKDAY_NAME_AFTER = re.compile(r"\s+[A-Z]")
_SENTENCE_STARTERS = frozenset(
    re.findall(
        r"\w+",
        "which what when who whom whose where why how did does do is was were are has have had "
        "and but so then since until after before by on from",
    )
)
# An article before a date or weekday makes it a noun: "the Jan. 6 committee", "a Sunday".
_ARTICLE_BEFORE = re.compile(r"\b(?:the|a|an|every|each)\s+$", re.IGNORECASE)


def _month_number(token: str) -> int:
    """1-12 for a month name or abbreviation."""
    return _MONTHS[token.lower()[:3]]


def _weekday_number(token: str) -> int:
    """0 (Monday) to 6 for a weekday name or abbreviation."""
    return _WEEKDAYS[token.lower()[:3]]


def _day_number(token: str) -> int:
    """The day of the month in '12', '3rd', '21st'."""
    return int(token.rstrip("stndrh"))


def _count(token: str) -> int:
    """The number a numeral or number word stands for."""
    token = token.lower().removeprefix("a ").removesuffix(" of").strip()
    if token.isdigit():
        return int(token)
    return _NUMBER_WORDS[token.split()[-1]]


def _month_end(year: int, month: int) -> date:
    """The last day of a month."""
    return date(year, month, 1) + relativedelta(months=1, days=-1)


def _resolve_year(month: int, day: int, year: str | None, as_of: date) -> int | None:
    """The year of a month/day: given, else the latest not after as_of; None for near future."""
    if year:
        return int(year)
    start = date(as_of.year, month, day)
    if start <= as_of:
        return as_of.year
    if (start - as_of).days <= NEAR_FUTURE_DAYS:
        return None
    return as_of.year - 1


def _day(day: date) -> _Span:
    """A one-day window with a day of slack on each side."""
    return _Span(day - ONE_DAY, day + ONE_DAY, False, one_day=True)


def _part_of(since: date, until: date, part: str | None) -> tuple[date, date]:
    """The early, middle or late third of a period, or all of it."""
    if not part:
        return since, until
    third = ((until - since).days + 1) / 3
    index = {"early": 0, "mid": 1, "late": 2}[part.lower()]
    start = since + timedelta(days=math.floor(third * index))
    end = until if index == 2 else since + timedelta(days=math.floor(third * (index + 1)) - 1)
    return start, end


def _safe_date(year: int, month: int, day: int) -> date | None:
    """A date, or None when the day does not exist in that month."""
    try:
        return date(year, month, day)
    except ValueError:
        return None


# Each handler gets the match's groups (prefix removed) and as_of, and returns a span or None
# when the words turn out not to be a usable time (a future date, a 31st of February).
_Handler = Callable[[dict[str, str | None], date], _Span | None]
_RULES: list[tuple[str, _Handler]] = []


def _rule(pattern: str) -> Callable[[_Handler], _Handler]:
    """Register a handler for a pattern; earlier rules win at the same position."""

    def register(handler: _Handler) -> _Handler:
        _RULES.append((pattern, handler))
        return handler

    return register


@_rule(
    rf"(?:between|from)\s+(?:the\s+)?(?P<d1>{_DAY})\s+(?:and|to|until|till|through)\s+"
    rf"(?:the\s+)?(?P<d2>{_DAY})(?:\s+of)?\s+(?P<month>{_MONTH})(?:,?\s+(?P<year>{_YEAR}))?"
    rf"|(?:(?:between|from|on|in|during)\s+)?(?P<month2>{_MONTH})\s+(?P<d3>{_DAY})\s*"
    rf"(?:and|to|until|till|through|-|–)\s*(?P<d4>{_DAY})(?:,?\s+(?P<year2>{_YEAR}))?"
    rf"|(?P<d5>{_DAY})\s*[-–]\s*(?P<d6>{_DAY})\s+(?P<month3>{_MONTH})"
    rf"(?:,?\s+(?P<year3>{_YEAR}))?"
)
def _day_range(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'between 1 and 7 March', 'March 1-7', '1–7 March 2023'."""
    month_token = groups["month"] or groups["month2"] or groups["month3"]
    first = groups["d1"] or groups["d3"] or groups["d5"]
    last = groups["d2"] or groups["d4"] or groups["d6"]
    year_token = groups["year"] or groups["year2"] or groups["year3"]
    assert month_token and first and last
    month, day1, day2 = _month_number(month_token), _day_number(first), _day_number(last)
    if day2 < day1:
        return None
    year = _resolve_year(month, 1, year_token, as_of)
    if year is None:
        return None
    start, end = _safe_date(year, month, day1), _safe_date(year, month, day2)
    if start is None or end is None:
        return None
    return _Span(start, end + ONE_DAY, False)


@_rule(
    rf"(?:between|from)\s+(?P<m1>{_MONTH})(?:\s+(?P<y1>{_YEAR}))?\s+"
    rf"(?:and|to|until|till|through|-|–)\s+(?P<m2>{_MONTH})(?:\s+(?P<y2>{_YEAR}))?"
)
def _month_range(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'from January to March', 'between March 2022 and May 2022'."""
    assert groups["m1"] and groups["m2"]
    first, last = _month_number(groups["m1"]), _month_number(groups["m2"])
    end_year = _resolve_year(last, 1, groups["y2"], as_of)
    if end_year is None:
        return None
    start_year = int(groups["y1"]) if groups["y1"] else end_year - (first > last)
    return _Span(date(start_year, first, 1), _month_end(end_year, last), False)


@_rule(rf"{_LEAD}?(?P<year>(?:19|20)\d{{2}})-(?P<month>[01]\d)-(?P<day>[0-3]\d)")
def _iso_date(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'2023-03-12'."""
    assert groups["year"] and groups["month"] and groups["day"]
    day = _safe_date(int(groups["year"]), int(groups["month"]), int(groups["day"]))
    return _day(day) if day else None


@_rule(
    rf"(?<!every\s){_LEAD}?(?:the\s+)?(?:(?P<d1>{_DAY})(?:\s+of)?\s+(?P<m1>{_MONTH})"
    rf"|(?P<m2>{_MONTH})\s+(?:the\s+)?(?P<d2>{_DAY}))(?:,?\s+(?P<year>{_YEAR}))?"
)
def _calendar_day(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'on 12 March', 'March 12', 'Jan. 8, 2023', 'since March 3'."""
    month_token, day_token = groups["m1"] or groups["m2"], groups["d1"] or groups["d2"]
    assert month_token and day_token
    month, day_number = _month_number(month_token), _day_number(day_token)
    if _safe_date(2000, month, day_number) is None:  # 2000 is a leap year: 29 Feb exists
        return None
    year = _resolve_year(month, min(day_number, 28), groups["year"], as_of)
    day = _safe_date(year, month, day_number) if year else None
    return _day(day) if day else None


@_rule(rf"{_LEAD}?{_PART}?(?P<month>{_MONTH})(?:,?\s+(?P<year>{_YEAR}))?")
def _month(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'in March', 'March 2023', 'since January', 'in early March'."""
    assert groups["month"]
    lead = (groups["lead"] or "").lower()
    if not groups["year"] and lead in ("", "of", "on"):
        return None  # "the march on Washington", "the Ides of March"
    month = _month_number(groups["month"])
    year = _resolve_year(month, 1, groups["year"], as_of)
    if year is None:
        return None
    since, until = _part_of(date(year, month, 1), _month_end(year, month), groups["part"])
    return _Span(since, until, False)


@_rule(rf"{_LEAD}{_PART}?(?P<year>{_YEAR})")
def _year(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'in 2022', 'during 2022', 'of 2022', 'since 2020', 'in late 2022'."""
    assert groups["year"]
    if (groups["lead"] or "").lower() == "on":
        return None
    year = int(groups["year"])
    since, until = _part_of(date(year, 1, 1), date(year, 12, 31), groups["part"])
    return _Span(since, until, False)


@_rule(r"(?:the\s+)?day\s+before\s+yesterday")
def _day_before_yesterday(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'the day before yesterday'."""
    return _day(as_of - 2 * ONE_DAY)


@_rule(r"yesterday(?:\s+(?:morning|afternoon|evening))?|last\s+night")
def _yesterday(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'yesterday', 'last night'."""
    return _day(as_of - ONE_DAY)


@_rule(r"today|tonight|this\s+(?:morning|afternoon|evening)")
def _today(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'today', 'tonight', 'this morning'."""
    return _day(as_of)


@_rule(
    r"(?:(?:in|during|over|within)\s+)?(?:the\s+|this\s+)?(?:past|last|previous)\s+"
    rf"(?:(?P<n>{_NUMBER})\s+)?(?P<unit>{_UNIT})(?!\s+of\b)"  # "the last day of Carnival"
)
def _past_n(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'in the past 3 days', 'over the past month', 'last 24 hours', 'the past two weeks'."""
    assert groups["unit"]
    unit = groups["unit"].lower().rstrip("s")
    n = _count(groups["n"]) if groups["n"] else 1
    if unit in ("hour", "day") and not groups["n"]:
        return None  # "the last day", "the past hour": rarely a span of news
    if unit == "hour":
        return _Span(as_of - timedelta(days=math.ceil(n / 24)), as_of, True)
    if unit in ("week", "month", "year") and not groups["n"]:
        text = groups["_text"] or ""
        if re.match(r"(?:(?:in|during|over|within)\s+)?last\s", text, re.IGNORECASE):
            return _last_period(unit, as_of)  # "last week" is the calendar week before
    if unit == "day":
        return _Span(as_of - timedelta(days=n), as_of, True)
    return _Span(as_of - relativedelta(**{f"{unit}s": n}), as_of, True)


def _last_period(unit: str, as_of: date) -> _Span:
    """The calendar week (Mon–Sun), month or year before the one holding as_of."""
    if unit == "week":
        monday = as_of - timedelta(days=as_of.weekday() + 7)
        return _Span(monday, monday + timedelta(days=6), False)
    if unit == "month":
        first = as_of.replace(day=1) - relativedelta(months=1)
        return _Span(first, _month_end(first.year, first.month), False)
    return _Span(date(as_of.year - 1, 1, 1), date(as_of.year - 1, 12, 31), False)


@_rule(
    r"(?:(?:so\s+far|earlier|later)\s+)?(?:(?:in|during|of|over)\s+)?this\s+"
    r"(?P<unit>week|month|year)"
)
def _this_period(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'this week', 'earlier this month', 'so far this year': from its start, or a week back.

    People (and news quizzes) say "this week" of the last seven days, and reports lag the
    event, so the window reaches back at least THIS_PERIOD_MIN_DAYS even early in a week.
    """
    assert groups["unit"]
    unit = groups["unit"].lower()
    if unit == "week":
        start = as_of - timedelta(days=as_of.weekday())
    elif unit == "month":
        start = as_of.replace(day=1)
    else:
        start = date(as_of.year, 1, 1)
    return _Span(min(start, as_of - timedelta(days=THIS_PERIOD_MIN_DAYS)), as_of, True)


@_rule(
    r"(?:(?:over|during|on|at)\s+)?(?:this\s+past|last|past)\s+weekend"
    r"|(?:over|during|on|at)\s+the\s+weekend|(?:(?:over|during|on|at)\s+)?this\s+weekend"
)
def _weekend(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'this past weekend', 'last weekend', 'over the weekend': the latest Sat–Sun, + Monday."""
    saturday = as_of - timedelta(days=(as_of.weekday() - 5) % 7)
    return _Span(saturday, min(saturday + 2 * ONE_DAY, as_of), False)


@_rule(rf"(?P<n>{_NUMBER})\s+(?P<unit>{_UNIT})\s+ago")
def _ago(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'two weeks ago', '3 days ago': the day, give or take half a unit (at least a day)."""
    assert groups["n"] and groups["unit"]
    unit, n = groups["unit"].lower().rstrip("s"), _count(groups["n"])
    if unit == "hour":
        return _day(as_of - timedelta(days=n // 24))
    center = as_of - relativedelta(**{f"{unit}s": n})
    half = {"day": 1, "week": 3, "month": 15, "year": 182}[unit]
    return _Span(center - timedelta(days=half), center + timedelta(days=half), False)


@_rule(r"(?:(?:in|over|during)\s+)?recent\s+(?P<unit>days|weeks|months|years)")
def _recent_units(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'in recent weeks': a few of those units back, leaning to the newest."""
    assert groups["unit"]
    back = {"days": timedelta(days=7), "weeks": timedelta(days=28),
            "months": relativedelta(months=3), "years": relativedelta(years=3)}  # fmt: skip
    return _Span(as_of - back[groups["unit"].lower()], as_of, True)


@_rule(
    r"most\s+recent(?:ly)?|recently|lately|of\s+late|latest|newest|currently"
    r"|these\s+days|nowadays|right\s+now"
)
def _recency(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'recently', 'latest', 'newest': no window, but prefer newer articles."""
    return _Span(None, None, True)


@_rule(
    rf"(?:(?P<which>last|this\s+past|past|on|this)\s+)?(?P<weekday>{_WEEKDAY})"
    r"(?:\s+(?:morning|afternoon|evening|night))?"
)
def _weekday(groups: dict[str, str | None], as_of: date) -> _Span | None:
    """'last Monday', 'on Tuesday', 'arrested Monday': the latest such day, ±1 day."""
    assert groups["weekday"]
    which = (groups["which"] or "").lower()
    weekday = _weekday_number(groups["weekday"])
    back = (as_of.weekday() - weekday) % 7
    if back == 0 and which in ("last", "this past", "past"):
        back = 7
    return _day(as_of - timedelta(days=back))


def _compile_rules() -> tuple[re.Pattern[str], list[_Handler]]:
    """One alternation of all rules, each as group r<i> with its inner groups prefixed."""
    parts = []
    for index, (pattern, _handler) in enumerate(_RULES):
        renamed = re.sub(r"\(\?P<(\w+)>", rf"(?P<r{index}_\1>", pattern)
        parts.append(rf"(?P<r{index}>(?:{renamed}){_END})")
    combined = r"(?<![\w'’-])(?:" + "|".join(parts) + ")"
    return re.compile(combined, re.IGNORECASE), [handler for _p, handler in _RULES]


_PATTERN, _HANDLERS = _compile_rules()
_TIDY_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:?!)])")
_TIDY_REPEATED_COMMA = re.compile(r",(?:\s*,)+")
_TIDY_COMMA_BEFORE_END = re.compile(r",\s*([.;:?!])")
_TIDY_LEADING = re.compile(r"^[\s,;:]+")
_TIDY_SPACES = re.compile(r"\s{2,}")
_HAS_WORD = re.compile(r"\w")


def _is_weekday_name(question: str, start: int, end: int) -> bool:
    """True when a bare weekday is part of a name or a noun phrase, not a day."""
    before, after = question[:start], question[end:]
    if _ARTICLE_BEFORE.search(before) or _WEEKDAY_NAME_AFTER.match(after):
        return True
    # "Super Tuesday", "Ash Wednesday"; but "Which Monday", "And Sunday" start a sentence.
    name_before = _WEEKDAY_NAME_BEFORE.search(before)
    return bool(name_before) and name_before.group().strip().lower() not in _SENTENCE_STARTERS


def _tidy(text: str) -> str:
    """Whitespace and punctuation left tidy after expressions were cut out."""
    text = _TIDY_SPACES.sub(" ", text)
    text = _TIDY_SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _TIDY_REPEATED_COMMA.sub(",", text)
    text = _TIDY_COMMA_BEFORE_END.sub(r"\1", text)
    return _TIDY_LEADING.sub("", text).strip()


def parse_question_time(question: str, as_of: date) -> ParsedQuestion:
    """Split a question into retrieval text and the publication window it asks about."""
    spans: list[_Span] = []
    phrases: list[str] = []
    kept: list[str] = []
    cursor = 0
    for match in _PATTERN.finditer(question):
        rule = match.lastgroup
        assert rule is not None
        index = int(rule[1:])
        prefix = f"{rule}_"
        groups: dict[str, str | None] = {
            name.removeprefix(prefix): value
            for name, value in match.groupdict().items()
            if name.startswith(prefix)
        }
        groups["_text"] = match.group()
        handler = _HANDLERS[index]
        if (
            handler is _weekday
            and not groups["which"]
            and _is_weekday_name(question, match.start(), match.end())
        ):
            continue
        if (
            handler is _calendar_day
            and not groups["lead"]
            and (
                match.group().lower().startswith("the")
                or _ARTICLE_BEFORE.search(question[: match.start()])
            )
        ):
            continue
        try:
            span = handler(groups, as_of)
            span = _shape(span, groups.get("lead"), as_of) if span else None
        except (ValueError, OverflowError):
            span = None  # the dates leave the calendar (year < 1 or > 9999): not a window
        if span is None:
            continue
        spans.append(span)
        phrases.append(match.group())
        kept.append(question[cursor : match.start()])
        cursor = match.end()
    if not spans:
        return ParsedQuestion(text=_tidy(question) or question, window=None)
    kept.append(question[cursor:])
    text = _tidy(" ".join(kept))
    if not _HAS_WORD.search(text):
        text = _tidy(question)
    return ParsedQuestion(text=text, window=_merge(spans, phrases))


def _shape(span: _Span, lead: str | None, as_of: date) -> _Span | None:
    """Drop windows that start in the future, apply 'since'/'until' leads, clip to as_of."""
    latest = as_of + ONE_DAY if span.one_day else as_of
    if span.since is not None and span.since > latest:
        return None
    lead = (lead or "").lower()
    since, until = span.since, span.until
    if lead in ("since", "from"):
        until = as_of
    elif lead in ("until", "till", "before", "by"):
        until = since - ONE_DAY if lead == "before" and since else until
        since = None
    if until is not None:
        until = min(until, latest)
        if since is not None and since > until:
            return None
    return _Span(since, until, span.recency)


def _merge(spans: list[_Span], phrases: list[str]) -> TimeWindow:
    """The smallest window holding every span; open ends stay open."""
    dated = [span for span in spans if span.since is not None or span.until is not None]
    recency = any(span.recency for span in spans)
    phrase = ", ".join(phrases)
    if not dated:
        return TimeWindow(None, None, phrase, recency)
    sinces = [span.since for span in dated]
    untils = [span.until for span in dated]
    since = None if None in sinces else min(s for s in sinces if s is not None)
    until = None if None in untils else max(u for u in untils if u is not None)
    return TimeWindow(since, until, phrase, recency)


def recency_weight(published: date | None, as_of: date, *, half_life_days: float = 30.0) -> float:
    """A mild preference for newer articles in (0, 1]: halves every half_life_days of age."""
    if published is None:
        return UNDATED_WEIGHT
    age_days = max((as_of - published).days, 0)
    return max(0.5 ** (age_days / half_life_days), 1e-9)


_DAYS_AGO = re.compile(r"^(\d+)\s+(day|week|month|year)s?\s+ago$")
_UNITS = {"day": "days", "week": "weeks", "month": "months", "year": "years"}
_DAY_WORDS = {"today": "0 days ago", "yesterday": "1 day ago"}
# A typed date is echoed in errors only this long: a whole 6,000-character option would not
# fit a Discord message (2,000).
SHOWN_CHARS = 40


def read_day(text: str, today: date | None = None) -> date:
    """A date a person typed: YYYY-MM-DD, '3 March 2023', 'yesterday', '2 weeks ago'.

    The date must lie from EARLIEST_DAY to LATEST_DAY (inclusive). Raises DateError (a
    ValueError) naming the accepted forms when the text is not a date, or the accepted span
    when it is outside it; never another exception, however large a number it holds.
    """
    today = today or date.today()
    value = " ".join(text.lower().split())
    value = _DAY_WORDS.get(value, value)
    relative = _DAYS_AGO.match(value)
    if relative:
        amount, unit = relative.group(1), relative.group(2)
        if len(amount.lstrip("0")) > MAX_AGO_DIGITS:
            raise _out_of_range(text)
        try:
            day = today - relativedelta(**{_UNITS[unit]: int(amount)})
        except (ValueError, OverflowError):  # before year 1
            raise _out_of_range(text) from None
        return _in_range(day, text)
    try:
        day = date_parser.parse(value, default=datetime(today.year, 1, 1)).date()
    except (ValueError, OverflowError):
        raise DateError(
            f"I can't read {_shown(text)} as a date. Use YYYY-MM-DD, e.g. 2023-05-01, "
            "or forms like '3 March 2023' or '2 weeks ago'."
        ) from None
    return _in_range(day, text)


def _in_range(day: date, text: str) -> date:
    """`day`, or DateError when it lies outside EARLIEST_DAY to LATEST_DAY."""
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise _out_of_range(text)
    return day


def _out_of_range(text: str) -> DateError:
    """The error for a typed date outside EARLIEST_DAY to LATEST_DAY."""
    return DateError(
        f"{_shown(text)} is outside the dates I can use: give one from {EARLIEST_DAY.isoformat()} "
        f"to {LATEST_DAY.isoformat()}."
    )


def _shown(text: str) -> str:
    """The typed text quoted for an error message, cut to SHOWN_CHARS characters."""
    text = " ".join(text.split())
    return repr(text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…")


def check_period(since: date | None, until: date | None) -> None:
    """Raise DateError when both ends of a period are given and `since` is after `until`.

    The one check behind the command line's --since/--until and the bot's since:/until:.
    """
    if since is not None and until is not None and since > until:
        raise DateError(f"'since' ({since.isoformat()}) is after 'until' ({until.isoformat()}).")
