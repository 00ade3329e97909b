"""Group a sample of real news into stories and print groups for a person to check.

Usage: python -m bench.stories_sample [--corpus PATH] [--limit N] [--vectors CACHE.npy]
Article vector = the bundled model's embedding of the title and the first 1,000 characters.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import numpy as np

from index.ingest import parse_date
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


def main() -> None:
    """Embed, group, and print the figures and sample groups."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--vectors", type=Path, default=None, help="cache file for vectors")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--max-days", type=int, default=3)
    parser.add_argument("--text-threshold", type=float, default=0.5)
    parser.add_argument("--vector-threshold", type=float, default=0.8)
    parser.add_argument(
        "--index", type=Path, default=None,
        help="print the groups an existing index formed at ingest (no embedding)",
    )
    args = parser.parse_args()
    if args.index is not None:
        articles, stories = stored_groups(args.index)
        report(articles, stories, seconds=0.0, samples=args.samples)
        return

    rows = read_corpus(args.corpus, args.limit)
    vectors = embed(rows, args.vectors)
    articles = [
        StoryInput(
            article_id=str(row["doc_id"]),
            title=str(row["title"]),
            text=str(row["text"]),
            published=parse_date(row.get("publish_date")),
            source=str(row["source"]),
            vector=vectors[index],
        )
        for index, row in enumerate(rows)
    ]
    started = time.perf_counter()
    stories = group_stories(
        articles,
        max_days=args.max_days,
        text_threshold=args.text_threshold,
        vector_threshold=args.vector_threshold,
    )
    seconds = time.perf_counter() - started
    report(articles, stories, seconds=seconds, samples=args.samples)


def stored_groups(index_dir: Path) -> tuple[list[StoryInput], dict[str, str]]:
    """The articles of an index's serving generation and the story each was grouped into."""
    from index.store import db, generations

    name = generations.current_name(index_dir)
    if name is None:
        raise SystemExit(f"no index in {index_dir}")
    conn = db.connect(index_dir / name / generations.DATABASE, readonly=True)
    rows = conn.execute(
        "SELECT key, title, published, source, coalesce(story_id, key) FROM articles"
    ).fetchall()
    conn.close()
    articles = [
        StoryInput(article_id=key, title=title, text="", published=parse_date(published),
                   source=source, vector=None)
        for key, title, published, source, _ in rows
    ]
    return articles, {row[0]: row[4] for row in rows}


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
    main()
