"""Follow-up questions with and without their conversation: quote hits on our own pairs.

Usage: python -m bench.followups [--boost 0.05[,0.1…]] [--only samples|news-8w] [--json]

Each pair in bench/data/followups.jsonl is {"corpus": "samples" | "news-8w", "first": …,
"follow_up": …, "answers": [short gold phrases found verbatim in the article]}. The first
question is asked; its question and the articles it quoted make the conversation, as the bot
keeps it; the follow-up is then asked without the conversation and with it (once per context
boost given). Reported per corpus, never pooled: follow-up quote_hit@1 and @3 (a gold phrase
in the first one or three quotes) and hit@5 (in a quote or the passage of a top-5 article), as
bench.quality computes them, and the share answered; `first_quote_hit@3` says how often the
first answer already quoted the follow-up's gold. Questions are asked as of the newest article
of their corpus. The samples index is cached under var/eval/ like the others. Figures:
docs/quality.md, "Follow-up questions".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import typer

from bench import quality
from bench.quality import (
    NEWS_CORPUS,
    REPO_ROOT,
    CorpusOption,
    OneLineErrorsCommand,
    Outcome,
    SetOption,
    cache_key,
    eval_settings,
    log,
    mean,
    news_index,
    open_indexed,
    outcome_of,
    passage_hit,
    quote_hit,
    read_jsonl,
)
from index import followup
from index.config import Settings
from index.followup import Conversation

if TYPE_CHECKING:
    from collections.abc import Iterator

    from index.engine import Engine

PAIRS = REPO_ROOT / "bench" / "data" / "followups.jsonl"
SAMPLES_DIR = REPO_ROOT / "samples" / "articles"
CorpusName = Literal["samples", "news-8w"]
CORPORA: tuple[str, ...] = get_args(CorpusName)


@dataclass(frozen=True, slots=True)
class FollowUpPair:
    """A first question, a follow-up that leans on it, and the follow-up's gold phrases."""

    corpus: str
    first: str
    follow_up: str
    answers: tuple[str, ...]


def read_pairs(path: Path) -> list[FollowUpPair]:
    """The pairs of a JSON Lines file; ValueError naming the line for a malformed one."""
    pairs = []
    for number, row in enumerate(read_jsonl(path), 1):
        corpus, first, follow_up = row.get("corpus"), row.get("first"), row.get("follow_up")
        answers = row.get("answers")
        if corpus not in CORPORA:
            raise ValueError(f"{path.name} line {number}: corpus must be one of {CORPORA}")
        if not (isinstance(first, str) and first.strip()
                and isinstance(follow_up, str) and follow_up.strip()):
            raise ValueError(f"{path.name} line {number}: 'first' and 'follow_up' need text")
        if not (isinstance(answers, list) and answers
                and all(isinstance(a, str) and a.strip() for a in answers)):
            raise ValueError(f"{path.name} line {number}: 'answers' must list gold phrases")
        pairs.append(FollowUpPair(corpus, first, follow_up, tuple(answers)))
    return pairs


def follow_up_metrics(
    outcomes: Sequence[Outcome], answers: Sequence[Sequence[str]]
) -> dict[str, float]:
    """quote_hit@1, quote_hit@3 and hit@5 of the follow-ups, and how many were answered."""
    pairs = list(zip(outcomes, answers, strict=True))
    return {
        "quote_hit@1": mean(float(quote_hit(o.quotes, a, 1)) for o, a in pairs),
        "quote_hit@3": mean(float(quote_hit(o.quotes, a, 3)) for o, a in pairs),
        "hit@5": mean(float(passage_hit(o, a, 5)) for o, a in pairs),
        "answered": mean(float(o.answered) for o in outcomes),
    }


def folder_digest(folder: Path) -> str:
    """SHA-256 over a folder's files (names and contents), for the index cache key."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def samples_index(settings: Settings, folder: Path, embedder: Any = None) -> Engine:
    """The engine over the bundled sample articles (cached under var/eval/ like the others)."""
    key = cache_key(folder_digest(folder), settings)
    return open_indexed(eval_settings(settings, quality.EVAL_DIR / f"samples-{key}" / "index"),
                        [folder], embedder)


@contextmanager
def context_boost(boost: float) -> Iterator[None]:
    """Answer follow-ups with this context boost for a while (for comparing boosts)."""
    saved = followup.CONTEXT_BOOST
    followup.CONTEXT_BOOST = boost
    try:
        yield
    finally:
        followup.CONTEXT_BOOST = saved


def ask_pairs(
    engine: Engine, pairs: Sequence[FollowUpPair], boosts: Sequence[float]
) -> dict[str, Any]:
    """Each pair's follow-up asked without its conversation and with it, per boost."""
    as_of = engine.stats().last
    firsts, without = [], []
    with_context: dict[float, list[Outcome]] = {boost: [] for boost in boosts}
    for pair in pairs:
        first = engine.ask(pair.first, as_of=as_of)
        firsts.append(outcome_of(first, 0.0))
        # What the bot keeps after answering (bot/exts/ask.py, Ask.remember).
        conversation = Conversation().then(pair.first, [q.article.id for q in first.quotes])
        without.append(outcome_of(engine.ask(pair.follow_up, as_of=as_of), 0.0))
        for boost in boosts:
            with context_boost(boost):
                answer = engine.ask(pair.follow_up, as_of=as_of, context=conversation)
            with_context[boost].append(outcome_of(answer, 0.0))
    golds = [pair.answers for pair in pairs]
    return {
        "pairs": len(pairs),
        "as_of": as_of.isoformat() if as_of else None,
        "first_quote_hit@3": mean(
            float(quote_hit(o.quotes, p.answers, 3)) for o, p in zip(firsts, pairs, strict=True)
        ),
        "without_context": follow_up_metrics(without, golds),
        **{f"with_context_boost_{boost:g}": follow_up_metrics(outcomes, golds)
           for boost, outcomes in with_context.items()},
    }


def evaluate(
    settings: Settings,
    pairs: Sequence[FollowUpPair],
    *,
    samples_dir: Path = SAMPLES_DIR,
    news_corpus: Path = NEWS_CORPUS,
    boosts: Sequence[float] = (followup.CONTEXT_BOOST,),
    only: Iterable[str] = CORPORA,
    embedder: Any = None,
) -> dict[str, Any]:
    """Figures per corpus (see the module docstring), with the settings that shaped them."""
    if embedder is None:
        from index.embedding import make_embedder

        embedder = make_embedder(settings.model, settings.embed_backend,
                                 settings.model_cache_dir)
    report: dict[str, Any] = {}
    for corpus in only:
        chosen = [pair for pair in pairs if pair.corpus == corpus]
        if not chosen:
            continue
        engine = (samples_index(settings, samples_dir, embedder) if corpus == "samples"
                  else news_index(settings, news_corpus, embedder))
        try:
            log(f"{corpus}: {len(chosen)} pairs")
            report[corpus] = ask_pairs(engine, chosen, boosts)
        finally:
            engine.close()
    report["settings"] = {"model": settings.model, "embed_backend": settings.embed_backend,
                          "candidates": settings.candidates, "bm25_weight": settings.bm25_weight,
                          "min_score": settings.min_score}
    return report


def _boosts(value: str) -> str:
    """Reject a --boost that is not a comma-separated list of numbers from 0 to 1."""
    try:
        boosts = [float(item) for item in value.split(",")]
    except ValueError:
        raise typer.BadParameter(f"expected numbers separated by commas, got {value!r}") from None
    if not all(0.0 <= boost <= 1.0 for boost in boosts):
        raise typer.BadParameter("each boost is between 0 and 1 (cosine units)")
    return value


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(cls=OneLineErrorsCommand)
def compare(
    data: Annotated[
        Path, typer.Option("--data", help="The pairs: JSON Lines with corpus, first, follow_up "
                           "and answers a line.")
    ] = PAIRS,
    corpus: CorpusOption = NEWS_CORPUS,
    samples: Annotated[
        Path, typer.Option("--samples", help="The folder of the sample articles.")
    ] = SAMPLES_DIR,
    boost: Annotated[
        str, typer.Option("--boost", callback=_boosts, help="Context boost(s) to compare, "
                          f"comma-separated (default: the engine's, {followup.CONTEXT_BOOST:g}).")
    ] = f"{followup.CONTEXT_BOOST:g}",
    only: Annotated[
        CorpusName | None, typer.Option("--only", help="Ask only the pairs of this corpus.")
    ] = None,
    overrides: SetOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as one line of JSON.")
    ] = False,
) -> None:
    """Follow-up questions without and with their conversation: quote_hit@1/@3 and hit@5 per
    corpus. Settings come from the environment and .env; indexes are cached under var/eval/."""
    try:
        pairs = read_pairs(data)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None
    result = evaluate(
        quality._settings(overrides), pairs, samples_dir=samples, news_corpus=corpus,
        boosts=[float(item) for item in boost.split(",")],
        only=(only,) if only else CORPORA,
    )
    print(json.dumps(result, ensure_ascii=False) if as_json
          else json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    app()
