"""Group a sample of real news into stories and print groups for a person to check.

Usage: python -m bench.stories_sample [--corpus PATH] [--limit N] [--vectors CACHE.npy] ...
Article vector = the bundled model's embedding of the title and the first 1,000 characters.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from bench.options import MAX_CORPUS_ARTICLES, MAX_DAYS_APART, MAX_SAMPLES
from bench.quality import OneLineErrorsCommand
from index.stories import StoryInput, group_stories

DEFAULT_CORPUS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "news2023" / "corpus-8w.jsonl.gz"
)


def read_corpus(path: Path, limit: int | None) -> list[dict[str, object]]:
    """The corpus records, the first `limit` of them."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    return rows[:limit] if limit else rows


def embed(rows: list[dict[str, object]], cache: Path | None) -> np.ndarray:
    """Article vectors, read from the cache file when it matches, else computed (and cached)."""
    if cache and cache.exists():
        vectors = np.load(cache)
        if len(vectors) == len(rows):
            return vectors
    from index.config import BUNDLED_MODEL
    from index.embedding import make_embedder

    embedder = make_embedder(BUNDLED_MODEL)
    texts = [f"{row['title']}\n{str(row['text'])[:1000]}" for row in rows]
    vectors = embedder.encode(texts, batch_size=64, show_progress=True)
    if cache:
        np.save(cache, vectors)
    return vectors


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(cls=OneLineErrorsCommand)
def sample(
    corpus: Annotated[
        Path, typer.Option("--corpus", help="The news corpus: JSON Lines, gzipped.")
    ] = DEFAULT_CORPUS,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, max=MAX_CORPUS_ARTICLES,
                     help="Group only the first N articles (default: all)."),
    ] = None,
    vectors: Annotated[
        Path | None,
        typer.Option("--vectors", help="A .npy file caching the article vectors: read when it "
                     "holds one per article, else written (default: no cache)."),
    ] = None,
    samples: Annotated[
        int,
        typer.Option("--samples", min=0, max=MAX_SAMPLES,
                     help="Multi-article groups to print, at random."),
    ] = 20,
    max_days: Annotated[
        int,
        typer.Option("--max-days", min=0, max=MAX_DAYS_APART, help="Most days apart two "
                     "articles of one event may be published."),
    ] = 3,
    text_threshold: Annotated[
        float,
        typer.Option("--text-threshold", min=0.0, max=1.0, help="Least estimated Jaccard "
                     "similarity of the opening words for a near-duplicate."),
    ] = 0.5,
    vector_threshold: Annotated[
        float,
        typer.Option("--vector-threshold", min=-1.0, max=1.0, help="Least cosine of two "
                     "article vectors for the same event."),
    ] = 0.8,
    index: Annotated[
        Path | None,
        typer.Option("--index", help="Print the groups an existing index formed at ingest "
                     "instead (no embedding; the other grouping options are ignored)."),
    ] = None,
) -> None:
    """Group a sample of real news into stories and print groups for a person to check."""
    from index.ingest import parse_date

    if index is not None:
        articles, stories = stored_groups(index)
        report(articles, stories, seconds=0.0, samples=samples)
        return

    rows = read_corpus(corpus, limit)
    vectors_of_rows = embed(rows, vectors)
    articles = [
        StoryInput(
            article_id=str(row["doc_id"]),
            title=str(row["title"]),
            text=str(row["text"]),
            published=parse_date(row.get("publish_date")),
            source=str(row["source"]),
            vector=vectors_of_rows[number],
        )
        for number, row in enumerate(rows)
    ]
    started = time.perf_counter()
    stories = group_stories(
        articles,
        max_days=max_days,
        text_threshold=text_threshold,
        vector_threshold=vector_threshold,
    )
    seconds = time.perf_counter() - started
    report(articles, stories, seconds=seconds, samples=samples)


def stored_groups(index_dir: Path) -> tuple[list[StoryInput], dict[str, str]]:
    """The articles of an index's serving version and the story each was grouped into."""
    from index.config import load_settings
    from index.store import make_store

    store = make_store(load_settings(index_dir=index_dir))
    try:
        if not store.open(None):
            raise SystemExit(f"no index in {index_dir}")
        with store.reading() as snapshot:
            rows = snapshot.articles_since(published_since=None, ingested_since=None,
                                           limit=snapshot.count_articles())
    finally:
        store.close()
    articles = [
        StoryInput(article_id=info.id, title=info.title, text="", published=info.published,
                   source=info.source, vector=None)
        for info, _ in rows
    ]
    return articles, {info.id: story for info, story in rows}


def report(
    articles: list[StoryInput], stories: dict[str, str], *, seconds: float, samples: int
) -> None:
    """Print group counts and a random sample of multi-article groups."""
    members: dict[str, list[StoryInput]] = defaultdict(list)
    for article in articles:
        members[stories[article.article_id]].append(article)
    multi = [group for group in members.values() if len(group) > 1]
    sizes = Counter(len(group) for group in multi)
    print(
        f"{len(articles)} articles -> {len(members)} stories; {len(multi)} with 2+ articles "
        f"holding {sum(len(g) for g in multi)} articles; sizes {sorted(sizes.items())}; "
        f"grouping took {seconds:.2f}s"
    )
    cross_outlet = sum(1 for group in multi if len({a.source for a in group}) > 1)
    print(f"groups spanning 2+ outlets: {cross_outlet}")
    random.seed(7)
    for group in random.sample(multi, min(samples, len(multi))):
        print(f"\n--- story {group[0].article_id} ({len(group)} articles)")
        for article in sorted(group, key=lambda a: (a.published or date.max, a.article_id)):
            print(f"  {article.published}  {article.source:<16} {article.title[:90]}")


if __name__ == "__main__":
    app()
