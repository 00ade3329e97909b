"""The feature reader: logistic regression over hand-made features of each candidate sentence.

Its weights (`features-ranker.json`) are fitted by `python -m bench.answers train`; its
calibration (`features-calibration.json`) sits beside them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.answer import FEATURES, QuestionAnalysis, SentenceCandidate, sentence_features
from index.reading.base import Reader, ReaderCalibration

RANKER_FILE = Path(__file__).with_name("features-ranker.json")
CALIBRATION_FILE = Path(__file__).with_name("features-calibration.json")


@dataclass(frozen=True, slots=True)
class SentenceRanker:
    """Logistic regression over `FEATURES`: P(the sentence holds the answer).

    Trained by `python -m bench.answers train` on half of SQuAD v1.1 dev (split by article;
    the other half is where it is measured); the weights ship in `features-ranker.json`.
    """

    features: tuple[str, ...]
    coefficients: np.ndarray  # float64 (len(features),), on the raw feature scale
    intercept: float

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """P(answer) of each row of a (n, len(FEATURES)) array: float64 (n,)."""
        logits = features @ self.coefficients + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def to_json(self, **provenance: Any) -> str:
        """The ranker as `features-ranker.json` holds it, with how it was made."""
        return json.dumps({"features": list(self.features),
                           "coefficients": [round(float(c), 6) for c in self.coefficients],
                           "intercept": round(self.intercept, 6), **provenance}, indent=2) + "\n"


@functools.cache
def default_ranker() -> SentenceRanker:
    """The shipped ranker (`features-ranker.json`).

    Raises ValueError when the file's features are not this code's `FEATURES`.
    """
    data = json.loads(RANKER_FILE.read_text(encoding="utf-8"))
    if tuple(data["features"]) != FEATURES:
        raise ValueError(f"{RANKER_FILE.name} was trained on other features: retrain it "
                         "with `python -m bench.answers train`")
    return SentenceRanker(FEATURES, np.asarray(data["coefficients"], dtype=np.float64),
                          float(data["intercept"]))


class FeatureReader(Reader):
    """The shipped logistic-regression ranker over `index.answer.FEATURES`."""

    name = "features"

    def __init__(self, ranker: SentenceRanker | None = None,
                 calibration: ReaderCalibration | None = None) -> None:
        """The shipped ranker and calibration unless given."""
        self.ranker = ranker or default_ranker()
        self.calibration = calibration or ReaderCalibration.load(CALIBRATION_FILE)

    def probabilities(
        self, question: QuestionAnalysis, candidates: Sequence[SentenceCandidate]
    ) -> np.ndarray:
        """The ranker's P(answer) of each candidate: float64 (n,)."""
        if not candidates:
            return np.zeros(0)
        return self.ranker.probabilities(sentence_features(candidates, question))
