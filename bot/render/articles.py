"""Articles as Discord shows them: attributions under quotes, the other outlets telling a story,
list lines, and `/article` and `/articles recent`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import discord

from articlebot.wording import plural
from bot.render.text import (
    EMBED_COLOUR,
    EMBED_DESCRIPTION_LIMIT,
    EMBED_FOOTER_LIMIT,
    EMBED_TITLE_LIMIT,
    NOTE_CHARS,
    OPENING_CHARS,
    OUTLET_CHARS,
    OUTLET_LINKS_CHARS,
    SEPARATOR,
    TITLE_CHARS,
    block_quote,
    escape_text,
    field_text,
    fit_embed,
    fit_list,
    fit_rendered,
    format_date,
    host_link,
    label_text,
    link,
    looks_like_address,
    one_line,
    pack,
    safe_url,
    shorten,
)
from index.models import ArticleDetail, ArticleInfo


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
              for label in caution_keys(article.labels, caution_labels)]
    return "\n".join(lines)


def caution_keys(labels: Sequence[str], caution_labels: Mapping[str, str]) -> list[str]:
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


def article_line(article: ArticleInfo) -> str:
    """One list line: linked title, outlet and date."""
    outlet = fit_rendered(one_line(article.source), TITLE_CHARS, escape_text) or "unknown outlet"
    return f"• {link(article.title, article.url)} — {outlet}, {format_date(article.published)}"


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
    embed.add_field(name="Outlet", value=field_text(article.source or "unknown"))
    embed.add_field(name="Published", value=format_date(article.published))
    if article.authors:
        embed.add_field(name="Authors", value=field_text(", ".join(article.authors)))
    if article.labels:
        embed.add_field(name="Labels", value=field_text(", ".join(article.labels)))
    cautions = [caution_labels[key] for key in caution_keys(article.labels, caution_labels)]
    if cautions:
        embed.add_field(name="⚠️ Caution", value=field_text(" ".join(cautions)), inline=False)
    embed.add_field(name="Passages", value=f"{detail.n_chunks:,}")
    embed.set_footer(text=shorten(f"id {one_line(article.id)}", EMBED_FOOTER_LIMIT))
    return fit_embed(embed)
