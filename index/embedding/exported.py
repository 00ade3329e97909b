"""Serving a sentence-transformers model as an exported graph, without torch.

The model's transformer is exported once (this step needs torch) to a cache folder named after
the model and a hash of its files; afterwards texts are tokenised with `tokenizers`, run through
the exported graph by an OpenVINO or ONNX Runtime backend, and pooled and normalised with numpy,
exactly as sentence-transformers' Transformer → Pooling → Normalize modules do.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tokenizers import Encoding, Tokenizer

from index.embedding.base import (
    Embedder,
    EmbeddingError,
    forbid_downloads,
    model_inputs,
    normalize_rows,
    quiet_model_loading,
)

log = logging.getLogger(__name__)

# Bump when the export changes, so caches written by an older export are not reused.
EXPORT_VERSION = "1"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
Pooling = Literal["mean", "cls"]
ExportFormat = Literal["openvino", "onnx"]
# Modules that do not change the pooled vector beyond what is computed here.
_SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}


@dataclass(frozen=True)
class ModelSpec:
    """What serving a sentence-transformers folder needs: where it is, its pooling and limits."""

    name: str
    folder: Path
    transformer_folder: Path
    pooling: Pooling
    max_tokens: int
    dim: int


def _read_json(path: Path) -> dict:
    """A JSON file's object, or {} when the file does not exist."""
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def local_model_folder(model_path: Path | str) -> Path:
    """The model's folder on disk: a path, or a name already in the Hugging Face cache."""
    path = Path(model_path)
    if path.is_dir():
        return path
    forbid_downloads()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(model_path), local_files_only=True))
    except Exception as exc:
        raise EmbeddingError(
            f"embedding model {model_path!r} is neither a folder nor in the local model cache"
        ) from exc


def pooling_mode(config: dict) -> Pooling:
    """The pooling a sentence-transformers Pooling config asks for (mean or cls only)."""
    modes = [key for key, on in config.items() if key.startswith("pooling_mode_") and on]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise EmbeddingError(
        f"unsupported pooling {modes or 'none'}: the openvino and onnx backends do mean or cls "
        "pooling only; use embed_backend=torch for this model"
    )


def read_model_spec(model: str, model_path: Path | str) -> ModelSpec:
    """Read a sentence-transformers folder's modules, pooling and sequence limit."""
    folder = local_model_folder(model_path)
    modules = _read_json(folder / "modules.json") if (folder / "modules.json").is_file() else []
    if not modules:
        raise EmbeddingError(f"{folder} has no modules.json: not a sentence-transformers model")
    kinds = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules}
    unsupported = sorted(set(kinds) - _SUPPORTED_MODULES)
    if unsupported or "Transformer" not in kinds or "Pooling" not in kinds:
        raise EmbeddingError(
            f"model {model!r} has modules {sorted(kinds)}; the openvino and onnx backends "
            "serve Transformer + Pooling (+ Normalize) only: use embed_backend=torch"
        )
    transformer = folder / kinds["Transformer"].get("path", "")
    pooling_config = _read_json(folder / kinds["Pooling"].get("path", "") / "config.json")
    model_config = _read_json(transformer / "config.json")
    max_tokens = _read_json(transformer / "sentence_bert_config.json").get("max_seq_length")
    if max_tokens is None:
        # sentence-transformers' own fallback: the tokenizer's limit, capped by the positions.
        limits = [
            _read_json(transformer / "tokenizer_config.json").get("model_max_length"),
            model_config.get("max_position_embeddings"),
        ]
        max_tokens = min((int(v) for v in limits if v and v < 10**6), default=512)
    dim = pooling_config.get("word_embedding_dimension") or model_config.get("hidden_size")
    if not dim:
        raise EmbeddingError(f"cannot tell the embedding dimension of {model!r}")
    return ModelSpec(
        name=model, folder=folder, transformer_folder=transformer,
        pooling=pooling_mode(pooling_config), max_tokens=int(max_tokens), dim=int(dim),
    )


def model_fingerprint(folder: Path) -> str:
    """A hash of every file of the model folder (names and contents) and the export version."""
    digest = hashlib.sha256(f"export-{EXPORT_VERSION}".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name in ("README.md", ".gitattributes") or ".cache" in path.parts:
            continue
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as stream:
            digest.update(hashlib.file_digest(stream, "sha256").digest())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """Where exported models go when the caller gives no folder."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "articlebot" / "models"


def export_folder(spec: ModelSpec, cache_dir: Path) -> Path:
    """The cache folder for this model's exports: `<name>-<hash of its files>`."""
    name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in Path(spec.name).name)
    return cache_dir / f"{name}-{model_fingerprint(spec.folder)}"


@contextlib.contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold `folder`'s lock file: processes sharing the cache export, quantise and measure one
    at a time, and the second finds the first's result instead of redoing it."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def one_time_step(description: str) -> Iterator[None]:
    """A progress line for a one-time step (export, quantisation) with the seconds it has taken.

    tqdm on stderr, only on a terminal; a thread refreshes it, since the step itself reports
    no progress. Also logged, for logs without a terminal.
    """
    from tqdm import tqdm

    log.info("%s (one time)", description)
    bar = tqdm(total=1, desc=description, bar_format="{desc}: {elapsed}", disable=None)
    done = threading.Event()

    def refresh() -> None:
        while not done.wait(0.5):
            bar.refresh()

    ticker = threading.Thread(target=refresh, daemon=True)
    ticker.start()
    try:
        yield
        bar.update(1)
    finally:
        done.set()
        ticker.join()
        bar.close()


def ensure_export(spec: ModelSpec, cache_dir: Path | None, fmt: ExportFormat) -> Path:
    """The exported model file, exporting it first (once, with torch) when the cache lacks it.

    The cache is the machine's (`default_cache_dir`) unless `cache_dir` is given; exports are
    keyed by the model files' hash, written atomically, and made once across processes.
    """
    folder = export_folder(spec, Path(cache_dir) if cache_dir else default_cache_dir())
    target = folder / ("model.xml" if fmt == "openvino" else "model.onnx")
    if target.is_file() and (folder / "tokenizer.json").is_file():
        return target
    with exclusive(folder):
        if not target.is_file():
            with one_time_step(f"exporting {spec.name} to {fmt} in {folder}"):
                export_transformer(spec, target, fmt)
        if not (folder / "tokenizer.json").is_file():
            _write_tokenizer(spec, folder / "tokenizer.json")
    return target


def _write_tokenizer(spec: ModelSpec, target: Path) -> None:
    """Store the model's fast tokenizer as tokenizer.json beside the export."""
    source = spec.transformer_folder / "tokenizer.json"
    if source.is_file():
        text = source.read_text(encoding="utf-8")
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(spec.transformer_folder), use_fast=True)
        if not getattr(tokenizer, "is_fast", False):
            raise EmbeddingError(f"model {spec.name!r} has no fast tokenizer to export")
        text = tokenizer.backend_tokenizer.to_str()
    _replace_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _replace_atomically(target: Path, write: object) -> None:
    """Write through a temporary file and rename it, so readers never see half a file."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)  # type: ignore[operator]
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def export_transformer(spec: ModelSpec, target: Path, fmt: ExportFormat) -> None:
    """Export the model's transformer (token ids → last hidden state) with dynamic shapes."""
    forbid_downloads()
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise EmbeddingError(f"exporting the model to {fmt} needs torch: {exc}") from exc

    try:
        with quiet_model_loading():
            model = AutoModel.from_pretrained(
                str(spec.transformer_folder), local_files_only=True, attn_implementation="eager"
            ).eval()
    except Exception as exc:
        raise EmbeddingError(f"cannot load embedding model {spec.name!r}: {exc}") from exc
    import inspect

    accepted = inspect.signature(model.forward).parameters
    names = [name for name in MODEL_INPUTS if name in accepted]

    class LastHiddenState(torch.nn.Module):
        """The transformer with plain tensor inputs and output, as exporters want."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            """Token ids (and masks) → last hidden state."""
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    wrapper = LastHiddenState().eval()
    example = tuple(
        torch.zeros((2, 8), dtype=torch.long) if name == "token_type_ids"
        else torch.ones((2, 8), dtype=torch.long)
        for name in names
    )
    with torch.no_grad(), quiet_model_loading():
        if fmt == "openvino":
            _export_openvino(wrapper, example, names, target)
        else:
            _export_onnx(wrapper, example, names, target)


def _export_openvino(wrapper: object, example: tuple, names: list[str], target: Path) -> None:
    """Convert the torch module to OpenVINO IR (fp32 weights; precision is chosen at load)."""
    import openvino as ov

    converted = ov.convert_model(
        wrapper, example_input=example,
        input=[(ov.PartialShape([-1, -1]), ov.Type.i64) for _ in names],
    )
    for port, name in zip(converted.inputs, names, strict=True):
        port.get_tensor().set_names({name})
    converted.outputs[0].get_tensor().set_names({"last_hidden_state"})
    save_openvino_model(converted, target)


def save_openvino_model(model: object, target: Path) -> None:
    """Save an OpenVINO model as IR; the .xml appears last, so its presence marks a whole export."""
    import openvino as ov

    tmp_xml = target.with_name(f".{target.stem}.{os.getpid()}.tmp.xml")
    try:
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(tmp_xml, target)
    finally:
        tmp_xml.unlink(missing_ok=True)
        tmp_xml.with_suffix(".bin").unlink(missing_ok=True)


def _export_onnx(wrapper: object, example: tuple, names: list[str], target: Path) -> None:
    """Export the torch module to ONNX (fp32) with the TorchScript exporter."""
    import torch

    try:
        import onnx  # noqa: F401  (the exporter needs it; say so clearly when missing)
    except ImportError as exc:
        raise EmbeddingError("exporting to onnx needs the onnx package: pip install onnx") from exc
    dynamic = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    _replace_atomically(target, lambda tmp: torch.onnx.export(
        wrapper, example, str(tmp), input_names=names, output_names=["last_hidden_state"],
        dynamic_axes=dynamic, opset_version=17, dynamo=False,
    ))


def input_tokenizer(tokenizer_file: Path, max_tokens: int) -> Tokenizer:
    """The tokenizer that makes model inputs: no padding, truncated at the model's limit."""
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def pad_batch(encodings: Sequence[Encoding]) -> dict[str, np.ndarray]:
    """Right-pad every model input to the batch's longest; the mask marks real tokens."""
    width = max(len(encoding.ids) for encoding in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    types = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        length = len(encoding.ids)
        ids[row, :length] = encoding.ids
        mask[row, :length] = 1
        types[row, :length] = encoding.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def pool(hidden: np.ndarray, mask: np.ndarray, mode: Pooling) -> np.ndarray:
    """Sentence vectors from token states: the mean over real tokens, or the first token."""
    if mode == "cls":
        return np.asarray(hidden[:, 0], dtype=np.float32)
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden * weights).sum(axis=1, dtype=np.float32)
    return summed / np.maximum(weights.sum(axis=1), 1e-9)


def cpu_threads() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class ExportedEmbedder(Embedder):
    """Tokenise, sort by length, run batches through an exported graph, pool, normalise."""

    def __init__(self, spec: ModelSpec, tokenizer_file: Path, input_names: Sequence[str]) -> None:
        """Keep the model spec and a tokenizer that truncates at the model's limit."""
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        super().__init__(spec.name, tokenizer, spec.dim, spec.max_tokens)
        self.spec = spec
        self.input_names = tuple(input_names)
        self._inputs = input_tokenizer(tokenizer_file, spec.max_tokens)

    @abstractmethod
    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The last hidden state (batch × tokens × dim) for one padded batch."""

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """Embed texts; they are batched by length so little compute goes to padding."""
        result = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return result
        encodings = self._inputs.encode_batch(model_inputs(texts), add_special_tokens=True)
        order = np.argsort([len(encoding.ids) for encoding in encodings], kind="stable")
        starts = range(0, len(order), max(1, batch_size))
        if show_progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="embedding", unit="batch")
        for start in starts:
            rows = order[start : start + batch_size]
            arrays = pad_batch([encodings[row] for row in rows])
            hidden = self._run({name: arrays[name] for name in self.input_names})
            result[rows] = pool(hidden, arrays["attention_mask"], self.spec.pooling)
        return normalize_rows(result)
