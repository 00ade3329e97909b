"""Hybrid retrieval: dense and keyword (BM25) candidates from a store, fused into one ranking."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from index.models import SearchFilters
from index.store import ChunkRow, KeywordStatistics, Snapshot
from index.text import stem, stems, tokens


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A candidate chunk with each retriever's score and the fused one."""

    chunk_id: int
    dense: float  # cosine similarity to the question
    keyword: float  # BM25 (higher is better; 0 when no term matched)
    score: float  # fused


def fuse(
    dense: Mapping[int, float], keyword: Mapping[int, float], bm25_weight: float
) -> list[ScoredChunk]:
    """Linear fusion: w·(BM25 / best BM25) + (1 − w)·cosine over the union, best first.

    Cosine is on a fixed scale and BM25 is not, so BM25 is scaled by the best candidate's;
    on SQuAD this beats reciprocal-rank fusion clearly (see docs/quality.md).
    """
    best_keyword = max(keyword.values(), default=0.0)
    scored = []
    for chunk_id in set(dense) | set(keyword):
        cosine = dense.get(chunk_id, 0.0)
        bm25 = keyword.get(chunk_id, 0.0)
        relative = bm25 / best_keyword if best_keyword > 0 else 0.0
        fused = bm25_weight * relative + (1.0 - bm25_weight) * cosine
        scored.append(ScoredChunk(chunk_id, cosine, bm25, fused))
    scored.sort(key=lambda c: (-c.score, c.chunk_id))
    return scored


def cap_per_article(
    ranked: Sequence[ScoredChunk], article_of: Mapping[int, str], per_article: int
) -> list[ScoredChunk]:
    """Keep at most `per_article` chunks of each article, preserving order."""
    taken: dict[str, int] = {}
    kept = []
    for chunk in ranked:
        key = article_of.get(chunk.chunk_id)
        if key is None:
            continue
        if taken.get(key, 0) < per_article:
            taken[key] = taken.get(key, 0) + 1
            kept.append(chunk)
    return kept


def article_ranking(
    ranked: Sequence[ScoredChunk], article_of: Mapping[int, str]
) -> list[tuple[str, ScoredChunk]]:
    """Articles in order of their best chunk, each with that chunk."""
    seen: dict[str, ScoredChunk] = {}
    for chunk in ranked:
        key = article_of.get(chunk.chunk_id)
        if key is not None and key not in seen:
            seen[key] = chunk
    return list(seen.items())


# Keyword searches running beside their dense search. The threads are kept, as a local snapshot
# keeps one SQLite connection per thread; the bot asks at most max_concurrent_queries (4) at
# once, and beyond 8 questions at once a keyword search waits for a thread.
KEYWORD_SEARCH_THREADS = 8
_KEYWORD_SEARCHES = ThreadPoolExecutor(max_workers=KEYWORD_SEARCH_THREADS,
                                       thread_name_prefix="keyword-search")


def candidate_ids(
    snapshot: Snapshot,
    query_vector: np.ndarray,
    keyword_terms: Sequence[str],
    *,
    candidates: int,
    filters: SearchFilters | None = None,
) -> set[int]:
    """The union of the dense and the keyword top candidates under the filters.

    The keyword search runs on another thread meanwhile: both wait mostly outside Python
    (FAISS and SQLite, or the database server), so a question takes about the longer of the
    two instead of their sum (docs/performance.md, "Both searches at once").
    """
    keyword = _KEYWORD_SEARCHES.submit(snapshot.keyword_search, keyword_terms, candidates,
                                       filters)
    try:
        dense = snapshot.dense_search(query_vector, candidates, filters)
    finally:
        # Never leave the search running past the snapshot it reads.
        found = keyword.result()
    return {chunk_id for chunk_id, _ in dense} | {chunk_id for chunk_id, _ in found}


BM25_K1 = 0.9
BM25_B = 0.4


def bm25_scores(
    texts: Mapping[int, str],
    terms: Sequence[str],
    doc_counts: Mapping[str, int],
    n_docs: int,
    average_words: float,
    *,
    k1: float = BM25_K1,
    b: float = BM25_B,
) -> dict[int, float]:
    """Okapi BM25 of each text for the query terms (absent: no term matched).

    Terms and texts go through the one analyser (`index.text`: tokens, Porter stems), so a
    term counts as the keyword index counts it; a text's length is its number of tokens.
    k1 0.9 and b 0.4: Anserini's defaults, the pair of the BM25 baseline in docs/quality.md.
    """
    idf = {
        stem(term): math.log(1.0 + (n_docs - doc_counts.get(term, 0) + 0.5)
                             / (doc_counts.get(term, 0) + 0.5))
        for term in terms
    }
    scores: dict[int, float] = {}
    for key, text in texts.items():
        text_tokens = tokens(text)
        counts = Counter(text_tokens)
        tf: dict[str, int] = {}
        for base, n in zip(stems(list(counts)), counts.values(), strict=True):
            if base in idf:
                tf[base] = tf.get(base, 0) + n
        if not tf:
            continue
        norm = k1 * (1.0 - b + b * len(text_tokens) / max(average_words, 1.0))
        scores[key] = sum(idf[base] * n * (k1 + 1.0) / (n + norm) for base, n in tf.items())
    return scores


# Terms in more than this share of chunks barely move BM25 but make FTS5 score most of the
# index; candidates are found with the rarer terms (every term still counts in the scoring).
COMMON_TERM_SHARE = 0.02
MIN_SEARCH_TERMS = 3


def search_terms(terms: Sequence[str], statistics: KeywordStatistics) -> list[str]:
    """The terms worth a keyword search: the uncommon ones, at least the few rarest."""
    if len(terms) <= MIN_SEARCH_TERMS:
        return list(terms)
    counts = statistics.doc_counts
    by_rarity = sorted(terms, key=lambda term: counts[term])
    rare = [t for t in by_rarity if counts[t] <= COMMON_TERM_SHARE * statistics.n_chunks]
    return rare if len(rare) >= MIN_SEARCH_TERMS else by_rarity[:MIN_SEARCH_TERMS]


def score_candidates(
    snapshot: Snapshot,
    query_vector: np.ndarray,
    terms: Sequence[str],
    texts: Mapping[int, str],
    statistics: KeywordStatistics,
    *,
    bm25_weight: float,
) -> list[ScoredChunk]:
    """Score every candidate with both retrievers and fuse, best first.

    Both scores are computed for every candidate (BM25 from the candidates' own text, with
    the collection's document counts), so fusion never compares with a missing half, and the
    cost follows the number of candidates, not the size of the collection.
    """
    if not texts:
        return []
    union = sorted(texts)
    cosines = snapshot.dense_scores(query_vector, union)
    dense = {chunk_id: float(c) for chunk_id, c in zip(union, cosines, strict=True)}
    keyword = bm25_scores(texts, terms, statistics.doc_counts, statistics.n_chunks,
                          statistics.mean_chunk_words)
    return fuse(dense, keyword, bm25_weight)


def hybrid_search(
    snapshot: Snapshot,
    query_vector: np.ndarray,
    terms: Sequence[str],
    statistics: KeywordStatistics,
    *,
    candidates: int,
    bm25_weight: float,
    filters: Sequence[SearchFilters | None] = (None,),
) -> tuple[list[ScoredChunk], dict[int, ChunkRow]]:
    """Fused candidates, best first, and their rows.

    The candidates are the dense and keyword top ones under each of `filters` (a question
    about a period also draws candidates from the period, so they are not crowded out);
    each is scored by both retrievers. `statistics` are the snapshot's for `terms`.
    """
    keyword_terms = search_terms(terms, statistics)
    ids: set[int] = set()
    for restriction in filters:
        ids |= candidate_ids(snapshot, query_vector, keyword_terms, candidates=candidates,
                             filters=restriction)
    rows = snapshot.chunk_rows(sorted(ids))
    texts = {chunk_id: row.text for chunk_id, row in rows.items()}
    ranked = score_candidates(snapshot, query_vector, terms, texts, statistics,
                              bm25_weight=bm25_weight)
    return ranked, rows


def boost_by_time(
    ranked: Sequence[ScoredChunk],
    published: Mapping[int, date | None],
    *,
    window: tuple[date | None, date | None] | None,
    window_boost: float,
    recency: Callable[[date | None], float],
    recency_boost: float,
) -> list[ScoredChunk]:
    """Raise chunks inside the question's period, and mildly prefer newer ones; best first."""
    boosted = []
    for chunk in ranked:
        day = published.get(chunk.chunk_id)
        bonus = recency_boost * recency(day)
        if window is not None and day is not None:
            since, until = window
            if (since is None or day >= since) and (until is None or day <= until):
                bonus += window_boost
        boosted.append(replace(chunk, score=chunk.score + bonus))
    boosted.sort(key=lambda c: (-c.score, c.chunk_id))
    return boosted
