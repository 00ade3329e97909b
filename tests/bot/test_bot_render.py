"""Rendering: escaping, Discord's limits, and the shape of answers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import discord
import pytest
from helpers import make_answer, make_article
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from articlebot.wording import date_span
from bot.render.admin import render_failure, render_progress, render_stats
from bot.render.answer import fit_quotes, render_answer
from bot.render.articles import also_line, render_article, render_article_page
from bot.render.follows import render_follow_match, render_follows
from bot.render.news import render_timeline, render_whatsnew
from bot.render.text import (
    CONTENT_LIMIT,
    EMBED_DESCRIPTION_LIMIT,
    EMBED_FIELD_NAME_LIMIT,
    EMBED_FIELD_VALUE_LIMIT,
    EMBED_FIELDS_MAX,
    EMBED_FOOTER_LIMIT,
    EMBED_TITLE_LIMIT,
    EMBED_TOTAL_LIMIT,
    OUTLET_LINKS_CHARS,
    URL_CHARS,
    ZWSP,
    block_quote,
    choice_name,
    escape_text,
    fit_embed,
    link,
    safe_url,
    shorten,
    thread_name,
)
from index.models import (
    ArticleDetail,
    ArticleHit,
    ArticleInfo,
    Caveat,
    Coverage,
    Follow,
    IndexStats,
    NotAnswered,
    OutsideFilters,
    Progress,
    Quote,
    SearchFilters,
    Span,
    Story,
    SyncOutcome,
)

CAUTIONS = {"fakenews": "This article is labelled as false."}
# Every bidirectional control (embeddings, overrides, isolates, marks): each can reverse how
# the text after it reads.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
BIDI = re.compile(f"[{BIDI_CONTROLS}]")
# Text rich in everything that could inject markup or deceive, plus ordinary words.
NASTY = st.lists(
    st.sampled_from(
        [*"abc xyz.!?\n\r\\*_~|`>[]()<@#&:-0123456789/", *BIDI_CONTROLS,
         "@everyone", "@here", "<@123>", "<@&5>", "<#9>", "```", "[a](http://x)",
         "http://y.org/a_b", "\u2028", "# ", "-# ", "1. ", "||", "> ", ">>> ",
         "paypal.com", "https://mybank.example/login", "новости", "新闻"]
    ),
    max_size=120,
).map("".join) | st.text(max_size=300)
REASONS = st.sampled_from(list(NotAnswered))
CAVEATS = st.sampled_from([None, *Caveat])
NEWEST = st.none() | st.dates()


def unescaped(text: str, pattern: str) -> list[re.Match[str]]:
    """Matches of `pattern` not preceded by an odd run of backslashes."""
    matches = []
    for match in re.finditer(pattern, text):
        before = text[:match.start()]
        if (len(before) - len(before.rstrip("\\"))) % 2 == 0:
            matches.append(match)
    return matches


def assert_inert(text: str) -> None:
    """No live mention, masked link, code span or quote marker from untrusted input."""
    assert not re.search(r"@(everyone|here)", text, re.IGNORECASE)
    assert not re.search(r"<\\?[@#]", text)
    assert not unescaped(text, r"`")
    assert not unescaped(text, r"\[")
    assert not unescaped(text, r">")
    assert not unescaped(text, r"\*|_|~|\|")
    assert "://" not in text, "a bare URL would be clickable"
    assert not BIDI.search(text), "a bidi control would reorder what follows"


# One of our own masked links: `[label](<target>)`.
ANY_LINK = re.compile(r"(?<!\\)\[((?:\\.|[^\\\[\]])*)\]\(<([^<>\s]*)>\)")
# What a reader takes for a web address: a scheme, "www." or a dotted name ending in letters.
ADDRESS_LIKE = re.compile(r"[^\W_]+:/|www\.|[\w-]\.[^\W\d_]{2,}", re.IGNORECASE)
# Characters read as an address's ".", ":" or "/" (Unicode's confusables.txt and the full
# stops of other scripts), for the check below; the renderer keeps a list of its own.
LOOKALIKES = {
    **dict.fromkeys("\u2024\u3002\uff61\u00b7\u2027\u30fb\u0701\u0702\u06d4\ufe52\ua4f8"
                    "\u0660\u06f0\u2022\u2219\u22c5\u2e31\u16eb\ua60e\u1427\ua78f", "."),
    **dict.fromkeys("\u2236\u0589\u05c3\u0703\u0903\u16ec\u205a\u02d0\ua789\ua4fd", ":"),
    **dict.fromkeys("\u2044\u2215\u29f8\u2571\u27cb\u1735\u3033\u30ce\u4e3f", "/"),
}
# Unicode's compatibility fold takes ．：／ｗ (and ℂ, ⓦ, …) to their plain forms first.
READ_AS_WRITTEN = str.maketrans(LOOKALIKES)


def reads_as_address(text: str) -> bool:
    """True when a reader would take `text` for an address, look-alikes and all."""
    seen = unicodedata.normalize("NFKC", text).translate(READ_AS_WRITTEN)
    seen = "".join(c for c in seen if unicodedata.category(c) not in ("Cf", "Mn", "Me"))
    return bool(ADDRESS_LIKE.search(seen))


def unescape(text: str) -> str:
    """What Discord shows for escaped text: each backslash escape as its character."""
    return re.sub(r"\\(.)", r"\1", text)


def assert_links_whole_and_honest(content: str) -> None:
    """No link is cut open, and no link's label reads as an address other than its own host."""
    for label, target in ANY_LINK.findall(content):
        assert len(target) <= URL_CHARS
        shown = unescape(label)
        if reads_as_address(shown):
            assert shown == urlsplit(target).hostname, (shown, target)
    rest = ANY_LINK.sub("", content)
    assert not unescaped(rest, r"\["), "a link was cut open"
    assert "](<" not in rest, "a link was cut open"


def test_escape_catches_the_second_masked_link_on_a_line() -> None:
    escaped = escape_text("[a](http://x) and [b](http://y)")
    assert escaped == r"\[a\](http:\/\/x) and \[b\](http:\/\/y)"
    # discord.py's own helper leaves the second one live, which is why escape_text exists.
    assert "[b](http://y)" in discord.utils.escape_markdown("[a](http://x) and [b](http://y)")


def test_escape_neutralises_mentions_with_a_zero_width_space() -> None:
    escaped = escape_text("@everyone @here <@123> <@&123> <#123> <@!5>")
    assert f"@{ZWSP}everyone" in escaped and f"@{ZWSP}here" in escaped
    assert escaped.count(f"<{ZWSP}") == 4
    assert_inert(escaped)


def test_escape_line_start_markdown() -> None:
    assert escape_text("# Title") == r"\# Title"
    assert escape_text("-# small") == r"\-\# small"
    assert escape_text("  - item\n1. first") == "  \\- item\n1\\. first"


def test_block_quote_keeps_every_line_inside_the_quote() -> None:
    quoted = block_quote("one\n\ntwo\r\nthree\u2028four\n> five")
    lines = quoted.split("\n")
    assert lines == ["> one", "> two", "> three", "> four", r"> \> five"]


def test_shorten_prefers_a_sentence_end() -> None:
    text = "First sentence here. Second sentence is much longer than the limit allows."
    assert shorten(text, 40) == "First sentence here. …"
    assert len(shorten("x" * 5000, 100)) == 100
    assert shorten("short", 10) == "short"


def test_answer_shape() -> None:
    article = make_article(1, title="Flood [report]", url="https://example.org/a_(b)",
                           labels=("fakenews",))
    answer = make_answer(texts=("The river rose.", "Roads closed."), article=article)
    [content] = render_answer(answer, CAUTIONS)
    assert content.startswith("**Q:** What happened?")
    assert "> The river rose." in content
    assert content.index("The river rose.") < content.index("Roads closed.")
    assert r"[Flood \[report\]](<https://example.org/a_%28b%29>)" in content
    assert "Daily Planet" in content and "2023-01-01" in content
    assert "⚠️ This article is labelled as false." in content
    assert "Fairly sure" in content


def test_unanswered_says_so_and_gives_coverage() -> None:
    answer = make_answer(answered=False, reason=NotAnswered.NO_WORDS)
    [content] = render_answer(answer, CAUTIONS)
    assert "No article in the collection answers this." in content
    assert "120 articles from 2023-01-01 to 2023-02-26" in content
    assert content.endswith("\nThe question has no words.")


def test_long_answers_are_split_or_shortened_never_rejected() -> None:
    long_text = ("A sentence that goes on. " * 200).strip()
    answer = make_answer(texts=[long_text, long_text, long_text])
    contents = render_answer(answer, CAUTIONS)
    assert len(contents) >= 2
    assert all(len(content) <= CONTENT_LIMIT for content in contents)
    assert all("…" in content for content in contents if "> A sentence" in content)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=NASTY, texts=st.lists(NASTY.filter(lambda t: t.strip()), min_size=1,
                                      max_size=5), reason=REASONS, caveat=CAVEATS, newest=NEWEST)
def test_answers_fit_and_inject_nothing(
    question: str, texts: list[str], reason: NotAnswered, caveat: Caveat | None,
    newest: date | None,
) -> None:
    article = make_article(1, title="Plain title", url="https://example.org/plain")
    for answered in (True, False):
        answer = make_answer(question, texts, answered=answered, article=article,
                             reason=reason, caveat=caveat, newest=newest)
        contents = render_answer(answer, CAUTIONS)
        assert contents
        for content in contents:
            assert len(content) <= CONTENT_LIMIT
            # Our own attribution links are the only masked links.
            links = re.findall(r"(?<!\\)\[Plain title\]\(<https://example\.org/plain>\)", content)
            stripped = re.sub(r"\[Plain title\]\(<https://example\.org/plain>\)", "", content)
            stripped = stripped.replace("**Q:**", "").replace("-# ", "")
            stripped = re.sub(r"^> ", "", stripped, flags=re.MULTILINE)
            assert_inert(stripped)
            assert len(links) <= len(texts)


@settings(max_examples=100, deadline=None)
@given(text=NASTY)
def test_quoted_text_stays_in_the_quote(text: str) -> None:
    quoted = block_quote(text)
    assert all(line.startswith("> ") for line in quoted.split("\n") if quoted)
    assert_inert(re.sub(r"^> ", "", quoted, flags=re.MULTILINE))


@settings(max_examples=60, deadline=None)
@given(title=NASTY, opening=NASTY, source=NASTY, big=st.integers(0, 9000))
def test_embeds_fit_every_limit(title: str, opening: str, source: str, big: int) -> None:
    article = make_article(1, title=title + "t" * big, source=source + "s" * big,
                           labels=("fakenews", "x" * big))
    detail = ArticleDetail(article, opening + "o" * big, 10**9, 10**12)
    stats = IndexStats(
        n_articles=1, n_chunks=2, sources=tuple((source + str(i) * big, i) for i in range(40)),
        first=None, last=None, model="m" * big, dim=384, index_type="flat", index_bytes=10**10,
        generation="g" * big, built_at="", build_seconds=0.0,
    )
    embeds = [
        render_article(detail, CAUTIONS),
        render_article_page([article] * 25, 0, 3, 60, source),
        render_stats(stats, {"up": 1, "down": 2}),
    ]
    for embed in embeds:
        assert_embed_fits(embed)


def assert_embed_fits(embed: discord.Embed) -> None:
    """Every Discord embed limit holds."""
    assert len(embed.title or "") <= EMBED_TITLE_LIMIT
    assert len(embed.description or "") <= EMBED_DESCRIPTION_LIMIT
    assert len(embed.fields) <= EMBED_FIELDS_MAX
    for field in embed.fields:
        assert 0 < len(field.name or "") <= EMBED_FIELD_NAME_LIMIT
        assert 0 < len(field.value or "") <= EMBED_FIELD_VALUE_LIMIT
    assert len(embed.footer.text or "") <= EMBED_FOOTER_LIMIT
    assert len(embed) <= EMBED_TOTAL_LIMIT


def test_fit_embed_trims_an_oversized_embed() -> None:
    embed = discord.Embed(title="t" * 999, description="d" * 9999)
    for _ in range(40):
        embed.add_field(name="n" * 999, value="v" * 9999)
    embed.set_footer(text="f" * 9999)
    assert_embed_fits(fit_embed(embed))


# --- news: other outlets, notes, periods, timelines, what's new, follows

OWN_LINK = re.compile(r"\[((?:[^\[\]\\]|\\.)*)\]\(<https://example\.org/[^>\s]*>\)")


def strip_own_markup(content: str) -> str:
    """The content with our own links (kept: their escaped labels), markers and mentions out."""
    content = OWN_LINK.sub(r"\1", content)
    # Our bold labels, dates, ids and headings; what they hold is still checked.
    content = re.sub(r"\*\*((?:[^*\\\n]|\\.)*)\*\*", r"\1", content)
    content = re.sub(r"<[#@]\d+>", "", content)  # our channel and member mentions
    content = re.sub(r"`/unfollow( id| \d+)?`|`/follow topic`", "", content)
    content = re.sub(r"^(-# |> )", "", content, flags=re.MULTILINE)
    return content


def test_other_outlets_show_under_the_attribution_once_each() -> None:
    main = make_article(1, source="Daily Planet")
    also = (
        make_article(2, source="Gotham Gazette"),
        make_article(3, source="Daily Planet"),  # the quoted article's own outlet
        make_article(4, source="gotham  gazette"),  # the same outlet again
        make_article(5, source="The *Bugle*", url="javascript:alert(1)"),
    )
    answer = replace(make_answer(article=main), quotes=(
        replace(make_answer(article=main).quotes[0], also=also),
    ))
    [content] = render_answer(answer, CAUTIONS)
    line = content.split("\n")[content.split("\n").index(
        next(x for x in content.split("\n") if x.startswith("— ")))+1]
    assert line == (r"Also reported by: [Gotham Gazette](<https://example.org/2>), The \*Bugle\*")
    assert "Article 2" not in content.replace(line, "")  # not listed again as further reading


def test_many_other_outlets_are_cut_with_a_count() -> None:
    others = tuple(make_article(n, source=f"Outlet {n} " + "x" * 60,
                                url=f"https://example.org/{'p' * 100}/{n}") for n in range(2, 40))
    line = also_line(make_article(1), others)
    assert line.startswith("Also reported by: [Outlet 2")
    assert re.search(r" and \d+ more$", line)
    assert len(line) <= len("Also reported by: ") + OUTLET_LINKS_CHARS
    huge = make_article(2, source="y" * 5000, url="https://example.org/" + "z" * 490)
    assert also_line(make_article(1), (huge,)) == "Also reported by: 1 other outlet"


def test_answered_caveat_and_period_are_shown() -> None:
    answer = replace(
        make_answer(question="What happened last week?"),
        caveat=Caveat.STALE, newest=date(2023, 3, 12),
        period_since=date(2023, 2, 27), period_until=date(2023, 3, 5), period_phrase="last week",
    )
    [content] = render_answer(answer, CAUTIONS)
    lines = [line for line in content.split("\n") if line]
    assert lines[1] == "-# For “last week”: 27 Feb – 5 Mar 2023"
    assert lines[2] == "ℹ️ The latest article on this is from 12 March 2023."
    assert lines[3].startswith("> The river rose")


def test_quotes_from_outside_the_period_say_so() -> None:
    answer = replace(
        make_answer(question="What happened last week?"),
        caveat=Caveat.OUTSIDE_PERIOD, newest=date(2023, 1, 20),
        period_since=date(2023, 2, 27), period_until=date(2023, 3, 5), period_phrase="last week",
    )
    [content] = render_answer(answer, CAUTIONS)
    assert content.split("\n")[2] == (
        "ℹ️ No article between 27 February 2023 and 5 March 2023 answers this; these are the "
        "closest, the latest from 20 January 2023."
    )


def test_an_answer_without_a_caveat_has_no_remark() -> None:
    [content] = render_answer(make_answer(newest=date(2023, 1, 1)), CAUTIONS)
    assert "ℹ️" not in content


def test_not_found_for_a_period_says_what_it_and_the_collection_hold_once() -> None:
    answer = replace(
        make_answer(answered=False, reason=NotAnswered.NOTHING_RELEVANT),
        coverage=Coverage(0, None, None),
        collection=Coverage(1234, date(2023, 1, 2), date(2023, 3, 10)),
        period_since=date(2023, 2, 27), period_until=date(2023, 3, 5), period_phrase="last week",
        filters=SearchFilters(sources=("Daily Planet",)),
    )
    [content] = render_answer(answer, CAUTIONS)
    assert content.split("\n")[2:] == [
        "No article for “last week” (27 Feb – 5 Mar 2023) answers this.",
        "The part asked about (27 Feb – 5 Mar 2023; from Daily Planet) holds 0 articles.",
        "The whole collection holds 1,234 articles from 2023-01-02 to 2023-03-10.",
    ]


def test_not_found_without_a_period_states_the_collection_once() -> None:
    whole = Coverage(120, date(2023, 1, 1), date(2023, 2, 26))
    answer = replace(make_answer(answered=False), collection=whole)
    [content] = render_answer(answer, CAUTIONS)
    assert content.split("\n")[2:] == [
        "No article in the collection answers this.",
        "The collection covers 120 articles from 2023-01-01 to 2023-02-26.",
    ]


def test_date_span_forms() -> None:
    assert date_span(date(2023, 2, 27), date(2023, 3, 5)) == "27 Feb – 5 Mar 2023"
    assert date_span(date(2023, 3, 1), date(2023, 3, 7)) == "1 – 7 Mar 2023"
    assert date_span(date(2022, 12, 30), date(2023, 1, 2)) == "30 Dec 2022 – 2 Jan 2023"
    assert date_span(date(2023, 3, 5), date(2023, 3, 5)) == "5 Mar 2023"
    assert date_span(date(2023, 3, 5), None) == "since 5 Mar 2023"
    assert date_span(None, date(2023, 3, 5)) == "until 5 Mar 2023"
    assert date_span(None, None) == ""


def test_labels_show_with_their_cautions() -> None:
    article = make_article(1, labels=("FakeNews", "opinion"))
    [content] = render_answer(make_answer(article=article), CAUTIONS)
    assert "FakeNews, opinion" in content
    assert "⚠️ This article is labelled as false." in content


def test_timeline_is_dated_linked_and_in_date_order() -> None:
    quotes = [
        Quote("Later news.", make_article(9), 1, 0, 11, 0.5,
              also=(make_article(10, source="The Bugle"),)),
        Quote("Early news.", make_article(2), 2, 0, 11, 0.9),
    ]
    [content] = render_timeline("the flood", quotes, date(2023, 1, 1), None, CAUTIONS)
    assert content.startswith("**Timeline:** the flood (since 1 Jan 2023)")
    assert content.index("**2 Jan 2023**\n> Early news.") < content.index("**9 Jan 2023**")
    assert "[Article 9](<https://example.org/9>)" in content
    assert "Also reported by: [The Bugle](<https://example.org/10>)" in content
    [empty] = render_timeline("nothing", [], None, date(2023, 1, 5), CAUTIONS)
    assert "No article tells of this (until 5 Jan 2023)." in empty


def test_whatsnew_lines_group_outlets() -> None:
    stories = [
        Story(make_article(3), also=(make_article(4, source="The Bugle"),
                                     make_article(5, source="Gotham Gazette"))),
        Story(make_article(2)),
    ]
    [content] = render_whatsnew(stories, None)
    lines = content.split("\n")
    assert lines[0] == "**What's new since the last reindex**"
    assert lines[1] == (
        "• [Article 3](<https://example.org/3>) — Daily Planet, 2023-01-03 · +2 more outlets: "
        "[The Bugle](<https://example.org/4>), [Gotham Gazette](<https://example.org/5>)"
    )
    assert lines[2] == "• [Article 2](<https://example.org/2>) — Daily Planet, 2023-01-02"
    assert render_whatsnew([], date(2023, 3, 1)) == ["Nothing new since 1 Mar 2023."]


def test_follow_lists_and_matches() -> None:
    follows = [Follow(3, 42, 7, 5, "rail *strike*"), Follow(4, 42, 8, 6, "floods")]
    [listing] = render_follows(follows, whole_server=True)
    assert r"**3** · rail \*strike\* · in <#7> · by <@5>" in listing
    [channel] = render_follows(follows[:1], whole_server=False)
    assert "<#7>" not in channel
    assert "Nothing is followed in this channel" in render_follows([], whole_server=False)[0]
    hits = [ArticleHit(make_article(n), 0.9, n, "p") for n in range(1, 14)]
    [post] = render_follow_match(follows[0], hits)
    assert post.startswith(r"**New on rail \*strike\***")
    assert post.count("•") == 10 and post.endswith("…and 3 more.")


OUTLETS = st.lists(
    st.builds(lambda n, source, title: make_article(n, title=title, source=source),
              st.integers(2, 28), NASTY, NASTY),
    max_size=12,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=NASTY, text=NASTY.filter(lambda t: t.strip()), caveat=CAVEATS, newest=NEWEST,
       phrase=NASTY, others=OUTLETS, big=st.integers(0, 3000))
def test_news_answers_fit_and_inject_nothing(
    question: str, text: str, caveat: Caveat | None, newest: date | None, phrase: str,
    others: list[ArticleInfo], big: int,
) -> None:
    article = make_article(1, title="t" * big, source="s" * big, labels=("fakenews",))
    base = make_answer(question, [text], article=article, caveat=caveat, newest=newest)
    quote = replace(base.quotes[0], also=tuple(others))
    for answered in (True, False):
        answer = replace(
            base, answered=answered, quotes=(quote,) if answered else (),
            reason=None if answered else NotAnswered.NOTHING_RELEVANT,
            period_phrase=phrase, period_since=date(2023, 2, 27), period_until=date(2023, 3, 5),
            collection=Coverage(9, date(2023, 1, 1), date(2023, 3, 9)),
            filters=SearchFilters(labels=(phrase,)),
        )
        for content in render_answer(answer, CAUTIONS):
            assert len(content) <= CONTENT_LIMIT
            assert_inert(strip_own_markup(content))
    timeline = render_timeline(question, [quote] * 15, None, None, CAUTIONS)
    whatsnew = render_whatsnew([Story(article, tuple(others))] * 10, date(2023, 1, 1))
    follow = Follow(1, 2, 3, 4, phrase)
    posts = render_follow_match(follow, [ArticleHit(a, 1.0, 1, "") for a in others])
    listing = render_follows([follow] * 30, whole_server=True)
    for content in [*timeline, *whatsnew, *posts, *listing]:
        assert len(content) <= CONTENT_LIMIT
        assert_inert(strip_own_markup(content))


# --- kind 1: limits hold on the string that is sent (after percent-encoding and escaping)

BASE_URL = "https://example.org/"
# 2-byte letters grow 6x when percent-encoded, 3-byte ones 9x.
SCRIPTS = {"cyrillic": "новостипроисшествия", "cjk": "新闻报道国际社会"}
QUOTE_TEXT = ("The river rose by two metres overnight and the old bridge closed. " * 6).strip()


def long_link_article(n: int, letters: str) -> ArticleInfo:
    """An article whose 270-character URL is mostly non-Latin, as is the rest of it."""
    url = BASE_URL + (letters * 50)[: 270 - len(BASE_URL)]
    return ArticleInfo(
        id=f"a{n:04d}", title=(letters + " ") * 30, source=(letters + " ") * 8, url=url,
        published=date(2023, 1, n), authors=((letters + " ") * 20,),
        labels=("fakenews", letters * 9),
    )


def assert_sendable(contents: list[str]) -> None:
    """Every message fits Discord's limit and no link in it is cut open or deceptive."""
    assert contents
    for content in contents:
        assert len(content) <= CONTENT_LIMIT
        assert_links_whole_and_honest(content)


def test_safe_url_measures_the_encoded_url() -> None:
    assert safe_url(BASE_URL + "a" * (URL_CHARS - len(BASE_URL))) is not None
    assert safe_url(BASE_URL + "a" * (URL_CHARS - len(BASE_URL) + 1)) is None
    cyrillic = BASE_URL + "н" * 100  # 120 characters, 620 once encoded
    assert len(cyrillic) < URL_CHARS and safe_url(cyrillic) is None
    short = safe_url(BASE_URL + "н" * 10)
    assert short is not None and len(short) <= URL_CHARS


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_long_non_ascii_link_is_dropped_never_the_quote(script: str) -> None:
    letters = SCRIPTS[script]
    article = long_link_article(1, letters)
    also = (long_link_article(2, letters[::-1]), long_link_article(3, letters[1:]))
    base = make_answer(texts=(QUOTE_TEXT,), article=article)
    answer = replace(base, quotes=(replace(base.quotes[0], also=also),),
                     results=(*base.results,
                              *(ArticleHit(long_link_article(n, letters), 0.5, n, "p")
                                for n in range(4, 8))))
    contents = render_answer(answer, CAUTIONS)
    assert_sendable(contents)
    assert block_quote(QUOTE_TEXT) in "\n\n".join(contents)  # the whole quote
    assert letters in contents[0]  # the title stays, as text
    assert "⚠️ This article is labelled as false." in contents[0]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_renderer_measures_long_non_ascii_links_as_sent(script: str) -> None:
    letters = SCRIPTS[script]
    articles = [long_link_article(n, letters) for n in range(1, 12)]
    quotes = [Quote(QUOTE_TEXT, article, n, 0, 10, 0.5, also=tuple(articles))
              for n, article in enumerate(articles)]
    timeline = render_timeline(letters * 20, quotes, None, None, CAUTIONS)
    assert_sendable(timeline)
    assert all(block_quote(QUOTE_TEXT) in content for content in timeline[1:])
    assert_sendable(render_whatsnew([Story(a, tuple(articles)) for a in articles], None))
    follow = Follow(1, 2, 3, 4, letters * 40)
    assert_sendable(render_follow_match(follow, [ArticleHit(a, 1.0, 1, "") for a in articles]))
    assert_sendable(render_follows([follow] * 12, whole_server=True))
    line = also_line(articles[0], articles)
    assert len(line) <= len("Also reported by: ") + OUTLET_LINKS_CHARS
    assert_links_whole_and_honest(line)
    page = render_article_page(articles, 0, 1, 11, letters)
    assert_embed_fits(page)
    assert_links_whole_and_honest(page.description or "")
    embed = render_article(ArticleDetail(articles[0], QUOTE_TEXT, 3, 900), CAUTIONS)
    assert_embed_fits(embed)
    assert embed.url is None or len(embed.url) <= URL_CHARS
    for item in embed.fields:
        assert_links_whole_and_honest(item.value or "")


# --- kind 2: labels that deceive


def rendered_everywhere(text: str, url: str = "https://example.org/1") -> list[str]:
    """`text` as every field of everything rendered; every string that would be sent."""
    article = ArticleInfo(id="a0001", title=text, source=text, url=url,
                          published=date(2023, 1, 1), authors=(text,),
                          labels=(text, "fakenews"))
    base = make_answer(question=text, texts=(text + " and more words",), article=article)
    answer = replace(base, quotes=(replace(base.quotes[0], also=(
        replace(article, id="a0002", source=text + " 2"),)),),
        results=(*base.results, ArticleHit(replace(article, id="a0003"), 0.1, 9, text)),
        period_phrase=text, period_since=date(2023, 1, 1), period_until=date(2023, 1, 7))
    unanswered = replace(answer, answered=False, quotes=(), filters=SearchFilters(
        sources=(text,), labels=(text,)))
    quotes = [replace(answer.quotes[0], text=text)]
    follow = Follow(1, 2, 3, 4, text)
    stats = IndexStats(n_articles=1, n_chunks=1, sources=((text, 1),), first=None, last=None,
                       model=text, dim=3, index_type=text, index_bytes=1, generation=text,
                       built_at=text, build_seconds=1.0)
    embeds = [render_article(ArticleDetail(article, text, 3, 900), {"fakenews": text}),
              render_article_page([article], 0, 1, 1, text), render_stats(stats, {})]
    return [
        *render_answer(answer, {"fakenews": text}), *render_answer(unanswered, CAUTIONS),
        *render_timeline(text, quotes, None, None, CAUTIONS),
        *render_whatsnew([Story(article, (replace(article, source="B"),))], None),
        *render_follows([follow], whole_server=True), *render_follow_match(follow, []),
        render_progress(Progress(text, 1, 2, text)), render_failure("Reindex", text),
        thread_name(text), choice_name(text),
        *(text for embed in embeds for text in embed_texts(embed)),
    ]


def embed_texts(embed: discord.Embed) -> list[str]:
    """Every string in an embed that Discord shows."""
    texts = [embed.title or "", embed.description or "", embed.footer.text or ""]
    texts += [text or "" for item in embed.fields for text in (item.name, item.value)]
    return texts


def test_bidi_controls_are_stripped_from_everything_rendered() -> None:
    text = f"Mayor {BIDI_CONTROLS} resigns \u202egpj.exe\u202c today"
    for content in rendered_everywhere(text):
        assert not BIDI.search(content), content
    assert escape_text("a\u202eb\u2067c\u200fd") == "abcd"


@pytest.mark.parametrize("title", [
    "https://mybank.example/login", "paypal.com", "www.paypal.com", "Login at PayPal.com now",
    "paypal。com", "pay\u200bpal.com", "HTTPS://MYBANK.EXAMPLE",
    # Look-alikes of the dot, the colon and the slash, and compatibility forms of letters.
    *(f"paypal{dot}com" for dot in LOOKALIKES if LOOKALIKES[dot] == "."),
    "paypal\uff0ecom", "paypal\u2e3ccom", "\uff57\uff57\uff57\u2024bank",
    "https\u2236\u2044\u2044mybank", "https\uff1a\uff0f\uff0fmybank", "https\u02d0\u2215\u2215x",
    "https\u0589\u29f8\u29f8x", "https\ufe30\u2f03\u2f03x", "paypal.c\u0336om",
    "Login at PayPal\u2024\u24b8\u24c4\u24c2 now",
])
def test_a_link_label_never_reads_as_another_address(title: str) -> None:
    url = "https://evil.example/phish"
    for content in rendered_everywhere(title, url):
        assert_links_whole_and_honest(content)
    shown = link(title, url)
    assert shown.endswith("([evil.example](<https://evil.example/phish>))")
    assert "://" not in shown.split(" ([")[0]  # the title, as plain text, is no bare link
    assert unescape(shown.split(" ([")[0]) == title  # verbatim, but no link


def test_an_ordinary_title_is_still_the_link_label() -> None:
    assert link("Flood in Varrow", "https://example.org/1") == (
        "[Flood in Varrow](<https://example.org/1>)")
    assert link("U.S. rates rise, e.g. mortgages", "https://example.org/1").startswith(
        "[U.S. rates rise, e.g. mortgages](")
    # Folding look-alikes makes no address of version numbers, fractions or an ellipsis.
    for title in ("Python 3.12 is out", "½ of voters… undecided", "Rates: 4.5% / year",
                  "Wait\u2026what?", "Open 9\u33c2 to 5\u33d8"):
        assert link(title, "https://example.org/1").startswith("["), title


def test_bare_urls_in_quotes_look_verbatim_but_are_not_links() -> None:
    text = "Details at https://evil.example/x?a=1 and HTTP://B.example, ftp://c.example."
    quoted = block_quote(text)
    assert "://" not in quoted
    assert unescape(quoted.removeprefix("> ")) == text
    # An escape in the input cannot be turned back into a live "://".
    assert "://" not in escape_text(r"https:\//x and https:/\/y and https:\/\/z")
    answer = make_answer(texts=(text,))
    [content] = render_answer(answer, CAUTIONS)
    assert content.count("://") == 1  # only the attribution link's own target


# --- kind 3: counts with their nouns


@pytest.mark.parametrize("count", [1, 2])
def test_counts_agree_with_their_nouns(count: int) -> None:
    articles = "1 article" if count == 1 else f"{count} articles"
    page = render_article_page([make_article(1)], 0, 1, count, None)
    assert page.footer.text == f"Page 1 of 1 · {articles}"
    unanswered = replace(make_answer(answered=False), coverage=Coverage(count, None, None),
                         collection=None)
    assert f"The collection covers {articles}." in render_answer(unanswered, CAUTIONS)[0]
    # Each outlet's link is too long for the list: only the count is left.
    others = tuple(make_article(n, source=f"O{n}", url=f"https://example.org/{n}/" + "z" * 480)
                   for n in range(2, 2 + count))
    outlets = "1 other outlet" if count == 1 else f"{count} other outlets"
    assert also_line(make_article(1), others) == f"Also reported by: {outlets}"
    more = "+1 more outlet" if count == 1 else f"+{count} more outlets"
    assert f" · {more}" in render_whatsnew([Story(make_article(1), others)], None)[0]


def test_quotes_from_one_article_share_one_attribution_ordered_by_best_quote() -> None:
    river, roads = make_article(1, title="River report"), make_article(2, title="Roads report")
    quotes = (
        Quote("Roads closed at noon.", roads, 1, 0, 21, 0.95),
        Quote("Later the river fell.", river, 2, 200, 221, 0.80),
        Quote("The river rose by two metres.", river, 3, 10, 39, 0.90),
        Quote("Schools shut too.", river, 4, 100, 117, 0.70),
    )
    answer = replace(make_answer(), quotes=quotes, results=())
    [content] = render_answer(answer, CAUTIONS)
    assert content.count("— [River report]") == 1
    assert content.count("— [Roads report]") == 1
    # Articles by their best quote (Roads 0.95 before River 0.90); an article's quotes in the
    # order they appear in it, then its attribution once.
    assert content.index("Roads closed") < content.index("— [Roads report]") < content.index(
        "The river rose") < content.index("Schools shut") < content.index(
        "Later the river fell") < content.index("— [River report]")


def test_a_group_of_long_quotes_fits_one_message_with_its_attribution() -> None:
    article = make_article(1, title="Long report")
    long_text = ("A sentence that goes on. " * 120).strip()
    quotes = tuple(Quote(long_text, article, n, n * 4000, n * 4000 + len(long_text), 0.9)
                   for n in range(3))
    contents = render_answer(replace(make_answer(), quotes=quotes, results=()), CAUTIONS)
    assert all(len(content) <= CONTENT_LIMIT for content in contents)
    [block] = [content for content in contents if "— [Long report]" in content]
    assert block.count("> A sentence") == 3  # each quote kept, each shortened


def test_a_filter_that_left_out_the_answer_is_not_blamed_on_the_collection() -> None:
    answer = replace(
        make_answer(answered=False), reason=NotAnswered.FILTERED,
        filters=SearchFilters(since=date(2024, 1, 1)),
        coverage=Coverage(0, None, None), collection=Coverage(120, None, None),
        outside=OutsideFilters(1, 1, ("since",)),
    )
    [content] = render_answer(answer, CAUTIONS)
    assert "collection answers" not in content
    assert content.split("\n")[2:] == [
        "No article within the filters answers this; 1 undated article may answer; "
        "ask without since.",
        "The part asked about (since 2024-01-01) holds 0 articles.",
        "The whole collection holds 120 articles.",
    ]


def test_also_relevant_lists_only_articles_past_the_relevance_floor() -> None:
    answer = make_answer()
    election, bread = make_article(5, title="Turnout record"), make_article(6, title="Bread fair")
    answer = replace(answer, results=(
        *answer.results, ArticleHit(election, 0.7, 5, "…"),
        ArticleHit(bread, 0.6, 6, "…", relevant=False),
    ))
    [content] = render_answer(answer, CAUTIONS)
    assert "Also relevant: [Turnout record]" in content
    assert "Bread fair" not in content


STATS = IndexStats(
    n_articles=23, n_chunks=70, sources=(), first=None, last=None, model="m", dim=3,
    index_type="flat", index_bytes=1, generation="gen-000002",
    built_at="2023-02-01T10:00:00+00:00", build_seconds=12.5,
)
BUILT = int(datetime(2023, 2, 1, 10, tzinfo=UTC).timestamp())


def test_stats_say_when_in_discord_time_and_what_the_last_reindex_did() -> None:
    fields = {f.name: f.value for f in render_stats(STATS, {}).fields}
    assert fields["Last reindex"] == f"<t:{BUILT}:R> (<t:{BUILT}:f>), in 12.5s"
    later = datetime(2023, 2, 3, 9, 30, tzinfo=UTC)
    noop = SyncOutcome("reindex", later, generation="")
    fields = {f.name: f.value for f in render_stats(STATS, {}, noop).fields}
    stamp = int(later.timestamp())
    assert fields["Last reindex"] == (
        f"<t:{stamp}:R> (<t:{stamp}:f>) — nothing changed\n"
        f"Index built <t:{BUILT}:R> (<t:{BUILT}:f>), in 12.5s"
    )
    brought = SyncOutcome("reindex", later, added=4, updated=1, generation="gen-000002")
    fields = {f.name: f.value for f in render_stats(STATS, {}, brought).fields}
    assert fields["Last reindex"] == f"<t:{stamp}:R> (<t:{stamp}:f>) — added 4, updated 1, in 12.5s"
    assert "2023-02-01T10" not in str(fields)  # no raw ISO timestamps


def test_whatsnew_after_a_build_from_scratch_lists_nothing_as_new() -> None:
    built = datetime(2023, 2, 1, 10, tzinfo=UTC)
    scratch = SyncOutcome("reindex", built, added=23, generation="gen-000001", from_scratch=True)
    [content] = render_whatsnew([Story(make_article(1))], None, last_change=scratch)
    assert content.startswith(f"Nothing new: the index was built from scratch <t:{BUILT}:R>")
    assert "Article 1" not in content


def test_whatsnew_names_the_reindex_it_shows_and_a_later_one_that_changed_nothing() -> None:
    change = SyncOutcome("reindex", datetime(2023, 2, 1, 10, tzinfo=UTC), added=1,
                         generation="gen-000002")
    later = datetime(2023, 2, 3, 9, 30, tzinfo=UTC)
    noop = SyncOutcome("reindex", later)
    [content] = render_whatsnew([Story(make_article(1))], None, last_reindex=noop,
                                last_change=change)
    assert content.split("\n")[:2] == [
        f"**What the reindex of <t:{BUILT}:R> brought in**",
        f"-# The latest reindex, <t:{int(later.timestamp())}:R>, changed nothing.",
    ]
    assert "Article 1" in content


def test_the_answer_inside_a_quote_is_bold_and_its_markdown_still_escaped() -> None:
    article = make_article(1, title="Council report")
    text = "She is Ann *Lee*, who ran the parks service."
    quote = Quote(text, article, 1, 0, len(text), 0.9, answer=Span(7, 16))
    [content] = render_answer(replace(make_answer(), quotes=(quote,), results=()), CAUTIONS)
    assert "> She is **Ann \\*Lee\\***, who ran the parks service." in content


def test_a_quote_cut_before_its_answer_ends_has_no_bold() -> None:
    text = "The council met for hours and then, late at night, named Ann Lee."
    answer = Span(text.index("Ann"), len(text) - 1)
    [cut] = fit_quotes([text], 40, [answer])
    assert "**" not in cut and cut.startswith("> The council")
    [whole] = fit_quotes([text], 200, [answer])
    assert whole.endswith("**Ann Lee**.")


def test_a_question_about_names_no_article_mentions_says_so() -> None:
    answer = replace(make_answer(answered=False), reason=NotAnswered.NOT_MENTIONED,
                     unmentioned="Zentrivo Labs")
    [content] = render_answer(answer, CAUTIONS)
    assert "No article mentions Zentrivo Labs." in content
    assert "answers this" not in content
