"""Values on their way into the store: one sanitiser for text, names, paths and dates, and a
bad value costs its own record or file, never the ingest."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from index.config import Settings
from index.engine import Engine
from index.ingest import iter_articles
from index.ingest.records import make_article, parse_date
from index.ingest.sanitize import sanitize, store_path, store_text
from index.models import ParsedArticle, SkippedItem
from tests.index.fakes import HashingEmbedder

# Every code point, lone surrogates (category Cs) included: what json.loads can hand us.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
LATIN1_NAME = b"caf\xe9.txt"  # 'café.txt' as a Latin-1 system wrote it: not UTF-8
STRING_FIELDS = ("text", "origin", "title", "source", "url")


def storable(item: ParsedArticle | SkippedItem) -> bool:
    """True when every string of the item can be written as UTF-8 text (SQLite, PostgreSQL)."""
    if isinstance(item, SkippedItem):
        strings = [item.origin, item.reason]
    else:
        strings = [getattr(item, name) for name in STRING_FIELDS]
        strings += [*item.authors, *item.labels]
    for value in strings:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        if "\x00" in value:
            return False
    return True


# ------------------------------------------------------------------ the sanitiser


def test_lone_surrogates_become_replacement_characters_and_pairs_join():
    assert store_text("a \ud800 b \udce9") == "a \ufffd b \ufffd"
    assert store_text("\ud83d\ude00") == "\U0001f600"  # a pair written as two escapes
    assert store_text("plain café") == "plain café"
    assert store_text("nul\x00byte") == "nulbyte"


def test_a_path_keeps_the_bytes_that_are_not_utf8_as_backslash_escapes():
    path = os.fsdecode(b"/data/" + LATIN1_NAME)
    assert store_path(path) == "/data/caf\\xe9.txt"
    assert store_path(store_path(path)) == store_path(path)  # stable from one run to the next
    assert store_path("/data/café.txt:3") == "/data/café.txt:3"
    assert store_path("/data/\ud800.txt") == "/data/\ufffd.txt"  # not from the OS: replaced


@given(ANY_TEXT)
def test_every_text_is_storable_after_the_sanitiser_and_it_is_idempotent(text):
    cleaned = store_text(text)
    cleaned.encode("utf-8")
    assert "\x00" not in cleaned and store_text(cleaned) == cleaned


@given(st.binary(max_size=30).filter(lambda raw: b"\x00" not in raw and b"/" not in raw))
def test_every_file_name_is_storable_after_the_sanitiser_and_it_is_idempotent(raw):
    shown = store_path(os.fsdecode(raw))
    shown.encode("utf-8")
    assert store_path(shown) == shown


@given(ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT)
def test_every_record_gives_storable_values(text, title, source, url, author):
    record = {"text": text, "title": title, "source": source, "url": url,
              "authors": [author], "labels": author, "date": title}
    assert storable(make_article(record, os.fsdecode(b"/d/" + LATIN1_NAME)))


def test_the_sanitiser_undates_a_date_out_of_range():
    article = ParsedArticle(text="Body.", origin="a.txt", published=date(9999, 1, 1))
    assert sanitize(article).published is None
    kept = ParsedArticle(text="Body.", origin="a.txt", published=date(2023, 5, 1))
    assert sanitize(kept) == kept


DATE_VALUES = {
    "400-digit integer": 9 * 10**399, "negative 401 digits": -(10**400),
    "infinity": float("inf"), "NaN": float("nan"), "400 digits as text": "9" * 400,
    "1e400 as text": "1e400", "10**18": 10**18, "month 13": "2023-13-45",
    "year 99999": "99999-01-01", "a long date string": "January 2023 " * 200,
}


@pytest.mark.parametrize("value", DATE_VALUES.values(), ids=DATE_VALUES.keys())
def test_any_date_value_is_a_date_or_undated_never_an_error(value):
    parse_date(value)


@given(st.one_of(st.integers(), st.floats(), ANY_TEXT))
def test_parse_date_never_raises(value):
    parse_date(value)


@pytest.mark.parametrize("digits", [400, 5000], ids=["400 digits", "past str()'s limit"])
def test_a_huge_number_as_a_date_leaves_the_record_undated(caplog, digits):
    caplog.set_level("INFO", logger="index.ingest.records")
    article = make_article({"title": "Big", "text": "A bridge opened.", "date": 10**digits},
                           "a:1")
    assert isinstance(article, ParsedArticle) and article.published is None
    assert "a:1: date" in caplog.text and "stored undated" in caplog.text


def test_a_record_whose_reading_fails_costs_that_record_alone(monkeypatch):
    from index.ingest import records

    def broken(value: object) -> str:
        raise RuntimeError("a field nobody foresaw")

    monkeypatch.setattr(records, "_one_line", broken)
    item = make_article({"title": "T", "text": "A body."}, "a.jsonl:4")
    assert isinstance(item, SkippedItem) and item.origin == "a.jsonl:4"
    assert "RuntimeError: a field nobody foresaw" in item.reason


# ------------------------------------------------------------------ end to end


def write_bad_values(root: Path) -> None:
    """A folder where each kind of bad value sits beside good records."""
    root.mkdir()
    lines = [
        json.dumps({"title": "Lone", "text": "The harbour \ud800 ferry runs at dawn."}),
        json.dumps({"title": "\udce9 Surrogate title", "text": "The mill at Ostry reopened.",
                    "authors": ["\ud800"], "source": "Paper \udfff"}),
        '{"title": "Huge date", "text": "The bridge at Carrow opened.", "date": '
        + "9" * 400 + "}",
        json.dumps({"title": "After", "text": "The tram depot moved to Elm Street."}),
    ]
    (root / "values.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    named = os.path.join(os.fsencode(root), LATIN1_NAME)
    Path(os.fsdecode(named)).write_text("Cafe\n\nThe cafe by the weir sells pies.\n", "utf-8")
    (root / "good.txt").write_text("Good\n\nThe good article says the lake froze.\n", "utf-8")


def reindex_twice(settings: Settings, root: Path) -> Engine:
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    report = engine.reindex()
    assert (report.added, report.skipped) == (6, []), report.skipped
    titles = {article.title: article for article in engine.recent_articles(limit=20)}
    assert set(titles) == {"Lone", "\ufffd Surrogate title", "Huge date", "After", "Cafe",
                           "Good"}
    assert titles["Huge date"].published is None
    lone = engine.article("Lone")
    assert lone is not None and "harbour \ufffd ferry" in lone.opening
    assert titles["\ufffd Surrogate title"].source == "Paper \ufffd"
    # The file with a Latin-1 name is found again: unchanged, not new and not removed.
    again = engine.reindex()
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 6)
    return engine


def test_bad_values_cost_nothing_else_through_reindex(tmp_path: Path) -> None:
    root = tmp_path / "articles"
    write_bad_values(root)
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", article_dirs=[root],
                        model="test-hashing", min_score=0.05, min_answer_score=0.0)
    reindex_twice(settings, root)


def test_bad_values_reach_postgres_sanitised(tmp_path: Path, fresh_database: str) -> None:
    from bench.stores import on_postgres

    root = tmp_path / "articles"
    write_bad_values(root)
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", article_dirs=[root],
                        model="test-hashing", min_score=0.05, min_answer_score=0.0)
    engine = reindex_twice(on_postgres(settings, fresh_database), root)
    assert engine.stats().store == "postgres"


def test_every_item_the_reader_gives_is_storable(tmp_path: Path, ingest) -> None:
    root = tmp_path / "articles"
    write_bad_values(root)
    os.symlink(os.fsencode(tmp_path / "nowhere") + b"\xff", os.fsencode(root) + b"/broken\xff")
    items = list(iter_articles([root]))
    assert all(storable(item) for item in items)
    origins = {Path(item.origin).name for item in items}
    assert {"caf\\xe9.txt", "broken\\xff"} <= origins
    skipped = [item for item in items if isinstance(item, SkippedItem)]
    assert [(Path(item.origin).name, item.reason) for item in skipped] == [
        ("broken\\xff", "broken symbolic link")]


def test_a_folder_whose_name_is_not_utf8_still_has_its_deletions_removed(
    tmp_path: Path,
) -> None:
    root = tmp_path / os.fsdecode(b"caf\xe9-articles")
    root.mkdir()
    for name in ("one", "two"):
        (root / f"{name}.txt").write_text(f"Story {name}\n\nThe {name} ferry sailed.\n",
                                          encoding="utf-8")
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", article_dirs=[root],
                        model="test-hashing", min_score=0.05, min_answer_score=0.0)
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    assert engine.reindex().added == 2
    (root / "two.txt").unlink()
    report = engine.reindex()
    assert (report.removed, report.unchanged) == (1, 1)
    engine.close()


@pytest.mark.parametrize("written", ["2024-13-45", "0000-01-01", "2024-02-30 10:00:00"])
def test_a_front_matter_date_that_does_not_exist_leaves_the_article_undated(
    tmp_path: Path, written: str
) -> None:
    (tmp_path / "gala.md").write_text(
        f"---\ntitle: Swim gala\ndate: {written}\n---\n\nThe swimming club won the gala.\n",
        encoding="utf-8")
    [item] = list(iter_articles([tmp_path]))
    assert isinstance(item, ParsedArticle), item
    assert item.title == "Swim gala" and item.published is None


def test_a_front_matter_date_that_exists_is_still_read(tmp_path: Path) -> None:
    (tmp_path / "gala.md").write_text(
        "---\ntitle: Swim gala\ndate: 2024-03-05\n---\n\nThe swimming club won the gala.\n",
        encoding="utf-8")
    [item] = list(iter_articles([tmp_path]))
    assert isinstance(item, ParsedArticle) and item.published == date(2024, 3, 5)


def test_an_html_page_without_text_is_named_once_and_the_parser_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "empty.html").write_text("", encoding="utf-8")
    (tmp_path / "script.html").write_text("<html><script>x()</script></html>",
                                          encoding="utf-8")
    items = list(iter_articles([tmp_path]))
    assert all(isinstance(item, SkippedItem) for item in items) and len(items) == 2
    assert not [r for r in caplog.records if r.name.startswith("trafilatura")]
