from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from index.answer import (
    QuestionAnalysis,
    SentenceCandidate,
    confidence,
    coverage_score,
    pick_quotes,
    score_sentences,
    term_weights,
)
from index.models import Span
from index.reading import ReaderCalibration
from index.reading.features import FeatureReader
from index.retrieve import article_ranking, candidate_ids, cap_per_article, fuse
from index.text import stem


def test_fusion_combines_both_retrievers():
    dense = {1: 0.80, 2: 0.60, 3: 0.10}
    keyword = {2: 10.0, 3: 5.0}
    ranked = fuse(dense, keyword, bm25_weight=0.3)
    scores = {c.chunk_id: round(c.score, 3) for c in ranked}
    assert scores == {1: 0.56, 2: 0.72, 3: 0.22}
    assert [c.chunk_id for c in ranked] == [2, 1, 3]


def test_fusion_without_keyword_hits_is_cosine_scaled():
    ranked = fuse({1: 0.5}, {}, bm25_weight=0.3)
    assert ranked[0].score == 0.35


def test_cap_per_article_and_article_ranking():
    ranked = fuse({1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6}, {}, 0.0)
    article_of = {1: "a", 2: "a", 3: "a", 4: "b"}
    capped = cap_per_article(ranked, article_of, per_article=2)
    assert [c.chunk_id for c in capped] == [1, 2, 4]
    assert [key for key, _ in article_ranking(capped, article_of)] == ["a", "b"]


def test_sentences_covering_rare_question_words_win():
    weights = term_weights(["bridge", "reopen"], {"bridge": 1, "reopen": 50}, n_docs=100)
    assert weights[stem("bridge")] > weights[stem("reopen")]
    assert coverage_score("The bridge opened.", weights) > coverage_score("We reopen.", weights)
    candidates = [
        SentenceCandidate(1, 0, 0.5, Span(0, 10), "The weather was fine."),
        SentenceCandidate(1, 0, 0.5, Span(11, 30), "The bridge will reopen on Monday."),
    ]
    question = QuestionAnalysis.of("When will the bridge reopen?", weights)
    best = pick_quotes(score_sentences(candidates, question, FeatureReader()), max_quotes=3,
                       min_ratio=0.3)
    assert best[0].candidate.text == "The bridge will reopen on Monday."


def test_pick_quotes_drops_repeats_and_weak_tails():
    candidates = [
        SentenceCandidate(1, 0, 1.0, Span(0, 5), "Same text."),
        SentenceCandidate(2, 1, 1.0, Span(0, 5), "Same  text."),
        SentenceCandidate(3, 2, 0.1, Span(0, 5), "Weak."),
    ]
    picked = pick_quotes(score_sentences(candidates, QuestionAnalysis.of("What?", {}),
                                         FeatureReader()), max_quotes=3, min_ratio=0.3)
    assert [p.candidate.chunk_id for p in picked] == [1]


def test_confidence_levels():
    margins = ReaderCalibration(min_answer_score=0.3, high_margin=0.2, medium_margin=0.08,
                                quote_min_ratio=0.3, dense_share=0.5)
    assert confidence(0.1, 0.3, margins) == "none"
    assert confidence(0.31, 0.3, margins) == "low"
    assert confidence(0.40, 0.3, margins) == "medium"
    assert confidence(0.9, 0.3, margins) == "high"


class SearchesInStep:
    """A snapshot whose dense search finishes only once the keyword search has started."""

    def __init__(self, dense_error: Exception | None = None) -> None:
        self.keyword_started = threading.Event()
        self.keyword_finished = threading.Event()
        self.dense_error = dense_error

    def keyword_search(self, terms, k, filters=None):
        self.keyword_started.set()
        time.sleep(0.05)
        self.keyword_finished.set()
        return [(2, 1.0), (3, 0.5)]

    def dense_search(self, query, k, filters=None):
        # A deadline only a broken fusion reaches, however busy the machine.
        assert self.keyword_started.wait(60), "the keyword search did not run meanwhile"
        if self.dense_error is not None:
            raise self.dense_error
        return [(1, 0.9), (2, 0.8)]


def test_candidates_come_from_both_searches_run_at_once():
    snapshot = SearchesInStep()
    found = candidate_ids(snapshot, np.zeros(4, dtype=np.float32), ["harbour"], candidates=2)
    assert found == {1, 2, 3}


def test_a_failed_dense_search_waits_for_the_keyword_search_before_raising():
    snapshot = SearchesInStep(dense_error=RuntimeError("store gone"))
    with pytest.raises(RuntimeError, match="store gone"):
        candidate_ids(snapshot, np.zeros(4, dtype=np.float32), ["harbour"], candidates=2)
    assert snapshot.keyword_finished.is_set()  # nothing left reading the snapshot
