"""Hybrid retrieval: dense (FAISS) and keyword (FTS5 BM25) candidates fused into one ranking."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from index.answer import stem, stem_forms, words
from index.models import SearchFilters
from index.store import db, vectors
from index.store.generations import Generation


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


def candidate_ids(
    generation: Generation,
    query_vector: np.ndarray,
    keyword_query: str,
    *,
    candidates: int,
    filters: SearchFilters | None = None,
) -> set[int]:
    """The union of the dense and the keyword top candidates."""
    conn = generation.conn()
    allowed = None
    if filters is not None and not filters.is_empty():
        allowed = db.allowed_chunk_ids(conn, filters)
        if not allowed:
            return set()
    dense_ids, _ = vectors.search(generation.index, query_vector, candidates, allowed)
    keyword = db.keyword_search(conn, keyword_query, candidates, filters)
    return {int(i) for i in dense_ids} | {chunk_id for chunk_id, _ in keyword}


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
    """Okapi BM25 of each text for the query terms (absent: no term matched)."""
    idf = {
        stem(term): math.log(1.0 + (n_docs - doc_counts.get(term, 0) + 0.5)
                             / (doc_counts.get(term, 0) + 0.5))
        for term in terms
    }
    forms = stem_forms(tuple(idf))
    scores: dict[int, float] = {}
    for key, text in texts.items():
        text_words = words(text)
        counts = Counter(text_words)
        tf: dict[str, int] = {}
        for form, base in forms.items():
            if form in counts:
                tf[base] = tf.get(base, 0) + counts[form]
        if not tf:
            continue
        norm = k1 * (1.0 - b + b * len(text_words) / max(average_words, 1.0))
        scores[key] = sum(idf[base] * n * (k1 + 1.0) / (n + norm) for base, n in tf.items())
    return scores


# Terms in more than this share of chunks barely move BM25 but make FTS5 score most of the
# index; candidates are found with the rarer terms (every term still counts in the scoring).
COMMON_TERM_SHARE = 0.02
MIN_SEARCH_TERMS = 3


def search_terms(generation: Generation, terms: Sequence[str]) -> list[str]:
    """The terms worth a keyword search: the uncommon ones, at least the few rarest."""
    if len(terms) <= MIN_SEARCH_TERMS:
        return list(terms)
    counts, n_docs, _ = keyword_statistics(generation, terms)
    by_rarity = sorted(terms, key=lambda term: counts[term])
    rare = [t for t in by_rarity if counts[t] <= COMMON_TERM_SHARE * n_docs]
    return rare if len(rare) >= MIN_SEARCH_TERMS else by_rarity[:MIN_SEARCH_TERMS]


def keyword_statistics(
    generation: Generation, terms: Sequence[str]
) -> tuple[dict[str, int], int, float]:
    """Document counts of the terms, the number of chunks and their mean length (memoised)."""
    memo = generation.memo
    conn = generation.conn()
    shape = memo.get("shape")
    if shape is None:
        # One entry, set at once: other threads read the memo without a lock.
        shape = memo["shape"] = (db.count_chunks(conn), db.average_chunk_words(conn))
    counts: dict[str, int] = {}
    missing: list[str] = []
    for term in terms:
        cached = memo.get(("df", term))
        if cached is None:
            missing.append(term)
        else:
            counts[term] = cached
    for term, count in db.term_document_counts(conn, missing).items():
        memo["df", term] = counts[term] = count
    n_docs, average_words = shape
    return counts, n_docs, average_words


def score_candidates(
    generation: Generation,
    query_vector: np.ndarray,
    terms: Sequence[str],
    texts: Mapping[int, str],
    *,
    bm25_weight: float,
) -> list[ScoredChunk]:
    """Score every candidate with both retrievers and fuse, best first.

    Both scores are computed for every candidate (BM25 from the candidates' own text, with
    the index's document counts), so fusion never compares with a missing half, and the cost
    follows the number of candidates, not the size of the collection.
    """
    if not texts:
        return []
    union = sorted(texts)
    cosines = vectors.reconstruct(generation.index, union) @ query_vector
    dense = {chunk_id: float(c) for chunk_id, c in zip(union, cosines, strict=True)}
    doc_counts, n_docs, average_words = keyword_statistics(generation, terms)
    keyword = bm25_scores(texts, terms, doc_counts, n_docs, average_words)
    return fuse(dense, keyword, bm25_weight)


def hybrid_search(
    generation: Generation,
    query_vector: np.ndarray,
    terms: Sequence[str],
    *,
    candidates: int,
    bm25_weight: float,
    filters: Sequence[SearchFilters | None] = (None,),
) -> tuple[list[ScoredChunk], dict[int, db.ChunkRow]]:
    """Fused candidates, best first, and their rows.

    The candidates are the dense and keyword top ones under each of `filters` (a question
    about a period also draws candidates from the period, so they are not crowded out);
    each is scored by both retrievers.
    """
    keyword_query = db.keyword_query(search_terms(generation, terms))
    ids: set[int] = set()
    for restriction in filters:
        ids |= candidate_ids(generation, query_vector, keyword_query, candidates=candidates,
                             filters=restriction)
    rows = db.chunk_rows(generation.conn(), sorted(ids))
    texts = {chunk_id: row.text for chunk_id, row in rows.items()}
    ranked = score_candidates(generation, query_vector, terms, texts, bm25_weight=bm25_weight)
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
