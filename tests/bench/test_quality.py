"""Tests of the quality evaluation: pure metrics on tiny data, the pipeline on synthetic data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bench import quality
from bench.quality import EvalQuestion, Outcome
from index.config import Settings
from tests.index.fakes import HashingEmbedder

SHARED_SQUAD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "squad"


def outcome(
    ranked: tuple[str, ...] = (),
    passages: tuple[str, ...] = (),
    quotes: tuple[str, ...] = (),
    answered: bool = True,
    ms: float = 10.0,
) -> Outcome:
    return Outcome(ranked, passages, quotes, answered, ms)


# --- gold matching


def test_contains_answer_ignores_case_and_spacing() -> None:
    assert quality.contains_answer("The  Buffalo\nBills won.", ["buffalo bills"])
    assert not quality.contains_answer("The Bills won.", ["Buffalo Bills"])


def test_contains_answer_never_matches_a_blank_gold() -> None:
    assert not quality.contains_answer("anything", ["", "  "])
    assert not quality.contains_answer("anything", [])


# --- ranking metrics


def test_recall_and_reciprocal_rank() -> None:
    ranked = ["a", "b", "c", "d"]
    assert quality.recall_at(ranked, ["c"], 1) == 0.0
    assert quality.recall_at(ranked, ["c"], 3) == 1.0
    assert quality.reciprocal_rank(ranked, ["c"], 10) == pytest.approx(1 / 3)
    assert quality.reciprocal_rank(ranked, ["c"], 2) == 0.0
    assert quality.reciprocal_rank(ranked, ["z"], 10) == 0.0
    assert quality.first_rank(ranked, ["d", "b"]) == 2


def test_retrieval_metrics_average_over_questions() -> None:
    outcomes = [outcome(("a", "b")), outcome(("b", "a")), outcome(("c",))]
    metrics = quality.retrieval_metrics(outcomes, [["a"], ["a"], ["a"]])
    assert metrics == {"recall@1": 0.3333, "recall@5": 0.6667, "mrr@10": 0.5}


def test_squad_metrics_count_quote_hits_and_abstentions() -> None:
    outcomes = [
        outcome(("p1",), quotes=("It was 1973.", "Other.")),
        outcome(("p2",), quotes=("Other.", "In Paris.")),
        outcome(("p1",), answered=False, ms=30.0),
    ]
    metrics = quality.squad_metrics(outcomes, ["p1", "p2", "p1"], [["1973"], ["paris"], ["x"]])
    assert metrics["recall@1"] == 1.0
    assert metrics["quote_hit@1"] == 0.3333
    assert metrics["quote_hit@3"] == 0.6667
    assert metrics["abstain_rate"] == 0.3333
    assert metrics["p50_ms"] == 10.0
    assert metrics["n_questions"] == 3


# --- news hits and abstention accounting


def test_passage_hit_uses_top_k_passages_and_every_quote() -> None:
    result = outcome(passages=("nothing here", "no", "the Buffalo Bills"), quotes=())
    assert not quality.passage_hit(result, ["Buffalo Bills"], 1)
    assert quality.passage_hit(result, ["Buffalo Bills"], 3)
    quoted = outcome(passages=("nothing",), quotes=("a quote about the buffalo bills",))
    assert quality.passage_hit(quoted, ["Buffalo Bills"], 1)


def test_abstention_metrics_separate_correct_and_false() -> None:
    answered = [True, False, False, True, False]
    answerable = [True, True, False, False, False]
    metrics = quality.abstention_metrics(answered, answerable)
    assert metrics["abstain_rate"] == 0.6
    assert metrics["n_unanswerable"] == 3
    assert metrics["correct_abstentions"] == 2
    assert metrics["correct_abstention_rate"] == 0.6667
    assert metrics["n_answerable"] == 2
    assert metrics["false_abstentions"] == 1
    assert metrics["false_abstention_rate"] == 0.5


def test_abstention_metrics_without_unanswerable_questions() -> None:
    metrics = quality.abstention_metrics([True, False], [True, True])
    assert metrics["correct_abstention_rate"] is None
    assert metrics["false_abstention_rate"] == 0.5


def test_news_metrics_skip_unanswerable_in_hit_rates() -> None:
    outcomes = [
        outcome(passages=("Paris is the capital",), quotes=("Paris is the capital",)),
        outcome(passages=("nothing",), answered=False),
        outcome(passages=("Lyon",), answered=False),
    ]
    answers = [["Paris"], ["Rome"], []]
    metrics = quality.news_metrics(outcomes, answers, in_corpus=[True, False, False])
    assert metrics["hit@1"] == 0.5
    assert metrics["hit@1_gold_in_corpus"] == 1.0
    assert metrics["abstain_rate_gold_absent"] == 1.0
    assert metrics["correct_abstentions"] == 1
    assert metrics["false_abstentions"] == 1
    assert metrics["n_questions"] == 3


def test_gold_in_corpus() -> None:
    questions = [EvalQuestion("q1", ("Paris",)), EvalQuestion("q2", ("Rome",)),
                 EvalQuestion("q3", ())]
    assert quality.gold_in_corpus(questions, ["In PARIS today", "Lyon"]) == [True, False, False]


# --- calibration helpers


def test_threshold_keeping_allows_the_given_share_below() -> None:
    scores = [i / 100 for i in range(100)]  # 0.00 … 0.99
    threshold = quality.threshold_keeping(scores, 0.05)
    assert threshold == pytest.approx(0.05)
    assert quality.rate_below(scores, threshold) == 0.05
    with pytest.raises(ValueError):
        quality.threshold_keeping([], 0.05)


def test_auc() -> None:
    assert quality.auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert quality.auc([0.1], [0.9]) == 0.0
    assert quality.auc([0.5], [0.5]) == 0.5


def test_compare_signals_reports_each_candidate() -> None:
    answerable = [{"dense5": 0.6 + i / 100, "dense1": 0.6, "coverage1": 0.9, "coverage5": 0.9,
                   "answer5": 0.5, "answer_score": 0.55 + i / 200} for i in range(20)]
    unrelated = [{"dense5": 0.2, "dense1": 0.2, "coverage1": 0.1, "coverage5": 0.2,
                  "answer5": 0.5, "answer_score": 0.35}] * 10
    table = quality.compare_signals(answerable, unrelated)
    for signal in ("dense5", quality.ENGINE_SIGNAL):
        assert table[signal]["unrelated_abstention_rate"] == 1.0
        assert table[signal]["false_abstention_rate"] <= 0.05
        assert table[signal]["auc"] == 1.0
    assert table["answer5"]["auc"] == 0.5  # the same for both: no signal


def test_spread_takes_items_across_the_whole_sequence() -> None:
    assert quality.spread(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert quality.spread([1, 2], 5) == [1, 2]
    assert quality.spread([1, 2], None) == [1, 2]


# --- data shaping


def squad_document() -> dict[str, object]:
    """A two-article SQuAD-format document made up for the tests."""
    return {
        "version": "1.1",
        "data": [
            {
                "title": "Harbour_(Port_Ellin)",
                "paragraphs": [
                    {
                        "context": "The harbour bridge in Port Ellin reopened on Monday after "
                        "six months of repairs. Engineers replaced the steel cables.",
                        "qas": [{"id": "1", "question": "When did the harbour bridge reopen?",
                                 "answers": [{"answer_start": 0, "text": "Monday"}]}],
                    },
                    {
                        "context": "Ferry services ran during the closure of the bridge and "
                        "will stop next week, the mayor said.",
                        "qas": [{"id": "2", "question": "Which services ran during the closure?",
                                 "answers": [{"answer_start": 0, "text": "Ferry services"},
                                             {"answer_start": 0, "text": "Ferry services"}]}],
                    },
                ],
            },
            {
                "title": "Apples",
                "paragraphs": [
                    {
                        "context": "Farmers in the Tamsin valley picked a record apple harvest. "
                        "The cooperative counted four thousand tonnes of apples.",
                        "qas": [{"id": "3", "question": "How many tonnes of apples were counted?",
                                 "answers": [{"answer_start": 0, "text": "four thousand"}]}],
                    }
                ],
            },
        ],
    }


def test_squad_records_give_every_paragraph_its_own_id() -> None:
    records, questions = quality.squad_records(squad_document(), "title")
    assert [r["title"] for r in records] == ["Harbour (Port Ellin)"] * 2 + ["Apples"]
    assert len({r["url"] for r in records}) == 3
    assert len({q.gold_ids[0] for q in questions}) == 3
    assert questions[1].answers == ("Ferry services",)  # duplicate golds collapsed
    untitled, _ = quality.squad_records(squad_document(), "none")
    assert all(r["title"] == "" for r in untitled)
    prefixed, prefixed_qs = quality.squad_records(squad_document(), "prefix")
    assert prefixed[2]["text"].startswith("Apples.\n\n")
    assert [q.gold_ids for q in prefixed_qs] == [q.gold_ids for q in questions]


def test_cached_queries_embed_each_question_once() -> None:
    inner = HashingEmbedder()
    cached = quality.CachedQueries(inner)
    cached.prime(["Which  bridge reopened?", "Which bridge reopened?", "Apples?"])
    assert inner.encoded == 2
    vector = cached.encode_query("Which bridge reopened?")
    assert inner.encoded == 2
    assert vector.tolist() == inner.encode_query("Which bridge reopened?").tolist()
    assert cached.dim == inner.dim  # everything else passes through


# --- the whole pipeline on synthetic data, with the fast test embedder


@pytest.fixture
def eval_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(quality, "EVAL_DIR", tmp_path / "eval")
    return Settings(_env_file=None, index_dir=tmp_path / "unused", min_score=0.0,
                    min_answer_score=0.0)


def write_gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    return path


def test_eval_squad_on_synthetic_data(tmp_path: Path, eval_settings: Settings) -> None:
    data = write_gz(tmp_path / "squad.json.gz", json.dumps(squad_document()))
    result = quality.eval_squad(eval_settings, data, embedder=HashingEmbedder())
    assert result["n_questions"] == 3
    assert result["recall@1"] == 1.0
    assert result["mrr@10"] == 1.0
    assert result["quote_hit@3"] > 0
    again = quality.eval_squad(eval_settings, data, embedder=HashingEmbedder(), limit=1)
    assert again["n_questions"] == 1
    assert len(list((tmp_path / "eval").iterdir())) == 1  # the cached index was reused


def test_eval_news_on_synthetic_data(tmp_path: Path, eval_settings: Settings) -> None:
    corpus = [
        {"url": "https://example.org/a", "title": "Bridge", "source": "example.org",
         "publish_date": "2023/01/02",
         "text": "The harbour bridge in Port Ellin reopened on Monday after repairs."},
        {"url": "https://example.org/b", "title": "Apples", "source": "example.org",
         "publish_date": "2023/01/03",
         "text": "Farmers in the Tamsin valley picked a record apple harvest this autumn."},
    ]
    questions = [
        {"question": "Which bridge reopened on Monday?", "answers": ["harbour bridge"]},
        {"question": "Who picked a record apple harvest?", "answers": ["Farmers"]},
        {"question": "Who won the chess final?", "answers": ["Magnus"]},
        {"question": "What is unanswerable here?", "answers": []},
    ]
    corpus_path = write_gz(
        tmp_path / "corpus.jsonl.gz", "".join(json.dumps(r) + "\n" for r in corpus)
    )
    questions_path = tmp_path / "questions.jsonl"
    questions_path.write_text("".join(json.dumps(q) + "\n" for q in questions))
    result = quality.eval_news(
        eval_settings, corpus_path, questions_path, embedder=HashingEmbedder()
    )
    assert result["n_questions"] == 4
    assert result["n_answerable"] == 3
    assert result["n_unanswerable"] == 1
    assert result["n_gold_in_corpus"] == 2
    assert result["hit@1_gold_in_corpus"] == 1.0
    assert set(result) >= {"hit@1", "hit@5", "hit@10", "abstain_rate", "p50_ms", "p95_ms"}


def test_calibrate_on_synthetic_data(
    tmp_path: Path, eval_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import index.embedding

    monkeypatch.setattr(index.embedding, "make_embedder", lambda *a, **k: HashingEmbedder())
    squad = write_gz(tmp_path / "squad.json.gz", json.dumps(squad_document()))
    corpus = write_gz(tmp_path / "corpus.jsonl.gz", json.dumps(
        {"url": "https://example.org/a", "title": "Chess", "source": "example.org",
         "text": "Magnus won the chess final in Oslo on Sunday."}) + "\n")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "Who won the chess final?",
                                     "answers": ["Magnus"]}) + "\n")
    report = quality.calibrate(eval_settings, squad, corpus, questions, sample=None)
    assert report["signal_matches_engine"] == 1.0
    assert report["n_squad_answerable"] == 3
    assert report["n_news_answerable"] == 1
    assert report["n_unrelated"] == 4
    signal = quality.ENGINE_SIGNAL
    assert report["min_answer_score"] == min(report["news_in_domain"][signal]["threshold"],
                                             report["squad_in_domain"][signal]["threshold"])
    assert report["at_min_answer_score"]["news_false_abstention_rate"] == 0.0
    assert set(report["by_threshold"]) == {"0.30", "0.35", "0.40", "0.45", "0.50", "0.55"}
    decided = report["engine_decisions"]
    assert decided["squad_false_abstention_rate"]["n"] == 3
    assert decided["news_false_abstention_rate"]["n"] == 1
    assert decided["news_to_squad_abstention_rate"]["n"] == 1
    assert decided["squad_to_news_abstention_rate"]["n"] == 3


def test_engine_decisions_count_abstentions_and_their_reasons() -> None:
    answered = quality.Outcome((), (), ("q",), True, 1.0)
    unmentioned = quality.Outcome((), (), (), False, 1.0, "not_mentioned")
    irrelevant = quality.Outcome((), (), (), False, 1.0, "nothing_relevant")
    report = quality.engine_decisions({"a": [answered, unmentioned, irrelevant, unmentioned],
                                       "b": [answered]})
    assert report["a"] == {"rate": 0.75, "n": 4,
                           "by_reason": {"not_mentioned": 2, "nothing_relevant": 1}}
    assert report["b"] == {"rate": 0.0, "n": 1, "by_reason": {}}


def test_answered_by_topic_names_where_unrelated_questions_found_answers() -> None:
    questions = [EvalQuestion("q", (), topic=topic) for topic in ("Bowl", "Bowl", "Tesla", "Oil")]
    outcomes = [quality.Outcome((), (), (), answered, 1.0)
                for answered in (True, True, True, False)]
    assert quality.answered_by_topic(questions, outcomes, top=2) == [
        {"topic": "Bowl", "answered": 2, "asked": 2}, {"topic": "Tesla", "answered": 1, "asked": 1}]


# --- the real data, with the real model


@pytest.mark.slow
def test_eval_squad_smoke_on_real_data(tmp_path: Path, eval_settings: Settings) -> None:
    source = SHARED_SQUAD / "dev-v1.1.json.gz"
    if not source.exists():
        pytest.skip(f"shared SQuAD data not found at {source}")
    document = quality.read_json_gz(source)
    document["data"] = document["data"][:2]  # two Wikipedia articles keep it quick to embed
    data = write_gz(tmp_path / "squad-small.json.gz", json.dumps(document))
    result = quality.eval_squad(eval_settings.model_copy(update={"min_score": 0.3}), data,
                                limit=60)
    assert result["n_questions"] == 60
    assert result["recall@1"] >= 0.6
    assert result["mrr@10"] >= result["recall@1"]
    assert 0.0 <= result["abstain_rate"] <= 1.0


def test_cache_key_follows_backend_and_int8_calibration(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from index.embedding import openvino_backend

    int8 = Settings(_env_file=None, embed_backend="openvino-int8")
    bf16 = Settings(_env_file=None, embed_backend="openvino")
    before, bf16_before = quality.cache_key("data", int8), quality.cache_key("data", bf16)
    assert before != bf16_before
    assert before == quality.cache_key("data", int8)
    changed = tmp_path / "calibration.txt"
    changed.write_text("Other calibration text.\n", encoding="utf-8")
    monkeypatch.setattr(openvino_backend, "CALIBRATION_TEXT", changed)
    assert quality.cache_key("data", int8) != before
    assert quality.cache_key("data", bf16) == bf16_before
