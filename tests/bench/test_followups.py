"""The follow-up harness: its pairs file, its metrics, and a whole run on tiny synthetic data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bench import followups, quality
from bench.followups import FollowUpPair, follow_up_metrics, read_pairs
from bench.quality import Outcome
from index import followup
from index.config import Settings
from tests.index.fakes import HashingEmbedder

ROOT = Path(__file__).resolve().parents[2]


def outcome(quotes: tuple[str, ...] = (), passages: tuple[str, ...] = (),
            answered: bool = True) -> Outcome:
    return Outcome((), passages, quotes, answered, 0.0)


def write_pairs(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# --- the pairs


def test_the_shipped_pairs_are_enough_and_well_formed() -> None:
    pairs = read_pairs(followups.PAIRS)
    assert len(pairs) >= 30
    assert {pair.corpus for pair in pairs} == {"samples", "news-8w"}
    assert len({(pair.first, pair.follow_up) for pair in pairs}) == len(pairs)


def test_every_samples_gold_is_in_the_sample_articles() -> None:
    """Gold phrases are short and verbatim (bench.quality matching: case and spaces aside)."""
    texts = " ".join(
        quality.normalize(path.read_text(encoding="utf-8"))
        for path in followups.SAMPLES_DIR.iterdir()
    )
    for pair in read_pairs(followups.PAIRS):
        assert all(len(answer) <= 40 for answer in pair.answers), pair
        if pair.corpus == "samples":
            assert any(quality.normalize(a) in texts for a in pair.answers), pair


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"corpus": "elsewhere", "first": "a", "follow_up": "b", "answers": ["c"]}, "corpus"),
        ({"corpus": "samples", "first": " ", "follow_up": "b", "answers": ["c"]}, "need text"),
        ({"corpus": "samples", "first": "a", "follow_up": "b", "answers": []}, "gold phrases"),
        ({"corpus": "samples", "first": "a", "follow_up": "b", "answers": "c"}, "gold phrases"),
    ],
)
def test_malformed_pairs_are_refused_with_their_line(
    tmp_path: Path, row: dict[str, object], problem: str
) -> None:
    good = {"corpus": "samples", "first": "a", "follow_up": "b", "answers": ["c"]}
    path = write_pairs(tmp_path / "pairs.jsonl", [good, row])
    with pytest.raises(ValueError, match=f"line 2: .*{problem}"):
        read_pairs(path)


# --- the metrics


def test_follow_up_metrics_count_quotes_and_top_passages() -> None:
    outcomes = [
        outcome(quotes=("Crews restored power by Monday afternoon.",)),  # hit at 1
        outcome(quotes=("Storm.", "Power was back within two days.")),  # hit at 3, not 1
        outcome(passages=("within two days",)),  # only a passage: hit@5 only
        outcome(answered=False),
    ]
    golds = [["Monday afternoon", "within two days"]] * 4
    assert follow_up_metrics(outcomes, golds) == {
        "quote_hit@1": 0.25, "quote_hit@3": 0.5, "hit@5": 0.75, "answered": 0.75,
    }


# --- a whole run, with the fast test embedder


ARTICLES = {
    "brook.txt": ("Brook council meets\n\nThe council of Brook met on Monday about the harbour."
                  "\n\nThe mayor said the work would be done by Friday.\n"),
    "brindle.txt": ("Brindle council meets\n\nThe council of Brindle met on Monday about the "
                    "library.\n\nThe mayor said the work would be done by Saturday.\n"),
}


def test_a_run_reports_each_corpus_without_and_with_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quality, "EVAL_DIR", tmp_path / "eval")
    samples = tmp_path / "samples"
    samples.mkdir()
    for name, text in ARTICLES.items():
        (samples / name).write_text(text, encoding="utf-8")
    news = tmp_path / "corpus.jsonl.gz"
    with gzip.open(news, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"url": "https://example.org/a", "title": "Comet",
                                 "source": "example.org", "publish_date": "2023/01/02",
                                 "text": "A teacher in Oslen found a comet. It will be "
                                 "brightest in March."}) + "\n")
    pairs = [
        # "Why?" alone has nothing to go on; in its conversation it finds Brook's article.
        FollowUpPair("samples", "When did the council of Brook meet?", "Why?", ("harbour",)),
        FollowUpPair("news-8w", "Who found the comet in Oslen?", "When will it be brightest?",
                     ("March",)),
    ]
    settings = Settings(_env_file=None, index_dir=tmp_path / "unused", min_score=0.05,
                        min_answer_score=0.0)
    default = followup.CONTEXT_BOOST
    report = followups.evaluate(settings, pairs, samples_dir=samples, news_corpus=news,
                                boosts=(default, 0.0), embedder=HashingEmbedder())
    assert set(report) == {"samples", "news-8w", "settings"}
    brook = report["samples"]
    assert brook["pairs"] == 1
    assert brook["without_context"]["quote_hit@1"] == 0.0
    assert brook[f"with_context_boost_{default:g}"]["quote_hit@1"] == 1.0
    assert "with_context_boost_0" in brook
    assert report["news-8w"]["pairs"] == 1
    assert default == followup.CONTEXT_BOOST  # the comparison of boosts restored it
    only = followups.evaluate(settings, pairs, samples_dir=samples, news_corpus=news,
                              only=("samples",), embedder=HashingEmbedder())
    assert set(only) == {"samples", "settings"}
