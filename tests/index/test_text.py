"""Text that differs only in Unicode form, invisible characters or quote style is the same text."""

from __future__ import annotations

import json
import unicodedata

import pytest

from index.engine import Engine
from index.ingest import normalized_text_hash
from index.text import clean, fold, terms, tokens

NFC = "Café Łódź reopens"
VARIANTS = [
    unicodedata.normalize("NFD", NFC),          # decomposed accents
    "Caf\u00e9 \u0141\u00f3d\u017a re\u200bopens",  # zero-width space inside a word
    "Café Łódź re\u00adopens",                 # soft hyphen
    "\ufeffCafé Łódź reopens\u2060",           # BOM, word joiner
    "Café \u202eŁódź\u202c reopens",           # bidi override
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_clean_makes_every_variant_the_same_stored_text(variant):
    assert clean(variant) == NFC


@pytest.mark.parametrize(("first", "second"), [
    ("O'Dowd's shop", "O\u2019Dowd\u2019s shop"),
    ('"Yes," she said', "\u201cYes,\u201d she said"),
    ("\ufb01nance", "finance"),                  # ligature
    ("\uff21\uff22\uff23", "abc"),               # full-width letters
    *[(NFC, variant) for variant in VARIANTS],
])
def test_fold_compares_what_a_reader_sees(first, second):
    assert fold(first) == fold(second)
    assert tokens(first) == tokens(second)
    assert normalized_text_hash(first) == normalized_text_hash(second)


def test_clean_keeps_joiners_that_shape_scripts():
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # ZWNJ is part of the word
    assert clean(persian) == persian


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")


def test_variants_match_in_search_titles_and_duplicates(settings, embedder, tmp_path):
    engine = Engine.open(settings, create=True, embedder=embedder)
    engine.reindex()
    body = ("The cafe\u0301 on Ma\u200bin Street in Kestle reopened after the O\u2019Dowd family "
            "finished its renovation in spring.")
    first = tmp_path / "first.jsonl"
    write_jsonl(first, [{"title": "Cafe\u0301 on Ma\u200bin Street reopens", "text": body,
                         "url": "https://kestle.example/cafe", "source": "Kestle Post"}])
    copy = tmp_path / "copy.jsonl"  # the same text in NFC without invisible characters
    write_jsonl(copy, [{"title": "Café on Main Street reopens",
                        "text": clean(body).replace("\u2019", "'"),
                        "url": "https://kestle.example/cafe-copy", "source": "Kestle Post"}])
    assert engine.ingest([first]).added == 1
    assert engine.ingest([copy]).duplicates == 1
    # Title look-up by the NFC title, and with an invisible character typed in.
    for title in ("Café on Main Street reopens", "Café on Main\u200b Street reopens"):
        detail = engine.article(title)
        assert detail is not None and detail.article.url == "https://kestle.example/cafe"
    assert [a.url for a in engine.search_titles("main street")] == ["https://kestle.example/cafe"]
    # Keyword search finds the word the zero-width space used to split; the quote is a verbatim
    # slice of the stored (clean) text.
    answer = engine.ask("Which cafe on Main Street reopened after O'Dowd's renovation?")
    assert answer.quotes and "Main Street" in answer.quotes[0].text
    with engine.store.reading() as snapshot:
        hits = dict(snapshot.keyword_search(["main"], 5))
        _, stored, _ = snapshot.find_article(answer.quotes[0].article.id)
    assert answer.quotes[0].chunk_id in hits
    quote = answer.quotes[0]
    assert stored[quote.start:quote.end] == quote.text


@pytest.mark.parametrize(("text", "expected"), [
    ("Café Łódź re-opens", ("cafe", "łodz", "re", "opens")),    # diacritics go, as in FTS5
    ("q\u0301 한국어", ("q", "한국어")),  # a mark with no composed form; Hangul unchanged
    ("snake_case 3.5% O\u2019Dowd\u2019s", ("snake", "case", "3", "5", "o", "dowd", "s")),
    ("\ufb01nance \uff21\uff22", ("finance", "ab")),
    ("", ()),
])
def test_tokens_split_as_the_keyword_index_does(text, expected):
    assert tokens(text) == expected


def test_question_terms_drop_stop_words_and_repeats():
    assert terms("Who won the vote, and who voted?") == ["won", "vote", "voted"]
