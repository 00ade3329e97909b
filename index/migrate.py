"""Copying a collection between storage backends without embedding anything again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from index.models import Progress
from index.store import IDENTITY_KEYS, Store, StoreError

# What the target keeps of the source's metadata; counts and times are its own.
CARRIED_METADATA = ("embedding", "chunking", "build_seconds")


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What a copy moved."""

    articles: int
    chunks: int
    version: str  # the target's new version

    def summary(self) -> str:
        """One line for people."""
        return f"copied {self.articles} articles, {self.chunks} chunks (version {self.version})"


def copy_collection(
    source: Store, target: Store, progress: Callable[[Progress], None] | None = None
) -> CopyReport:
    """Replace what `target` holds with the current version of `source`, vectors included.

    Raises StoreError when the source is empty, IdentityMismatch when the target holds a
    collection embedded with another model, WriterBusy while the target is being written.
    """
    notify = progress or (lambda _p: None)
    if not source.open(None):
        raise StoreError(f"nothing to copy: {source.location} holds no collection")
    with source.reading() as snapshot:
        metadata = dict(snapshot.metadata)
        identity = {key: metadata.get("embedding", {}).get(key) for key in IDENTITY_KEYS}
        target.open(identity)
        total = snapshot.count_articles()
        stories: dict[str, str] = {}
        chunks = 0
        with target.writer(fresh=True) as writer:
            for done, item in enumerate(snapshot.export_articles(), start=1):
                chunk_ids = writer.add_article(item.article)
                if chunk_ids:
                    writer.set_vectors(chunk_ids, item.vectors)
                stories[item.article.key] = item.story_id
                chunks += len(chunk_ids)
                if done % 200 == 0 or done == total:
                    notify(Progress("copying", done, total, f"copied {done}/{total} articles"))
            writer.set_story_ids(stories)
            version = writer.commit({key: metadata[key] for key in CARRIED_METADATA
                                     if key in metadata})
    return CopyReport(articles=len(stories), chunks=chunks, version=version)
