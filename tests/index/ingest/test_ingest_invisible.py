"""Text with nothing visible: a body is empty, a title or name is none, a file is empty."""

from __future__ import annotations

import pytest

from index.ingest.records import make_article
from index.models import ParsedArticle, SkippedItem
from index.text import visible

INVISIBLE = {
    "zero-width spaces": "\u200b\u200b",
    "joiners": "\u200c\u200d\u2060",
    "soft hyphen and BOM": "\u00ad\ufeff",
    "Hangul fillers": "\u3164\u115f\u1160\uffa0",
    "braille blank": "\u2800 \u2800",
    "odd spaces": "\u00a0\u2003\u3000\u205f",
    "variation selectors": "\ufe0f\U000e0100",
    "tag characters": "\U000e0001\U000e0041",
    "bidi controls": "\u202e\u2066\u200f",
    "mongolian separators": "\u180e\u180b",
    "line separators": "\u2028\u2029\x85",
}


@pytest.mark.parametrize("body", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_body_of_invisible_characters_is_an_empty_body(body):
    item = make_article({"title": "Title", "text": f"{body}\n{body}"}, "a.jsonl:1")
    assert item == SkippedItem("a.jsonl:1", "empty body")


@pytest.mark.parametrize("name", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_an_invisible_title_or_name_is_no_title_or_name(name):
    item = make_article({"title": name, "text": "The lake froze.", "source": name,
                         "authors": [name, "Ann Lee"], "labels": name}, "a.jsonl:1")
    assert isinstance(item, ParsedArticle)
    assert (item.title, item.source, item.authors, item.labels) == ("", "", ("Ann Lee",), ())


@pytest.mark.parametrize("suffix", [".txt", ".md"])
def test_an_invisible_file_is_skipped_as_empty(tmp_path, ingest, suffix):
    path = tmp_path / f"blank{suffix}"
    path.write_text("\u3164\n\n\u200b\u2800\n", "utf-8")
    articles, skipped = ingest(path)
    assert articles == [] and [item.reason for item in skipped] == ["empty file"]


def test_visible_text_is_what_a_reader_can_see():
    assert visible("a") and visible("\u200bx") and visible("\u0600") and visible("\ufffd")
    assert visible("\U0001f600\ufe0f") and visible("\u0915\u094d\u200d")
    assert not visible("") and not visible(" \t\n\u3164\u2800\u200b\U000e0020")
