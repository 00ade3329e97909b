"""The reader seam: a question and its candidate sentences in, a probability per candidate out.

A reader says how likely each candidate sentence of the retrieved passages holds the answer.
Each reader ships its own calibration (`ReaderCalibration`, a JSON file beside its weights):
the abstention threshold and confidence margins over the answer score, the share of the
passage similarity in that score, and how far below the best a further quote may be; nothing
tuned for one reader applies to another.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from index.answer import QuestionAnalysis, SentenceCandidate


class ReaderError(Exception):
    """A reader cannot be loaded (missing or unreadable weights or calibration)."""


@dataclass(frozen=True, slots=True)
class ReaderCalibration:
    """What a reader's probabilities mean for answering, tuned for that reader.

    The answer score is `dense_share` × the best passage's cosine to the question plus the
    rest × the reader's answer probability (both 0..1); below `min_answer_score` the answer
    abstains, at `min_answer_score + high_margin` it is "high", at `+ medium_margin` "medium".
    A sentence is quoted after the first only when its probability is at least
    `quote_min_ratio` × the first's. `source` says how the values were chosen.
    """

    min_answer_score: float
    high_margin: float
    medium_margin: float
    quote_min_ratio: float
    dense_share: float
    source: str = ""

    @classmethod
    def load(cls, path: Path) -> ReaderCalibration:
        """Read a calibration file. Raises ReaderError naming the file and what is wrong."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{f.name: (str(data.get(f.name, "")) if f.name == "source"
                                   else float(data[f.name])) for f in fields(cls)})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReaderError(f"cannot read the reader calibration {path}: {exc}") from exc

    def answer_score(self, best_cosine: float, answer_probability: float) -> float:
        """How likely the question is answered at all (0..1 in practice)."""
        return self.dense_share * best_cosine + (1.0 - self.dense_share) * answer_probability


class Reader(ABC):
    """Chooses, among a question's candidate sentences, the ones that answer it."""

    name: str
    calibration: ReaderCalibration

    @abstractmethod
    def probabilities(
        self, question: QuestionAnalysis, candidates: Sequence[SentenceCandidate]
    ) -> np.ndarray:
        """P(the sentence holds the answer) of each candidate: float64 (n,), in 0..1.

        Candidates come in passage order (best passage first), sentences in article order
        within each passage.
        """

    def answer_probability(self, probabilities: np.ndarray) -> float:
        """How likely some candidate answers, from `probabilities` (default: the best one)."""
        return float(probabilities.max()) if len(probabilities) else 0.0
