"""Pure functions that turn engine results into Discord message content and embeds."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import discord

from articlebot import wording
from articlebot.wording import plural
from index.models import (
    Answer,
    ArticleDetail,
    ArticleHit,
    ArticleInfo,
    Coverage,
    Follow,
    IndexStats,
    IngestReport,
    NotAnswered,
    Progress,
    Quote,
    SearchFilters,
    SkippedItem,
    Span,
    Story,
    SyncOutcome,
)
from index.text import strip_bidi

if TYPE_CHECKING:
    from index.feeds import FeedSource, FeedState

# Discord's hard limits; a message or embed over any of them is rejected with HTTP 400.
CONTENT_LIMIT = 2000
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELD_NAME_LIMIT = 256
EMBED_FIELD_VALUE_LIMIT = 1024
EMBED_FIELDS_MAX = 25
EMBED_FOOTER_LIMIT = 2048
EMBED_AUTHOR_LIMIT = 256
EMBED_TOTAL_LIMIT = 6000
THREAD_NAME_LIMIT = 100
CHOICE_NAME_LIMIT = 100

# Our own budgets, well inside the limits, so one long title or URL cannot crowd out the quote.
# Each is measured on the text as sent: after escaping, and for URLs after percent-encoding
# (a non-Latin letter grows to 6 or 9 characters there).
TITLE_CHARS = 200
URL_CHARS = 512
QUESTION_ECHO_CHARS = 300
NOTE_CHARS = 400
OPENING_CHARS = 1500
MAX_FURTHER_READING = 3
OUTLET_CHARS = 80
# Room for the links to the other outlets telling a story, so a big story cannot crowd out
# the quote (each link may carry a long URL).
OUTLET_LINKS_CHARS = 400
MIN_QUOTE_CHARS = 80
# A timeline shows many stories: each quote gets less room than a lone answer's.
TIMELINE_QUOTE_CHARS = 400
MAX_FOLLOW_HITS = 10
# Unreadable items listed for the admin after a reindex; the log names every one.
MAX_SKIPPED_LISTED = 20

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

ZWSP = "\u200b"
ELLIPSIS = "…"
SEPARATOR = " · "
EMBED_COLOUR = discord.Colour.blurple()

CONFIDENCE_LINES = {
    "high": "Fairly sure",
    "medium": "Fairly sure, but check the quotes",
    "low": "Not very sure",
}

# Any line break Discord (or a browser) may honour; each becomes "\n" so no quote can end early.
_LINE_BREAKS = re.compile(r"\r\n?|[\n\v\f\x1c-\x1e\x85\u2028\u2029]")
# Characters that start or end Discord markdown anywhere on a line. Escaping every one of them
# (not only balanced pairs, as discord.utils.escape_markdown does) also catches the second
# masked link on a line. "<" covers mentions, channels, timestamps and slash-command links.
_MARKDOWN_CHARS = re.compile(r"([\\*_~|`>\[\]<#])")
# Markdown that only counts at the start of a line: lists ("- ", "1. ") and subtext ("-# ").
_LINE_START_MARKERS = re.compile(r"^(\s*)([-+]|\d+\.)", re.MULTILINE)
_MASS_MENTIONS = re.compile(r"@(everyone|here)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)")
# One of our own masked links. Untrusted text never holds an unescaped "[" (escape_text), so
# only links this module built match.
_OWN_LINK = re.compile(r"(?<!\\)\[((?:\\.|[^\\\[\]])*)\]\(<[^<>\s]*>\)")
# What a reader takes for a web address: a scheme, "www." or a dotted name ending in letters,
# searched in the text as read (address_reading: any look-alike of ".", ":" or "/" counts as
# one). "Node.js 20" and "Col·legi" match too; such a title loses only its place as the link's
# label, never its text.
# Each alternative starts with a fixed run, so a search is linear even in a 9,000-letter title.
_ADDRESS_LIKE = re.compile(r"[^\W_]:/|www\.|[\w-]\.[^\W\d_]{2}", re.IGNORECASE)
# Look-alikes of an address's ".", ":" and "/" that no rule in _address_char finds: from
# Unicode's confusables.txt (UTS #39, 16.0), the characters whose prototype is ".", "·", ":"
# or "/" and that are letters, digits or marks, or whose names say something else (a colon
# named FULL STOP). The rest (ONE DOT LEADER, IDEOGRAPHIC FULL STOP, MIDDLE DOT, FRACTION
# SLASH, …) go by name, after NFKC has folded full-width and small forms (．｡：／﹒).
_LOOKALIKES = str.maketrans({
    **dict.fromkeys(
        "\U0001d16d"  # MUSICAL SYMBOL COMBINING AUGMENTATION DOT
        "\u0660\u06f0"  # ARABIC-INDIC and EXTENDED ARABIC-INDIC DIGIT ZERO
        "\ua4f8"  # LISU LETTER TONE MYA TI
        "\u2022\u2219\u16eb\ua78f\u1427",  # BULLET (OPERATOR), RUNIC SINGLE PUNCTUATION, …
        "."),
    **dict.fromkeys(
        "\u0903\u0a83"  # DEVANAGARI and GUJARATI SIGN VISARGA
        "\u0589\u1803\u1809\u205a"  # ARMENIAN, MONGOLIAN (MANCHU) FULL STOP, TWO DOT PUNCTUATION
        "\u05c3\u16ec\u2236\u02d0\ua4fd"  # SOF PASUQ, RUNIC MULTIPLE PUNCTUATION, RATIO, …
        "\ufe30",  # PRESENTATION FORM FOR VERTICAL TWO DOT LEADER (NFKC would make it "..")
        ":"),
    **dict.fromkeys(
        "\u1735\u2041\u2571\u27cb\U0001d23a"  # PHILIPPINE SINGLE PUNCTUATION, CARET INSERTION
        "\u31d3\u3033\u2cc6\u30ce\u4e3f",  # POINT, …, KATAKANA LETTER NO, CJK 丿
        "/"),
})
# Words in the names of punctuation and symbols that read as an address's ".", ":" or "/".
_NAMED_LIKE = (({"DOT", "STOP", "POINT"}, "."), ({"COLON"}, ":"), ({"SOLIDUS", "SLASH"}, "/"))


def escape_text(text: str) -> str:
    """Make untrusted text render literally: no markdown, links, code, mentions or line tricks.

    Also drops bidi controls (strip_bidi). The result may be longer than `text`: measure
    limits on it (fit_rendered), not on the input.
    """
    text = _LINE_BREAKS.sub("\n", strip_bidi(text))
    text = _MARKDOWN_CHARS.sub(r"\\\1", text)
    text = _LINE_START_MARKERS.sub(_escape_marker, text)
    text = _MASS_MENTIONS.sub(lambda match: f"@{ZWSP}{match.group(1)}", text)
    # Discord makes any bare "scheme://..." a link, in a block quote too. "\/" shows as "/"
    # but breaks the match, so quoted text reads verbatim and links nowhere; backslashes in
    # the input were escaped above, so the input cannot undo this. (`<url>` would not help,
    # and inline code would need its own escaping and change how the quote looks.)
    text = text.replace("://", r":\/\/")
    # "<" is already escaped; the zero-width space makes the mention inert even if it were not.
    return re.sub(r"<(\\?[@#])", rf"<{ZWSP}\1", text)


def _escape_marker(match: re.Match[str]) -> str:
    """Escape a list marker; for "1." the dot, since a backslash before a digit would show."""
    indent, marker = match.group(1), match.group(2)
    return f"{indent}\\{marker}" if marker in "-+" else f"{indent}{marker[:-1]}\\."


def one_line(text: str) -> str:
    """Collapse all whitespace, line breaks included, to single spaces; drop bidi controls."""
    return " ".join(strip_bidi(text).split())


def shorten(text: str, limit: int) -> str:
    """Cut text to at most `limit` characters, at a sentence end when one is near, adding …."""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    room = limit - len(ELLIPSIS)
    head = text[:room]
    ends = [match.end() for match in _SENTENCE_END.finditer(text[: room + 1])]
    if ends and ends[-1] >= room // 2:
        return text[: ends[-1]] + " " + ELLIPSIS if ends[-1] + 2 <= limit else head + ELLIPSIS
    space = head.rfind(" ")
    if space >= room // 2:
        head = head[:space]
    return head.rstrip() + ELLIPSIS


def fit_rendered(text: str, limit: int, render: Callable[[str], str]) -> str:
    """Render text, shortening the raw text until the rendered form fits within `limit`."""
    candidate = text
    rendered = render(candidate)
    while len(rendered) > limit:
        # Every round the raw text gets strictly shorter, so this ends.
        budget = len(candidate) - max(1, len(rendered) - limit)
        if budget <= 0:
            return ""
        candidate = shorten(text, budget)
        rendered = render(candidate)
    return rendered


def block_quote(text: str, answer: Span | None = None) -> str:
    """Escape text and put every non-empty line of it inside a Discord block quote, with the
    `answer` (character offsets into `text`) in bold when it is whole in the text and on one
    line."""
    escaped = escape_text(text)
    if answer is not None and answer.end <= len(text) and "\n" not in text[answer.start:answer.end]:
        escaped = (escape_text(text[: answer.start]) + "**"
                   + escape_text(text[answer.start : answer.end]) + "**"
                   + escape_text(text[answer.end :]))
    lines = [line.strip() for line in escaped.split("\n")]
    return "\n".join(f"> {line}" for line in lines if line)


def safe_url(url: str) -> str | None:
    """An http(s) URL, percent-encoded so it cannot break out of `(<...>)`.

    Returns None when the URL is blank, unparsable, not http(s), or longer than URL_CHARS
    once encoded: the encoded form is what is sent, and a non-Latin letter becomes 6 or 9
    characters there.
    """
    url = url.strip()
    if not url or len(url) > URL_CHARS:  # encoding never shortens: no need to encode it
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    encoded = quote(url, safe="/:?#@!$&'*+,;=%~-._[]")
    return encoded if len(encoded) <= URL_CHARS else None


@functools.lru_cache(maxsize=4096)
def _address_char(char: str) -> str:
    """The ".", ":" or "/" a punctuation mark or symbol named so reads as; "" for an invisible
    character or a combining mark (it rides on the letter before it); else `char` itself."""
    category = unicodedata.category(char)
    if category in ("Cf", "Mn", "Me"):
        return ""
    if category[0] in "PS":
        words = set(unicodedata.name(char, "").split())
        for names, plain in _NAMED_LIKE:
            if words & names:
                return plain
    return char


def address_reading(text: str) -> str:
    """`text` as read when looking for an address: folded by NFKC (ｗ, ℂ and ．become w, C and
    .), each look-alike of ".", ":" or "/" as that character, invisible characters and combining
    marks dropped. Only for deciding; the text shown stays as written."""
    # The table before NFKC (which would make a vertical two-dot leader "..") and after it
    # (which makes KANGXI RADICAL SLASH the ideograph 丿).
    folded = unicodedata.normalize("NFKC", text.translate(_LOOKALIKES)).translate(_LOOKALIKES)
    return "".join(map(_address_char, folded))


def looks_like_address(text: str) -> bool:
    """True when `text` reads as a URL or a domain name, look-alike characters and all."""
    return bool(_ADDRESS_LIKE.search(address_reading(text)))


def label_text(text: str, limit: int = TITLE_CHARS) -> str:
    """A title as escaped text on one line, at most `limit` characters as sent ('untitled')."""
    return fit_rendered(one_line(text), limit, escape_text) or "untitled"


def host_link(target: str) -> str:
    """`[host](<target>)` for a URL from safe_url: a label naming where the link really goes."""
    host = urlsplit(target).hostname or "link"
    return f"[{escape_text(host)}](<{target}>)"


def link(title: str, url: str, limit: int = TITLE_CHARS) -> str:
    """A masked link `[title](<url>)` (angle brackets stop the preview), or the bare title.

    The label is at most `limit` characters and the URL at most URL_CHARS, both as sent; a
    URL over that is dropped and the title stays as text. A title that reads as an address
    ("paypal.com", "https://bank.example/login") is never a link's label: it is shown as
    escaped text followed by `([host](<url>))`. That keeps the title as the outlet wrote it
    (neutralising its dots would alter it) while the only clickable label names the host
    the link really opens.
    """
    text = one_line(title)
    label = label_text(text, limit)
    target = safe_url(url)
    if target is None:
        return label
    if looks_like_address(text):
        return f"{label} ({host_link(target)})"
    return f"[{label}](<{target}>)"


def format_date(day: date | None) -> str:
    """An ISO date, or 'undated'."""
    return day.isoformat() if day else "undated"


def attribution(
    article: ArticleInfo, caution_labels: Mapping[str, str], *, linked: bool = True
) -> str:
    """'— [Title](<url>) · Outlet · date · labels' plus a caution line per flagged label.

    With `linked=False` the title is plain text. Each part is bounded as sent (TITLE_CHARS,
    cautions NOTE_CHARS).
    """
    title = link(article.title, article.url) if linked else label_text(article.title)
    parts = [title]
    if one_line(article.source):
        parts.append(fit_rendered(one_line(article.source), TITLE_CHARS, escape_text))
    parts.append(format_date(article.published))
    if article.labels:
        labels = ", ".join(one_line(label) for label in article.labels)
        parts.append(fit_rendered(labels, TITLE_CHARS, escape_text))
    lines = ["— " + SEPARATOR.join(part for part in parts if part)]
    lines += [f"⚠️ {fit_rendered(one_line(caution_labels[label]), NOTE_CHARS, escape_text)}"
              for label in _caution_keys(article.labels, caution_labels)]
    return "\n".join(lines)


def _caution_keys(labels: Sequence[str], caution_labels: Mapping[str, str]) -> list[str]:
    """The article's labels that carry a caution, once each, in settings order."""
    wanted = {label.lower() for label in labels}
    return [label for label in caution_labels if label.lower() in wanted]


def other_outlets(article: ArticleInfo, others: Sequence[ArticleInfo]) -> list[ArticleInfo]:
    """One article per outlet among `others`, leaving out the shown article's own outlet."""
    seen = {one_line(article.source).casefold()}
    picked = []
    for other in others:
        # An article without an outlet cannot be told apart by outlet: keep it by its id.
        key = one_line(other.source).casefold() or f"id:{other.id}"
        if key not in seen:
            seen.add(key)
            picked.append(other)
    return picked


def outlet_link(article: ArticleInfo) -> str:
    """`[Outlet](<url>)` (the label within OUTLET_CHARS), or the title when there is no outlet."""
    label = article.source if one_line(article.source) else article.title
    return link(label, article.url, OUTLET_CHARS)


def and_more(rest: int) -> str:
    """The tail of a list cut short: ' and 3 more'."""
    return f" and {rest:,} more"


def fit_list(
    items: Sequence[str], budget: int, joiner: str = ", ",
    more: Callable[[int], str] = and_more, total: int | None = None,
) -> str:
    """'A, B and 3 more': the leading items that fit `budget` characters with the tail.

    Items are whole rendered pieces (links included), never cut; '' when not even the first
    fits. `total` is how many items the list stands for when `items` holds only the first.
    """
    total = len(items) if total is None else total
    text = ""
    for count in range(1, len(items) + 1):
        rest = total - count
        candidate = joiner.join(items[:count]) + (more(rest) if rest else "")
        if len(candidate) > budget:
            break
        text = candidate
    return text


def outlet_links(articles: Sequence[ArticleInfo], budget: int = OUTLET_LINKS_CHARS) -> str:
    """'[A](<u>), [B](<u>) and 3 more', as many links as fit `budget` ('' when none fits)."""
    return fit_list([outlet_link(article) for article in articles], budget)


def also_line(article: ArticleInfo, also: Sequence[ArticleInfo]) -> str:
    """'Also reported by: [Outlet](<url>), …' for the same story elsewhere ('' when nowhere)."""
    others = other_outlets(article, also)
    if not others:
        return ""
    return "Also reported by: " + (
        outlet_links(others) or plural(len(others), "other outlet")
    )


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


def period_parts(answer: Answer) -> tuple[str, str]:
    """The period the question named, as (escaped words, dates); ('', '') when it named none.

    Words without dates ("the latest") name no period: they only favour recent articles.
    """
    span = date_span(answer.period_since, answer.period_until)
    if not span:
        return "", ""
    return fit_rendered(one_line(answer.period_phrase), TITLE_CHARS, escape_text), span


def period_line(answer: Answer) -> str:
    """'-# For “last week”: 27 Feb – 5 Mar 2023' ('' when the question named no period)."""
    phrase, span = period_parts(answer)
    if not span:
        return ""
    return f"-# For “{phrase}”: {span}" if phrase else f"-# For {span}"


def note_sentence(note: str) -> str:
    """A remark as an escaped sentence: capitalised, at most NOTE_CHARS as sent."""
    return fit_rendered(one_line(note), NOTE_CHARS,
                        lambda text: escape_text(wording.sentence(text)))


def confidence_line(answer: Answer) -> str:
    """A short human reading of the engine's confidence."""
    return CONFIDENCE_LINES.get(answer.confidence, "Not very sure")


def question_line(question: str) -> str:
    """The echoed question, on one line, escaped and bounded."""
    return f"**Q:** {fit_rendered(one_line(question), QUESTION_ECHO_CHARS, escape_text)}"


def coverage_text(coverage: Coverage) -> str:
    """'1,234 articles from 2023-01-02 to 2023-12-30'."""
    span = ""
    if coverage.first and coverage.last:
        span = f" from {coverage.first.isoformat()} to {coverage.last.isoformat()}"
    return f"{plural(coverage.n_articles, 'article')}{span}"


def filters_text(filters: SearchFilters) -> str:
    """The filters a question was asked with, as a short phrase ('' when none), escaped and
    within TITLE_CHARS."""
    return fit_rendered(one_line(wording.filters_phrase(filters)), TITLE_CHARS, escape_text)


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
    """Says plainly that nothing answers, and what the part asked about and the whole hold."""
    phrase, span = period_parts(answer)
    filtered = answer.reason is NotAnswered.FILTERED
    if answer.reason is NotAnswered.NOT_MENTIONED:
        lines = [note_sentence(wording.reason_text(answer))]
    elif filtered:
        # The filters left out what may answer: say so rather than blame the collection.
        lines = [note_sentence(wording.reason_text(answer))]
    elif span:
        asked = f"“{phrase}” ({span})" if phrase else span
        lines = [f"No article for {asked} answers this."]
    else:
        lines = ["No article in the collection answers this."]
    scope = "; ".join(part for part in (span, filters_text(answer.filters)) if part)
    whole = answer.collection
    if scope:
        lines.append(f"The part asked about ({scope}) holds {coverage_text(answer.coverage)}.")
        if whole is not None and whole != answer.coverage:
            lines.append(f"The whole collection holds {coverage_text(whole)}.")
    else:
        lines.append(f"The collection covers {coverage_text(whole or answer.coverage)}.")
    # The lines above already say what NOTHING_RELEVANT and FILTERED mean; any other reason
    # adds something.
    if answer.reason not in (None, NotAnswered.NOTHING_RELEVANT, NotAnswered.FILTERED,
                             NotAnswered.NOT_MENTIONED):
        lines.append(note_sentence(wording.reason_text(answer)))
    return "\n".join(lines)


def unlink(text: str) -> str:
    """Rendered text with each of our masked links replaced by its label."""
    return _OWN_LINK.sub(r"\1", text)


def pack(blocks: Sequence[str], limit: int, joiner: str = "\n\n") -> list[str]:
    """Join blocks into as few messages as fit `limit`; an oversized block is cut, never lost.

    Renderers keep blocks within `limit`; should one not, its links become plain labels
    before it is cut, so no cut can leave a link open.
    """
    messages: list[str] = []
    current = ""
    for block in blocks:
        block = block if len(block) <= limit else shorten(unlink(block), limit)
        candidate = f"{current}{joiner}{block}" if current else block
        if len(candidate) <= limit:
            current = candidate
        else:
            messages.append(current)
            current = block
    if current:
        messages.append(current)
    return messages


def article_line(article: ArticleInfo) -> str:
    """One list line: linked title, outlet and date."""
    outlet = fit_rendered(one_line(article.source), TITLE_CHARS, escape_text) or "unknown outlet"
    return f"• {link(article.title, article.url)} — {outlet}, {format_date(article.published)}"


def topic_text(topic: str) -> str:
    """A user's topic, on one line, escaped, at most QUESTION_ECHO_CHARS as sent."""
    return fit_rendered(one_line(topic), QUESTION_ECHO_CHARS, escape_text)


def render_timeline(
    topic: str,
    quotes: Sequence[Quote],
    since: date | None,
    until: date | None,
    caution_labels: Mapping[str, str],
) -> list[str]:
    """`/timeline`: one dated, linked quote per story, oldest first, within CONTENT_LIMIT."""
    span = date_span(since, until)
    header = f"**Timeline:** {topic_text(topic)}" + (f" ({span})" if span else "")
    if not quotes:
        return pack([header, "No article tells of this" + (f" ({span})." if span else ".")],
                    CONTENT_LIMIT)
    ordered = sorted(quotes, key=lambda item: item.article.published or date.min)
    blocks = [header]
    for item in ordered:
        day = short_date(item.article.published) if item.article.published else "undated"
        dated = f"**{day}**"
        short = replace(item, text=shorten(item.text, TIMELINE_QUOTE_CHARS))
        limit = CONTENT_LIMIT - len(dated) - 1
        blocks.append(f"{dated}\n{quote_block([short], caution_labels, limit)}")
    return pack(blocks, CONTENT_LIMIT)


def story_line(story: Story) -> str:
    """An article line, then '+2 more outlets: [B](<u>), [C](<u>)' for the same story."""
    line = article_line(story.article)
    others = other_outlets(story.article, story.also)
    if not others:
        return line
    links = outlet_links(others)
    return f"{line} · +{plural(len(others), 'more outlet')}" + (f": {links}" if links else "")


def render_whatsnew(
    stories: Sequence[Story], since: date | None, *,
    last_reindex: SyncOutcome | None = None, last_change: SyncOutcome | None = None,
) -> list[str]:
    """`/whatsnew`: the newest stories, one line each, grouped across outlets.

    Without `since`, the stories are what the latest run that changed the index brought in
    (`last_change`, when known): after a build from scratch that is every article, so nothing
    is listed as new. A later reindex that changed nothing (`last_reindex`) is named, so the
    list is not taken for what it brought.
    """
    if since is None and last_change is not None and last_change.from_scratch:
        return [f"Nothing new: the index was built from scratch "
                f"{relative_time(last_change.finished_at)}, so every article in it arrived "
                "then. Give `since` for the stories published from a day on."]
    if since is not None:
        header, empty = f"**What's new since {short_date(since)}**", f"since {short_date(since)}"
    elif last_change is not None:
        run = "reindex" if last_change.kind == "reindex" else "update"
        at = relative_time(last_change.finished_at)
        header, empty = f"**What the {run} of {at} brought in**", f"from the {run} of {at}"
    else:
        header, empty = "**What's new since the last reindex**", "since the last reindex"
    if not stories:
        return [f"Nothing new {empty}."]
    lines = [header]
    if (since is None and last_change is not None and last_reindex is not None
            and not last_reindex.changed
            and last_reindex.finished_at > last_change.finished_at):
        lines.append(f"-# The latest reindex, {relative_time(last_reindex.finished_at)}, "
                     "changed nothing.")
    return pack([*lines, *(story_line(story) for story in stories)], CONTENT_LIMIT, "\n")


def follow_line(follow: Follow, *, with_channel: bool) -> str:
    """'**3** · topic · in #channel · by @user' (mentions render as names, pinging nobody)."""
    parts = [f"**{follow.id}**", topic_text(follow.topic)]
    if with_channel:
        parts.append(f"in <#{follow.channel_id}>")
    parts.append(f"by <@{follow.user_id}>")
    return SEPARATOR.join(parts)


def render_follows(follows: Sequence[Follow], *, whole_server: bool) -> list[str]:
    """`/following`: the follows of a channel or a server, with their ids."""
    where = "this server" if whole_server else "this channel"
    if not follows:
        return [f"Nothing is followed in {where}. Start with `/follow topic`."]
    lines = [f"**Followed in {where}** (remove with `/unfollow id`):"]
    lines += [follow_line(follow, with_channel=whole_server) for follow in follows]
    return pack(lines, CONTENT_LIMIT, "\n")


def render_follow_match(follow: Follow, hits: Sequence[ArticleHit]) -> list[str]:
    """New articles on a followed topic, posted in the follow's channel."""
    lines = [f"**New on {topic_text(follow.topic)}**",
             f"-# followed here as {follow.id}; stop with `/unfollow {follow.id}`"]
    lines += [article_line(hit.article) for hit in hits[:MAX_FOLLOW_HITS]]
    if len(hits) > MAX_FOLLOW_HITS:
        lines.append(f"…and {len(hits) - MAX_FOLLOW_HITS} more.")
    return pack(lines, CONTENT_LIMIT, "\n")


def render_article_page(
    articles: Sequence[ArticleInfo], page: int, pages: int, total: int, source: str | None
) -> discord.Embed:
    """One page of `/articles recent`."""
    title = "Recent articles" + (f" from {one_line(source)}" if source else "")
    lines = [article_line(article) for article in articles] or ["No articles yet."]
    embed = discord.Embed(
        title=shorten(title, EMBED_TITLE_LIMIT),
        description=pack(lines, EMBED_DESCRIPTION_LIMIT, "\n")[0],
        colour=EMBED_COLOUR,
    )
    embed.set_footer(text=f"Page {page + 1} of {max(pages, 1)} · {plural(total, 'article')}")
    return fit_embed(embed)


def render_article(detail: ArticleDetail, caution_labels: Mapping[str, str]) -> discord.Embed:
    """One article's details and opening paragraph, within every embed limit.

    The title links to the article unless it reads as an address; then a "Link" field
    labelled with the real host carries the link instead (see `link`).
    """
    article = detail.article
    title = one_line(article.title) or "untitled"
    target = safe_url(article.url)
    # The embed's title is its link's label: one that reads as an address must not open
    # another (see `link`), so its link goes in a field labelled with the real host.
    address_title = target is not None and looks_like_address(title)
    embed = discord.Embed(
        title=shorten(title, EMBED_TITLE_LIMIT),
        url=None if address_title else target,
        description=fit_rendered(detail.opening, OPENING_CHARS, block_quote) or None,
        colour=EMBED_COLOUR,
    )
    if address_title and target is not None:
        embed.add_field(name="Link", value=host_link(target), inline=False)
    embed.add_field(name="Outlet", value=_field(article.source or "unknown"))
    embed.add_field(name="Published", value=format_date(article.published))
    if article.authors:
        embed.add_field(name="Authors", value=_field(", ".join(article.authors)))
    if article.labels:
        embed.add_field(name="Labels", value=_field(", ".join(article.labels)))
    cautions = [caution_labels[key] for key in _caution_keys(article.labels, caution_labels)]
    if cautions:
        embed.add_field(name="⚠️ Caution", value=_field(" ".join(cautions)), inline=False)
    embed.add_field(name="Passages", value=f"{detail.n_chunks:,}")
    embed.set_footer(text=shorten(f"id {one_line(article.id)}", EMBED_FOOTER_LIMIT))
    return fit_embed(embed)


def _field(text: str) -> str:
    """Escaped, one-line field value within the field limit."""
    return fit_rendered(one_line(text), EMBED_FIELD_VALUE_LIMIT, escape_text) or "—"


def human_bytes(size: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def moment(text: str) -> datetime | None:
    """An ISO 8601 time as the stores write it (UTC, with or without its offset); None when
    it is not one."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def relative_time(when: datetime) -> str:
    """'<t:…:R>': Discord shows '3 minutes ago' in the reader's language, kept up to date."""
    return discord.utils.format_dt(when, "R")


def full_time(when: datetime) -> str:
    """'<t:…:R> (<t:…:f>)': how long ago, then the date and time in the reader's time zone."""
    return f"{relative_time(when)} ({discord.utils.format_dt(when, 'f')})"


def last_reindex_text(stats: IndexStats, last_reindex: SyncOutcome | None) -> str:
    """When the latest reindex ran and what it did, and when the serving index was built.

    '<t:R> (<t:f>) — nothing changed' then 'Index built <t:R> (<t:f>), in 12.5s' on a second
    line, unless that reindex built it. Without a record of the latest reindex (an index
    from before they were kept), when the index was built.
    """
    built = moment(stats.built_at)
    build = (f"{full_time(built)}, in {stats.build_seconds:.1f}s" if built
             else fit_rendered(one_line(stats.built_at), TITLE_CHARS, escape_text) or "never")
    if last_reindex is None:
        return build
    line = f"{full_time(last_reindex.finished_at)} — {wording.sync_text(last_reindex)}"
    if last_reindex.changed and last_reindex.generation == stats.generation:
        return f"{line}, in {stats.build_seconds:.1f}s"
    return f"{line}\nIndex built {build}"


def render_stats(
    stats: IndexStats, feedback: Mapping[str, int], last_reindex: SyncOutcome | None = None
) -> discord.Embed:
    """Figures about the index and the feedback it has had; times as Discord timestamps.

    `last_reindex` is what the latest reindex did (None when unknown).
    """
    embed = discord.Embed(title="Index statistics", colour=EMBED_COLOUR)
    embed.add_field(name="Articles", value=f"{stats.n_articles:,}")
    embed.add_field(name="Passages", value=f"{stats.n_chunks:,}")
    embed.add_field(name="Outlets", value=f"{len(stats.sources):,}")
    embed.add_field(
        name="Dates", value=f"{format_date(stats.first)} to {format_date(stats.last)}"
    )
    embed.add_field(name="Model", value=_field(f"{stats.model} ({stats.dim} dims)"))
    embed.add_field(
        name="Index",
        value=_field(f"{stats.index_type} ({stats.store}), {human_bytes(stats.index_bytes)}"),
    )
    if stats.embed_backend:
        embed.add_field(name="Embedding", value=_field(stats.embed_backend), inline=False)
    # Not through _field: its escaping would show the timestamps' markup.
    embed.add_field(name="Last reindex", value=last_reindex_text(stats, last_reindex),
                    inline=False)
    if stats.sources:
        top = ", ".join(f"{name} ({count:,})" for name, count in stats.sources[:10])
        embed.add_field(name="Largest outlets", value=_field(top), inline=False)
    embed.add_field(
        name="Feedback",
        value=f"👍 {feedback.get('up', 0):,} · 👎 {feedback.get('down', 0):,}",
        inline=False,
    )
    embed.set_footer(text=shorten(f"generation {one_line(stats.generation)}", EMBED_FOOTER_LIMIT))
    return fit_embed(embed)


def render_progress(progress: Progress) -> str:
    """One progress line for the reindex message, within CONTENT_LIMIT as sent."""
    amount = f" {progress.done:,}/{progress.total:,}" if progress.total else ""
    note = f" — {progress.message}" if progress.message else ""
    return fit_rendered(one_line(f"Reindexing: {progress.stage}{amount}{note}"), CONTENT_LIMIT,
                        escape_text)


def render_ingest_report(report: IngestReport) -> str:
    """The reindex result for the channel: counts only.

    What could not be read is named by server paths, which are no channel's business; the
    engine logs it and `render_skipped` lists it for the admin who ran the reindex.
    """
    lines = [f"Reindex done: {report.summary()}."]
    if not report.changed:
        lines.append("Nothing changed.")
    if report.skipped:
        lines.append(f"Could not read {plural(len(report.skipped), 'item')}; the list went to "
                     "the log and, privately, to whoever ran the reindex.")
    return "\n".join(lines)


def render_skipped(skipped: Sequence[SkippedItem]) -> str:
    """For the admin alone (it names server paths): what a reindex could not read.

    One '• origin: reason' line per item (each at most NOTE_CHARS as sent), at most
    MAX_SKIPPED_LISTED and as many as fit CONTENT_LIMIT, then '…and N more'; '' when nothing
    was skipped.
    """
    if not skipped:
        return ""
    header = f"The reindex could not read {plural(len(skipped), 'item')}:\n"
    lines = [f"• {fit_rendered(one_line(str(item)), NOTE_CHARS, escape_text)}"
             for item in skipped[:MAX_SKIPPED_LISTED]]
    return header + fit_list(lines, CONTENT_LIMIT - len(header), "\n",
                             lambda rest: f"\n…and {rest:,} more; the log lists them all.",
                             total=len(skipped))


def render_failure(action: str, reason: str) -> str:
    """'Reindex failed: <reason>.' on one line, escaped, at most NOTE_CHARS as sent."""
    return note_sentence(f"{action} failed: {reason}")


def thread_name(question: str) -> str:
    """A thread title from a question."""
    return shorten(one_line(question), THREAD_NAME_LIMIT) or "Question"


def choice_name(text: str) -> str:
    """An autocomplete label within Discord's 100 characters."""
    return shorten(one_line(text), CHOICE_NAME_LIMIT) or "—"


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """Shorten every part of an embed to Discord's limits (a safety net; renderers aim lower)."""
    if embed.title:
        embed.title = shorten(embed.title, EMBED_TITLE_LIMIT)
    if embed.description:
        embed.description = shorten(embed.description, EMBED_DESCRIPTION_LIMIT)
    if embed.footer.text:
        embed.set_footer(text=shorten(embed.footer.text, EMBED_FOOTER_LIMIT),
                         icon_url=embed.footer.icon_url)
    if embed.author.name:
        embed.set_author(name=shorten(embed.author.name, EMBED_AUTHOR_LIMIT),
                         url=embed.author.url, icon_url=embed.author.icon_url)
    fields = embed.fields[:EMBED_FIELDS_MAX]
    embed.clear_fields()
    for item in fields:
        embed.add_field(
            name=shorten(item.name or "—", EMBED_FIELD_NAME_LIMIT),
            value=shorten(item.value or "—", EMBED_FIELD_VALUE_LIMIT),
            inline=bool(item.inline),
        )
    # Over the total: drop fields from the end, then cut the description.
    while len(embed) > EMBED_TOTAL_LIMIT and embed.fields:
        embed.remove_field(len(embed.fields) - 1)
    if len(embed) > EMBED_TOTAL_LIMIT and embed.description:
        excess = len(embed) - EMBED_TOTAL_LIMIT
        embed.description = shorten(embed.description, max(1, len(embed.description) - excess))
    return embed


def feed_line(feed: FeedSource, state: FeedState) -> str:
    """'• <url> (Outlet) — ok, fetched <t:R>, 12 articles' or the error it last met."""
    name = f" ({fit_rendered(one_line(feed.outlet), OUTLET_CHARS, escape_text)})" if (
        feed.outlet) else ""
    url = safe_url(feed.url)
    where = f"<{url}>" if url else fit_rendered(one_line(feed.url), TITLE_CHARS, escape_text)
    fetched = moment(state.last_fetch)
    when = f", fetched {relative_time(fetched)}" if fetched else ", not fetched yet"
    if state.status == "error":
        problem = fit_rendered(one_line(f"{state.error_kind}: {state.error}"), NOTE_CHARS,
                               escape_text)
        status = f"failed ({problem})"
    else:
        status = {"new": "waiting", "ok": "ok", "unchanged": "unchanged"}.get(state.status,
                                                                             state.status)
    return f"• {where}{name} — {status}{when}, {plural(state.articles, 'article')}"


def render_feeds(feeds: Sequence[tuple[FeedSource, FeedState]]) -> list[str]:
    """`/feeds`: every feed with its last fetch, status and article count, within limits."""
    if not feeds:
        return ["No feeds are set: list them in a file and set `ARTICLEBOT_FEEDS_FILE` "
                "(docs/feeds.md)."]
    failed = sum(1 for _, state in feeds if state.status == "error")
    header = f"**{plural(len(feeds), 'feed')}**" + (f", {failed} failing" if failed else "")
    return pack([header, *(feed_line(feed, state) for feed, state in feeds)], CONTENT_LIMIT, "\n")
