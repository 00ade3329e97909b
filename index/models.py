"""Typed records that flow through the engine: articles, chunks, answers, reports."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class ParsedArticle:
    """One article as read from a file, before it is stored."""

    text: str
    origin: str  # file path, plus ":LINE" for a record inside a JSONL/CSV file
    title: str = ""
    source: str = ""
    url: str = ""
    published: date | None = None
    authors: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SkippedItem:
    """A file or record that could not be read, and why."""

    origin: str
    reason: str

    def __str__(self) -> str:
        """Render as 'origin: reason' for logs and the CLI."""
        return f"{self.origin}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range [start, end) in an article's text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    """A chunk: a run of whole sentences, with its offsets and token count."""

    start: int
    end: int
    sentences: tuple[Span, ...]
    n_tokens: int


@dataclass(frozen=True, slots=True)
class ArticleInfo:
    """An article's metadata as stored in the index."""

    id: str
    title: str
    source: str
    url: str
    published: date | None
    authors: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Quote:
    """A verbatim slice of an article that answers the question."""

    text: str
    article: ArticleInfo
    chunk_id: int
    start: int
    end: int
    score: float
    also: tuple[ArticleInfo, ...] = ()  # the same story told by other articles (other outlets)
    # The answer inside `text` (character offsets into it) when one was found: an entity of
    # the kind the question asks for (index.answertype). Renderers may set it in bold.
    answer: Span | None = None


@dataclass(frozen=True, slots=True)
class ArticleHit:
    """An article in the ranked results, with its best passage."""

    article: ArticleInfo
    score: float
    chunk_id: int
    passage: str
    # Whether the passage's cosine to the question reaches min_score, the bar below which the
    # engine abstains: only such articles are offered as further reading.
    relevant: bool = True


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Optional restrictions on what may be retrieved."""

    sources: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    labels: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """True when nothing is filtered."""
        return not (self.sources or self.since or self.until or self.labels)


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the collection (or a filtered part of it) spans."""

    n_articles: int
    first: date | None
    last: date | None


class NotAnswered(StrEnum):
    """Why an answer quotes nothing (renderers word it for people)."""

    NO_WORDS = "no_words"  # the question has no letters or digits
    NOTHING_RELEVANT = "nothing_relevant"  # no passage (in the period asked) passes min_score
    # Nothing within the question's filters answers, but articles they leave out may
    # (`Answer.outside` counts them).
    FILTERED = "filtered"
    # A name the question is about occurs in no article (`Answer.unmentioned` holds it).
    NOT_MENTIONED = "not_mentioned"


# The filters an article can fail, in the order they are named.
FILTER_NAMES = ("source", "since", "until", "label")


@dataclass(frozen=True, slots=True)
class OutsideFilters:
    """Articles a question's filters left out that may answer it.

    Found by one retrieval without the filters, run only when the filtered question
    abstained: articles with a passage at or above min_score, the question unfiltered
    passing the abstention bar.
    """

    n_articles: int
    n_undated: int  # of them, those without a date (so every since/until leaves them out)
    excluded_by: tuple[str, ...]  # the filters that left any of them out, among FILTER_NAMES


class Confidence(StrEnum):
    """How sure an answer is, from its answer score and the reader's margins
    (`index.answer.confidence`); renderers word it for people. Its values are what the JSON
    of an answer and the evaluations' records hold."""

    NONE = "none"  # below the abstention threshold: the answer quotes nothing
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Caveat(StrEnum):
    """A warning that goes with quotes (renderers word it for people)."""

    OUTSIDE_PERIOD = "outside_period"  # no quoted article lies in the period the question named
    STALE = "stale"  # the newest quoted article is older than stale_after_days


@dataclass(frozen=True, slots=True)
class Answer:
    """What the engine returns for a question: facts only; the bot and the CLI word them."""

    question: str
    quotes: tuple[Quote, ...]
    results: tuple[ArticleHit, ...]
    answered: bool
    confidence: Confidence
    coverage: Coverage
    filters: SearchFilters = field(default_factory=SearchFilters)
    elapsed_ms: float = 0.0
    reason: NotAnswered | None = None  # set when `answered` is False
    caveat: Caveat | None = None  # set on some answers
    newest: date | None = None  # publication date of the newest quoted article
    # The period the question spoke of ("last week"), as dates, and the words that said it.
    period_since: date | None = None
    period_until: date | None = None
    period_phrase: str = ""
    collection: Coverage | None = None  # the whole collection, when `coverage` is a filtered part
    outside: OutsideFilters | None = None  # set with NotAnswered.FILTERED
    unmentioned: str = ""  # set with NotAnswered.NOT_MENTIONED: the name as the question wrote it

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings)."""
        return jsonable(dataclasses.asdict(self))


# Named values in the state store (index.store.StateStore), each a SyncOutcome as JSON.
LAST_REINDEX_KEY = "last_reindex"  # the latest completed reindex, one that changed nothing too
LAST_CHANGE_KEY = "last_change"  # the latest ingest or reindex that wrote a version


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What one completed ingest or reindex did, for `/stats` and `/whatsnew`.

    Kept in the state store (LAST_REINDEX_KEY, LAST_CHANGE_KEY), shared by every process on
    the store: a run that changes nothing writes no version whose metadata could hold it.
    """

    kind: str  # "reindex" or "ingest"
    finished_at: datetime  # timezone-aware, UTC
    added: int = 0
    updated: int = 0
    removed: int = 0
    generation: str = ""  # the version it wrote; '' when it changed nothing
    # The version it wrote holds no article of the one before (a first build or a rebuild), so
    # everything in it arrived then and nothing is new since the run before.
    from_scratch: bool = False

    @property
    def changed(self) -> bool:
        """True when the run wrote a version."""
        return bool(self.generation)

    def to_json(self) -> str:
        """The outcome as a JSON object (the time as ISO 8601)."""
        return json.dumps(jsonable(dataclasses.asdict(self)), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> SyncOutcome | None:
        """The outcome `to_json` wrote; None when `text` is None or not one (never raises)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            finished = datetime.fromisoformat(str(data["finished_at"]))
            return cls(
                kind=str(data["kind"]),
                finished_at=finished if finished.tzinfo else finished.replace(tzinfo=UTC),
                added=int(data.get("added", 0)), updated=int(data.get("updated", 0)),
                removed=int(data.get("removed", 0)), generation=str(data.get("generation", "")),
                from_scratch=bool(data.get("from_scratch", False)),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


@dataclass(slots=True)
class IngestReport:
    """Counts and problems from one ingest or reindex run."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    duplicates: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0
    generation: str = ""
    new_article_ids: list[str] = field(default_factory=list)  # added in this run
    stories: int = 0  # story groups in the new generation

    @property
    def changed(self) -> bool:
        """True when the run changed what the index holds."""
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        """One line for humans, every figure after its label ("added 1"), so none needs a plural."""
        return (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"removed {self.removed}, duplicates {self.duplicates}, skipped {len(self.skipped)}"
            f" (chunks: embedded {self.chunks_embedded}, reused {self.chunks_reused}; "
            f"{self.seconds:.1f}s)"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = jsonable(dataclasses.asdict(self))
        data["skipped"] = [str(item) for item in self.skipped]
        return data


@dataclass(frozen=True, slots=True)
class IndexStats:
    """Figures about the serving index."""

    n_articles: int
    n_chunks: int
    sources: tuple[tuple[str, int], ...]
    first: date | None
    last: date | None
    model: str
    dim: int
    index_type: str
    index_bytes: int
    generation: str
    built_at: str
    build_seconds: float
    store: str = "local"  # the storage backend
    dense_search: str = "exact"  # "exact" or "approximate"
    embed_backend: str = ""  # e.g. "auto: openvino-int8 (3.4x torch fp32), measured … on …"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return jsonable(dataclasses.asdict(self))


def jsonable(value: Any) -> Any:
    """Turn dates into ISO strings and tuples into lists, recursively."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class ArticleDetail:
    """One article's metadata with its opening paragraph and size, for `/article`."""

    article: ArticleInfo
    opening: str
    n_chunks: int  # passages it was cut into
    n_chars: int  # characters of its stored text


@dataclass(frozen=True, slots=True)
class Progress:
    """A step of a long run, for progress displays."""

    stage: str  # "reading", "chunking", "embedding", "writing", "done"
    done: int
    total: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class Story:
    """Articles telling the same story; `article` is the one shown first."""

    article: ArticleInfo
    also: tuple[ArticleInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class Follow:
    """A topic followed in a channel: new matching articles are posted there."""

    id: int
    guild_id: int | None
    channel_id: int
    user_id: int
    topic: str
    created_at: str = ""
