"""Articles from the web: RSS 2.0, Atom and RSS 1.0 feeds and single article pages.

`sources` reads the feeds file, `fetch` is the polite bounded HTTP client, `sync` turns new and
changed items into article files that ingest like any other.
"""

from __future__ import annotations

from index.feeds.fetch import Fetched, Fetcher, FetchError, FetchPolicy
from index.feeds.sources import FeedListError, FeedSource, read_feed_list
from index.feeds.sync import FeedResult, FeedState, FeedSyncer, FeedSyncReport, feed_state_key

__all__ = [
    "FeedListError",
    "FeedResult",
    "FeedSource",
    "FeedState",
    "FeedSyncReport",
    "FeedSyncer",
    "FetchError",
    "FetchPolicy",
    "Fetched",
    "Fetcher",
    "feed_state_key",
    "read_feed_list",
]
