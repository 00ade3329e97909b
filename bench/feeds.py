"""Feed sync speed against a web server of our own on 127.0.0.1.

    python -m bench.feeds [--feeds 20] [--items 50] [--json]

Serves `feeds` RSS feeds of `items` items each, every item an article page of a few paragraphs
built from the news corpus's texts (never stored in the repo), and syncs them into a new index
with the default embedder: fetch + extract + write + embed, as items/s; then an unchanged sync
(every feed answers 304), in seconds. The host delay is 0 (one local host serves every feed);
per-host concurrency is the default.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.quality import NEWS_CORPUS, OneLineErrorsCommand, read_jsonl


def serve_feeds(web: Any, texts: list[str], feeds: int, items: int) -> list[str]:
    """Routes for `feeds` × `items` article pages on the server; the feeds' URLs."""
    from bench.localweb import Page, article_page, rss

    urls = []
    for feed in range(feeds):
        entries = []
        for item in range(items):
            number = feed * items + item
            paragraphs = [p for p in texts[number % len(texts)].split("\n") if p.strip()][:6]
            path = f"/feed{feed}/item{item}"
            web.routes[path] = Page(article_page(f"Story {number}", paragraphs))
            entries.append((f"urn:story:{number}", web.url(path), f"Story {number}"))
        web.routes[f"/feed{feed}.xml"] = Page(rss(entries, title=f"Outlet {feed}"),
                                              "application/rss+xml")
        urls.append(web.url(f"/feed{feed}.xml"))
    return urls


def bench_feeds(feeds: int, items: int, corpus: Path) -> dict[str, Any]:
    """Items/s of a first sync (fetch, extract, embed) and the seconds of an unchanged one."""
    from bench.localweb import serving
    from bench.perf import load_average
    from index.config import load_settings
    from index.embedding.choice import machine_description
    from index.engine import Engine

    texts = [str(row.get("text", "")) for row in read_jsonl(corpus)]
    result: dict[str, Any] = {"what": "feeds", "feeds": feeds, "items_per_feed": items,
                              "machine": machine_description(), "load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as tmp, serving() as web:
        folder = Path(tmp)
        feeds_file = folder / "feeds.txt"
        feeds_file.write_text("\n".join(serve_feeds(web, texts, feeds, items)) + "\n")
        settings = load_settings(index_dir=folder / "index", article_dirs=[folder / "none"],
                                 feeds_file=feeds_file, feeds_dir=folder / "fetched",
                                 fetch_allow_private=True, fetch_host_delay_seconds=0)
        engine = Engine.open(settings, create=True)
        engine.embedder.encode_query("warm up")  # the model load is not part of a sync
        started = time.perf_counter()
        first = engine.sync_feeds()
        seconds = time.perf_counter() - started
        written = len(first.written)
        result["first_sync"] = {
            "seconds": round(seconds, 2), "items": written,
            "items_per_s": round(written / seconds, 1), "requests": first.requests,
            "ingest": first.ingest.summary() if first.ingest else None,
            "embed_backend": engine.embedder.backend,
        }
        started = time.perf_counter()
        again = engine.sync_feeds()
        result["unchanged_sync"] = {"seconds": round(time.perf_counter() - started, 3),
                                    "requests": again.requests,
                                    "not_modified": again.not_modified}
        engine.close()
    result["load_after"] = load_average()
    return result


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(cls=OneLineErrorsCommand)
def main(
    feeds: Annotated[int, typer.Option("--feeds", min=1, max=1000, help="Feeds served.")] = 20,
    items: Annotated[int, typer.Option("--items", min=1, max=1000,
                                       help="Items (article pages) per feed.")] = 50,
    corpus: Annotated[Path, typer.Option("--corpus", help="Where the pages' texts come from "
                                         "(JSON Lines, gzipped).")] = NEWS_CORPUS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Items/s of a feed sync (fetch + extract + embed) and the cost of an unchanged sync."""
    from bench.perf import _report

    _report(bench_feeds(feeds, items, corpus), as_json)


if __name__ == "__main__":
    app()
