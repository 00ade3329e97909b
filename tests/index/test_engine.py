from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pytest

from index import questions
from index.engine import Engine, IndexMismatchError, IndexMissingError, ReindexInProgressError
from index.models import (
    LAST_CHANGE_KEY,
    LAST_REINDEX_KEY,
    NotAnswered,
    OutsideFilters,
    SearchFilters,
    SyncOutcome,
)
from index.store.local import generations
from tests.index.fakes import HashingEmbedder


def build(settings, embedder) -> Engine:
    engine = Engine.open(settings, create=True, embedder=embedder)
    engine.reindex()
    return engine


def test_reindex_builds_an_index_that_answers(settings, embedder):
    engine = build(settings, embedder)
    answer = engine.ask("When did the harbour bridge reopen?")
    assert answer.answered
    assert answer.results[0].article.title == "Harbour bridge reopens after repairs"
    top = answer.quotes[0]
    assert "reopened on Monday" in top.text
    # A quote is a verbatim slice of the article text at its offsets.
    with engine.store.reading() as snapshot:
        _, text, _ = snapshot.find_article(top.article.id)
    assert text[top.start : top.end] == top.text


def test_a_timeline_runs_oldest_first_and_puts_undated_stories_last(settings, embedder):
    folder = settings.article_dirs[0]
    for name, day in (("late", "2023-03-01"), ("undated", None), ("early", "2023-01-15")):
        record = {"title": f"Lighthouse restoration {name}", "url": f"https://example.org/{name}",
                  "text": f"The lighthouse restoration on the cape reached its {name} stage "
                          "with new lamps and a painted tower."}
        if day:
            record["date"] = day
        (folder / f"{name}.json").write_text(json.dumps(record), encoding="utf-8")
    engine = build(settings, embedder)
    quotes = engine.timeline("lighthouse restoration on the cape")
    ours = [q.article.title for q in quotes if q.article.title.startswith("Lighthouse")]
    assert ours == [f"Lighthouse restoration {name}" for name in ("early", "late", "undated")]
    days = [q.article.published for q in quotes]
    assert days == sorted(d for d in days if d) + [None] * days.count(None)


def test_reingest_unchanged_embeds_nothing_and_writes_no_generation(settings, embedder):
    engine = build(settings, embedder)
    before = engine.stats().generation
    embedded = embedder.encoded
    report = engine.reindex()
    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 0, 3, 0)
    assert embedder.encoded == embedded
    assert engine.stats().generation == before


def test_changed_article_is_replaced_and_unchanged_chunks_reused(settings, embedder):
    settings.chunk_max_tokens = 30  # several chunks per article
    engine = build(settings, embedder)
    path = settings.article_dirs[0] / "orchard.txt"
    path.write_text(path.read_text().replace("October", "November"), encoding="utf-8")
    report = engine.reindex()
    assert (report.added, report.updated, report.unchanged) == (0, 1, 2)
    assert report.chunks_reused >= 1  # the first paragraph did not change
    assert "November" in engine.ask("When is the apple harvest festival?").quotes[0].text


def test_collection_coverage_follows_each_new_generation(settings, embedder):
    engine = build(settings, embedder)
    assert engine.stats().n_articles == 3
    assert engine.ask("When did the harbour bridge reopen?").collection.n_articles == 3
    (settings.article_dirs[0] / "comet.txt").unlink()
    engine.reindex()
    assert engine.stats().n_articles == 2
    assert engine.ask("When did the harbour bridge reopen?").collection.n_articles == 2


def test_removed_file_is_removed_from_index(settings, embedder):
    engine = build(settings, embedder)
    (settings.article_dirs[0] / "comet.txt").unlink()
    report = engine.reindex()
    assert report.removed == 1
    assert engine.count_articles() == 2


def test_unreadable_file_keeps_its_articles(settings, embedder):
    engine = build(settings, embedder)
    (settings.article_dirs[0] / "comet.txt").write_bytes(b"\x00\x01binary junk")
    report = engine.reindex()
    assert report.removed == 0 and len(report.skipped) == 1
    assert engine.count_articles() == 3


def test_exact_duplicate_text_is_stored_once(settings, embedder):
    folder = settings.article_dirs[0]
    (folder / "copy.txt").write_text((folder / "harbour.txt").read_text().upper(), "utf-8")
    engine = Engine.open(settings, create=True, embedder=embedder)
    assert engine.reindex().duplicates == 1
    assert engine.count_articles() == 3


def test_labels_are_kept_and_filterable(settings, embedder):
    engine = build(settings, embedder)
    detail = engine.article("Amateur astronomer finds a comet")
    assert detail is not None and detail.article.labels == ("satire",)
    answer = engine.ask("comet telescope", SearchFilters(labels=("truenews",)))
    assert all("comet" not in hit.article.title.lower() for hit in answer.results)


def test_faiss_ids_match_sqlite_chunks(settings, embedder):
    engine = build(settings, embedder)
    generation = engine.store._generation
    ids = set(generations.vectors.index_ids(generation.index).tolist())
    rows = {r[0] for r in generation.conn().execute("SELECT id FROM chunks")}
    assert ids == rows and ids


def test_irrelevant_question_abstains(settings, embedder):
    settings.min_score = settings.min_answer_score = 0.5
    engine = build(settings, embedder)
    answer = engine.ask("quantum chromodynamics lattice gauge")
    assert not answer.answered and not answer.quotes
    assert answer.coverage.n_articles == 3


def test_empty_question_abstains(settings, embedder):
    engine = build(settings, embedder)
    for question in ("", "   ", "?!…", "\u200b\u200f"):
        answer = engine.ask(question)
        assert not answer.answered


def test_missing_index_is_a_clear_error(settings, embedder):
    with pytest.raises(IndexMissingError, match="articlebot reindex"):
        Engine.open(settings, embedder=embedder)


def test_index_from_another_model_is_refused(settings, embedder):
    build(settings, embedder).close()
    with pytest.raises(IndexMismatchError, match="model"):
        Engine.open(settings, embedder=HashingEmbedder(model="another-model"))
    with pytest.raises(IndexMismatchError, match="dim"):
        Engine.open(settings, embedder=HashingEmbedder(dim=32))


def test_damaged_generation_falls_back_to_previous(settings, embedder):
    engine = build(settings, embedder)
    path = settings.article_dirs[0] / "comet.txt"
    path.write_text(path.read_text() + "\nA second sighting followed.\n", encoding="utf-8")
    engine.reindex()
    newest = generations.complete_generations(settings.index_dir)[0]
    with (newest / generations.DATABASE).open("r+b") as handle:
        handle.seek(200)
        handle.write(b"\xff\xff\xff")
    reopened = Engine.open(settings, embedder=embedder)
    assert reopened.stats().generation != newest.name
    assert reopened.ask("When did the harbour bridge reopen?").answered


def test_leftover_building_generation_is_removed_on_open(settings, embedder):
    build(settings, embedder).close()
    leftover = settings.index_dir / "gen-000099.building"
    leftover.mkdir()
    Engine.open(settings, embedder=embedder)
    assert not leftover.exists()


def test_second_reindex_while_one_runs_is_refused(settings, embedder):
    engine = build(settings, embedder)
    assert engine._write_lock.acquire()
    try:
        with pytest.raises(ReindexInProgressError):
            engine.reindex()
    finally:
        engine._write_lock.release()


# How long the reindex test waits for the other thread (s): only a broken engine reaches it,
# however busy the machine (the reindex must stay held while the old generation answers).
HELD_SECONDS = 60.0


def test_questions_keep_being_answered_during_a_reindex(settings, embedder):
    engine = build(settings, embedder)
    release = threading.Event()
    started = threading.Event()

    def slow_progress(event) -> None:
        if event.stage == "chunking":
            started.set()
            release.wait(HELD_SECONDS)

    (settings.article_dirs[0] / "new.txt").write_text(
        "Night market opens\n\nA night market opened by the harbour bridge.\n", "utf-8"
    )
    worker = threading.Thread(target=engine.reindex, kwargs={"progress": slow_progress})
    worker.start()
    assert started.wait(HELD_SECONDS)
    assert engine.reindexing
    assert engine.ask("When did the harbour bridge reopen?").answered  # old generation serves
    assert engine.count_articles() == 3
    release.set()
    worker.join(HELD_SECONDS)
    assert engine.count_articles() == 4


def test_manifest_records_model_chunking_and_counts(settings, embedder):
    build(settings, embedder)
    newest = generations.complete_generations(settings.index_dir)[0]
    manifest = json.loads((newest / generations.MANIFEST).read_text())
    assert manifest["embedding"]["model"] == "test-hashing"
    assert manifest["embedding"]["dim"] == 64 and manifest["embedding"]["normalized"]
    assert manifest["chunking"]["overlap"] == settings.chunk_overlap_sentences
    counts = manifest["counts"]
    assert counts["articles"] == 3 and counts["chunks"] >= 3 and counts["tokens"] > counts["chunks"]
    assert set(manifest["files"]) == {"articles.sqlite", "vectors.faiss"}


def test_browsing(settings, embedder):
    engine = build(settings, embedder)
    assert engine.count_articles() == 3
    assert len(engine.recent_articles(limit=2)) == 2
    found = engine.search_titles("comet")
    assert [a.title for a in found] == ["Amateur astronomer finds a comet"]
    detail = engine.article(found[0].id[:6])
    assert detail is not None and detail.opening.startswith("A retired teacher")
    assert engine.article("no such thing") is None


def test_feedback_survives_reindex(settings, embedder):
    engine = build(settings, embedder)
    engine.record_feedback("q", [1, 2], 1, "u1")
    engine.record_feedback("q", [2, 1], -1, "u1")  # a later vote replaces the earlier one
    engine.record_feedback("q", [1, 2], 1, "u2")
    (settings.article_dirs[0] / "x.txt").write_text("Title\n\nBody text here.\n", "utf-8")
    engine.reindex()
    assert engine.feedback_counts() == {"up": 1, "down": 1}


def test_ingest_outside_configured_folders_is_kept_by_reindex(settings, embedder, tmp_path: Path):
    engine = build(settings, embedder)
    extra = tmp_path / "extra.txt"
    extra.write_text("Lighthouse keeper retires\n\nThe keeper retired at last.\n", "utf-8")
    assert engine.ingest([extra]).added == 1
    assert engine.reindex().removed == 0
    assert engine.count_articles() == 4


def test_a_writer_builds_on_what_another_process_published(settings, embedder, tmp_path):
    first = build(settings, embedder)  # serves the first generation and keeps serving it
    other = Engine.open(settings, embedder=embedder)  # as another process would
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "storm.txt").write_text("Storm closes the ferry\n\nA storm closed the ferry.\n",
                                     encoding="utf-8")
    assert other.ingest([extra]).added == 1
    (extra / "tram.txt").write_text("Tram line opens\n\nThe new tram line opened today.\n",
                                    encoding="utf-8")
    report = first.ingest([extra / "tram.txt"])  # planned against the generation it serves
    assert report.added == 1
    assert first.count_articles() == 5  # the other process's storm article is still there
    assert first.ingest([extra / "storm.txt"]).changed is False  # and not added twice


WIRE_TEXT = (
    "The central bank of Varrow raised its interest rate by half a point on Tuesday, the fifth "
    "rise this year. Economists had expected a smaller step after inflation slowed in spring.")


def test_the_same_wire_story_from_a_second_outlet_is_a_second_article(settings, embedder):
    engine = build(settings, embedder)
    wire = settings.article_dirs[0].parent / "wire.jsonl"
    wire.write_text("".join(json.dumps({
        "title": "Varrow raises rates", "source": outlet, "url": f"https://{host}/rates",
        "text": WIRE_TEXT}) + "\n" for outlet, host in (("Outlet One", "one.example"),
                                                       ("Outlet Two", "two.example"))))
    before = embedder.encoded
    report = engine.ingest([wire])
    assert (report.added, report.duplicates) == (2, 0)
    assert embedder.encoded - before == report.chunks_embedded == 1  # embedded once, stored twice
    assert engine.count_articles("Outlet Two") == 1
    answer = engine.ask("How much did the Varrow central bank raise rates?",
                        SearchFilters(sources=("Outlet Two",)))
    assert answer.results[0].article.source == "Outlet Two"
    quote = engine.ask("How much did the Varrow central bank raise rates?").quotes[0]
    assert {quote.article.source, *(a.source for a in quote.also)} == {"Outlet One",
                                                                         "Outlet Two"}


def test_the_same_text_twice_from_one_outlet_is_still_a_duplicate(settings, embedder):
    engine = build(settings, embedder)
    wire = settings.article_dirs[0].parent / "wire.jsonl"
    wire.write_text("".join(json.dumps({
        "title": "Varrow raises rates", "source": "Outlet One", "url": url, "text": WIRE_TEXT})
        + "\n" for url in ("https://one.example/rates", "https://one.example/amp/rates")))
    assert (engine.ingest([wire]).added, engine.count_articles("Outlet One")) == (1, 1)


def test_chunks_repeated_within_one_ingest_are_embedded_once(settings, embedder):
    settings.chunk_max_tokens = 30
    engine = build(settings, embedder)  # an index with articles: no embedding ahead
    shared = ("The regional water board repeated its warning about the reservoir levels. "
              "Residents were asked to limit garden watering until the autumn rains.")
    records = settings.article_dirs[0].parent / "repeats.jsonl"
    records.write_text("".join(json.dumps({
        "title": f"Bulletin {n}", "text": f"Bulletin number {n} from Kestle.\n\n{shared}"})
        + "\n" for n in range(12)))
    before = embedder.encoded
    report = engine.ingest([records])
    assert report.added == 12
    new_chunks = report.chunks_embedded + report.chunks_reused
    distinct = embedder.encoded - before
    assert distinct == report.chunks_embedded < new_chunks
    assert distinct <= 12 + 3  # each bulletin's own line, the shared paragraph's chunks once


def test_a_filter_that_leaves_out_the_answer_says_so_with_counts(settings, embedder):
    settings.min_score = settings.min_answer_score = 0.4  # the hashing embedder: comet, orchard
    # articles below
    # A dated report of the same news, from another outlet, before the period asked about.
    (settings.article_dirs[0] / "gazette.json").write_text(json.dumps({
        "title": "Harbour bridge to reopen", "source": "Port Gazette", "published": "2023-03-01",
        "text": "The harbour bridge in Port Ellin will reopen on Monday after repairs.",
    }), encoding="utf-8")
    engine = build(settings, embedder)
    question = "When did the harbour bridge reopen?"
    assert engine.ask(question).answered
    undated = engine.ask(question, SearchFilters(since=date(2024, 1, 1)))
    assert not undated.answered and undated.reason is NotAnswered.FILTERED
    assert undated.outside == OutsideFilters(n_articles=2, n_undated=1, excluded_by=("since",))
    labelled = engine.ask(question, SearchFilters(labels=("satire",)))
    assert labelled.reason is NotAnswered.FILTERED
    assert labelled.outside == OutsideFilters(n_articles=2, n_undated=1, excluded_by=("label",))
    both = engine.ask(question, SearchFilters(sources=("Port Gazette",), until=date(2023, 2, 1)))
    assert both.outside == OutsideFilters(n_articles=2, n_undated=1,
                                          excluded_by=("source", "until"))


def test_nothing_anywhere_is_not_blamed_on_the_filter(settings, embedder):
    settings.min_score = settings.min_answer_score = 0.5
    engine = build(settings, embedder)
    answer = engine.ask("quantum chromodynamics lattice gauge",
                        SearchFilters(since=date(2024, 1, 1)))
    assert answer.reason is NotAnswered.NOTHING_RELEVANT and answer.outside is None


def test_the_unfiltered_look_runs_only_when_a_filtered_question_abstains(
    settings, embedder, monkeypatch
):
    settings.min_score = settings.min_answer_score = 0.4
    engine = build(settings, embedder)
    calls: list[object] = []
    real = questions.hybrid_search

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("filters"))
        return real(*args, **kwargs)

    monkeypatch.setattr(questions, "hybrid_search", counted)
    question = "When did the harbour bridge reopen?"
    assert engine.ask(question, SearchFilters(labels=("truenews",))).answered
    assert not engine.ask("quantum chromodynamics lattice gauge").answered
    assert len(calls) == 2  # one retrieval each
    engine.ask(question, SearchFilters(labels=("satire",)))
    assert len(calls) == 4  # the filtered one, then one unfiltered


def test_only_articles_past_the_abstention_bar_are_marked_relevant(settings, embedder):
    settings.min_score = settings.min_answer_score = 0.4  # the hashing embedder: comet, orchard
    # articles below
    engine = build(settings, embedder)
    answer = engine.ask("When did the harbour bridge reopen?")
    marks = {hit.article.title: hit.relevant for hit in answer.results}
    assert marks == {"Harbour bridge reopens after repairs": True,
                     "Amateur astronomer finds a comet": False,
                     "Record apple harvest in the valley": False}


def outcome(engine: Engine, key: str) -> SyncOutcome | None:
    return SyncOutcome.from_json(engine.state.get_value(key))


def test_a_reindex_that_changes_nothing_is_remembered_and_leaves_whats_new(settings, embedder):
    engine = build(settings, embedder)
    first = outcome(engine, LAST_CHANGE_KEY)
    assert first is not None and first.from_scratch and first.added == 3
    assert first.generation == engine.stats().generation
    (settings.article_dirs[0] / "storm.txt").write_text(
        "Storm cuts power on the coast\n\nA storm cut power to the coast on Tuesday.\n",
        encoding="utf-8")
    engine.reindex()
    change = outcome(engine, LAST_CHANGE_KEY)
    assert change is not None and (change.added, change.from_scratch) == (1, False)
    assert engine.reindex().changed is False
    latest = outcome(engine, LAST_REINDEX_KEY)
    assert latest is not None and latest.kind == "reindex" and not latest.changed
    assert latest.finished_at >= change.finished_at
    # What the latest reindex that changed something brought in stays what /whatsnew shows.
    assert outcome(engine, LAST_CHANGE_KEY) == change
    assert [s.article.title for s in engine.whatsnew()] == ["Storm cuts power on the coast"]


def test_an_unreadable_outcome_is_unknown_not_an_error():
    assert SyncOutcome.from_json(None) is None
    assert SyncOutcome.from_json("not json") is None
    assert SyncOutcome.from_json('{"kind": "reindex"}') is None
    assert SyncOutcome.from_json("[]") is None


def test_later_quotes_come_only_from_relevant_passages(settings, embedder, monkeypatch):
    from dataclasses import replace

    from index.reading import reader_for

    reader = reader_for(settings)
    monkeypatch.setattr(reader, "calibration",  # no cut by probability
                        replace(reader.calibration, quote_min_ratio=0.0))
    settings.chunk_max_tokens = 30  # several chunks per article
    settings.max_quotes = 5
    settings.min_answer_score = 0.0
    engine = build(settings, embedder)
    question = "When did the harbour bridge reopen?"
    settings.min_score = -1.0  # every passage relevant: quotes may come from several chunks
    spread = {quote.chunk_id for quote in engine.ask(question).quotes}
    settings.min_score = 0.99  # none relevant on its own: only the best sentence's chunk
    answer = engine.ask(question)
    assert answer.answered and len({quote.chunk_id for quote in answer.quotes}) == 1
    assert len(spread) > 1
