"""`/timeline` and `/whatsnew`: stories through time and across outlets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date

from articlebot.wording import date_span, plural, short_date
from bot.render.answer import quote_block
from bot.render.articles import article_line, other_outlets, outlet_links
from bot.render.text import (
    CONTENT_LIMIT,
    TIMELINE_QUOTE_CHARS,
    pack,
    relative_time,
    shorten,
    topic_text,
)
from index.models import Quote, Story, SyncOutcome


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
