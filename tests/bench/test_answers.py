"""The sentence-ranker harness: our answers set, its halves, the fit, and the split rules."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from bench import answers, quality
from bench.answers import fit, own_questions, sentence_ceiling, top1_hit_rate
from bench.quality import squad_half, week_half


def test_the_shipped_answers_set_is_large_enough_and_well_formed() -> None:
    rows = own_questions(answers.OWN_QUESTIONS)
    answerable = [row for row in rows if row["kind"] == "answerable"]
    unanswerable = [row for row in rows if row["kind"] == "unanswerable"]
    assert len(answerable) >= 60 and len(unanswerable) >= 20
    assert {row["type"] for row in answerable} == {"who", "where", "when", "how_many", "which"}
    assert all(row["answers"] and row["doc_id"] and row["published"] for row in answerable)
    assert all(not row["answers"] and row["absent"] for row in unanswerable)
    assert len({row["question"] for row in rows}) == len(rows)


def test_halves_split_the_set_with_nothing_in_both() -> None:
    rows = own_questions(answers.OWN_QUESTIONS)
    train = own_questions(answers.OWN_QUESTIONS, "train")
    test = own_questions(answers.OWN_QUESTIONS, "test")
    assert len(train) + len(test) == len(rows)
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert min(len(train), len(test)) >= len(rows) // 3


def test_split_rules() -> None:
    assert week_half("20230127") == week_half("2023-01-29") == "train"
    assert week_half("20230203") == week_half("2023-01-30") == "test"
    titles = [f"Article {n}" for n in range(400)]
    share = sum(squad_half(title) == "train" for title in titles) / len(titles)
    assert 0.4 < share < 0.6
    assert all(squad_half(title) == squad_half(title) for title in titles)


def test_the_fit_finds_the_feature_that_marks_the_answer() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4000, 3))
    groups = np.repeat(np.arange(400), 10)
    labels = np.zeros(4000, dtype=bool)
    labels[np.arange(400) * 10 + rng.integers(0, 10, 400)] = True
    features[labels, 1] += 3.0  # feature 1 marks the answer; 0 and 2 are noise
    coefficients, _ = fit(features, labels)
    assert coefficients[1] > 5 * max(abs(coefficients[0]), abs(coefficients[2]))
    assert top1_hit_rate(features @ coefficients, labels, groups) > 0.8
    assert top1_hit_rate(-features[:, 1], labels, groups) < 0.2


def test_the_ceiling_counts_every_question_asked() -> None:
    # Question 0: the answer in its second sentence, the ranker prefers the first. Question 1:
    # the answer in its only sentence. Question 2: no sentence holds it. Question 3 got none.
    groups = np.array([0, 0, 1, 2, 2])
    labels = np.array([False, True, True, False, False])
    scores = np.array([0.9, 0.1, 0.5, 0.4, 0.3])
    assert sentence_ceiling(labels, groups, scores, n_asked=4) == {
        "n_questions": 4, "answer_among_candidates": 0.5, "answer_in_best_candidate": 0.25}


@pytest.mark.skipif(not quality.NEWS_CORPUS.exists(),
                    reason=f"the news corpus is not at {quality.NEWS_CORPUS}")
def test_every_answer_is_verbatim_in_its_article_and_every_absent_name_absent() -> None:
    with gzip.open(quality.NEWS_CORPUS, "rt", encoding="utf-8") as stream:
        docs = {row["doc_id"]: row for row in map(json.loads, stream)}
    everything = "\n".join(f"{d.get('title', '')}\n{d.get('text', '')}" for d in docs.values())
    everything = everything.casefold()
    for row in own_questions(answers.OWN_QUESTIONS):
        if row["kind"] == "answerable":
            assert all(answer in docs[row["doc_id"]]["text"] for answer in row["answers"]), row
        else:
            assert row["absent"].casefold() not in everything, row
