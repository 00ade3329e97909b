"""The exported-model backends' pure parts: model folders, cache keys, padding, pooling, int8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from index.embedding import EmbeddingError, make_embedder, openvino_backend, resolve_model
from index.embedding.exported import (
    export_folder,
    model_fingerprint,
    pad_batch,
    pool,
    read_model_spec,
)
from index.embedding.openvino_backend import calibration_texts, int8_model_path

POOL_MEAN = {"word_embedding_dimension": 8, "pooling_mode_mean_tokens": True,
             "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False}


def model_folder(root: Path, pooling: dict, modules: list[str] | None = None,
                 max_seq_length: int | None = 128) -> Path:
    """A minimal sentence-transformers folder (configuration only, no weights)."""
    folder = root / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    kinds = modules or ["Transformer", "Pooling", "Normalize"]
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize",
             "Dense": "2_Dense"}
    (folder / "modules.json").write_text(json.dumps([
        {"idx": i, "name": str(i), "path": paths[kind],
         "type": f"sentence_transformers.models.{kind}"}
        for i, kind in enumerate(kinds)
    ]))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8,
                                                     "max_position_embeddings": 512}))
    if max_seq_length is not None:
        (folder / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": max_seq_length}))
    return folder


def test_spec_reads_pooling_dimension_and_limit(tmp_path: Path) -> None:
    spec = read_model_spec("tiny", model_folder(tmp_path, POOL_MEAN))
    assert (spec.pooling, spec.dim, spec.max_tokens) == ("mean", 8, 128)


def test_spec_cls_pooling_and_fallback_limit(tmp_path: Path) -> None:
    cls = POOL_MEAN | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}
    spec = read_model_spec("tiny", model_folder(tmp_path, cls, max_seq_length=None))
    assert (spec.pooling, spec.max_tokens) == ("cls", 512)


@pytest.mark.parametrize(
    ("pooling", "modules"),
    [
        (POOL_MEAN | {"pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": True}, None),
        (POOL_MEAN, ["Transformer", "Pooling", "Dense", "Normalize"]),
    ],
)
def test_unsupported_models_fail_clearly(tmp_path: Path, pooling: dict, modules) -> None:
    with pytest.raises(EmbeddingError, match="embed_backend=torch"):
        read_model_spec("tiny", model_folder(tmp_path, pooling, modules))


def test_folder_without_modules_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match=r"modules\.json"):
        read_model_spec("plain", tmp_path)


def test_cache_folder_follows_the_model_files(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, POOL_MEAN)
    spec = read_model_spec("org/tiny model", folder)
    first = export_folder(spec, tmp_path / "cache")
    assert first.parent == tmp_path / "cache"
    assert first.name.startswith("tiny-model-")
    assert model_fingerprint(folder) == model_fingerprint(folder)
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8, "changed": True}))
    assert export_folder(spec, tmp_path / "cache") != first


def test_pad_batch_pads_to_the_longest_and_masks() -> None:
    tokenizer = Tokenizer.from_file(str(Path(resolve_model("all-MiniLM-L6-v2")) / "tokenizer.json"))
    encodings = tokenizer.encode_batch(["a short one", "a somewhat longer text than that"])
    arrays = pad_batch(encodings)
    lengths = [len(e.ids) for e in encodings]
    assert arrays["input_ids"].shape == (2, max(lengths))
    assert arrays["attention_mask"].sum(axis=1).tolist() == lengths
    assert arrays["input_ids"][0, lengths[0]:].tolist() == [0] * (max(lengths) - lengths[0])
    assert not arrays["token_type_ids"].any()


def test_mean_pooling_ignores_padding_and_cls_takes_the_first_token() -> None:
    hidden = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 3.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 2.0]]


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(EmbeddingError, match="unknown embedding backend"):
        make_embedder("all-MiniLM-L6-v2", "tensorflow")


def test_calibration_text_is_news_paragraphs_and_questions() -> None:
    texts = calibration_texts()
    paragraphs = [t for t in texts if len(t.split()) >= 100]
    questions = [t for t in texts if t.endswith("?")]
    assert len(paragraphs) >= 10 and len(questions) >= 5
    assert len(paragraphs) + len(questions) == len(texts)


def test_int8_model_is_named_after_its_calibration(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    xml = tmp_path / "model.xml"
    first = int8_model_path(xml)
    assert first.parent == tmp_path and first != xml and first == int8_model_path(xml)
    changed = tmp_path / "calibration.txt"
    changed.write_text("Another text.\n", encoding="utf-8")
    monkeypatch.setattr(openvino_backend, "CALIBRATION_TEXT", changed)
    assert int8_model_path(xml) != first
