"""Rendering: escaping, Discord's limits, and the shape of answers."""

from __future__ import annotations

import re

import discord
from helpers import make_answer, make_article
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.render import (
    CONTENT_LIMIT,
    EMBED_DESCRIPTION_LIMIT,
    EMBED_FIELD_NAME_LIMIT,
    EMBED_FIELD_VALUE_LIMIT,
    EMBED_FIELDS_MAX,
    EMBED_FOOTER_LIMIT,
    EMBED_TITLE_LIMIT,
    EMBED_TOTAL_LIMIT,
    ZWSP,
    block_quote,
    escape_text,
    fit_embed,
    render_answer,
    render_article,
    render_article_page,
    render_stats,
    shorten,
)
from index.models import ArticleDetail, IndexStats

CAUTIONS = {"fakenews": "This article is labelled as false."}
# Text rich in everything that could inject markup, plus ordinary words.
NASTY = st.lists(
    st.sampled_from(
        [*"abc xyz.!?\n\r\\*_~|`>[]()<@#&:-0123456789",
         "@everyone", "@here", "<@123>", "<@&5>", "<#9>", "```", "[a](http://x)",
         "http://y.org/a_b", "\u2028", "# ", "-# ", "1. ", "||", "> ", ">>> "]
    ),
    max_size=120,
).map("".join) | st.text(max_size=300)


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


def test_escape_catches_the_second_masked_link_on_a_line() -> None:
    escaped = escape_text("[a](http://x) and [b](http://y)")
    assert escaped == r"\[a\](http://x) and \[b\](http://y)"
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
    answer = make_answer(answered=False, note="Try *naming* the place.")
    [content] = render_answer(answer, CAUTIONS)
    assert "No article in the collection answers this." in content
    assert "120 articles from 2023-01-01 to 2023-02-26" in content
    assert r"Try \*naming\* the place." in content


def test_long_answers_are_split_or_shortened_never_rejected() -> None:
    long_text = ("A sentence that goes on. " * 200).strip()
    answer = make_answer(texts=[long_text, long_text, long_text])
    contents = render_answer(answer, CAUTIONS)
    assert len(contents) >= 2
    assert all(len(content) <= CONTENT_LIMIT for content in contents)
    assert all("…" in content for content in contents if "> A sentence" in content)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=NASTY, texts=st.lists(NASTY.filter(lambda t: t.strip()), min_size=1,
                                      max_size=5), note=NASTY)
def test_answers_fit_and_inject_nothing(question: str, texts: list[str], note: str) -> None:
    article = make_article(1, title="Plain title", url="https://example.org/plain")
    for answered in (True, False):
        answer = make_answer(question, texts, answered=answered, article=article, note=note)
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
    detail = ArticleDetail(article, opening + "o" * big)
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
