from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from index.ingest import (
    article_key,
    content_hash,
    file_origin,
    normalized_text_hash,
    parse_date,
)
from index.models import ParsedArticle

BASE = ParsedArticle(
    text="Body text.",
    origin="data/a.jsonl:3",
    title="A title",
    source="example.com",
    url="https://www.example.com/news/story/",
    published=date(2023, 1, 5),
    authors=("Ann",),
    labels=("truenews",),
)


def test_file_origin_strips_only_the_record_suffix():
    assert file_origin("data/a.jsonl:7") == "data/a.jsonl"
    assert file_origin("data/a.txt") == "data/a.txt"
    assert file_origin("data/odd:name.txt") == "data/odd:name.txt"


def test_article_key_is_twelve_hex_chars():
    assert re.fullmatch(r"[0-9a-f]{12}", article_key(BASE))


@pytest.mark.parametrize(
    "variant",
    [
        "http://example.com/news/story",
        "https://EXAMPLE.com:443/news/story#comments",
        "https://www.example.com/news/story?utm_source=feed&fbclid=abc",
    ],
)
def test_article_key_follows_the_normalised_url(variant):
    moved = dataclasses.replace(BASE, url=variant, origin="elsewhere.csv:9", text="Edited.")
    assert article_key(moved) == article_key(BASE)


def test_article_key_distinguishes_real_url_differences():
    for other in ("https://example.com/news/other", "https://example.com/news/story?id=2"):
        assert article_key(dataclasses.replace(BASE, url=other)) != article_key(BASE)


def test_article_key_without_url_uses_file_and_title():
    no_url = dataclasses.replace(BASE, url="")
    shifted = dataclasses.replace(no_url, origin="data/a.jsonl:40", text="Edited body.")
    assert article_key(shifted) == article_key(no_url)
    assert article_key(dataclasses.replace(no_url, title="Other")) != article_key(no_url)
    assert article_key(dataclasses.replace(no_url, origin="data/b.jsonl:3")) != article_key(no_url)


def test_article_key_without_url_or_title_uses_the_record():
    bare = dataclasses.replace(BASE, url="", title="")
    assert article_key(dataclasses.replace(bare, origin="data/a.jsonl:4")) != article_key(bare)


def test_content_hash_changes_with_every_field_but_not_the_origin():
    changes = {
        "text": "Other body.",
        "title": "Other",
        "source": "other.org",
        "url": "https://other.org/",
        "published": date(2023, 1, 6),
        "authors": ("Bob",),
        "labels": ("fakenews",),
    }
    for name, value in changes.items():
        assert content_hash(dataclasses.replace(BASE, **{name: value})) != content_hash(BASE), name
    assert content_hash(dataclasses.replace(BASE, published=None)) != content_hash(BASE)
    assert content_hash(dataclasses.replace(BASE, origin="moved.txt")) == content_hash(BASE)


def test_normalized_text_hash_ignores_layout_and_case_only():
    assert normalized_text_hash("Hello  World.\n\nBye") == normalized_text_hash("hello world. BYE ")
    assert normalized_text_hash("Hello World.") != normalized_text_hash("Hello World!")


words = st.lists(st.text(st.characters(categories=["Lu", "Ll", "Nd"]), min_size=1), min_size=1)


@given(words=words)
def test_normalized_text_hash_whitespace_property(words):
    assert normalized_text_hash(" ".join(words)) == normalized_text_hash("\n\n\t".join(words))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023/01/05", date(2023, 1, 5)),
        ("2023-01-05", date(2023, 1, 5)),
        ("2023-01-05T23:30:00-05:00", date(2023, 1, 5)),
        ("2023-01-05T04:00:00Z", date(2023, 1, 5)),
        ("5 Jan 2023", date(2023, 1, 5)),
        ("January 5, 2023", date(2023, 1, 5)),
        ("Thu, 05 Jan 2023 10:00:00 GMT", date(2023, 1, 5)),
        ("January 2023", date(2023, 1, 1)),
        ("20230105", date(2023, 1, 5)),
        (1672920000, date(2023, 1, 5)),
        ("1672920000", date(2023, 1, 5)),
        (1672920000000, date(2023, 1, 5)),
        (date(2023, 1, 5), date(2023, 1, 5)),
        (datetime(2023, 1, 5, 12, tzinfo=UTC), date(2023, 1, 5)),
        ("", None),
        ("not a date", None),
        ("12", None),
        ("2023", None),
        ("Friday", None),
        ("31/31/2023", None),
        ("9999-01-01", None),
        (None, None),
        (True, None),
        ([2023, 1, 5], None),
        (float("nan"), None),
        (1e30, None),
    ],
)
def test_parse_date(value, expected):
    assert parse_date(value) == expected
