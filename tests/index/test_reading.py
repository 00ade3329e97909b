"""The reader seam: readers by name, their calibration files, the cross-encoder's probability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index.answer import QuestionAnalysis, SentenceCandidate
from index.config import Settings
from index.models import Span
from index.questions import abstention_threshold
from index.reading import ReaderCalibration, ReaderError, make_reader, reader_for
from index.reading.cross_encoder import no_answer_softmax
from index.reading.features import CALIBRATION_FILE, FeatureReader


def candidates(*texts: str) -> list[SentenceCandidate]:
    return [SentenceCandidate(1, 0, 0.5, Span(0, len(t)), t) for t in texts]


def test_the_features_reader_ships_its_calibration_and_scores_each_candidate() -> None:
    reader = make_reader("features")
    assert isinstance(reader, FeatureReader)
    assert reader.calibration == ReaderCalibration.load(CALIBRATION_FILE)
    question = QuestionAnalysis.of("When will the bridge reopen?", {"bridg": 1.0, "reopen": 2.0})
    probabilities = reader.probabilities(
        question, candidates("The weather was fine.", "The bridge will reopen on Monday."))
    assert probabilities.shape == (2,) and probabilities.dtype == np.float64
    assert probabilities[1] > probabilities[0]
    assert reader.answer_probability(probabilities) == probabilities.max()
    assert reader.probabilities(question, []).shape == (0,)


def test_an_unknown_reader_is_one_clear_error() -> None:
    with pytest.raises(ReaderError, match="unknown reader 'oracle': choose one of features"):
        make_reader("oracle")


def test_a_calibration_file_that_is_broken_is_named(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"min_answer_score": 0.3}), encoding="utf-8")
    with pytest.raises(ReaderError, match=r"calibration.json: 'high_margin'"):
        ReaderCalibration.load(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ReaderError, match="cannot read the reader calibration"):
        ReaderCalibration.load(path)


def test_the_calibration_blends_the_passage_and_the_reader() -> None:
    calibration = ReaderCalibration(min_answer_score=0.4, high_margin=0.2, medium_margin=0.1,
                                    quote_min_ratio=0.3, dense_share=0.25)
    assert calibration.answer_score(0.8, 0.4) == pytest.approx(0.25 * 0.8 + 0.75 * 0.4)


def test_the_threshold_is_the_setting_when_set_else_the_readers(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, index_dir=tmp_path)
    reader = reader_for(settings)
    assert abstention_threshold(settings, reader) == reader.calibration.min_answer_score
    assert abstention_threshold(settings.model_copy(update={"min_answer_score": 0.7}),
                                reader) == 0.7


def test_the_no_answer_softmax_sums_to_one_with_none() -> None:
    p, none = no_answer_softmax(np.array([0.0, 0.0]))
    assert p == pytest.approx([1 / 3, 1 / 3]) and none == pytest.approx(1 / 3)
    p, none = no_answer_softmax(np.array([800.0, -5.0]))  # no overflow
    assert p[0] == pytest.approx(1.0) and none == pytest.approx(0.0)
    p, none = no_answer_softmax(np.zeros(0))
    assert p.shape == (0,) and none == 1.0


def test_a_reader_that_cannot_load_is_one_line_when_the_engine_opens(
    settings: Settings, tmp_path: Path
) -> None:
    from index.engine import Engine, EngineError
    from tests.index.fakes import HashingEmbedder

    Engine.open(settings, create=True, embedder=HashingEmbedder()).reindex()
    broken = settings.model_copy(update={"reader": "cross-encoder",
                                         "reader_model": str(tmp_path / "nowhere")})
    with pytest.raises(EngineError, match="cannot load the cross-encoder reader"):
        Engine.open(broken, embedder=HashingEmbedder())


def test_the_shortlist_is_the_feature_readers_best_first_earlier_on_ties() -> None:
    from index.reading.ensemble import shortlist

    assert shortlist(np.array([0.1, 0.9, 0.5, 0.9]), 3).tolist() == [1, 3, 2]
    assert shortlist(np.array([0.2]), 8).tolist() == [0]
    assert shortlist(np.zeros(0), 8).shape == (0,)


def test_the_blend_is_the_mean_of_logit_and_log_odds_and_unread_ones_get_the_lowest() -> None:
    from index.reading.ensemble import blend_logits

    features = np.array([0.5, 0.8, 0.2])
    scores = blend_logits(features, np.array([1, 0]), np.array([2.0, -1.0]))
    log_odds = np.log(features / (1 - features))
    assert scores == pytest.approx(0.5 * np.array([-1.0, 2.0, -1.0]) + 0.5 * log_odds)
    # A candidate left unread never outscores one read: it was behind on both counts.
    assert scores[2] < min(scores[0], scores[1])
    # Probabilities of exactly 0 or 1 stay finite.
    assert np.isfinite(blend_logits(np.array([0.0, 1.0]), np.array([0, 1]),
                                    np.array([0.0, 0.0]))).all()


def test_the_ensemble_reads_the_shortlist_with_the_shipped_model_and_its_own_calibration(
    tmp_path: Path,
) -> None:
    from index.reading.ensemble import CALIBRATION_FILE as ENSEMBLE_FILE
    from index.reading.ensemble import EnsembleReader

    reader = make_reader("ensemble", cache_dir=tmp_path)
    assert isinstance(reader, EnsembleReader)
    from index.reading.cross_encoder import SHIPPED_DIR

    assert reader.calibration == ReaderCalibration.load(SHIPPED_DIR / ENSEMBLE_FILE)
    question = QuestionAnalysis.of("When will the bridge reopen?", {"bridg": 1.0, "reopen": 2.0})
    texts = [f"Filler sentence number {i} about the weather." for i in range(12)]
    texts[9] = "The bridge will reopen on Monday, officials said."
    read: list[int] = []
    logits = reader.cross_encoder.scorer.logits

    def counting(q: str, sentences: list[str]) -> np.ndarray:
        read.append(len(sentences))
        return logits(q, sentences)

    reader.cross_encoder.scorer.logits = counting  # type: ignore[method-assign]
    probabilities = reader.probabilities(question, candidates(*texts))
    assert read == [8]  # only the shortlist is read
    assert probabilities.shape == (12,) and int(probabilities.argmax()) == 9
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_a_reader_folder_without_an_ensemble_calibration_uses_the_shipped_one_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from index.reading.cross_encoder import SHIPPED_DIR
    from index.reading.ensemble import CALIBRATION_FILE as ENSEMBLE_FILE

    folder = tmp_path / "reader"
    shutil.copytree(SHIPPED_DIR, folder)
    (folder / ENSEMBLE_FILE).unlink()
    with caplog.at_level("WARNING"):
        reader = make_reader("ensemble", str(folder))
    assert reader.calibration == ReaderCalibration.load(SHIPPED_DIR / ENSEMBLE_FILE)
    assert f"has no {ENSEMBLE_FILE} of its own" in caplog.text
