"""Discord-safe text: escaping, link labels, look-alike address checks, length limits, packing
into messages and embeds, and timestamps. What every renderer builds on; it knows no engine
result beyond plain text and dates."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from urllib.parse import quote, urlsplit

import discord

from articlebot import wording
from index.models import Span
from index.text import strip_bidi

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

ZWSP = "\u200b"
ELLIPSIS = "…"
SEPARATOR = " · "
EMBED_COLOUR = discord.Colour.blurple()

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


def note_sentence(note: str) -> str:
    """A remark as an escaped sentence: capitalised, at most NOTE_CHARS as sent."""
    return fit_rendered(one_line(note), NOTE_CHARS,
                        lambda text: escape_text(wording.sentence(text)))


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


def field_text(text: str) -> str:
    """Escaped, one-line field value within the field limit."""
    return fit_rendered(one_line(text), EMBED_FIELD_VALUE_LIMIT, escape_text) or "—"


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


def thread_name(question: str) -> str:
    """A thread title from a question."""
    return shorten(one_line(question), THREAD_NAME_LIMIT) or "Question"


def choice_name(text: str) -> str:
    """An autocomplete label within Discord's 100 characters."""
    return shorten(one_line(text), CHOICE_NAME_LIMIT) or "—"


def topic_text(topic: str) -> str:
    """A user's topic, on one line, escaped, at most QUESTION_ECHO_CHARS as sent."""
    return fit_rendered(one_line(topic), QUESTION_ECHO_CHARS, escape_text)


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
