"""Reading article files of every supported format into `ParsedArticle`s, robustly.

Formats, by extension (each may also be gzipped, '.gz'): plain text `.txt` (title line, body,
trailing label lines), Markdown `.md`/`.markdown` (optional YAML front matter), HTML
`.html`/`.htm` (main text via trafilatura), JSON `.json` (an object or an array of them),
JSON Lines `.jsonl` and CSV `.csv` (header row). Bad files and records become `SkippedItem`s.
"""

from __future__ import annotations

from index.ingest.ids import article_key, content_hash, file_origin, normalized_text_hash
from index.ingest.reader import DEFAULT_MAX_BYTES, SUPPORTED_SUFFIXES, iter_articles
from index.ingest.records import parse_date

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SUPPORTED_SUFFIXES",
    "article_key",
    "content_hash",
    "file_origin",
    "iter_articles",
    "normalized_text_hash",
    "parse_date",
]
