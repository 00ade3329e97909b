"""Reading: choosing, among a question's candidate sentences, the ones that answer it.

`reader_for(settings)` gives the reader the `reader` setting names, loaded once per process:
`features` (a logistic regression over hand-made features), `cross-encoder` (a model trained by
`python -m bench.reader` that reads the question with each sentence), or `ensemble` (the
default: the cross-encoder reading the feature reader's shortlist, the two scores blended).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from index.reading.base import Reader, ReaderCalibration, ReaderError

if TYPE_CHECKING:
    from index.config import Settings

__all__ = ["Reader", "ReaderCalibration", "ReaderError", "make_reader", "reader_for"]

READERS = ("features", "cross-encoder", "ensemble")


def make_reader(name: str, model: str | None = None, cache_dir: Path | None = None) -> Reader:
    """A new reader by name; `model` a folder or hub name for the cross-encoder (alone or in
    the ensemble), exported
    once per machine into `cache_dir` (the embedding models' cache when None).

    Raises ReaderError for an unknown name or a model that cannot be loaded.
    """
    if name == "features":
        from index.reading.features import FeatureReader

        return FeatureReader()
    if name == "cross-encoder":
        from index.reading.cross_encoder import CrossEncoderReader

        return CrossEncoderReader(model, cache_dir)
    if name == "ensemble":
        from index.reading.ensemble import EnsembleReader

        return EnsembleReader(model, cache_dir)
    raise ReaderError(f"unknown reader {name!r}: choose one of {', '.join(READERS)}")


@functools.cache
def _cached(name: str, model: str | None, cache_dir: Path | None) -> Reader:
    return make_reader(name, model, cache_dir)


def reader_for(settings: Settings) -> Reader:
    """The reader the settings name (`reader`, `reader_model`), loaded once per process."""
    model = str(settings.reader_model) if settings.reader_model else None
    return _cached(settings.reader, model, settings.model_cache_dir)
