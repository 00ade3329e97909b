"""The ensemble reader: the feature reader shortlists, the cross-encoder reads the shortlist,
and the two scores are blended.

Each candidate's score is the mean of the cross-encoder's logit and the feature reader's
log-odds (`blend_logits`); its probability is the logistic of that score. The cross-encoder
reads only the feature reader's best `SHORTLIST` candidates, because its cost grows with the
pairs it reads (~40 candidates a news question); a candidate left off the shortlist is given
the lowest logit read, as if it were no better than the worst one read.

Measured on 954 answerable SQuAD v1.1 dev questions' engine candidates (docs/quality.md, "A
reader of our own"): top-1 0.736 (features), 0.758 (cross-encoder), 0.784 (this blend over all
candidates), 0.782 (over the feature reader's best 8).

Its calibration is `ensemble-calibration.json` in the cross-encoder's folder, so a reader
trained anew ships the ensemble's thresholds beside its weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.reading.base import Reader, ReaderCalibration
from index.reading.cross_encoder import SHIPPED_DIR, CrossEncoderReader
from index.reading.features import FeatureReader

if TYPE_CHECKING:
    from index.answer import QuestionAnalysis, SentenceCandidate

log = logging.getLogger(__name__)

CALIBRATION_FILE = "ensemble-calibration.json"
# Candidates the cross-encoder reads: the feature reader's best 8 keep 0.782 of the 0.784 top-1
# of reading all (SQuAD dev, 23.4 candidates a question on average; docs/quality.md).
SHORTLIST = 8
# The cross-encoder's share of the blended score; an even blend, not tuned (docs/quality.md).
CROSS_ENCODER_SHARE = 0.5
# Feature probabilities are clipped this far from 0 and 1 before their log-odds are taken.
_EPSILON = 1e-6


def shortlist(feature_probabilities: np.ndarray, size: int = SHORTLIST) -> np.ndarray:
    """Positions of the `size` most probable candidates, best first (ties: earlier first).

    feature_probabilities: float (n,). Returns int64 (min(size, n),).
    """
    order = np.argsort(-np.asarray(feature_probabilities, dtype=np.float64), kind="stable")
    return order[:size].astype(np.int64)


def blend_logits(
    feature_probabilities: np.ndarray,
    read: np.ndarray,
    read_logits: np.ndarray,
    share: float = CROSS_ENCODER_SHARE,
) -> np.ndarray:
    """The ensemble's score of each candidate: float64 (n,).

    feature_probabilities: float (n,), the feature reader's. read: int (k,), the positions
    the cross-encoder read, with their logits `read_logits` float (k,). A position not read is
    given the lowest logit read. score = share × logit + (1 − share) × log-odds(features).
    """
    p = np.clip(np.asarray(feature_probabilities, dtype=np.float64), _EPSILON, 1 - _EPSILON)
    logits = np.asarray(read_logits, dtype=np.float64)
    z = np.full(len(p), logits.min() if len(logits) else 0.0)
    z[np.asarray(read, dtype=np.int64)] = logits
    return share * z + (1.0 - share) * np.log(p / (1.0 - p))


class EnsembleReader(Reader):
    """The feature reader's shortlist read by the cross-encoder; scores blended.

    `model` as for `CrossEncoderReader`. Raises ReaderError when either reader cannot load.
    """

    name = "ensemble"

    def __init__(self, model: Path | str | None = None, cache_dir: Path | None = None) -> None:
        """Load both readers and the ensemble's calibration (the model folder's, else the
        shipped one's, said in the log)."""
        self.features = FeatureReader()
        self.cross_encoder = CrossEncoderReader(model, cache_dir)
        folder = SHIPPED_DIR if model is None else Path(model)
        own = folder / CALIBRATION_FILE
        if not own.is_file():  # a hub name, or a folder without one
            log.warning("the reader %s has no %s of its own; using the shipped reader's",
                        model, CALIBRATION_FILE)
            own = SHIPPED_DIR / CALIBRATION_FILE
        self.calibration = ReaderCalibration.load(own)

    def probabilities(
        self, question: QuestionAnalysis, candidates: Sequence[SentenceCandidate]
    ) -> np.ndarray:
        """The logistic of each candidate's blended score: float64 (n,)."""
        if not candidates:
            return np.zeros(0)
        feature_probabilities = self.features.probabilities(question, candidates)
        read = shortlist(feature_probabilities)
        logits = self.cross_encoder.scorer.logits(question.text,
                                                  [candidates[i].text for i in read])
        return 1.0 / (1.0 + np.exp(-blend_logits(feature_probabilities, read, logits)))
