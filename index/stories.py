"""Group articles that tell the same story: wire copy, near-duplicates, one event in many outlets.

Two kinds of link, joined with a union-find:

- *Near-duplicates* (wire copy, syndicated or lightly edited text): MinHash over 5-word shingles of
  an article's first words, banded LSH to find candidates, and the estimated Jaccard similarity
  of the signatures to confirm them (at least `text_threshold`, or `REPUBLISHED_JACCARD` when
  published more than `max_days` apart, since yearly templates reuse text); texts too short
  for MinHash must have the same words and be published at most `max_days` apart. The titles must
  share a salient word: scraped pages whose text is only a site's boilerplate are identical
  under unrelated titles. This is a compact numpy version of what `datasketch` does;
  it needs no extra dependency and hashes deterministically (crc32), so groups do not change
  from run to run.
- *Same event*: cosine of the article vectors at least `vector_threshold`, published at most
  `max_days` apart, and a lexical check so that two stories on one topic are not joined: the
  titles share at least two salient words, or the salient words of the openings overlap
  (Jaccard at least `LEAD_OVERLAP`). Candidates come from matrix products over blocks of
  date-sorted articles, never from a Python loop over all pairs.

Chaining (A~B, B~C, ... until a whole beat is one "story") is held back three ways: links are
applied strongest first; an event link only merges two groups whose centroids are themselves
similar (`vector_threshold - CENTROID_MARGIN`) and whose dates together span at most twice
`max_days`; and no merge may grow a group past `max_group_size`.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from index.text import STOP_WORDS, tokens

SHINGLE_WORDS = 5
# Near-duplicates share their opening; hashing only this many words keeps ingest fast.
MAX_WORDS = 400
# An article shorter than this has too few shingles for a trustworthy near-duplicate estimate.
MIN_WORDS = 40
NUM_PERM = 64
BANDS = 21  # 3 rows a band: a pair with Jaccard 0.5 becomes a candidate with p ~ 0.94
# Near-duplicates published far apart must be almost the same text (a republished article).
REPUBLISHED_JACCARD = 0.9
LEAD_WORDS = 80  # the salient words of the opening compared for same-event links
LEAD_OVERLAP = 0.2
MIN_SHARED_TITLE_WORDS = 2
CENTROID_MARGIN = 0.05
BLOCK = 512
# Headline words that say nothing of which event a story is about, on top of the analyser's
# stop words; read off the 2023 news corpus's titles.
_NOT_SALIENT = STOP_WORDS | frozenset(
    """says said say news live update updates latest video watch photos here what how who s t
    one two first year years day today 2022 2023 us u""".split()
)


@dataclass(frozen=True, slots=True)
class StoryInput:
    """What grouping needs to know about one article."""

    article_id: str
    title: str
    text: str
    published: date | None
    source: str
    vector: np.ndarray | None  # a normalised embedding of the article


def group_stories(
    articles: Sequence[StoryInput],
    *,
    max_days: int = 3,
    text_threshold: float = 0.5,
    vector_threshold: float = 0.8,
    max_group_size: int = 30,
) -> dict[str, str]:
    """Map each article id to its story id: the id of the story's earliest article."""
    n = len(articles)
    if n == 0:
        return {}
    groups = _Groups(articles)
    signatures = _minhash_signatures([article.text for article in articles])
    title_words = _LazyWords(lambda i: _salient(articles[i].title))
    for i, j in _identical_short_text_pairs(articles):
        # Too short for MinHash, and too short to tell a republication from a new event.
        if title_words[i] & title_words[j] and _within_days(articles[i], articles[j], max_days):
            groups.union(i, j, max_group_size=max_group_size, max_span_days=2 * max_days)
    for i, j, similarity in _near_duplicate_pairs(signatures, text_threshold):
        if not title_words[i] & title_words[j]:
            continue  # same text under unrelated titles: scraped boilerplate, not a story
        close_in_time = _within_days(articles[i], articles[j], max_days)
        if similarity < REPUBLISHED_JACCARD and not close_in_time:
            continue  # a yearly template ("Groundhog Day 2019 results") is a new story
        groups.union(i, j, max_group_size=max_group_size)
    lead_words = _LazyWords(
        lambda i: _salient(f"{articles[i].title} {articles[i].text[:2000]}", limit=LEAD_WORDS)
    )
    for i, j, _similarity in _similar_vector_pairs(articles, max_days, vector_threshold):
        shared_title = len(title_words[i] & title_words[j])
        if shared_title < MIN_SHARED_TITLE_WORDS and _jaccard(lead_words[i], lead_words[j]) < (
            LEAD_OVERLAP
        ):
            continue
        groups.union(
            i,
            j,
            max_group_size=max_group_size,
            min_centroid_cosine=vector_threshold - CENTROID_MARGIN,
            max_span_days=2 * max_days,
        )
    return groups.story_ids()


class _LazyWords:
    """Word sets computed on first use: only articles in candidate pairs need them."""

    def __init__(self, compute: Callable[[int], frozenset[str]]) -> None:
        """Remember how to compute the set for an article index."""
        self._compute = compute
        self._cache: dict[int, frozenset[str]] = {}

    def __getitem__(self, index: int) -> frozenset[str]:
        """The word set of an article, computed once."""
        if index not in self._cache:
            self._cache[index] = self._compute(index)
        return self._cache[index]


def _within_days(first: StoryInput, second: StoryInput, max_days: int) -> bool:
    """True when the two were published at most max_days apart, or either date is unknown."""
    if first.published is None or second.published is None:
        return True
    return abs((first.published - second.published).days) <= max_days


def _salient(text: str, limit: int | None = None) -> frozenset[str]:
    """Lowercased content words (no stopwords, no short words), the first `limit` of them."""
    words: list[str] = []
    for token in tokens(text):
        if len(token) > 2 and token not in _NOT_SALIENT and not token.isdigit():
            words.append(token)
            if limit is not None and len(words) >= limit:
                break
    return frozenset(words)


def _jaccard(first: frozenset[str], second: frozenset[str]) -> float:
    """|A ∩ B| / |A ∪ B|, 0 for two empty sets."""
    union = len(first | second)
    return len(first & second) / union if union else 0.0


def _permutations() -> tuple[np.ndarray, np.ndarray]:
    """Fixed random (odd a, b) pairs for the hash family (a*x + b) mod 2^64."""
    rng = np.random.default_rng(20230101)
    a = rng.integers(0, np.iinfo(np.uint64).max, size=NUM_PERM, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, np.iinfo(np.uint64).max, size=NUM_PERM, dtype=np.uint64)
    return a, b


_PERM_A, _PERM_B = _permutations()


def _minhash_signatures(texts: Sequence[str]) -> np.ndarray:
    """One MinHash signature row per text; all-max rows for texts too short to judge."""
    empty = np.iinfo(np.uint64).max
    signatures = np.full((len(texts), NUM_PERM), empty, dtype=np.uint64)
    word_hashes: dict[str, int] = {}
    for row, text in enumerate(texts):
        words = tokens(text[: MAX_WORDS * 12])[:MAX_WORDS]
        if len(words) < MIN_WORDS:
            continue
        for word in set(words).difference(word_hashes):
            word_hashes[word] = zlib.crc32(word.encode()) | (1 << 32)
        codes = np.fromiter(map(word_hashes.__getitem__, words), dtype=np.uint64, count=len(words))
        # uint64 arithmetic wraps mod 2^64, where x -> a*x + b is a bijection for odd a:
        # a cheap permutation family that serves MinHash well.
        hashed = np.outer(_PERM_A, _shingle_hashes(codes)) + _PERM_B[:, None]
        signatures[row] = hashed.min(axis=1)
    return signatures


_SHINGLE_WEIGHTS = np.array(
    [pow(0x9E3779B97F4A7C15, k + 1, 1 << 64) for k in range(SHINGLE_WORDS)], dtype=np.uint64
)


def _shingle_hashes(codes: np.ndarray) -> np.ndarray:
    """A hash for every run of SHINGLE_WORDS consecutive word hashes (order-sensitive)."""
    count = len(codes) - SHINGLE_WORDS + 1
    combined = np.zeros(count, dtype=np.uint64)
    for offset in range(SHINGLE_WORDS):
        combined += codes[offset : offset + count] * _SHINGLE_WEIGHTS[offset]
    return combined


def _identical_short_text_pairs(articles: Sequence[StoryInput]) -> list[tuple[int, int]]:
    """Pairs of articles under MIN_WORDS words with the same text (whitespace and case aside).

    MinHash judges only longer texts; a short wire item run word for word by two outlets is
    still one story.
    """
    by_text: dict[str, list[int]] = defaultdict(list)
    for index, article in enumerate(articles):
        words = tokens(article.text[: MIN_WORDS * 12])
        if 0 < len(words) < MIN_WORDS:
            by_text[" ".join(words)].append(index)
    return [(members[0], other) for members in by_text.values() for other in members[1:]]


def _near_duplicate_pairs(signatures: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Pairs whose estimated Jaccard similarity reaches the threshold, most similar first."""
    valid = np.flatnonzero(signatures[:, 0] != np.iinfo(np.uint64).max)
    rows = NUM_PERM // BANDS
    compared = signatures[:, : rows * BANDS]
    candidates: set[tuple[int, int]] = set()
    for band in range(BANDS):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        part = np.ascontiguousarray(signatures[valid, band * rows : (band + 1) * rows])
        for index, key in zip(valid.tolist(), part, strict=True):
            buckets[key.tobytes()].append(index)
        for members in buckets.values():
            if len(members) > 1:
                candidates.update(
                    (members[x], members[y])
                    for x in range(len(members))
                    for y in range(x + 1, len(members))
                )
    pairs = []
    for i, j in candidates:
        similarity = float(np.mean(compared[i] == compared[j]))
        if similarity >= threshold:
            pairs.append((i, j, similarity))
    pairs.sort(key=lambda pair: (-pair[2], pair[0], pair[1]))
    return pairs


def _similar_vector_pairs(
    articles: Sequence[StoryInput], max_days: int, threshold: float
) -> list[tuple[int, int, float]]:
    """Dated pairs with vectors, at most max_days apart and cosine >= threshold, best first."""
    indices = [
        index
        for index, article in enumerate(articles)
        if article.vector is not None and article.published is not None
    ]
    if len(indices) < 2:
        return []
    days = np.array([articles[i].published.toordinal() for i in indices])  # type: ignore[union-attr]
    order = np.argsort(days, kind="stable")
    days = days[order]
    positions = np.array(indices)[order]
    vectors = np.stack([np.asarray(articles[i].vector, dtype=np.float32) for i in positions])
    pairs: list[tuple[int, int, float]] = []
    for start, stop, reach in _date_blocks(days, max_days):
        sims = vectors[start:stop] @ vectors[start:reach].T
        gaps = np.abs(days[start:stop, None] - days[None, start:reach])
        later = np.arange(start, reach)[None, :] > np.arange(start, stop)[:, None]
        rows, cols = np.nonzero((sims >= threshold) & (gaps <= max_days) & later)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            pairs.append(
                (int(positions[start + row]), int(positions[start + col]), float(sims[row, col]))
            )
    pairs.sort(key=lambda pair: (-pair[2], pair[0], pair[1]))
    return pairs


def _date_blocks(days: np.ndarray, max_days: int) -> Iterator[tuple[int, int, int]]:
    """(start, stop, reach): rows [start, stop) need comparing with rows [start, reach)."""
    for start in range(0, len(days), BLOCK):
        stop = min(start + BLOCK, len(days))
        reach = int(np.searchsorted(days, days[stop - 1] + max_days, side="right"))
        yield start, stop, reach


class _Groups:
    """Union-find over articles that keeps each group's size, centroid and date span."""

    def __init__(self, articles: Sequence[StoryInput]) -> None:
        """Start with every article in a group of its own."""
        self._articles = articles
        self._parent = list(range(len(articles)))
        self._size = [1] * len(articles)
        dim = next((len(a.vector) for a in articles if a.vector is not None), 0)
        self._centroid = np.zeros((len(articles), dim), dtype=np.float32)
        for index, article in enumerate(articles):
            if article.vector is not None:
                self._centroid[index] = article.vector
        ordinals = [a.published.toordinal() if a.published else None for a in articles]
        self._first = list(ordinals)
        self._last = list(ordinals)

    def find(self, index: int) -> int:
        """The root of an article's group, compressing the path on the way."""
        root = index
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[index] != root:
            self._parent[index], index = root, self._parent[index]
        return root

    def union(
        self,
        first: int,
        second: int,
        *,
        max_group_size: int,
        min_centroid_cosine: float | None = None,
        max_span_days: int | None = None,
    ) -> bool:
        """Merge two articles' groups unless that breaks a limit; True when merged."""
        a, b = self.find(first), self.find(second)
        if a == b:
            return False
        if self._size[a] + self._size[b] > max_group_size:
            return False
        if min_centroid_cosine is not None and self._size[a] + self._size[b] > 2:
            ca, cb = self._centroid[a], self._centroid[b]
            norms = float(np.linalg.norm(ca) * np.linalg.norm(cb))
            if norms > 0 and float(ca @ cb) / norms < min_centroid_cosine:
                return False
        first_day = _min_known(self._first[a], self._first[b])
        last_day = _max_known(self._last[a], self._last[b])
        if (
            max_span_days is not None
            and first_day is not None
            and last_day is not None
            and last_day - first_day > max_span_days
        ):
            return False
        if self._size[a] < self._size[b]:
            a, b = b, a
        self._parent[b] = a
        self._size[a] += self._size[b]
        self._centroid[a] += self._centroid[b]
        self._first[a], self._last[a] = first_day, last_day
        return True

    def story_ids(self) -> dict[str, str]:
        """article_id -> the id of the earliest article in its group (undated ones last)."""
        members: dict[int, list[int]] = defaultdict(list)
        for index in range(len(self._articles)):
            members[self.find(index)].append(index)
        result: dict[str, str] = {}
        for group in members.values():
            earliest = min(group, key=self._earliest_key)
            story_id = self._articles[earliest].article_id
            for index in group:
                result[self._articles[index].article_id] = story_id
        return result

    def _earliest_key(self, index: int) -> tuple[int, str]:
        """Sort key: publication day (undated last), then id, for a stable story id."""
        article = self._articles[index]
        day = article.published.toordinal() if article.published else date.max.toordinal()
        return day, article.article_id


def _min_known(first: int | None, second: int | None) -> int | None:
    """The smaller of two optional numbers, ignoring a missing one."""
    known = [value for value in (first, second) if value is not None]
    return min(known) if known else None


def _max_known(first: int | None, second: int | None) -> int | None:
    """The larger of two optional numbers, ignoring a missing one."""
    known = [value for value in (first, second) if value is not None]
    return max(known) if known else None
