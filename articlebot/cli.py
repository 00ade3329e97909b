"""The `articlebot` command line: drives the engine, the bot and the evaluations."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from articlebot import wording
from articlebot.oneline import OneLineErrorsGroup
from index.config import Settings, load_settings
from index.models import (
    Answer,
    ArticleInfo,
    IngestReport,
    Progress,
    Quote,
    SearchFilters,
    jsonable,
)
from index.timeparse import EARLIEST_DAY, LATEST_DAY, DateError, check_period, read_day

if TYPE_CHECKING:
    from bot.config import BotSettings
    from index.engine import Engine
    from index.feeds import FeedSyncReport

def file_problem(exc: FileNotFoundError) -> str:
    """A missing file in words; after an `eval` or `bench` command, bench.quality's words, which
    say where the evaluation data sets belong (only those commands load bench)."""
    quality = sys.modules.get("bench.quality")
    if quality is not None:
        return str(quality.missing_file(exc))
    return f"no such file: {exc.filename or exc}"


class BenchProgram(TyperGroup):
    """A bench program mounted as a sub-command (`eval`, `bench`), imported only when it runs or
    shows its help: its name and one-line help stand in for it in `articlebot --help`.

    Its module's typer `app` becomes the group that parses the sub-command's arguments
    (`make_context`), so the program behaves as if it were mounted with `add_typer`.
    """

    def __init__(self, name: str, module: str, help: str) -> None:
        super().__init__(name=name, help=help)
        self.module = module
        self._program: TyperGroup | None = None

    def program(self) -> TyperGroup:
        """The bench program as a typer group, imported on first use, under this help."""
        if self._program is None:
            program = typer.main.get_command(importlib.import_module(self.module).app)
            assert isinstance(program, TyperGroup), f"{self.module}.app is no group"
            program.name, program.help = self.name, self.help
            self._program = program
        return self._program

    @property
    def commands(self) -> dict[str, Any]:
        """The program's sub-commands by name (what walks of the command tree read)."""
        return self.program().commands

    @commands.setter
    def commands(self, value: dict[str, Any]) -> None:
        """Take the empty table TyperGroup starts with; the program's own stands in."""
        if value:
            raise TypeError("a bench program's sub-commands are its module's own")

    def make_context(self, info_name: str | None, args: list[str],
                     parent: typer.Context | None = None, **extra: Any) -> typer.Context:
        """The program's own context: it parses the arguments and runs."""
        return self.program().make_context(info_name, args, parent=parent, **extra)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        """The program's sub-commands."""
        return self.program().list_commands(ctx)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        """One of the program's sub-commands."""
        return self.program().get_command(ctx, cmd_name)


# bench's programs, as `articlebot eval` and `articlebot bench`: (name, module, help).
BENCH_PROGRAMS = (
    ("eval", "bench.quality",
     "Answer quality on the shared evaluation sets: squad, news, calibrate, sweep."),
    ("bench", "bench.perf", "Speed and memory: embed, ingest, query, scale, stores."),
)


class CommandLine(OneLineErrorsGroup):
    """The `articlebot` group: a usage error (a --limit out of range) is one line, not a
    panel; bench's programs come last, loaded when one runs (BenchProgram), so every other
    command, and `articlebot --help`, runs without importing bench."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, module, help_text in BENCH_PROGRAMS:
            self.add_command(BenchProgram(name, module, help_text))

    def file_problem(self, exc: FileNotFoundError) -> str:
        """A missing file in words (`file_problem`)."""
        return file_problem(exc)


app = typer.Typer(
    name="articlebot",
    help="Answer questions about a collection of articles by quoting them, with sources.",
    cls=CommandLine,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"

IndexOption = Annotated[
    Path | None,
    typer.Option("--index", help="Index folder (default: ARTICLEBOT_INDEX_DIR or var/index)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

# Most stories `timeline` and `whatsnew` show, and most articles `articles` lists: more than
# a terminal reader scrolls through; a bigger figure would only be a mistyped one.
MAX_STORIES = 100
MAX_ARTICLES = 1000
# Discord ids (snowflakes) are unsigned 64-bit numbers.
MAX_DISCORD_ID = 2**64 - 1
DATE_FORMS = f"YYYY-MM-DD, '3 March 2023' or '2 weeks ago'; {EARLIEST_DAY} to {LATEST_DAY}"


class CliError(Exception):
    """An error to print as one line before exiting non-zero."""


# A lone surrogate: how Python reads a byte of the command line that is not UTF-8 (U+DC80 to
# U+DCFF, PEP 383's surrogateescape); other ones come only from callers passing str directly.
_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_text(value: str) -> str:
    """A text argument or option as given; typer.BadParameter when it is not UTF-8 text.

    The `parser` of every text parameter: text holding a byte that is not UTF-8 can be neither
    stored, searched nor printed, so it is refused here in one line before a command runs
    rather than ending it in a traceback. Paths are not text and keep any bytes.
    """
    found = _SURROGATE.search(value)
    if found is None:
        return value
    code = ord(found.group())
    what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
    raise typer.BadParameter(f"not UTF-8 text ({what} at character {found.start() + 1}); "
                             "check the encoding of the terminal or script")


def _settings(index: Path | None, **overrides: Any) -> Settings:
    """The engine's settings from the environment and `.env`, with command-line overrides."""
    return load_settings(index_dir=index, **overrides)


def _bot_settings(index: Path | None) -> BotSettings:
    """The bot's settings (the engine's and the Discord ones), for `serve` and `sync`."""
    from bot.config import load_bot_settings

    return load_bot_settings(index_dir=index)


def _engine(settings: Settings, *, create: bool = False, repair: bool = False) -> Engine:
    """Open the engine (imports the model stack only when a command needs it)."""
    from index.engine import Engine

    return Engine.open(settings, create=create, repair=repair)


def _parse_day(value: str | None, name: str) -> date | None:
    """A date option (YYYY-MM-DD, '2 weeks ago', …) as a date; None when not given.

    Raises CliError naming the option when the text is not a date or lies outside
    index.timeparse's EARLIEST_DAY to LATEST_DAY.
    """
    if not value:
        return None
    try:
        return read_day(value)
    except DateError as exc:
        raise CliError(f"--{name}: {exc}") from exc


def _parse_period(since: str | None, until: str | None) -> tuple[date | None, date | None]:
    """The --since and --until options as dates; CliError when unreadable or reversed.

    The reversed-period check and its words are the bot's too (index.timeparse.check_period).
    """
    since_day, until_day = _parse_day(since, "since"), _parse_day(until, "until")
    try:
        check_period(since_day, until_day)
    except DateError as exc:
        raise CliError(str(exc)) from exc
    return since_day, until_day


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[Progress], None]]:
    """A progress callback drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(event: Progress) -> None:
        """Advance the bar of the event's stage."""
        if not enabled or not event.total or event.stage == "done":
            return
        bar = bars.get(event.stage)
        if bar is None:
            bar = bars[event.stage] = tqdm(
                total=event.total, desc=event.stage, unit="", leave=False, file=sys.stderr
            )
        bar.n = event.done
        bar.refresh()

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()


def _print_report(report: IngestReport, as_json: bool) -> None:
    """Print an ingest report, skipped items named one a line."""
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    for item in report.skipped:
        typer.echo(f"skipped {item}", err=True)
    typer.echo(report.summary())


def format_article_line(article: ArticleInfo) -> str:
    """One line for an article: id, date, outlet, title, two spaces apart at the least (an
    outlet longer than its column would otherwise run into the title)."""
    day = article.published.isoformat() if article.published else "----------"
    return f"{article.id}  {day}  {article.source or '-':<16}  {article.title or '(untitled)'}"


def quote_text(quote: Quote) -> str:
    """A quote on one line (runs of whitespace as one space), its answer in bold: an ANSI
    style that `typer.echo` drops when the output is not a terminal."""
    text, answer = quote.text, quote.answer
    if answer is not None:
        text = (text[: answer.start] + typer.style(text[answer.start : answer.end], bold=True)
                + text[answer.end :])
    return " ".join(text.split())


def format_quotes(quotes: Sequence[Quote], cautions: Mapping[str, str]) -> list[str]:
    """Quotes from one article, then its attribution, cautions and the other outlets once."""
    article = quotes[0].article
    when = article.published.isoformat() if article.published else "undated"
    source = article.source or "unknown outlet"
    label = f" [{', '.join(article.labels)}]" if article.labels else ""
    lines = [f"  “{quote_text(quote)}”" for quote in quotes]
    lines.append(f"    — {article.title or '(untitled)'}, {source}, {when}{label}")
    if article.url:
        lines.append(f"      {article.url}")
    lines += [f"      ⚠ {cautions[name]}" for name in article.labels if name in cautions]
    also = list({other.id: other for quote in quotes for other in quote.also}.values())
    if also:
        others = "; ".join(f"{a.source or a.title} {a.url}".strip() for a in also[:5])
        lines.append(f"      also reported by: {others}")
    return lines


def format_answer(answer: Answer, cautions: Mapping[str, str] | None = None) -> str:
    """An answer as terminal text: quotes grouped by article with attribution, how sure the
    answer is, then articles; when nothing answers, articlebot.wording's sentences. The
    confidence and any caveat are worded by articlebot.wording, as the bot words them."""
    lines: list[str] = []
    if answer.answered and answer.quotes:
        for group in wording.quote_groups(answer.quotes):
            lines += format_quotes(group, cautions or {})
            scores = ", ".join(f"{quote.score:.3f}" for quote in group)
            lines.append(f"      ({'score' if len(group) == 1 else 'scores'} {scores})")
        lines.append(wording.sentence(wording.confidence_text(answer.confidence)))
        caveat = wording.caveat_text(answer)
        if caveat:
            lines.append(f"Note: {caveat}.")
    else:
        # The bot's sentences (a filter that matches nothing shows as a part of 0 articles).
        lines += wording.unanswered_lines(answer)
    if answer.results:
        lines.append("Articles:")
        for rank, hit in enumerate(answer.results, start=1):
            lines.append(f"  {rank}. [{hit.score:.3f}] {format_article_line(hit.article)}")
    return "\n".join(lines)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Article files or folders.")],
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add or update the articles in these files or folders (unchanged ones are skipped)."""
    settings = _settings(index)
    engine = _engine(settings, create=True)
    with _progress_bar(sys.stderr.isatty()) as progress:
        report = engine.ingest(paths, progress=progress)
    _print_report(report, as_json)


@app.command()
def reindex(
    index: IndexOption = None,
    rebuild: Annotated[bool, typer.Option(help="Re-embed everything from scratch.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Sync the index with the configured article folders: new, changed and removed articles."""
    settings = _settings(index)
    engine = _engine(settings, create=True, repair=rebuild)
    with _progress_bar(sys.stderr.isatty()) as progress:
        report = engine.reindex(progress=progress, rebuild=rebuild)
    _print_report(report, as_json)


def _print_feed_report(report: FeedSyncReport, as_json: bool) -> None:
    """Each feed's outcome a line (failures on stderr, named), then the ingest summary."""
    if as_json:
        data = _jsonable(report) | {"summary": report.summary()}
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    for result in report.feeds:
        if result.status == "error":
            typer.echo(f"failed {result.url}: {result.error_kind}: {result.error}", err=True)
        for skipped in result.skipped:
            typer.echo(f"note {skipped}", err=True)
    typer.echo(report.summary())
    if report.ingest is not None:
        typer.echo(report.ingest.summary())


@app.command("sync-feeds")
def sync_feeds(index: IndexOption = None, as_json: JsonOption = False) -> None:
    """Fetch the feeds of ARTICLEBOT_FEEDS_FILE and ingest new and changed items."""
    engine = _engine(_settings(index), create=True)
    with _progress_bar(sys.stderr.isatty()) as progress:
        report = engine.sync_feeds(progress=progress)
    _print_feed_report(report, as_json)


@app.command()
def fetch(
    urls: Annotated[list[str], typer.Argument(
        parser=utf8_text, help="Article page URLs (http or https).")],
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch single article pages, extract their text and ingest them."""
    engine = _engine(_settings(index), create=True)
    _print_feed_report(engine.fetch_pages(urls), as_json)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(parser=utf8_text, help="The question, in quotes.")],
    source: Annotated[list[str] | None, typer.Option(
        parser=utf8_text, help="Only this outlet (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(
        parser=utf8_text, help=f"Published on or after this day ({DATE_FORMS}).")] = None,
    until: Annotated[str | None, typer.Option(
        parser=utf8_text, help=f"Published on or before this day ({DATE_FORMS}).")] = None,
    label: Annotated[list[str] | None, typer.Option(
        parser=utf8_text, help="Only articles with this label.")] = None,
    as_of: Annotated[str | None, typer.Option(
        parser=utf8_text,
        help=f"Read 'this week' etc. relative to this day ({DATE_FORMS}).")] = None,
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer a question with verbatim quotes from the articles."""
    since_day, until_day = _parse_period(since, until)
    as_of_day = _parse_day(as_of, "as-of")
    filters = SearchFilters(
        sources=tuple(source or ()), since=since_day, until=until_day, labels=tuple(label or ())
    )
    settings = _settings(index)
    engine = _engine(settings)
    answer = engine.ask(question, filters, as_of=as_of_day)
    if as_json:
        typer.echo(json.dumps(answer_json(answer), indent=2))
    else:
        typer.echo(format_answer(answer, settings.caution_labels))


def answer_json(answer: Answer) -> dict[str, Any]:
    """An answer as JSON-ready data: the engine's facts, plus the remark in words as "note"."""
    data = answer.to_dict()
    data["note"] = wording.note(answer)
    return data


@app.command()
def timeline(
    topic: Annotated[str, typer.Argument(parser=utf8_text, help="What the story is about.")],
    since: Annotated[str | None, typer.Option(
        parser=utf8_text, help=f"From this day ({DATE_FORMS}).")] = None,
    until: Annotated[str | None, typer.Option(
        parser=utf8_text, help=f"Up to this day ({DATE_FORMS}).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_STORIES, help="Most stories shown.")] = 15,
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """How a story developed: one quote per story, oldest first."""
    since_day, until_day = _parse_period(since, until)
    settings = _settings(index)
    quotes = _engine(settings).timeline(topic, since_day, until_day, limit=limit)
    if as_json:
        typer.echo(json.dumps([_jsonable(q) for q in quotes], indent=2))
        return
    if not quotes:
        typer.echo("No article matches this topic.")
    for quote in quotes:
        typer.echo("\n".join(format_quotes([quote], settings.caution_labels)))


@app.command()
def whatsnew(
    since: Annotated[
        str | None,
        typer.Option(parser=utf8_text,
                     help=f"Published since this day ({DATE_FORMS}); default: the last reindex."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_STORIES, help="Most stories shown.")] = 10,
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """The newest stories, grouped across outlets."""
    since_day = _parse_day(since, "since")
    stories = _engine(_settings(index)).whatsnew(since_day, limit=limit)
    if as_json:
        typer.echo(json.dumps([_jsonable(s) for s in stories], indent=2))
        return
    if not stories:
        typer.echo("Nothing new.")
    for story in stories:
        typer.echo(format_article_line(story.article))
        if story.also:
            typer.echo(f"    also: {', '.join(a.source or a.title for a in story.also)}")


@app.command()
def articles(
    recent: Annotated[
        int, typer.Option("--recent", min=1, max=MAX_ARTICLES, help="How many, newest first.")
    ] = 10,
    source: Annotated[str | None, typer.Option(parser=utf8_text, help="Only this outlet.")] = None,
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the newest articles."""
    found = _engine(_settings(index)).recent_articles(limit=recent, source=source)
    if as_json:
        typer.echo(json.dumps([_jsonable(a) for a in found], indent=2))
        return
    if not found:
        typer.echo(f"No articles from {source}." if source else "No articles yet.")
    for article in found:
        typer.echo(format_article_line(article))


@app.command()
def article(
    id_or_title: Annotated[str, typer.Argument(
        parser=utf8_text, metavar="ID", help="Article id or title.")],
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one article's details and opening paragraph."""
    engine = _engine(_settings(index))
    detail = engine.article(id_or_title)
    if detail is None:
        raise CliError(f"no article with id or title {id_or_title!r}")
    if as_json:
        typer.echo(json.dumps(_jsonable(detail), indent=2))
        return
    info = detail.article
    typer.echo(format_article_line(info))
    for name, value in (("url", info.url), ("authors", ", ".join(info.authors)),
                        ("labels", ", ".join(info.labels))):
        if value:
            typer.echo(f"{name}: {value}")
    typer.echo(f"{wording.plural(detail.n_chunks, 'chunk')}, "
               f"{wording.plural(detail.n_chars, 'character')}\n\n{detail.opening}")


@app.command()
def stats(index: IndexOption = None, as_json: JsonOption = False) -> None:
    """Figures about the index: articles, chunks, outlets, dates, model, size."""
    engine = _engine(_settings(index))
    figures = engine.stats()
    if as_json:
        typer.echo(json.dumps(figures.to_dict(), indent=2))
        return
    span = f"{figures.first} to {figures.last}" if figures.first else "undated"
    outlets = ", ".join(f"{name} ({n})" for name, n in figures.sources[:10])
    typer.echo(
        f"{wording.plural(figures.n_articles, 'article')}, "
        f"{wording.plural(figures.n_chunks, 'chunk')}, {span}\n"
        f"outlets: {outlets or '-'}\n"
        f"model: {figures.model} ({figures.dim}-d), {figures.index_type} index, "
        f"{figures.index_bytes / 2**20:.1f} MiB\n"
        f"store: {figures.store} ({figures.dense_search} dense search)\n"
        f"embedding: {figures.embed_backend}\n"
        f"generation {figures.generation}, built {figures.built_at} "
        f"in {figures.build_seconds:.1f}s"
    )


def store_name(value: str) -> str:
    """A backend's name as given, checked against the storage registry
    (`index.store.names`); typer.BadParameter for text that is not UTF-8 or names no
    registered backend. The registry is imported here, when `migrate` parses its options,
    so the other commands do not load storage."""
    from index.store import StoreError, backend

    try:
        return backend(utf8_text(value)).name
    except StoreError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def migrate(
    from_store: Annotated[str, typer.Option(
        "--from", parser=store_name, metavar="<store>",
        help="Backend to copy from (local, postgres, …: any registered store).")],
    to_store: Annotated[str, typer.Option(
        "--to", parser=store_name, metavar="<store>",
        help="Backend to copy to (what it held is replaced).")],
    index: IndexOption = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", parser=utf8_text,
        help="postgresql://… (default: ARTICLEBOT_DATABASE_URL).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Copy the collection between backends (local ⇄ postgres) without re-embedding."""
    from index.migrate import copy_collection
    from index.store import StoreError, make_store

    if from_store == to_store:
        raise CliError("--from and --to name the same backend")
    settings = _settings(index, database_url=database_url)
    try:
        source = make_store(settings.model_copy(update={"store": from_store}))
        target = make_store(settings.model_copy(update={"store": to_store}))
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    try:
        with _progress_bar(sys.stderr.isatty()) as progress:
            report = copy_collection(source, target, progress)
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    finally:
        source.close()
        target.close()
    typer.echo(json.dumps(_jsonable(report), indent=2) if as_json else report.summary())


@app.command()
def demo(index: IndexOption = None) -> None:
    """Build an index of the bundled sample articles and answer the sample questions."""
    samples = samples_dir()
    if not (samples / "questions.txt").is_file():
        # An installed wheel holds the code, not the repository's samples/.
        raise CliError(f"the sample articles are not in {samples}; run the demo from a "
                       "source checkout (make demo) or set ARTICLEBOT_SAMPLES_DIR")
    settings = _settings(
        index or Path("var/demo-index"), article_dirs=[samples / "articles"]
    )
    typer.echo(f"Indexing the sample articles in {samples / 'articles'} …")
    engine = _engine(settings, create=True)
    report = engine.reindex()
    typer.echo(report.summary())
    questions = (samples / "questions.txt").read_text(encoding="utf-8").splitlines()
    for question in filter(None, (q.strip() for q in questions)):
        typer.echo(f"\n? {question}")
        typer.echo(format_answer(engine.ask(question), settings.caution_labels))
    typer.echo(f'\nAsk your own: articlebot ask --index {settings.index_dir} "your question"')


def samples_dir() -> Path:
    """The demo's samples: ARTICLEBOT_SAMPLES_DIR when set (the Docker image installs them
    there), else the checkout's samples/."""
    return Path(os.environ.get("ARTICLEBOT_SAMPLES_DIR") or SAMPLES_DIR)


@app.command()
def serve(index: IndexOption = None) -> None:
    """Run the Discord bot (needs DISCORD_TOKEN)."""
    from bot.run import serve as run_bot

    raise typer.Exit(run_bot(_bot_settings(index)))


@app.command()
def sync(
    guild: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_DISCORD_ID, help="Sync to this guild (server id) only (instant)."
        ),
    ] = None,
    everywhere: Annotated[bool, typer.Option(
        "--global", help="Sync globally even when ARTICLEBOT_DEV_GUILD_ID is set.")] = False,
    clear: Annotated[bool, typer.Option(
        "--clear", help="Remove the commands from the guild (or globally) instead.")] = False,
    index: IndexOption = None,
) -> None:
    """Push the slash-command definitions to Discord now: to ARTICLEBOT_DEV_GUILD_ID when it is
    set (as `serve` does), else globally; never both, or that server shows each twice."""
    from bot.run import sync_commands

    settings = _bot_settings(index)
    raise typer.Exit(sync_commands(settings, sync_target(guild, everywhere,
                                                         settings.dev_guild_id), clear=clear))


@app.command()
def health(index: IndexOption = None) -> None:
    """Whether `serve` is connected to Discord with its index readable (exit 0) or not (exit
    1), from the status file it keeps beside the index; the Docker image's health check."""
    from bot.health import check

    healthy, line = check(_bot_settings(index).index_dir)
    typer.echo(f"{'healthy' if healthy else 'unhealthy'}: {line}", err=not healthy)
    raise typer.Exit(0 if healthy else 1)


def sync_target(guild: int | None, everywhere: bool, dev_guild_id: int | None) -> int | None:
    """Where `articlebot sync` goes: --guild, else globally with --global, else the dev guild
    when one is set (as `serve` syncs), else globally (None). Raises CliError for both flags."""
    if guild is not None and everywhere:
        raise CliError("--guild and --global name two places; give one")
    if guild is not None:
        return guild
    return None if everywhere else dev_guild_id


def _jsonable(value: object) -> Any:
    """A dataclass as JSON-ready data."""
    import dataclasses

    return jsonable(dataclasses.asdict(value))  # type: ignore[call-overload]


def main() -> None:
    """Entry point: run the CLI, turning expected errors into one line and exit code 1."""
    from pydantic import ValidationError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except FileNotFoundError as exc:
        typer.echo(f"error: {file_problem(exc)}", err=True)
        sys.exit(1)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        typer.echo(f"error: setting {where}: {first['msg']}", err=True)
        sys.exit(2)
    except Exception as exc:
        from index.engine import EngineError

        if isinstance(exc, EngineError):
            typer.echo(f"error: {exc}", err=True)
            sys.exit(1)
        raise
