"""Answer-quality evaluation: SQuAD paragraph retrieval, news questions, abstention calibration.

Usage: python -m bench.quality squad|news|calibrate|sweep [--limit N] [--json] ... (see --help)
Indexes are cached under var/eval/, keyed by the data and the model and chunk settings, so a
rerun only asks the questions. Figures and the commands behind them: docs/quality.md.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

import numpy as np
import typer
from typer.core import TyperCommand, TyperGroup

from articlebot import oneline
from bench.options import MAX_QUESTIONS
from index.config import Settings, load_settings
from index.models import Answer, ParsedArticle, Progress

# The engine, the embedding backends, the ingest readers and the store are imported where they
# are used, so that importing this module (the CLI mounts its `app`) stays fast.
if TYPE_CHECKING:
    from index.engine import Engine
    from index.store import Snapshot

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
SQUAD_DATA = DATA_ROOT / "squad" / "dev-v1.1.json.gz"
NEWS_CORPUS = DATA_ROOT / "news2023" / "corpus-8w.jsonl.gz"
NEWS_QUESTIONS = DATA_ROOT / "news2023" / "questions-8w.jsonl.gz"
EVAL_DIR = REPO_ROOT / "var" / "eval"
# MRR@10 needs ten ranked articles, more than an answer lists by default.
EVAL_RESULTS = 10
# Answerable questions allowed to abstain when the threshold is chosen from data.
MAX_FALSE_ABSTAIN = 0.05
THRESHOLDS_SHOWN = (0.30, 0.35, 0.40, 0.45, 0.50, 0.55)
# What the engine compares with min_answer_score (`index.answer.answer_score`).
ENGINE_SIGNAL = "answer_score"

TitleMode = Literal["title", "none", "prefix"]


# --- pure metrics


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one question got: ranked article ids, their passages, the quotes, and the time."""

    ranked_ids: tuple[str, ...]
    passages: tuple[str, ...]
    quotes: tuple[str, ...]
    answered: bool
    ms: float
    reason: str = ""  # why it abstained (`NotAnswered`), empty when it answered


def outcome_of(answer: Answer, ms: float) -> Outcome:
    """The parts of an answer the metrics look at."""
    return Outcome(
        ranked_ids=tuple(hit.article.id for hit in answer.results),
        passages=tuple(hit.passage for hit in answer.results),
        quotes=tuple(q.text for q in answer.quotes),
        answered=answer.answered,
        ms=ms,
        reason=str(answer.reason or ""),
    )


def normalize(text: str) -> str:
    """Casefolded, whitespace-collapsed text, for gold matching."""
    return " ".join(text.casefold().split())


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """True when any non-blank gold answer occurs in the text, ignoring case and spacing."""
    haystack = normalize(text)
    return any(gold and gold in haystack for gold in (normalize(a) for a in answers))


def first_rank(ranked: Sequence[str], gold: Iterable[str]) -> int | None:
    """1-based rank of the first gold id in the ranking, or None."""
    wanted = set(gold)
    return next((rank for rank, key in enumerate(ranked, 1) if key in wanted), None)


def recall_at(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 when a gold id is among the top k, else 0.0."""
    rank = first_rank(ranked, gold)
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1/rank of the first gold id within the top k, else 0.0."""
    rank = first_rank(ranked, gold)
    return 1.0 / rank if rank is not None and rank <= k else 0.0


def quote_hit(quotes: Sequence[str], answers: Sequence[str], k: int) -> bool:
    """True when one of the first k quotes contains a gold answer."""
    return any(contains_answer(text, answers) for text in quotes[:k])


def passage_hit(outcome: Outcome, answers: Sequence[str], k: int) -> bool:
    """True when a quote, or the passage of one of the top k results, contains a gold answer.

    Quotes count at every k (they are shown first), so hit@k never falls as k grows.
    """
    texts = [*outcome.quotes, *outcome.passages[:k]]
    return any(contains_answer(text, answers) for text in texts)


def latency(ms: Sequence[float]) -> dict[str, float]:
    """Median and 95th-percentile latency in milliseconds."""
    if not ms:
        return {"p50_ms": 0.0, "p95_ms": 0.0}
    values = np.asarray(ms, dtype=float)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p95_ms": round(float(np.percentile(values, 95)), 1),
    }


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean rounded to 4 places (0.0 for nothing)."""
    items = list(values)
    return round(sum(items) / len(items), 4) if items else 0.0


def retrieval_metrics(
    outcomes: Sequence[Outcome], golds: Sequence[Iterable[str]]
) -> dict[str, Any]:
    """Article-level recall@1, recall@5 and MRR@10 of the final rankings."""
    pairs = list(zip(outcomes, golds, strict=True))
    return {
        "recall@1": mean(recall_at(o.ranked_ids, g, 1) for o, g in pairs),
        "recall@5": mean(recall_at(o.ranked_ids, g, 5) for o, g in pairs),
        "mrr@10": mean(reciprocal_rank(o.ranked_ids, g, 10) for o, g in pairs),
    }


def abstention_metrics(answered: Sequence[bool], answerable: Sequence[bool]) -> dict[str, Any]:
    """Abstain rate, with correct abstentions (unanswerable) and false ones (answerable)."""
    pairs = list(zip(answered, answerable, strict=True))
    n_unanswerable = sum(1 for _, ok in pairs if not ok)
    n_answerable = len(pairs) - n_unanswerable
    correct = sum(1 for said, ok in pairs if not said and not ok)
    false = sum(1 for said, ok in pairs if not said and ok)
    return {
        "abstain_rate": mean(0.0 if said else 1.0 for said, _ in pairs),
        "n_unanswerable": n_unanswerable,
        "correct_abstentions": correct,
        "correct_abstention_rate": round(correct / n_unanswerable, 4) if n_unanswerable else None,
        "n_answerable": n_answerable,
        "false_abstentions": false,
        "false_abstention_rate": round(false / n_answerable, 4) if n_answerable else None,
    }


def squad_metrics(
    outcomes: Sequence[Outcome], golds: Sequence[str], answers: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """Every SQuAD figure: retrieval, quote hits, abstention, latency, counts."""
    pairs = list(zip(outcomes, answers, strict=True))
    return {
        **retrieval_metrics(outcomes, [[gold] for gold in golds]),
        "quote_hit@1": mean(float(quote_hit(o.quotes, a, 1)) for o, a in pairs),
        "quote_hit@3": mean(float(quote_hit(o.quotes, a, 3)) for o, a in pairs),
        "abstain_rate": mean(0.0 if o.answered else 1.0 for o in outcomes),
        **latency([o.ms for o in outcomes]),
        "n_questions": len(outcomes),
    }


def news_metrics(
    outcomes: Sequence[Outcome],
    answers: Sequence[Sequence[str]],
    in_corpus: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Every news figure: hit@1/5/10, quote hits, abstention accounting, latency, counts.

    Hits are over answerable questions (a non-empty gold list); `in_corpus` marks those whose
    gold occurs somewhere in the corpus, for hit rates over what retrieval could find at all.
    """
    answerable = [bool(a) for a in answers]
    scored = [(o, a) for o, a in zip(outcomes, answers, strict=True) if a]
    result: dict[str, Any] = {
        f"hit@{k}": mean(float(passage_hit(o, a, k)) for o, a in scored) for k in (1, 5, 10)
    }
    result["quote_hit@1"] = mean(float(quote_hit(o.quotes, a, 1)) for o, a in scored)
    result["quote_hit@3"] = mean(float(quote_hit(o.quotes, a, 3)) for o, a in scored)
    if in_corpus is not None:
        reachable = [
            (o, a) for o, a, found in zip(outcomes, answers, in_corpus, strict=True) if found and a
        ]
        result["n_gold_in_corpus"] = len(reachable)
        for k in (1, 5, 10):
            result[f"hit@{k}_gold_in_corpus"] = mean(
                float(passage_hit(o, a, k)) for o, a in reachable
            )
        absent = [
            o for o, a, found in zip(outcomes, answers, in_corpus, strict=True) if a and not found
        ]
        result["abstain_rate_gold_absent"] = mean(0.0 if o.answered else 1.0 for o in absent)
    result.update(abstention_metrics([o.answered for o in outcomes], answerable))
    result.update(latency([o.ms for o in outcomes]))
    result["n_questions"] = len(outcomes)
    return result


def spread(items: Sequence[Any], n: int | None) -> list[Any]:
    """About n items taken evenly across the sequence (all of them when n is None or larger)."""
    if not n or n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def threshold_keeping(scores: Sequence[float], max_false: float = MAX_FALSE_ABSTAIN) -> float:
    """The highest threshold under which at most `max_false` of these scores fall (score < t)."""
    if not scores:
        raise ValueError("no scores to calibrate on")
    ordered = sorted(scores)
    allowed = int(max_false * len(ordered))  # how many may fall below the threshold
    return float(ordered[allowed])


def rate_below(scores: Sequence[float], threshold: float) -> float:
    """Share of scores strictly below the threshold (they would abstain)."""
    return mean(1.0 if s < threshold else 0.0 for s in scores)


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos = np.asarray(positives, dtype=float)
    neg = np.sort(np.asarray(negatives, dtype=float))
    if not len(pos) or not len(neg):
        return 0.0
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return round(float((below + 0.5 * ties).sum() / (len(pos) * len(neg))), 4)


# --- data


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """A question with its gold: article ids (when known) and answer strings."""

    text: str
    answers: tuple[str, ...]
    gold_ids: tuple[str, ...] = ()
    half: str = ""  # "train" or "test": see `squad_half` and `week_half`
    # The day it is asked on ("this week" is that week's): a quiz question's own date; None
    # (today) for SQuAD, whose paragraphs are undated.
    as_of: date | None = None
    topic: str = ""  # SQuAD: its Wikipedia article's title


Half = Literal["all", "train", "test"]
# The news sets are split by week: the first four weeks of 2023 train, the rest test.
LAST_TRAIN_DAY = "2023-01-29"


def squad_half(title: str) -> Literal["train", "test"]:
    """The half a SQuAD article (by title) falls in: a stable hash, ~50/50.

    Anything tuned or trained on SQuAD uses the train half; its figures come from the test half.
    """
    return "train" if hashlib.sha256(title.encode()).digest()[0] % 2 == 0 else "test"


def week_half(day: str) -> Literal["train", "test"]:
    """The half a news question falls in by its date (ISO, or the quiz's "20230106" weeks):
    the weeks up to LAST_TRAIN_DAY train, later ones test."""
    iso = day if "-" in day else f"{day[:4]}-{day[4:6]}-{day[6:8]}"
    return "train" if iso <= LAST_TRAIN_DAY else "test"


def in_half(questions: Sequence[EvalQuestion], half: Half) -> list[EvalQuestion]:
    """The questions of one half (all of them for 'all')."""
    return list(questions) if half == "all" else [q for q in questions if q.half == half]


def squad_url(title: str, paragraph: int) -> str:
    """A unique, stable link for one SQuAD paragraph (its article id derives from it)."""
    return f"squad://{quote(title, safe='')}/{paragraph}"


def squad_records(
    data: Mapping[str, Any], title_mode: TitleMode = "title"
) -> tuple[list[dict[str, str]], list[EvalQuestion]]:
    """One JSONL-ready record per paragraph and the questions with their paragraph's id.

    title_mode: 'title' keeps the Wikipedia title as metadata, 'none' leaves it empty,
    'prefix' also starts the text with it (so it is embedded and keyword-indexed).
    """
    from index.ingest import article_key

    records: list[dict[str, str]] = []
    questions: list[EvalQuestion] = []
    for article in data["data"]:
        title = str(article["title"])
        readable = title.replace("_", " ")
        for number, paragraph in enumerate(article["paragraphs"]):
            url = squad_url(title, number)
            text = paragraph["context"]
            if title_mode == "prefix":
                text = f"{readable}.\n\n{text}"
            record = {
                "title": "" if title_mode == "none" else readable,
                "text": text,
                "url": url,
                "source": "squad",
            }
            records.append(record)
            key = article_key(ParsedArticle(text=text, origin="squad", url=url))
            for qa in paragraph["qas"]:
                golds = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                questions.append(EvalQuestion(qa["question"], golds, (key,), squad_half(title),
                                              topic=readable))
    return records, questions


def read_json_gz(path: Path) -> Any:
    """A (gzipped) JSON document."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a (gzipped) JSON Lines file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def question_day(row: Mapping[str, Any]) -> date | None:
    """The day a quiz question was asked ('question_date', YYYY/MM/DD or YYYY-MM-DD), None
    when absent."""
    written = row.get("question_date")
    if not written:
        return None
    # 2023's files write 2023/01/05; later years' 2026-01-08.
    year, month, day = (int(part) for part in str(written).replace("-", "/").split("/"))
    return date(year, month, day)


def news_questions(path: Path) -> list[EvalQuestion]:
    """Quiz questions with their gold answer strings (an empty list: unanswerable), each asked
    as of its own date, as the quiz's readers met it."""
    return [
        EvalQuestion(str(row["question"]), tuple(str(a) for a in row.get("answers") or ()),
                     half=week_half(str(row.get("week") or "20991231")),
                     as_of=question_day(row))
        for row in read_jsonl(path)
    ]


def gold_in_corpus(questions: Sequence[EvalQuestion], texts: Iterable[str]) -> list[bool]:
    """For each question, whether any of its gold answers occurs in any corpus text."""
    corpus = [normalize(text) for text in texts]
    golds = [[normalize(a) for a in q.answers if a.strip()] for q in questions]
    return [any(g in text for g in gold for text in corpus) for gold in golds]


# --- indexes


def cache_key(data_digest: str, settings: Settings, variant: str = "") -> str:
    """A short key over what changes the index: data, model, backend and chunking."""
    from index.build import PIPELINE_VERSION
    from index.embedding.openvino_backend import quantization_fingerprint

    backend = settings.embed_backend
    if backend == "openvino-int8":  # its vectors also follow the quantisation recipe
        backend = f"{backend}-{quantization_fingerprint()}"
    parts = [data_digest, variant, settings.model, backend,
             settings.chunk_max_tokens, settings.chunk_overlap_sentences, settings.index_type]
    if PIPELINE_VERSION > 1:  # keeps the keys of indexes built before the version existed
        parts.append(PIPELINE_VERSION)
    from index.store import index_folder

    if index_folder(settings) is None:  # a server's or memory's collection: by backend name
        parts.append(settings.store)
    else:  # keeps the keys of local indexes (and the cached indexes) as they were
        from index.store.local.vectors import VECTOR_FORMAT

        parts.append(VECTOR_FORMAT)
    material = json.dumps(parts)
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def eval_settings(settings: Settings, index_dir: Path) -> Settings:
    """The settings for an evaluation: the cached index, and ten results for MRR@10.

    With a backend on a database server (store=postgres: its settings take a database_url)
    the cached index is a database named after the cache folder, on the server of
    ARTICLEBOT_DATABASE_URL (created when missing).
    """
    from index.store import backend

    update: dict[str, Any] = {"index_dir": index_dir,
                              "results": max(settings.results, EVAL_RESULTS)}
    on_server = "database_url" in backend(settings.store).settings.model_fields
    if on_server and settings.database_url is not None:
        from pydantic import SecretStr

        from index.store.postgres import ensure_database

        name = "eval_" + re.sub(r"[^a-z0-9]+", "_", index_dir.parent.name.lower())
        update["database_url"] = SecretStr(
            ensure_database(settings.database_url.get_secret_value(), name))
    return settings.model_copy(update=update)


def log(message: str) -> None:
    """Progress on stderr, so --json output stays clean."""
    print(message, file=sys.stderr, flush=True)


def open_indexed(settings: Settings, paths: Sequence[Path], embedder: Any = None) -> Engine:
    """Open the engine on its (cached) index and ingest the paths; unchanged data embeds nothing."""
    from index.engine import Engine

    engine = Engine.open(settings, create=True, embedder=embedder)
    started = time.perf_counter()
    report = engine.ingest(list(paths), progress=_log_progress)
    if report.changed:
        log(f"indexed into {settings.index_dir}: {report.summary()}")
    else:
        log(f"reused {settings.index_dir} ({time.perf_counter() - started:.1f}s to check)")
    return engine


def _log_progress(progress: Progress) -> None:
    """Log embedding progress now and then (an index of the news corpus takes minutes)."""
    if progress.stage == "embedding" or progress.stage == "done":
        log(progress.message)


def squad_index(
    settings: Settings, data: Path, title_mode: TitleMode, embedder: Any = None
) -> tuple[Engine, list[EvalQuestion]]:
    """The engine over the SQuAD paragraphs (cached) and the questions."""
    from index.store.local.generations import file_digest

    records, questions = squad_records(read_json_gz(data), title_mode)
    folder = EVAL_DIR / f"squad-{title_mode}-{cache_key(file_digest(data), settings, title_mode)}"
    folder.mkdir(parents=True, exist_ok=True)
    articles = folder / "paragraphs.jsonl"
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    if not articles.exists() or articles.read_text(encoding="utf-8") != lines:
        articles.write_text(lines, encoding="utf-8")
    engine = open_indexed(eval_settings(settings, folder / "index"), [articles], embedder)
    return engine, questions


def news_index(settings: Settings, corpus: Path, embedder: Any = None) -> Engine:
    """The engine over a news corpus (cached)."""
    from index.store.local.generations import file_digest

    key = cache_key(file_digest(corpus), settings)
    folder = EVAL_DIR / f"news-{corpus.name.split('.')[0]}-{key}"
    return open_indexed(eval_settings(settings, folder / "index"), [corpus], embedder)


def ask_all(
    engine: Engine, questions: Sequence[EvalQuestion], label: str = ""
) -> list[Outcome]:
    """Ask every question, timing each call."""
    outcomes = []
    for number, question in enumerate(questions, 1):
        started = time.perf_counter()
        answer = engine.ask(question.text, as_of=question.as_of)
        outcomes.append(outcome_of(answer, (time.perf_counter() - started) * 1000.0))
        if number % 1000 == 0:
            log(f"{label} {number}/{len(questions)} questions")
    return outcomes


class CachedQueries:
    """Wraps an embedder so questions embedded in one batch up front are not embedded again.

    For sweeps that ask the same questions under many settings; latency is not measured then.
    """

    def __init__(self, embedder: Any) -> None:
        """Wrap an embedder; nothing is cached yet."""
        self._inner = embedder
        self._vectors: dict[str, np.ndarray] = {}

    def prime(self, texts: Sequence[str]) -> None:
        """Embed these questions in batches (as the engine would: whitespace collapsed)."""
        wanted = list(dict.fromkeys(" ".join(t.split()) for t in texts))
        wanted = [t for t in wanted if t not in self._vectors]
        if wanted:
            matrix = self._inner.encode(wanted, batch_size=64)
            self._vectors.update(zip(wanted, matrix, strict=True))

    def encode_query(self, text: str) -> np.ndarray:
        """The cached vector, else the wrapped embedder's."""
        vector = self._vectors.get(text)
        return vector if vector is not None else self._inner.encode_query(text)

    def __getattr__(self, name: str) -> Any:
        """Everything else is the wrapped embedder's."""
        return getattr(self._inner, name)


# --- evaluations


def eval_squad(
    settings: Settings,
    data: Path = SQUAD_DATA,
    limit: int | None = None,
    *,
    title_mode: TitleMode = "title",
    embedder: Any = None,
    half: Half = "all",
) -> dict[str, Any]:
    """SQuAD v1.1 dev: every paragraph an article; article-level ranking and quote figures.

    `half`: only the questions of that half of the articles (`half_of`); every paragraph is
    still in the index.
    """
    engine, questions = squad_index(settings, data, title_mode, embedder)
    try:
        questions = in_half(questions, half)
        questions = questions[:limit] if limit else questions
        outcomes = ask_all(engine, questions, "squad")
    finally:
        engine.close()
    metrics = squad_metrics(
        outcomes, [q.gold_ids[0] for q in questions], [q.answers for q in questions]
    )
    return {"dataset": "squad", "title_mode": title_mode, "half": half, **metrics,
            **_setting_fields(settings)}


def eval_news(
    settings: Settings,
    corpus: Path = NEWS_CORPUS,
    questions: Path = NEWS_QUESTIONS,
    limit: int | None = None,
    *,
    embedder: Any = None,
    half: Half = "all",
) -> dict[str, Any]:
    """News quiz questions against a news corpus: passage hits and abstention accounting.

    `half`: only the questions of those weeks (`week_half`).
    """
    engine = news_index(settings, corpus, embedder)
    asked = in_half(news_questions(questions), half)
    asked = asked[:limit] if limit else asked
    try:
        outcomes = ask_all(engine, asked, "news")
    finally:
        engine.close()
    reachable = gold_in_corpus(asked, (str(row.get("text", "")) for row in read_jsonl(corpus)))
    metrics = news_metrics(outcomes, [q.answers for q in asked], reachable)
    return {"dataset": "news", "corpus": corpus.name, "half": half, **metrics,
            **_setting_fields(settings)}


def _setting_fields(settings: Settings) -> dict[str, Any]:
    """The settings that shape retrieval, recorded beside the figures."""
    return {
        "model": settings.model,
        "embed_backend": settings.embed_backend,
        "candidates": settings.candidates,
        "bm25_weight": settings.bm25_weight,
        "max_chunks_per_article": settings.max_chunks_per_article,
        "min_score": settings.min_score,
        "min_answer_score": settings.min_answer_score,
    }


# --- relevance signals and calibration


def relevance_signals(engine: Engine, snapshot: Snapshot, question: str) -> dict[str, float]:
    """Candidate abstention signals for one question, from the engine's own retrieval and
    reading stages (`index.questions.retrieve`, `top_chunks`, `read`).

    ENGINE_SIGNAL is what `Engine.ask` compares with the abstention threshold (the reader's
    `answer_score` of 'dense5', the best cosine among the top five fused chunks, and the
    reader's answer probability over their sentences); the others are alternatives
    ('answer5': the reader's best sentence probability).
    """
    from index import answer as answering
    from index.questions import Query, read, retrieve, top_chunks

    settings = engine.settings
    query = Query.of(snapshot, engine.embedder, " ".join(question.split()))
    ranked, rows = retrieve(snapshot, query, settings)
    if not ranked:
        return {"dense5": 0.0, "dense1": 0.0, "coverage1": 0.0, "coverage5": 0.0,
                "answer5": 0.0, ENGINE_SIGNAL: 0.0}
    top = top_chunks(ranked, rows, settings)
    asked = query.analysis()
    coverages = [answering.coverage_score(rows[c.chunk_id].text, asked.weights) for c in top]
    reading = read(snapshot, asked, top, rows, settings)
    return {
        "dense5": max(c.dense for c in top),
        "dense1": top[0].dense,
        "coverage1": coverages[0],
        "coverage5": max(coverages),
        "answer5": reading.scored[0].score if reading.scored else 0.0,
        ENGINE_SIGNAL: reading.answer_score,
    }


def collect_signals(
    engine: Engine, questions: Sequence[EvalQuestion], label: str
) -> list[dict[str, float]]:
    """Relevance signals of every question against the engine's index."""
    signals = []
    with engine.store.reading() as snapshot:
        for number, question in enumerate(questions, 1):
            signals.append(relevance_signals(engine, snapshot, question.text))
            if number % 2000 == 0:
                log(f"{label} {number}/{len(questions)} signals")
    return signals


SignalFn = Callable[[Mapping[str, float]], float]


def candidate_signals() -> dict[str, SignalFn]:
    """The abstention signals compared: the engine's, and blends of cosine and keyword cover."""
    blends: dict[str, SignalFn] = {
        "dense5": lambda s: s["dense5"],
        "dense1": lambda s: s["dense1"],
        "coverage1": lambda s: s["coverage1"],
        "coverage5": lambda s: s["coverage5"],
    }
    blends["answer5"] = lambda s: s["answer5"]
    blends[ENGINE_SIGNAL] = lambda s: s[ENGINE_SIGNAL]
    for share in (0.3, 0.5, 0.7):
        blends[f"{share}*dense5+{1 - share:.1f}*coverage5"] = (
            lambda s, w=share: w * s["dense5"] + (1 - w) * s["coverage5"]
        )
        blends[f"{share}*dense5+{1 - share:.1f}*answer5"] = (
            lambda s, w=share: w * s["dense5"] + (1 - w) * s["answer5"]
        )
    return blends


def compare_signals(
    answerable: Sequence[Mapping[str, float]],
    unrelated: Sequence[Mapping[str, float]],
    max_false: float = MAX_FALSE_ABSTAIN,
) -> dict[str, dict[str, float]]:
    """For each signal: the threshold keeping false abstentions ≤ max_false, and what it does."""
    table = {}
    for name, signal in candidate_signals().items():
        positives = [signal(s) for s in answerable]
        negatives = [signal(s) for s in unrelated]
        threshold = threshold_keeping(positives, max_false)
        table[name] = {
            "threshold": round(threshold, 4),
            "false_abstention_rate": rate_below(positives, threshold),
            "unrelated_abstention_rate": rate_below(negatives, threshold),
            "auc": auc(positives, negatives),
        }
    return table


def calibrate(
    settings: Settings,
    squad: Path = SQUAD_DATA,
    corpus: Path = NEWS_CORPUS,
    questions: Path = NEWS_QUESTIONS,
    max_false: float = MAX_FALSE_ABSTAIN,
    sample: int | None = 3000,
    half: Half = "all",
) -> dict[str, Any]:
    """Choose `min_answer_score` from data: answerable in-domain questions vs unrelated ones.

    Answerable = questions whose gold is in the top five results against their own index
    (SQuAD paragraphs; news passages). Unrelated = SQuAD questions against the news index and
    news questions against the SQuAD index; all of these should abstain. `sample` SQuAD
    questions, spread over all articles, stand for the 10,570. `half`: only the questions of
    that half of each set (choose on 'train', check on 'test').
    """
    from index.embedding import make_embedder

    embedder = CachedQueries(
        make_embedder(settings.model, settings.embed_backend, settings.model_cache_dir)
    )
    squad_engine, squad_qs = squad_index(settings, squad, "title", embedder)
    news_engine = news_index(settings, corpus, embedder)
    news_qs = in_half(news_questions(questions), half)
    squad_qs = spread(in_half(squad_qs, half), sample)
    embedder.prime([q.text for q in squad_qs] + [q.text for q in news_qs])
    try:
        squad_out = ask_all(squad_engine, squad_qs, "squad")
        news_out = ask_all(news_engine, news_qs, "news")
        squad_to_news = ask_all(news_engine, squad_qs, "squad→news")
        news_to_squad = ask_all(squad_engine, news_qs, "news→squad")
        squad_in = collect_signals(squad_engine, squad_qs, "squad→squad")
        news_in = collect_signals(news_engine, news_qs, "news→news")
        squad_out_of_domain = collect_signals(news_engine, squad_qs, "squad→news")
        news_out_of_domain = collect_signals(squad_engine, news_qs, "news→squad")
    finally:
        squad_engine.close()
        news_engine.close()
    squad_found = [recall_at(o.ranked_ids, q.gold_ids, 5) > 0
                   for o, q in zip(squad_out, squad_qs, strict=True)]
    news_found = [bool(q.answers) and passage_hit(o, q.answers, 5)
                  for o, q in zip(news_out, news_qs, strict=True)]
    squad_hits = [s for s, found in zip(squad_in, squad_found, strict=True) if found]
    news_hits = [s for s, found in zip(news_in, news_found, strict=True) if found]
    from index.questions import abstention_threshold
    from index.reading import reader_for

    current = abstention_threshold(settings, reader_for(settings))
    # The signal is recomputed outside the engine; check it decides as the engine did.
    decisions = [
        (s[ENGINE_SIGNAL] >= current) == o.answered
        for s, o in zip(squad_in + news_in, squad_out + news_out, strict=True)
    ]
    report: dict[str, Any] = {
        "signal_matches_engine": mean(float(same) for same in decisions),
        "half": half,
        "engine_signal": ENGINE_SIGNAL,
        "max_false_abstention": max_false,
        "n_squad_answerable": len(squad_hits),
        "n_news_answerable": len(news_hits),
        "n_unrelated": len(squad_out_of_domain) + len(news_out_of_domain),
        "squad_in_domain": compare_signals(
            squad_hits, squad_out_of_domain + news_out_of_domain, max_false
        ),
        "news_in_domain": compare_signals(
            news_hits, squad_out_of_domain + news_out_of_domain, max_false
        ),
    }
    def rates_at(threshold: float, signal: str = ENGINE_SIGNAL) -> dict[str, float]:
        """How often each group of questions abstains at a threshold of a signal (the
        engine's by default)."""
        groups = {
            "news_false_abstention_rate": news_hits,
            "squad_false_abstention_rate": squad_hits,
            "squad_to_news_abstention_rate": squad_out_of_domain,
            "news_to_squad_abstention_rate": news_out_of_domain,
        }
        return {
            name: rate_below([s[signal] for s in signals], threshold)
            for name, signals in groups.items()
        }

    report["by_threshold"] = {f"{t:.2f}": rates_at(t) for t in THRESHOLDS_SHOWN}
    # The threshold must keep false abstentions low on both kinds of answerable question, so
    # the stricter (lower) of the two in-domain thresholds is the one proposed.
    threshold = min(
        report["news_in_domain"][ENGINE_SIGNAL]["threshold"],
        report["squad_in_domain"][ENGINE_SIGNAL]["threshold"],
    )
    report["min_answer_score"] = threshold
    report["at_min_answer_score"] = rates_at(threshold)
    report["at_current_setting"] = rates_at(current)
    # The signal the engine abstained on before the sentence ranker, at its threshold then.
    report["dense5_at_min_score"] = rates_at(settings.min_score, "dense5")
    # What the engine itself decided at the current settings: the answer score and every other
    # reason to abstain (a name no article mentions), as people meet it.
    report["engine_decisions"] = engine_decisions({
        "squad_false_abstention_rate": [
            o for o, found in zip(squad_out, squad_found, strict=True) if found],
        "news_false_abstention_rate": [
            o for o, found in zip(news_out, news_found, strict=True) if found],
        "squad_to_news_abstention_rate": squad_to_news,
        "news_to_squad_abstention_rate": news_to_squad,
    })
    # Unrelated by construction is not always unrelated in topic (a SQuAD article about a
    # Super Bowl, asked of a news season with one): which topics the answers came from.
    report["engine_decisions"]["squad_to_news_answered_by_topic"] = answered_by_topic(
        squad_qs, squad_to_news)
    return report


def engine_decisions(groups: Mapping[str, Sequence[Outcome]]) -> dict[str, Any]:
    """Each group's share of abstentions, and how many of them each reason gave."""
    return {
        name: {"rate": mean(0.0 if o.answered else 1.0 for o in outcomes),
               "n": len(outcomes),
               "by_reason": dict(Counter(o.reason for o in outcomes if not o.answered))}
        for name, outcomes in groups.items()
    }


def answered_by_topic(questions: Sequence[EvalQuestion], outcomes: Sequence[Outcome],
                      top: int = 5) -> list[dict[str, Any]]:
    """The topics whose questions were answered most often: topic, answered, asked."""
    asked = Counter(q.topic for q in questions)
    answered = Counter(q.topic for q, o in zip(questions, outcomes, strict=True) if o.answered)
    return [{"topic": topic, "answered": n, "asked": asked[topic]}
            for topic, n in answered.most_common(top)]


# --- sweeps


def sweep(
    settings: Settings,
    grid: Sequence[Mapping[str, Any]],
    squad: Path = SQUAD_DATA,
    corpus: Path | None = NEWS_CORPUS,
    questions: Path = NEWS_QUESTIONS,
    sample: int | None = None,
    half: Half = "all",
) -> list[dict[str, Any]]:
    """Retrieval figures for each settings override in the grid, on SQuAD (and news).

    `sample` SQuAD questions are spread over all articles. Questions are embedded once up
    front, so latencies here are not comparable to a plain run and are left out. `half`: the
    questions of one half of each set (tune on 'train').
    """
    from index.embedding import make_embedder

    embedder = CachedQueries(
        make_embedder(settings.model, settings.embed_backend, settings.model_cache_dir)
    )
    squad_engine, squad_qs = squad_index(settings, squad, "title", embedder)
    engines = [squad_engine]
    news_engine = None
    news_qs: list[EvalQuestion] = []
    if corpus is not None:
        news_engine = news_index(settings, corpus, embedder)
        news_qs = in_half(news_questions(questions), half)
        engines.append(news_engine)
    squad_qs = spread(in_half(squad_qs, half), sample)
    embedder.prime([q.text for q in squad_qs] + [q.text for q in news_qs])
    rows = []
    try:
        for overrides in grid:
            for engine in engines:
                engine.settings = eval_settings(
                    settings.model_copy(update=dict(overrides)), engine.settings.index_dir
                )
            squad_m = squad_metrics(
                ask_all(squad_engine, squad_qs),
                [q.gold_ids[0] for q in squad_qs],
                [q.answers for q in squad_qs],
            )
            row = {
                **dict(overrides),
                **{f"squad_{k}": squad_m[k] for k in ("recall@1", "recall@5", "mrr@10",
                                                      "quote_hit@1", "quote_hit@3")},
            }
            if news_engine is not None:
                news_m = news_metrics(ask_all(news_engine, news_qs), [q.answers for q in news_qs])
                row.update(
                    {f"news_{k}": news_m[k] for k in ("hit@1", "hit@5", "hit@10", "quote_hit@1")}
                )
            log(json.dumps(row))
            rows.append(row)
    finally:
        for engine in engines:
            engine.close()
    return rows


DEFAULT_GRID: tuple[dict[str, Any], ...] = (
    *({"bm25_weight": w} for w in (0.0, 0.2, 0.3, 0.4, 0.5, 1.0)),
    *({"candidates": n} for n in (50, 100)),
    *({"max_chunks_per_article": n} for n in (1, 3)),
)


# --- command line


def _print(result: Any, as_json: bool) -> None:
    """Print figures as one JSON object, or as aligned lines."""
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    if isinstance(result, list):
        for row in result:
            print(json.dumps(row, ensure_ascii=False))
        return
    for key, value in result.items():
        shown = json.dumps(value, indent=2) if isinstance(value, dict) else value
        print(f"{key:>28}: {shown}")


def _grid_summary(grid: Sequence[Mapping[str, Any]]) -> str:
    """The values a grid tries, per setting: 'bm25_weight 0.0, 0.2; candidates 50, 100'."""
    values: dict[str, list[str]] = {}
    for row in grid:
        for name, value in row.items():
            values.setdefault(name, []).append(str(value))
    return "; ".join(f"{name} {', '.join(tried)}" for name, tried in values.items())


def missing_file(exc: FileNotFoundError) -> str:
    """A missing file in words; the evaluation sets are expected in ../shared/data."""
    where = exc.filename or str(exc)
    hint = (" (the evaluation data sets: see docs/quality.md)"
            if Path(str(where)).is_relative_to(DATA_ROOT) else "")
    return f"no such file: {where}{hint}"


class DataSetErrors(oneline.OneLineErrors):
    """One-line errors (articlebot.oneline) that say where the evaluation data sets belong."""

    def file_problem(self, exc: FileNotFoundError) -> str:
        """A missing file in words (`missing_file`)."""
        return missing_file(exc)


class OneLineErrorsGroup(DataSetErrors, TyperGroup):
    """A typer group whose usage errors are one line when it runs as its own program."""


class OneLineErrorsCommand(DataSetErrors, TyperCommand):
    """A lone typer command whose usage errors are one line when it runs as its own program."""


def _check_overrides(values: list[str] | None) -> list[str] | None:
    """Reject a --set that is not NAME=VALUE or that names no setting."""
    for item in values or ():
        name, equals, _ = item.partition("=")
        if not equals or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}")
        if name not in Settings.model_fields:
            raise typer.BadParameter(f"no setting named {name!r}")
    return values


def _check_grid(value: str | None) -> str | None:
    """Reject a --grid that is not a JSON list of objects naming settings."""
    if value is None:
        return None
    try:
        rows = json.loads(value)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON ({exc})") from exc
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise typer.BadParameter("""expected a list of objects, e.g. '[{"bm25_weight": 0.4}]'""")
    unknown = sorted({name for row in rows for name in row} - set(Settings.model_fields))
    if unknown:
        raise typer.BadParameter(f"no setting named {unknown[0]!r}")
    return value


def _settings(overrides: Sequence[str] | None) -> Settings:
    """Settings from the environment and .env, with the --set overrides on top.

    `embed_backend=auto` becomes the backend chosen on this machine, so figures and cached
    indexes name the backend that made their vectors.
    """
    from index.embedding import resolve_backend

    settings = load_settings(**dict(item.split("=", 1) for item in overrides or ()))
    backend = resolve_backend(settings.model, settings.embed_backend, settings.model_cache_dir)
    return settings.model_copy(update={"embed_backend": backend})


app = typer.Typer(
    help="Answer quality on the shared data: SQuAD paragraph retrieval, news quiz questions, "
    "abstention calibration and settings sweeps. Indexes are cached under var/eval/ (keyed by "
    "the data, model and chunk settings), so a rerun only asks the questions. Progress goes to "
    "stderr. Figures and the commands behind them: docs/quality.md.",
    cls=OneLineErrorsGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

LimitOption = Annotated[
    int | None,
    typer.Option("--limit", min=1, max=MAX_QUESTIONS,
                 help="Ask only the first N questions (default: all)."),
]
SquadOption = Annotated[
    Path, typer.Option("--squad", help="The SQuAD v1.1 dev set: JSON, optionally gzipped.")
]
CorpusOption = Annotated[
    Path,
    typer.Option("--corpus", help="The news corpus: JSON Lines, optionally gzipped, an article "
                 "a line."),
]
QuestionsOption = Annotated[
    Path,
    typer.Option("--questions", help="The news quiz: JSON Lines, optionally gzipped, with "
                 "'question' and 'answers' (empty: unanswerable) a line."),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="NAME=VALUE", callback=_check_overrides,
        help="Override a setting, e.g. --set bm25_weight=0.4 (repeatable; the others come "
        "from the environment and .env).",
    ),
]
HalfOption = Annotated[
    Half,
    typer.Option("--half", help="Ask only one half: SQuAD split by article title, news by week "
                 "(train: up to 2023-01-29). 'test' for anything trained or tuned on 'train'."),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the figures as one line of JSON (sweep: a list, a row "
                 "each)."),
]


@app.command("squad")
def squad_command(
    limit: LimitOption = None,
    title: Annotated[
        TitleMode,
        typer.Option(
            "--title",
            help="Each paragraph's Wikipedia title: kept as metadata (title), left out (none), "
            "or also put before the text (prefix: embedded and keyword-indexed).",
        ),
    ] = "title",
    squad: SquadOption = SQUAD_DATA,
    overrides: SetOption = None,
    as_json: JsonOption = False,
    half: HalfOption = "all",
) -> None:
    """SQuAD v1.1 dev, each paragraph an article: recall@1/5, MRR@10, quote hits, latency (ms)."""
    _print(eval_squad(_settings(overrides), squad, limit, title_mode=title, half=half), as_json)


@app.command("news")
def news_command(
    limit: LimitOption = None,
    corpus: CorpusOption = NEWS_CORPUS,
    questions: QuestionsOption = NEWS_QUESTIONS,
    overrides: SetOption = None,
    as_json: JsonOption = False,
    half: HalfOption = "all",
) -> None:
    """News quiz against a news corpus: hit@1/5/10, quote hits, abstentions, latency (ms)."""
    _print(eval_news(_settings(overrides), corpus, questions, limit, half=half), as_json)


# Words that end no sentence in news text when followed by a dot: a sentence ending in one
# was cut at an abbreviation. Case matters: "est." is "established", "EST." a time zone that
# ends sentences; "No." is left out, since "no." ends many.
NEVER_LAST = frozenset({
    "approx", "est", "Mr", "Mrs", "Ms", "Dr", "Prof", "vs", "Gen", "Sen", "Rep", "Gov", "Lt",
    "Col", "Sgt", "Capt", "fig", "Fig", "Vol", "vol", "ca", "cf", "e.g", "i.e", "Nos", "pct",
})


def sentence_cuts(texts: Iterable[str]) -> dict[str, Any]:
    """Sentences that end in an abbreviation, by sentencex alone and by `split_sentences`."""
    import re

    import sentencex

    from index.chunk import split_sentences

    last_word = re.compile(r"([\w.]+)\.[\"'\u2019\u201d)]*$")

    def cut(sentence: str) -> bool:
        found = last_word.search(sentence.strip())
        return found is not None and found.group(1).split("-")[-1] in NEVER_LAST

    counts = {"articles": 0, "sentencex": {"sentences": 0, "ending_in_abbreviation": 0},
              "split_sentences": {"sentences": 0, "ending_in_abbreviation": 0}}
    for text in texts:
        counts["articles"] += 1
        raw = [text[b["start_index"]:b["end_index"]]
               for b in sentencex.get_sentence_boundaries("en", text)]
        ours = [text[span.start:span.end] for span in split_sentences(text)]
        for name, sentences in (("sentencex", raw), ("split_sentences", ours)):
            kept = [sentence for sentence in sentences if sentence.strip()]
            counts[name]["sentences"] += len(kept)
            counts[name]["ending_in_abbreviation"] += sum(map(cut, kept))
    return counts


@app.command("sentences")
def sentences_command(corpus: CorpusOption = NEWS_CORPUS, as_json: JsonOption = False) -> None:
    """Sentences cut at an abbreviation ("approx.", "Dr.", "est."): sentencex alone against the
    splitter the index uses, over a corpus's article texts."""
    _print(sentence_cuts(str(row.get("text", "")) for row in read_jsonl(corpus)), as_json)


@app.command("calibrate")
def calibrate_command(
    limit: Annotated[
        int,
        typer.Option("--limit", min=1, max=MAX_QUESTIONS, help="SQuAD questions to calibrate "
                     "on, spread evenly over all articles."),
    ] = 3000,
    squad: SquadOption = SQUAD_DATA,
    corpus: CorpusOption = NEWS_CORPUS,
    questions: QuestionsOption = NEWS_QUESTIONS,
    overrides: SetOption = None,
    as_json: JsonOption = False,
    half: HalfOption = "all",
) -> None:
    """Choose min_answer_score from data: answerable questions vs unrelated ones (SQuAD vs news).

    Proposes the threshold under which at most 5% of answerable questions abstain, and
    compares the engine's signal with alternatives.
    """
    result = calibrate(_settings(overrides), squad, corpus, questions, sample=limit, half=half)
    _print(result, as_json)


@app.command("sweep")
def sweep_command(
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, max=MAX_QUESTIONS, help="Ask N SQuAD questions, spread "
                     "evenly over all articles (default: all); the news questions are all asked."),
    ] = None,
    grid: Annotated[
        str | None,
        typer.Option(
            "--grid", callback=_check_grid,
            help="""A JSON list of setting overrides, one figures row each, e.g. """
            """'[{"bm25_weight": 0.4}, {"candidates": 100}]'. Default, one setting at a """
            f"time: {_grid_summary(DEFAULT_GRID)}.",
        ),
    ] = None,
    squad_only: Annotated[
        bool, typer.Option("--squad-only", help="Leave the news corpus and questions out.")
    ] = False,
    squad: SquadOption = SQUAD_DATA,
    corpus: CorpusOption = NEWS_CORPUS,
    questions: QuestionsOption = NEWS_QUESTIONS,
    overrides: SetOption = None,
    as_json: JsonOption = False,
    half: HalfOption = "all",
) -> None:
    """Retrieval figures for each settings override in a grid, on SQuAD and the news quiz.

    The questions are embedded once up front, so no latencies are reported. --set applies
    under every row.
    """
    rows = json.loads(grid) if grid else DEFAULT_GRID
    corpus_or_none = None if squad_only else corpus
    _print(sweep(_settings(overrides), rows, squad, corpus_or_none, questions, limit, half),
           as_json)


if __name__ == "__main__":
    app()
