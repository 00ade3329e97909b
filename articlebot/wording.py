"""What people read about an answer's facts, in plain text: the one place the CLI and the bot
take their words from.

The engine returns facts (`Answer.reason`, `Answer.caveat`, `Answer.confidence`,
`Answer.newest`, the period the question named, the coverage); these functions word them.
Most return a lowercase phrase without a full stop, so a renderer can set it in its own
sentence (`sentence`) and escape it for its medium (the bot escapes Discord markdown; a
terminal needs nothing); `unanswered_lines` returns whole sentences, taking the medium's way
of setting the asker's text and its remarks as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from index.models import (
    Answer,
    Caveat,
    Confidence,
    Coverage,
    NotAnswered,
    OutsideFilters,
    Quote,
    SearchFilters,
    SyncOutcome,
)

SENTENCE_ENDS = ".!?…"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# How sure an answer is, in words. An answer that quotes something is never NONE; the words
# for it are LOW's, should a renderer be handed one.
CONFIDENCE_WORDS = {
    Confidence.HIGH: "Fairly sure",
    Confidence.MEDIUM: "Fairly sure, but check the quotes",
    Confidence.LOW: "Not very sure",
    Confidence.NONE: "Not very sure",
}


def plural(count: int, noun: str) -> str:
    """A count with its noun: '1 article', '2 articles', '1,234 other outlets'.

    `noun` is the singular; the plural adds "s" (enough for every noun we count). The count
    gets thousands separators.
    """
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def quote_groups(quotes: Sequence[Quote]) -> list[list[Quote]]:
    """The quotes grouped by article, to show each article's source once under its quotes.

    Articles come in the order of their best quote (highest score first); an article's quotes
    in the order they appear in it, so they read as the article tells them.
    """
    groups: dict[str, list[Quote]] = {}
    for quote in sorted(quotes, key=lambda item: item.score, reverse=True):
        groups.setdefault(quote.article.id, []).append(quote)
    return [sorted(group, key=lambda item: item.start) for group in groups.values()]


def day_text(day: date) -> str:
    """A day in words: '12 March 2023'."""
    return f"{day.day} {day:%B %Y}"


def span_text(first: date | None, last: date | None) -> str:
    """A period in words: 'between 1 March 2023 and 7 March 2023', 'on …', 'since …', 'until …'.

    Returns '' when neither end is known.
    """
    if first and last:
        if first == last:
            return f"on {day_text(first)}"
        return f"between {day_text(first)} and {day_text(last)}"
    if first:
        return f"since {day_text(first)}"
    if last:
        return f"until {day_text(last)}"
    return ""


def short_date(day: date) -> str:
    """'5 Mar 2023'."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def date_span(first: date | None, last: date | None) -> str:
    """'27 Feb – 5 Mar 2023', '1 – 7 Mar 2023', 'since 2 Jan 2023', 'until …' or ''."""
    if first and last:
        if first == last:
            return short_date(first)
        if first.year != last.year:
            return f"{short_date(first)} – {short_date(last)}"
        if first.month != last.month:
            return f"{first.day} {MONTHS[first.month - 1]} – {short_date(last)}"
        return f"{first.day} – {short_date(last)}"
    if first:
        return f"since {short_date(first)}"
    if last:
        return f"until {short_date(last)}"
    return ""


def coverage_text(coverage: Coverage) -> str:
    """'1,234 articles from 2023-01-02 to 2023-12-30' ('0 articles' when none is dated)."""
    span = ""
    if coverage.first and coverage.last:
        span = f" from {coverage.first.isoformat()} to {coverage.last.isoformat()}"
    return f"{plural(coverage.n_articles, 'article')}{span}"


def filters_phrase(filters: SearchFilters) -> str:
    """The filters a question was asked with, as a short phrase ('' when none):
    'from The Courier since 2024-07-01 labelled satire'."""
    parts = []
    if filters.sources:
        parts.append("from " + ", ".join(filters.sources))
    if filters.since:
        parts.append(f"since {filters.since.isoformat()}")
    if filters.until:
        parts.append(f"until {filters.until.isoformat()}")
    if filters.labels:
        parts.append("labelled " + ", ".join(filters.labels))
    return " ".join(parts)


def no_words() -> str:
    """Why a question without letters or digits gets no answer."""
    return "the question has no words"


def not_found(
    period_since: date | None, period_until: date | None, collection: Coverage | None
) -> str:
    """'no article [between … and …] answers this[; the collection spans D1 – D2]'.

    The period part appears only when the question named one; the span only when the
    collection has dated articles.
    """
    period = span_text(period_since, period_until)
    text = f"no article {period} answers this" if period else "no article answers this"
    if collection is not None and collection.first and collection.last:
        text += (f"; the collection spans {day_text(collection.first)} – "
                 f"{day_text(collection.last)}")
    return text


def left_out(outside: OutsideFilters) -> str:
    """What the filters left out that may answer, and which to drop.

    '1 undated article may answer; ask without since', '2 articles outside this period may
    answer; ask without since/until', '2 articles from other outlets …; ask without source'.
    The options are named as both the bot and the CLI call them (source, since, until, label).
    """
    dates = {"since", "until"} & set(outside.excluded_by)
    undated = outside.n_undated if dates else 0  # a date filter is what leaves them out
    where = {
        ("source",): "from other outlets",
        ("label",): "without the label asked for",
    }.get(outside.excluded_by, "outside this period" if set(outside.excluded_by) == dates
          else "outside these filters")
    if undated == outside.n_articles and set(outside.excluded_by) == dates:
        what = plural(outside.n_articles, "undated article")
    else:
        what = f"{plural(outside.n_articles, 'article')} {where}"
        if undated:
            what += f" ({undated:,} undated)"
    return f"{what} may answer; ask without {'/'.join(outside.excluded_by)}"


def outside_period(since: date | None, until: date | None, newest: date | None) -> str:
    """'no article between … answers this; these are the closest, the latest from D'."""
    period = span_text(since, until)
    where = period or "in the period asked about"
    text = f"no article {where} answers this; these are the closest"
    if newest is not None:
        text += f", the latest from {day_text(newest)}"
    return text


def stale(newest: date | None) -> str:
    """'the latest article on this is from D' (without a date: that the articles are old)."""
    if newest is None:
        return "the articles on this are old"
    return f"the latest article on this is from {day_text(newest)}"


def reason_text(answer: Answer) -> str:
    """Why nothing answers, for an answer that quotes nothing ('' when it quotes something)."""
    if answer.answered and answer.quotes:
        return ""
    if answer.reason is NotAnswered.NO_WORDS:
        return no_words()
    if answer.reason is NotAnswered.FILTERED and answer.outside is not None:
        return f"no article within the filters answers this; {left_out(answer.outside)}"
    if answer.reason is NotAnswered.NOT_MENTIONED and answer.unmentioned:
        return f"no article mentions {answer.unmentioned}"
    # NOTHING_RELEVANT, and the fallback for an answer that names no reason.
    return not_found(
        answer.period_since, answer.period_until, answer.collection or answer.coverage
    )


def caveat_text(answer: Answer) -> str:
    """The warning that goes with an answer's quotes ('' when there is none)."""
    if answer.caveat is Caveat.OUTSIDE_PERIOD:
        return outside_period(answer.period_since, answer.period_until, answer.newest)
    if answer.caveat is Caveat.STALE:
        return stale(answer.newest)
    return ""


def sentence(text: str) -> str:
    """A phrase as a sentence: first letter capitalised, a full stop unless it ends in one.

    Returns '' for blank text.
    """
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in SENTENCE_ENDS else text + "."


def confidence_text(confidence: Confidence) -> str:
    """How sure an answer is, in words: 'Fairly sure', 'Not very sure', … (CONFIDENCE_WORDS)."""
    return CONFIDENCE_WORDS.get(confidence, CONFIDENCE_WORDS[Confidence.LOW])


def one_line(text: str) -> str:
    """Runs of white space, line breaks included, as one space."""
    return " ".join(text.split())


def unanswered_lines(
    answer: Answer,
    shown: Callable[[str], str] = one_line,
    remark: Callable[[str], str] = sentence,
) -> list[str]:
    """Says plainly that nothing answers, and what the part asked about and the whole hold:
    one sentence a line.

    'No article for “last week” (27 Feb – 5 Mar 2023) answers this.', 'The part asked about
    (27 Feb – 5 Mar 2023; from Daily Planet) holds 0 articles.', 'The whole collection holds
    1,234 articles from 2023-01-02 to 2023-03-10.' A question whose filters left out what may
    answer (FILTERED) or that names what no article mentions (NOT_MENTIONED) leads with
    `reason_text` instead; any other reason but NOTHING_RELEVANT ends with it.

    `shown` sets the asker's own text (the words that named the period, the filters) for the
    medium: the bot escapes and bounds it. `remark` makes a phrase of this module a sentence
    there (`sentence`, plus the bot's escaping and bound).
    """
    span = date_span(answer.period_since, answer.period_until)
    phrase = shown(answer.period_phrase) if span else ""
    if answer.reason in (NotAnswered.NOT_MENTIONED, NotAnswered.FILTERED):
        # The filters left out what may answer, or the name is nowhere: say so rather than
        # blame the collection.
        lines = [remark(reason_text(answer))]
    elif span:
        asked = f"“{phrase}” ({span})" if phrase else span
        lines = [f"No article for {asked} answers this."]
    else:
        lines = ["No article in the collection answers this."]
    scope = "; ".join(part for part in (span, shown(filters_phrase(answer.filters))) if part)
    whole = answer.collection
    if scope:
        lines.append(f"The part asked about ({scope}) holds {coverage_text(answer.coverage)}.")
        if whole is not None and whole != answer.coverage:
            lines.append(f"The whole collection holds {coverage_text(whole)}.")
    else:
        lines.append(f"The collection covers {coverage_text(whole or answer.coverage)}.")
    # The lines above already say what NOTHING_RELEVANT, FILTERED and NOT_MENTIONED mean; any
    # other reason adds something.
    if answer.reason not in (None, NotAnswered.NOTHING_RELEVANT, NotAnswered.FILTERED,
                             NotAnswered.NOT_MENTIONED):
        lines.append(remark(reason_text(answer)))
    return lines


def note(answer: Answer) -> str:
    """The one remark on an answer: why nothing answers, else its caveat ('' when none)."""
    if answer.answered and answer.quotes:
        return caveat_text(answer)
    return reason_text(answer)


def sync_text(outcome: SyncOutcome) -> str:
    """What an ingest or reindex did: 'nothing changed', 'added 4, updated 1', or 'built from
    scratch with 1,464 articles' (a first build or a rebuild)."""
    if not outcome.changed:
        return "nothing changed"
    if outcome.from_scratch:
        return f"built from scratch with {plural(outcome.added, 'article')}"
    counts = (("added", outcome.added), ("updated", outcome.updated),
              ("removed", outcome.removed))
    return ", ".join(f"{label} {count:,}" for label, count in counts if count) or "changed"
