"""Bad input that used to get through: bombs, legacy charsets, placeholder values."""

from __future__ import annotations

import gzip
import json

import pytest

from index.ingest import article_key
from index.ingest.records import make_article
from index.models import ParsedArticle, SkippedItem

LIMIT = 64 * 1024


@pytest.mark.parametrize("name", ["bomb.jsonl.gz", "bomb.csv.gz"])
def test_a_gzip_bomb_in_a_streamed_format_is_skipped_before_any_record(tmp_path, ingest, name):
    # Small on disk, over the limit once decompressed: one named skip, and the good file
    # beside it still goes in. Records before the limit must not slip in either.
    path = tmp_path / name
    with gzip.open(path, "wb") as stream:
        if name.endswith(".jsonl.gz"):
            stream.write((json.dumps({"text": "An early good record."}) + "\n").encode())
            stream.write(b"{}\n" * (LIMIT // 3 + 10))
        else:
            stream.write(b'title,text\nT,"' + b"x " * LIMIT + b'"\n')
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"title": "Good", "text": "A good body."}) + "\n")
    articles, skipped = ingest(path, good, max_bytes=LIMIT)
    assert [a.title for a in articles] == ["Good"]
    assert [str(s) for s in skipped] == [
        f"{path}: uncompressed size is over the 0.0625 MB limit (65,536 bytes)"]


def test_a_million_bad_lines_are_counted_not_listed(tmp_path, ingest):
    path = tmp_path / "empty-objects.jsonl"
    path.write_bytes(b"{}\n" * 5000)
    _, skipped = ingest(path)
    assert len(skipped) == 21
    assert str(skipped[0]) == f"{path}:1: no text field (expected text, body or content)"
    assert str(skipped[-1]) == f"{path}: 4,980 more bad records not listed"


def test_a_file_a_few_bytes_over_the_limit_says_its_exact_size(tmp_path, ingest):
    path = tmp_path / "big.txt"
    path.write_bytes(b"Title\n\n" + b"word " * (LIMIT // 5) + b"x" * 10)
    _, skipped = ingest(path, max_bytes=LIMIT)
    size = path.stat().st_size
    assert [str(s) for s in skipped] == [
        f"{path}: file is {size:,} bytes, over the 0.0625 MB limit (65,536 bytes)"]


POLISH = "Miasto Łódź otworzyło nowy park w dzielnicy Śródmieście. Mieszkańcy są zadowoleni. "
RUSSIAN = "Мэр города объявил о новом парке в центре. Жители довольны решением властей. "


@pytest.mark.parametrize(("charset", "text", "head"), [
    ("windows-1251", RUSSIAN, '<meta charset="windows-1251">'),
    ("iso-8859-2", POLISH,
     '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-2">'),
])
def test_the_charset_an_html_page_declares_is_honoured(tmp_path, ingest, charset, text, head):
    path = tmp_path / "page.html"
    html = (f"<html><head>{head}<title>Nowości</title></head><body><article><p>"
            f"{text * 4}</p></article></body></html>")
    path.write_bytes(html.encode(charset, errors="replace"))
    articles, skipped = ingest(path)
    assert skipped == []
    assert text.split()[1] in articles[0].text


def test_an_xml_declaration_counts_as_a_declared_charset(tmp_path, ingest):
    path = tmp_path / "page.htm"
    html = ('<?xml version="1.0" encoding="ISO-8859-2"?><html><body><article><p>'
            f"{POLISH * 4}</p></article></body></html>")
    path.write_bytes(html.encode("iso-8859-2"))
    articles, _ = ingest(path)
    assert "Łódź" in articles[0].text


@pytest.mark.parametrize(("encoding", "text"), [
    ("cp1252", "Le café naïve résumé — « élève » à côté de l’hôtel. " * 3),
    ("cp1252", "Die Straße in München wurde gesperrt, sagte die Polizei. Überall Schnee. " * 3),
    ("cp1251", RUSSIAN * 3),
])
def test_undeclared_legacy_text_is_guessed(tmp_path, ingest, encoding, text):
    path = tmp_path / "legacy.txt"
    path.write_bytes(("Headline\n\n" + text).encode(encoding))
    articles, skipped = ingest(path)
    assert skipped == []
    assert articles[0].text == text.strip()


def test_a_legacy_jsonl_file_is_decoded_line_by_line(tmp_path, ingest):
    path = tmp_path / "legacy.jsonl"
    lines = [json.dumps({"title": "Café", "text": "Un café naïve à côté. " * 3},
                        ensure_ascii=False) for _ in range(3)]
    path.write_bytes("\n".join(lines).encode("cp1252"))
    articles, skipped = ingest(path)
    assert skipped == []
    assert [a.title for a in articles] == ["Café"] * 3


PLACEHOLDERS = ["nan", "NaN", "N/A", "n/a", "none", "None", "null", "NULL", "-", "Infinity",
                "#N/A", "undefined"]


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_placeholders_are_missing_values_in_every_field(placeholder):
    article = make_article({"title": placeholder, "source": placeholder, "url": placeholder,
                            "author": placeholder, "labels": placeholder, "date": placeholder,
                            "text": "A body."}, "f.jsonl:1")
    assert isinstance(article, ParsedArticle)
    assert (article.title, article.source, article.url, article.authors, article.labels,
            article.published) == ("", "", "", (), (), None)


def test_a_placeholder_body_is_an_empty_body():
    assert make_article({"text": "N/A"}, "f.csv:2") == SkippedItem("f.csv:2", "empty body")


def test_distinct_records_with_placeholder_urls_are_all_kept(tmp_path, ingest):
    # Eight records whose url/title are placeholders: eight ids, none derived from "nan".
    path = tmp_path / "export.jsonl"
    path.write_text("".join(
        json.dumps({"title": p, "source": p, "url": p, "text": f"Record {i} about the harbour."})
        + "\n" for i, p in enumerate(PLACEHOLDERS[:8])))
    literal = tmp_path / "literal.jsonl"  # NaN and Infinity as JSON literals (pandas writes them)
    literal.write_text('{"title": NaN, "source": Infinity, "url": NaN, "text": "River."}\n')
    articles, skipped = ingest(path, literal)
    assert skipped == []
    assert len({article_key(a) for a in articles}) == 9
    assert all(a.title == "" and a.url == "" for a in articles)
