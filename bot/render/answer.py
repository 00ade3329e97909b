"""An answer as Discord messages (`/ask` and questions by message): the echoed question, the
period and caveat, the quotes grouped by article, further reading and confidence; or, when
nothing answers, the shared wording of why (articlebot.wording)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from articlebot import wording
from bot.render.articles import also_line, attribution
from bot.render.text import (
    CONTENT_LIMIT,
    MAX_FURTHER_READING,
    MIN_QUOTE_CHARS,
    QUESTION_ECHO_CHARS,
    TITLE_CHARS,
    block_quote,
    escape_text,
    fit_list,
    fit_rendered,
    link,
    note_sentence,
    one_line,
    pack,
    shorten,
)
from index.models import Answer, Quote, Span


def asked_text(text: str) -> str:
    """The asker's own words (a period's, the filters'), escaped on one line, at most
    TITLE_CHARS as sent."""
    return fit_rendered(one_line(text), TITLE_CHARS, escape_text)


def period_parts(answer: Answer) -> tuple[str, str]:
    """The period the question named, as (escaped words, dates); ('', '') when it named none.

    Words without dates ("the latest") name no period: they only favour recent articles.
    """
    span = wording.date_span(answer.period_since, answer.period_until)
    if not span:
        return "", ""
    return asked_text(answer.period_phrase), span


def period_line(answer: Answer) -> str:
    """'-# For “last week”: 27 Feb – 5 Mar 2023' ('' when the question named no period)."""
    phrase, span = period_parts(answer)
    if not span:
        return ""
    return f"-# For “{phrase}”: {span}" if phrase else f"-# For {span}"


def confidence_line(answer: Answer) -> str:
    """A short human reading of the engine's confidence (articlebot.wording's words)."""
    return wording.confidence_text(answer.confidence)


def question_line(question: str) -> str:
    """The echoed question, on one line, escaped and bounded."""
    return f"**Q:** {fit_rendered(one_line(question), QUESTION_ECHO_CHARS, escape_text)}"


def quote_block(quotes: Sequence[Quote], caution_labels: Mapping[str, str], limit: int) -> str:
    """Quotes from one article as one block quote, then its attribution and the other outlets
    once, within `limit`.

    The quotes matter most: when the attribution would leave them under MIN_QUOTE_CHARS, the
    attribution loses its link (the title stays as text) and then the list of other outlets;
    a link is never cut open. The quotes share the room left (see `fit_quotes`).
    """
    article = quotes[0].article
    source = attribution(article, caution_labels)
    if limit - len(source) - 1 < MIN_QUOTE_CHARS:
        source = attribution(article, caution_labels, linked=False)
    if limit - len(source) - 1 < MIN_QUOTE_CHARS:
        # Only many long cautions get here; with the link gone there is nothing to cut open.
        source = shorten(source, max(1, limit - MIN_QUOTE_CHARS - 1))
    others = {other.id: other for quote in quotes for other in quote.also}
    also = also_line(article, list(others.values()))
    if also and limit - len(source) - len(also) - 2 >= MIN_QUOTE_CHARS:
        source = f"{source}\n{also}"
    body = "\n".join(fit_quotes([quote.text for quote in quotes], limit - len(source) - 1,
                                 [quote.answer for quote in quotes]))
    return f"{body}\n{source}" if body else source


def fit_quotes(
    texts: Sequence[str], room: int, answers: Sequence[Span | None] = ()
) -> list[str]:
    """Each text as a block quote, all of them (one line break apart) within `room` characters.

    Each gets an equal share of what is left, shortest first, so what a short quote does not
    use goes to the longer ones. A text with no room left is dropped ('' for none). `answers`
    (one per text, or none) are set in bold while the text cut to its share still holds them.
    """
    marks = list(answers) or [None] * len(texts)
    rendered = [""] * len(texts)
    left = room - (len(texts) - 1)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for position, index in enumerate(order):
        share = left // (len(texts) - position)
        text, answer = texts[index], marks[index]

        def render(cut: str, text: str = text, answer: Span | None = answer) -> str:
            whole = answer is not None and cut[: answer.end] == text[: answer.end]
            return block_quote(cut, answer if whole else None)

        rendered[index] = fit_rendered(text, share, render) if share > 2 else ""
        left -= len(rendered[index])
    return [text for text in rendered if text]


def answer_header(answer: Answer) -> str:
    """The echoed question, the period it named and the answer's caveat, one per line."""
    lines = [question_line(answer.question), period_line(answer)]
    caveat = wording.caveat_text(answer)
    if caveat:
        lines.append(f"ℹ️ {note_sentence(caveat)}")
    return "\n".join(line for line in lines if line)


def render_answer(answer: Answer, caution_labels: Mapping[str, str]) -> list[str]:
    """Message contents for an answer, each within CONTENT_LIMIT.

    Quotes are grouped by article under one attribution (`wording.quote_groups`: articles by
    their best quote).
    """
    if not (answer.answered and answer.quotes):
        return pack([question_line(answer.question), not_answered_text(answer)], CONTENT_LIMIT)
    blocks = [answer_header(answer)]
    blocks += [quote_block(group, caution_labels, CONTENT_LIMIT)
               for group in wording.quote_groups(answer.quotes)]
    shown = {article.id for item in answer.quotes for article in (item.article, *item.also)}
    # Only articles past the abstention bar (ArticleHit.relevant): the rest of the ranking
    # fills up with whatever is least unrelated (docs/quality.md, "Also relevant").
    further = [hit for hit in answer.results if hit.relevant and hit.article.id not in shown]
    heading = "Also relevant: "
    links = fit_list([link(hit.article.title, hit.article.url)
                      for hit in further[:MAX_FURTHER_READING]],
                     CONTENT_LIMIT - len(heading), "; ")
    if links:
        blocks.append(heading + links)
    blocks.append(f"-# {confidence_line(answer)}")
    return pack(blocks, CONTENT_LIMIT)


def not_answered_text(answer: Answer) -> str:
    """Says plainly that nothing answers, and what the part asked about and the whole hold:
    articlebot.wording's sentences, the asker's text escaped and bounded (`asked_text`)."""
    return "\n".join(wording.unanswered_lines(answer, asked_text, note_sentence))
