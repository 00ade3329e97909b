"""The engine's settings, read from the environment and `.env` when asked.

The Discord adapter's own settings extend these in `bot/config.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BUNDLED_MODEL = "all-MiniLM-L6-v2"


def split_list(value: Any) -> Any:
    """Accept '1,2,3' (or JSON, or a list) for list settings given as env strings (the
    engine's settings and the bot's, bot.config, parse them alike)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _split_map(value: Any) -> Any:
    """Accept 'label=text;label2=text2' (or JSON, or a dict) for map settings."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        if text.startswith("{"):
            import json

            return json.loads(text)
        pairs = (part.split("=", 1) for part in text.split(";") if "=" in part)
        return {key.strip(): val.strip() for key, val in pairs}
    return value


class Settings(BaseSettings):
    """The engine's settings; each can be given as ARTICLEBOT_<NAME>."""

    model_config = SettingsConfigDict(
        env_prefix="ARTICLEBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        populate_by_name=True,
    )

    # --- where things are
    index_dir: Path = Field(Path("var/index"), description="Folder that holds the index.")
    article_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [Path("samples/articles")],
        description="Folders `reindex` syncs the index with (comma-separated).",
    )
    max_file_mb: float = Field(
        50.0, gt=0, le=4096, description="Files larger than this are skipped."
    )

    # --- embedding
    model: str = Field(
        BUNDLED_MODEL,
        description="sentence-transformers model name or path; the default is bundled.",
    )
    embed_backend: Literal["auto", "torch", "openvino", "openvino-int8", "onnx"] = Field(
        "auto",
        description="Embedding runtime: auto (the fastest measured on this machine among those "
        "that agree with fp32, measured once and remembered), openvino-int8 (int8 weights and "
        "products), openvino (bf16 where the CPU has it), torch (fp32) or onnx.",
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Folder of exported and quantised models and the backend measurements, "
        "shared by every index on the machine; default: $XDG_CACHE_HOME/articlebot/models "
        "(~/.cache/articlebot/models).",
    )
    embed_batch_size: int = Field(32, ge=1, le=4096, description="Chunks per embedding batch.")
    chunk_max_tokens: int | None = Field(
        None, ge=16, le=8192, description="Token budget per chunk; default: the model's own limit."
    )
    chunk_overlap_sentences: int = Field(
        0, ge=0, le=10,
        description="Sentences shared by neighbouring chunks (1 measured no better).",
    )
    store: str = Field(
        "local",
        description="Storage backend: local (FAISS + SQLite generations in index_dir) or "
        "postgres (PostgreSQL + pgvector at database_url, shared by several machines); any "
        "name index.store.registry knows.",
    )
    database_url: SecretStr | None = Field(
        None,
        description="postgresql://user:password@host:port/db for store=postgres (never logged).",
    )
    database_pool_size: int = Field(
        8, ge=2, le=100,
        description="Connections each process keeps to the database (store=postgres).",
    )
    database_statement_timeout_ms: int = Field(
        30_000, ge=100, le=3_600_000,
        description="Longest a database statement may run (store=postgres).",
    )
    index_type: Literal["auto", "flat", "ivf", "hnsw"] = Field(
        "auto", description="FAISS index: auto picks flat (exact) or ivf by size; hnsw on request."
    )
    # A year of news (65k chunks) ingests from scratch in 705-818 s on 2 cores
    # (docs/performance.md): 900 s lets a scheduled sync outwait one; 0 refuses at once.
    writer_wait_seconds: float = Field(
        900.0, ge=0, le=86_400,
        description="Longest an ingest, reindex or feed sync waits for another process that "
        "is updating the same index (seconds; 0: refuse at once).",
    )

    # --- retrieval and answers
    results: int = Field(5, ge=1, le=25, description="Articles listed with an answer.")
    candidates: int = Field(
        30, ge=5, le=1000, description="Candidates each retriever contributes."
    )
    max_chunks_per_article: int = Field(2, ge=1, le=20, description="Chunks kept per article.")
    max_quotes: int = Field(3, ge=1, le=5, description="Sentences quoted in an answer.")
    bm25_weight: float = Field(0.4, ge=0, le=1, description="Keyword share of the fused score.")
    min_score: float = Field(
        0.40, ge=-1, le=1,
        description="A passage this similar to the question is relevant: listed as further "
        "reading, in timelines, and counted when filters leave it out (calibrated).",
    )
    min_answer_score: float | None = Field(
        None, ge=0, le=1,
        description="Below this answer score (a blend of the best passage's similarity and "
        "the reader's answer probability) the answer abstains; default: the reader's own "
        "calibration.",
    )
    reader: Literal["features", "cross-encoder", "ensemble"] = Field(
        "ensemble",
        description="What chooses the quoted sentences: features (a logistic regression over "
        "hand-made features), cross-encoder (a model reading the question with each "
        "sentence, trained by python -m bench.reader) or ensemble (the cross-encoder reading "
        "the feature reader's best 8 sentences, the two scores blended).",
    )
    reader_model: str | None = Field(
        None,
        description="The cross-encoder's folder (written by python -m bench.reader "
        "ship), or a sentence-transformers CrossEncoder name where a model hub is reachable; "
        "default: the one shipped in index/reading/cross-encoder/.",
    )
    time_handling: bool = Field(
        True, description="Read time words in questions ('last week') and prefer newer articles."
    )
    time_window_boost: float = Field(
        0.05, ge=0, le=1, description="Score added to passages inside the period a question names."
    )
    recency_boost: float = Field(
        0.03, ge=0, le=1, description="Largest score added for being new (breaks near-ties)."
    )
    recency_half_life_days: float = Field(
        30.0, gt=0, le=36_500, description="Age at which the recency preference halves."
    )
    stale_after_days: int = Field(
        30, ge=1, le=36_500,
        description="Answers whose newest evidence is older than this say so.",
    )
    follow_min_score: float = Field(
        0.45, ge=-1, le=1,
        description="How well a new article must match a followed topic to be posted.",
    )
    caution_labels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {
            "fakenews": "This article is labelled as false.",
            "unverified": "This article is labelled as unverified.",
        },
        description="Labels that carry a caution on quotes: 'label=text;label2=text'.",
    )

    # --- feeds (docs/feeds.md)
    feeds_file: Path | None = Field(
        None,
        description="File of RSS/Atom feeds to follow, one a line: URL | outlet | label, label "
        "(outlet and labels optional); none: no feeds.",
    )
    feeds_dir: Path = Field(
        Path("var/feeds"),
        description="Where fetched articles are kept as JSON files (reindex reads them too).",
    )
    feeds_interval_minutes: float = Field(
        30.0, ge=1, le=1440, description="How often the bot syncs the feeds (minutes)."
    )
    fetch_timeout_seconds: float = Field(
        20.0, gt=0, le=300,
        description="Longest one web request may take, from sending it to its last byte "
        "(seconds).",
    )
    fetch_max_mb: float = Field(
        5.0, gt=0, le=100, description="Largest feed or page body read (MB)."
    )
    fetch_per_host: int = Field(
        2, ge=1, le=16, description="Requests at once to one web host."
    )
    fetch_host_delay_seconds: float = Field(
        1.0, ge=0, le=60, description="Pause between two requests to one web host (seconds)."
    )
    fetch_allow_private: bool = Field(
        False,
        description="Allow feeds and pages on loopback, private and link-local addresses "
        "(refused by default, so a feed cannot make the bot probe its own network).",
    )
    # A news feed lists its last 10-100 items; 500 is past any real one, and at most
    # MAX_ITEMS_KEPT (2,000, index/feeds/sync.py) so every item read is remembered.
    feeds_max_items_per_feed: int = Field(
        500, ge=1, le=2000,
        description="Items read from one feed in a sync, as the feed lists them (newest first, "
        "as a rule); those past it are counted in a note and not read.",
    )
    # At the default 1 s pause between two requests to a host, 1,000 pages of one host take
    # ~17 minutes: a sync stays inside the default 30-minute interval.
    feeds_max_items_per_sync: int = Field(
        1000, ge=1, le=1_000_000,
        description="Items handled in one sync, all feeds together; the rest wait for the next "
        "sync, which goes on where this one stopped.",
    )

    def reindexed_dirs(self) -> list[Path]:
        """The folders `reindex` syncs: the article folders and, once it exists, feeds_dir."""
        dirs = list(self.article_dirs)
        if self.feeds_dir.is_dir() and self.feeds_dir not in dirs:
            dirs.append(self.feeds_dir)
        return dirs

    @field_validator("article_dirs", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        """Parse comma-separated list settings."""
        return split_list(value)

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        """A backend the storage registry knows (`index.store.registry.names`)."""
        from index.store.registry import names

        if value not in names():
            raise ValueError(f"unknown store {value!r} (choose {', '.join(names())})")
        return value

    @field_validator("caution_labels", mode="before")
    @classmethod
    def _maps(cls, value: Any) -> Any:
        """Parse 'k=v;k2=v2' map settings."""
        return _split_map(value)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and `.env`, with explicit overrides on top."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
