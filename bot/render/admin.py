"""What the index and its upkeep did: `/stats`, a reindex's progress and result, `/feeds`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import discord

from articlebot import wording
from articlebot.wording import plural
from bot.render.text import (
    CONTENT_LIMIT,
    EMBED_COLOUR,
    EMBED_FOOTER_LIMIT,
    MAX_SKIPPED_LISTED,
    NOTE_CHARS,
    OUTLET_CHARS,
    TITLE_CHARS,
    escape_text,
    field_text,
    fit_embed,
    fit_list,
    fit_rendered,
    format_date,
    full_time,
    moment,
    note_sentence,
    one_line,
    pack,
    relative_time,
    safe_url,
    shorten,
)
from index.models import IndexStats, IngestReport, Progress, SkippedItem, SyncOutcome

if TYPE_CHECKING:
    from index.feeds import FeedSource, FeedState


def human_bytes(size: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


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
    embed.add_field(name="Model", value=field_text(f"{stats.model} ({stats.dim} dims)"))
    embed.add_field(
        name="Index",
        value=field_text(f"{stats.index_type} ({stats.store}), {human_bytes(stats.index_bytes)}"),
    )
    if stats.embed_backend:
        embed.add_field(name="Embedding", value=field_text(stats.embed_backend), inline=False)
    # Not through _field: its escaping would show the timestamps' markup.
    embed.add_field(name="Last reindex", value=last_reindex_text(stats, last_reindex),
                    inline=False)
    if stats.sources:
        top = ", ".join(f"{name} ({count:,})" for name, count in stats.sources[:10])
        embed.add_field(name="Largest outlets", value=field_text(top), inline=False)
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
