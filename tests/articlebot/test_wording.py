"""The words people read for an answer's facts: the engine's old sentences, reproduced."""

from __future__ import annotations

from datetime import date

from articlebot import wording
from index.models import (
    Answer,
    Caveat,
    Confidence,
    Coverage,
    NotAnswered,
    OutsideFilters,
    SearchFilters,
)

WHOLE = Coverage(120, date(2023, 1, 2), date(2023, 3, 10))


def answer(**fields: object) -> Answer:
    """An answer with no quotes unless `fields` give some."""
    base: dict[str, object] = {"question": "q", "quotes": (), "results": (), "answered": False,
                               "confidence": "none", "coverage": WHOLE}
    base.update(fields)
    return Answer(**base)  # type: ignore[arg-type]


def test_days_and_spans() -> None:
    assert wording.day_text(date(2023, 3, 12)) == "12 March 2023"
    assert wording.day_text(date(2023, 3, 1)) == "1 March 2023"
    assert (wording.span_text(date(2023, 3, 1), date(2023, 3, 7))
            == "between 1 March 2023 and 7 March 2023")
    assert wording.span_text(date(2023, 3, 5), date(2023, 3, 5)) == "on 5 March 2023"
    assert wording.span_text(date(2023, 1, 2), None) == "since 2 January 2023"
    assert wording.span_text(None, date(2023, 1, 2)) == "until 2 January 2023"
    assert wording.span_text(None, None) == ""


def test_not_found() -> None:
    nothing = answer(reason=NotAnswered.NOTHING_RELEVANT)
    assert wording.reason_text(nothing) == (
        "no article answers this; the collection spans 2 January 2023 – 10 March 2023"
    )
    in_period = answer(reason=NotAnswered.NOTHING_RELEVANT, period_since=date(2023, 2, 27),
                       period_until=date(2023, 3, 5), coverage=Coverage(0, None, None),
                       collection=WHOLE)
    assert wording.reason_text(in_period) == (
        "no article between 27 February 2023 and 5 March 2023 answers this; "
        "the collection spans 2 January 2023 – 10 March 2023"
    )
    undated = answer(reason=NotAnswered.NOTHING_RELEVANT, coverage=Coverage(4, None, None))
    assert wording.reason_text(undated) == "no article answers this"
    assert wording.reason_text(answer(reason=NotAnswered.NO_WORDS)) == "the question has no words"


def test_caveats() -> None:
    quoted = {"answered": True, "quotes": ("stand-in",), "confidence": "high"}
    outside = answer(**quoted, caveat=Caveat.OUTSIDE_PERIOD, newest=date(2023, 1, 20),
                     period_since=date(2023, 2, 27), period_until=date(2023, 3, 5))
    assert wording.caveat_text(outside) == (
        "no article between 27 February 2023 and 5 March 2023 answers this; "
        "these are the closest, the latest from 20 January 2023"
    )
    stale = answer(**quoted, caveat=Caveat.STALE, newest=date(2023, 3, 12))
    assert wording.caveat_text(stale) == "the latest article on this is from 12 March 2023"
    assert wording.note(stale) == wording.caveat_text(stale)
    assert wording.note(answer(**quoted)) == ""


def test_sentences() -> None:
    assert wording.sentence("the question has no words") == "The question has no words."
    assert wording.sentence("ends with an ellipsis…") == "Ends with an ellipsis…"
    assert wording.sentence("  ") == ""


def test_plural_agrees_with_the_count() -> None:
    assert wording.plural(1, "article") == "1 article"
    assert wording.plural(2, "article") == "2 articles"
    assert wording.plural(0, "chunk") == "0 chunks"
    assert wording.plural(1234, "quote") == "1,234 quotes"
    assert wording.plural(1, "other outlet") == "1 other outlet"


def test_the_bot_words_counts_with_the_same_helper() -> None:
    from bot.render import articles as render

    assert render.plural is wording.plural  # one helper, not two


def test_a_filter_that_left_out_the_answer_is_named_with_what_it_left_out() -> None:
    def outside(n: int, undated: int, *names: str) -> str:
        return wording.left_out(OutsideFilters(n, undated, names))

    assert outside(1, 1, "since") == "1 undated article may answer; ask without since"
    assert outside(1, 1, "since", "until") == (
        "1 undated article may answer; ask without since/until")
    assert outside(2, 0, "since", "until") == (
        "2 articles outside this period may answer; ask without since/until")
    assert outside(3, 1, "until") == (
        "3 articles outside this period (1 undated) may answer; ask without until")
    assert outside(2, 0, "source") == (
        "2 articles from other outlets may answer; ask without source")
    assert outside(1, 1, "label") == (
        "1 article without the label asked for may answer; ask without label")
    assert outside(3, 1, "source", "since") == (
        "3 articles outside these filters (1 undated) may answer; ask without source/since")
    filtered = answer(reason=NotAnswered.FILTERED, outside=OutsideFilters(1, 1, ("since",)))
    assert wording.reason_text(filtered) == (
        "no article within the filters answers this; 1 undated article may answer; "
        "ask without since"
    )
    assert wording.note(filtered) == wording.reason_text(filtered)


def test_unanswered_lines_are_the_sentences_both_media_show() -> None:
    from bot.render.answer import not_answered_text

    period = answer(reason=NotAnswered.NOTHING_RELEVANT, coverage=Coverage(0, None, None),
                    collection=WHOLE, period_since=date(2023, 2, 27),
                    period_until=date(2023, 3, 5), period_phrase="last week",
                    filters=SearchFilters(sources=("Daily Planet",)))
    assert wording.unanswered_lines(period) == [
        "No article for “last week” (27 Feb – 5 Mar 2023) answers this.",
        "The part asked about (27 Feb – 5 Mar 2023; from Daily Planet) holds 0 articles.",
        "The whole collection holds 120 articles from 2023-01-02 to 2023-03-10.",
    ]
    # The bot sets the same sentences; only its escaping could tell them apart, and these
    # hold nothing to escape.
    assert not_answered_text(period).splitlines() == wording.unanswered_lines(period)
    no_words = answer(reason=NotAnswered.NO_WORDS)
    assert wording.unanswered_lines(no_words) == [
        "No article in the collection answers this.",
        "The collection covers 120 articles from 2023-01-02 to 2023-03-10.",
        "The question has no words.",
    ]
    assert not_answered_text(no_words).splitlines() == wording.unanswered_lines(no_words)


def test_the_asker_s_words_go_through_the_medium_s_setting() -> None:
    period = answer(reason=NotAnswered.NOTHING_RELEVANT, period_since=date(2023, 2, 27),
                    period_until=date(2023, 3, 5), period_phrase="*last* week")
    assert wording.unanswered_lines(period, shown=str.upper)[0] == (
        "No article for “*LAST* WEEK” (27 Feb – 5 Mar 2023) answers this.")


def test_confidence_is_worded_in_one_place() -> None:
    assert wording.confidence_text(Confidence.HIGH) == "Fairly sure"
    assert wording.confidence_text(Confidence.MEDIUM) == "Fairly sure, but check the quotes"
    assert wording.confidence_text(Confidence.LOW) == "Not very sure"
    assert set(wording.CONFIDENCE_WORDS) == set(Confidence)
    assert Confidence("high") is Confidence.HIGH and f"{Confidence.HIGH}" == "high"
