"""Bad input through the engine: refused clearly, counted, and nothing good is lost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.config import Settings
from index.engine import Engine
from index.models import Answer, NotAnswered
from index.text import clean
from tests.index.fakes import HashingEmbedder
from tests.index.synthetic import noise_bytes, write_articles

GOOD = "Good {n}\n\nThe good article number {n} says the tram line opens in Varrow.\n"


def record(n: int, **fields: object) -> str:
    return json.dumps({"title": f"Record {n}", "url": f"https://example.org/r{n}",
                       "text": f"Record {n} reports the wind farm near Kestle grew.", **fields})


def bad_folder(root: Path, outside: Path) -> dict[str, str]:
    """Write every kind of bad input beside good items; returns {file or record: reason}."""
    root.mkdir()
    outside.mkdir()
    (root / "good.txt").write_text(GOOD.format(n=1), "utf-8")
    (root / "legacy.txt").write_bytes("Café crème\n\nLe café coûte 2 €.\n".encode("cp1252"))
    (root / "binary.txt").write_bytes(b"\x7fELF\x00\x01\x02" + bytes(range(256)) * 8)
    (root / "nul.md").write_bytes(b"# Title\n\nText with a NUL \x00 byte.\n")
    (root / "undecodable.txt").write_bytes(b"Title\n\n" + noise_bytes())
    (root / "empty.txt").write_bytes(b"")
    with (root / "huge.txt").open("wb") as handle:  # sparse: 50 MB and one byte on disk
        handle.truncate(50 * 2**20 + 1)
    (root / "longline.txt").write_text("Blob\n\n" + "x" * 5_000_000 + "\n", "utf-8")
    lines = [
        record(1),
        '{"title": "cut", "text": "unterminated',
        record(2, published="31/31/2023"),
        json.dumps({"title": "blob", "text": "y" * 5_000_000}),
        record(3, date="sometime next spring"),
        record(1),  # the same record again: a duplicate id
        "[1, 2, 3]",
        record(4, published="1679000000"),
    ]
    (root / "mixed.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    (root / "sheet.csv").write_text(
        "title,published,url,text\n"
        "Row one,2023-03-04,https://example.org/c1,The copper mine in Dunmere reopened.\n"
        "Row two only has a title\n"
        "Row three,3rd of Marchember,https://example.org/c3,The chess final ended in a draw.\n",
        "utf-8",
    )
    (outside / "secret.txt").write_text("Secret\n\nNot for the index.\n", "utf-8")
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "escape-dir").symlink_to(outside)
    return {
        "binary.txt": "binary file (contains NUL bytes)",
        "nul.md": "binary file (contains NUL bytes)",
        "undecodable.txt": "not text in any known encoding",
        "empty.txt": "empty file",
        "huge.txt": "file is 52,428,801 bytes, over the 50 MB limit (52,428,800 bytes)",
        "longline.txt": "5,000,000-character run without spaces",
        "mixed.jsonl:2": "invalid JSON",
        "mixed.jsonl:4": "5,000,000-character run without spaces",
        "mixed.jsonl:7": "not a JSON object (got array)",
        "sheet.csv:3": "no text field",
        "escape.txt": "outside the allowed folders",
        "escape-dir": "outside the allowed folders",
    }


def test_every_bad_item_is_skipped_by_name_and_good_ones_go_in(tmp_path: Path) -> None:
    root = tmp_path / "articles"
    expected = bad_folder(root, tmp_path / "private")
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", article_dirs=[root],
                        model="test-hashing", min_score=0.05, min_answer_score=0.0)
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    report = engine.reindex()

    skipped = {Path(item.origin).name: item.reason for item in report.skipped}
    assert set(skipped) == set(expected), skipped
    for name, reason in expected.items():
        assert reason in skipped[name], (name, skipped[name])
    # good.txt, legacy.txt, 4 JSONL records, 2 CSV rows
    assert (report.added, report.duplicates, len(report.skipped)) == (8, 1, len(expected))
    assert f"added 8, updated 0, unchanged 0, removed 0, duplicates 1, skipped {len(expected)}" \
        in report.summary()
    assert engine.count_articles() == 8
    assert engine.article("Café crème") is not None  # the legacy encoding was read
    dates = {a.title: a.published for a in engine.recent_articles(limit=20)}
    assert dates["Record 2"] is None and dates["Record 3"] is None  # odd dates: kept, undated
    assert str(dates["Record 4"]) == "2023-03-16" and str(dates["Row one"]) == "2023-03-04"
    assert dates["Row three"] is None
    assert engine.ask("When does the tram line open in Varrow?").answered
    assert engine.article("Secret") is None

    # A good record going bad later keeps what the index has: bad input loses nothing.
    mixed = root / "mixed.jsonl"
    mixed.write_text(mixed.read_text("utf-8").replace(record(3, date="sometime next spring"),
                                                      '{"broken'), "utf-8")
    (root / "good.txt").write_bytes(b"\x00 now binary")
    again = engine.reindex()
    assert again.removed == 0 and engine.count_articles() == 8
    assert engine.article("Record 3") is not None and engine.article("Good 1") is not None


# ------------------------------------------------------------------ questions


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """An index of 200 generated articles, shared by the question tests."""
    base = tmp_path_factory.mktemp("questions")
    write_articles(base / "articles", 200)
    settings = Settings(_env_file=None, index_dir=base / "index",
                        article_dirs=[base / "articles"], model="test-hashing", min_score=0.05,
                        min_answer_score=0.0)
    built = Engine.open(settings, create=True, embedder=HashingEmbedder())
    built.reindex()
    return built


def assert_sound(answer: Answer, question: str) -> None:
    """An answer, or a refusal that says why; quotes only with an answer."""
    assert answer.question == clean(question)  # what is echoed carries no invisible controls
    if answer.answered:
        assert answer.quotes and answer.confidence != "none"
    else:
        assert not answer.quotes and answer.reason is not None


ODD_QUESTIONS = {
    "empty": "",
    "whitespace": " \t\n\u3000 ",
    "long": "what happened to the harbour bridge " * 280,  # about 10,000 characters
    "emoji": "🌉🔥🚋❓👀",
    "zero-width": "\u200bharbour\u200c bridge\u200d\u2060?\ufeff",
    "bidi": "\u202ewhat happened\u202c to the \u2067harbour bridge\u2069?",
    "mentions": "@everyone <@123> <@&456> <#789> what about the tram line?",
    "markdown": "**bold** `code` [link](https://evil.example) > quote ||spoiler|| harbour",
    "sql-ish": "'; DROP TABLE chunks; -- \" OR 1=1 NEAR(harbour) AND NOT *",
    "only-punctuation": "?!…—()[]{}",
    "control": "harbour\x00\x01\x7f bridge",
    "stop-words": "what was it about the one that they had?",
}


@pytest.mark.parametrize("question", ODD_QUESTIONS.values(), ids=ODD_QUESTIONS.keys())
def test_odd_questions_get_an_answer_or_a_clear_refusal(engine: Engine, question: str) -> None:
    started = time.perf_counter()
    answer = engine.ask(question)
    assert time.perf_counter() - started < 5
    assert_sound(answer, question)


def test_questions_without_words_are_refused_with_a_reason(engine: Engine) -> None:
    for key in ("empty", "whitespace", "emoji", "only-punctuation"):
        answer = engine.ask(ODD_QUESTIONS[key])
        assert not answer.answered and answer.reason is NotAnswered.NO_WORDS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=st.text(max_size=400) | st.lists(
    st.sampled_from(["harbour", "bridge", " ", "@here", "<@1>", "**", "\u200b", "\u202e",
                     "NEAR", "AND", '"', "*", "-", "last week", "in March", "2023", "🌉"]),
    max_size=40).map("".join))
def test_any_text_gets_a_sound_answer(engine: Engine, question: str) -> None:
    assert_sound(engine.ask(question), question)
