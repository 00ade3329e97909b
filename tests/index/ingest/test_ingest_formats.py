from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

from index.ingest import SUPPORTED_SUFFIXES

SEED_LIKE = """\
A Title Line

First paragraph of the body. It has two sentences.

Second paragraph, with “curly quotes” kept verbatim.

truenews

truenews
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_text_title_body_and_repeated_labels(tmp_path, ingest):
    path = write(tmp_path / "a.txt", SEED_LIKE)
    articles, skipped = ingest(path)
    assert skipped == []
    (article,) = articles
    assert article.title == "A Title Line"
    assert article.text == (
        "First paragraph of the body. It has two sentences.\n\n"
        "Second paragraph, with “curly quotes” kept verbatim."
    )
    assert article.labels == ("truenews",)
    assert article.origin == str(path)
    assert article.source == "" and article.url == "" and article.published is None


def test_plain_text_several_labels_keep_order_and_no_labels_is_fine(tmp_path, ingest):
    labelled = write(tmp_path / "b.txt", "Title\n\nBody text here.\n\nfakenews\nSatire\nfakenews\n")
    plain = write(tmp_path / "c.txt", "Title\n\nBody text here, with no label at all.\n")
    articles, skipped = ingest(labelled, plain)
    assert skipped == []
    assert articles[0].labels == ("fakenews", "satire")
    assert articles[0].text == "Body text here."
    assert articles[1].labels == ()
    assert articles[1].text == "Body text here, with no label at all."


def test_plain_text_single_word_body_is_body_not_label(tmp_path, ingest):
    articles, _ = ingest(write(tmp_path / "a.txt", "Title\n\nHello\n"))
    assert articles[0].text == "Hello" and articles[0].labels == ()


def test_plain_text_crlf_bom_and_zero_width_are_normalised(tmp_path, ingest):
    path = tmp_path / "win.txt"
    path.write_bytes("\ufeff\u200bTitle\r\n\r\nLine one.\r\nLine two.\r\n".encode())
    articles, _ = ingest(path)
    assert articles[0].title == "Title"
    assert articles[0].text == "Line one.\nLine two."


def test_plain_text_cp1252_falls_back(tmp_path, ingest):
    path = tmp_path / "legacy.txt"
    path.write_bytes("Café news\n\nThe café said “hello” – twice.\n".encode("cp1252"))
    articles, skipped = ingest(path)
    assert skipped == []
    assert articles[0].title == "Café news"
    assert articles[0].text == "The café said “hello” – twice."


def test_plain_text_long_first_line_is_body(tmp_path, ingest):
    paragraph = "word " * 100
    articles, _ = ingest(write(tmp_path / "a.txt", paragraph + "\n\nMore.\n"))
    assert articles[0].title == ""
    assert articles[0].text.startswith("word word")


def test_markdown_front_matter(tmp_path, ingest):
    path = write(
        tmp_path / "m.md",
        "---\n"
        "title: Front Title\n"
        "source: The Aster Courier\n"
        "url: https://example.com/a\n"
        "date: 2024-07-02\n"
        "authors: [Ann One, Bob Two]\n"
        "label: TrueNews\n"
        "---\n\n"
        "# Front Title\n\n"
        "Body **with** markdown.\n",
    )
    articles, skipped = ingest(path)
    assert skipped == []
    (article,) = articles
    assert article.title == "Front Title"
    assert article.text == "Body **with** markdown."
    assert article.source == "The Aster Courier"
    assert article.url == "https://example.com/a"
    assert article.published == date(2024, 7, 2)
    assert article.authors == ("Ann One", "Bob Two")
    assert article.labels == ("truenews",)


def test_markdown_title_from_heading_without_front_matter(tmp_path, ingest):
    path = write(
        tmp_path / "m.markdown", "# Heading Title #\n\nFirst paragraph.\n\n## Sub\n\nMore.\n"
    )
    articles, _ = ingest(path)
    assert articles[0].title == "Heading Title"
    assert articles[0].text == "First paragraph.\n\n## Sub\n\nMore."


def test_markdown_keeps_heading_that_differs_from_front_matter_title(tmp_path, ingest):
    path = write(tmp_path / "m.md", "---\ntitle: Given\n---\n# Other\n\nText.\n")
    articles, _ = ingest(path)
    assert articles[0].title == "Given"
    assert articles[0].text == "# Other\n\nText."


HTML = """<!doctype html>
<html><head>
<title>Robot joins library | The Aster Courier</title>
<meta name="author" content="Jane Doe; John Roe">
<meta property="og:url" content="https://www.example.com/robot">
<meta property="og:site_name" content="The Aster Courier">
<meta property="article:published_time" content="2024-03-11T10:00:00Z">
</head><body>
<nav><a href="/">Home</a> | <a href="/news">News</a></nav>
<article>
<h1>Robot joins library</h1>
<p>The town library in Brindle welcomed a new helper on Monday, a small robot that sorts
returned books and carries them back to the shelves.</p>
<p>Staff said it handles 400 books an hour. "It never complains," said the head librarian.</p>
</article>
<footer>Copyright 2024 The Aster Courier. All rights reserved.</footer>
</body></html>
"""


def test_html_main_text_and_metadata(tmp_path, ingest):
    articles, skipped = ingest(write(tmp_path / "page.html", HTML))
    assert skipped == []
    (article,) = articles
    assert article.title == "Robot joins library"
    assert "400 books an hour" in article.text
    assert "Copyright" not in article.text and "Home" not in article.text
    assert not article.text.startswith("Robot joins library")
    assert "\n\n" in article.text  # blocks become paragraphs
    assert article.url == "https://www.example.com/robot"
    assert article.source == "The Aster Courier"
    assert article.published == date(2024, 3, 11)
    assert article.authors == ("Jane Doe", "John Roe")


def test_json_object_and_array(tmp_path, ingest):
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"title": "T", "body": "Body.", "published": "5 Jan 2023"}))
    many = tmp_path / "many.json"
    many.write_text(json.dumps([{"text": "First."}, 7, {"content": "Third.", "author": "A, B"}]))
    articles, skipped = ingest(one, many)
    assert [a.origin for a in articles] == [str(one), f"{many}:1", f"{many}:3"]
    assert articles[0].published == date(2023, 1, 5) and articles[0].text == "Body."
    assert articles[2].authors == ("A", "B")
    assert [str(s) for s in skipped] == [f"{many}:2: not a JSON object (got number)"]


def test_jsonl_corpus_shaped_records(tmp_path, ingest):
    path = tmp_path / "c.jsonl"
    record = {
        "doc_id": "d00000",
        "url": "https://www.example.com/story/2023/01/05/x/",
        "title": "A title ...",
        "publish_date": "2023/01/05",
        "source": "example.com",
        "authors": [],
        "text": "Para one.\n\nPara two.",
    }
    no_source = {"url": "https://www.news.example.org/a", "text": "Body."}
    path.write_text(json.dumps(record) + "\n\n" + json.dumps(no_source) + "\n")
    articles, skipped = ingest(path)
    assert skipped == []
    assert [a.origin for a in articles] == [f"{path}:1", f"{path}:3"]
    assert articles[0].published == date(2023, 1, 5)
    assert articles[0].text == "Para one.\n\nPara two."
    assert articles[0].authors == ()
    assert articles[1].source == "news.example.org"


def test_gzip_is_read_transparently(tmp_path, ingest):
    jsonl = tmp_path / "c.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf-8") as out:
        out.write(json.dumps({"title": "Z", "text": "Zipped body."}) + "\n")
    txt = tmp_path / "a.TXT.gz"
    txt.write_bytes(gzip.compress(SEED_LIKE.encode()))
    articles, skipped = ingest(jsonl, txt)
    assert skipped == []
    assert [a.title for a in articles] == ["Z", "A Title Line"]


def test_csv_with_header_and_optional_columns(tmp_path, ingest):
    path = write(
        tmp_path / "a.csv",
        "Title,Body,URL,date\n"
        'One,"First body, with a comma.",https://example.com/1,2023-01-05T08:00:00+01:00\n'
        'Two,"A body\nover two lines.",,\n'
        "Three,,,\n",
    )
    articles, skipped = ingest(path)
    assert [a.title for a in articles] == ["One", "Two"]
    assert articles[0].published == date(2023, 1, 5)
    assert articles[0].source == "example.com"
    assert articles[1].text == "A body\nover two lines."
    assert [a.origin for a in articles] == [f"{path}:2", f"{path}:3"]
    assert [str(s) for s in skipped] == [f"{path}:5: empty body"]


def test_csv_semicolon_delimited_and_long_field(tmp_path, ingest):
    long_body = "word " * 60_000  # 300 kB: over the csv module's default field limit
    path = write(tmp_path / "a.csv", f"title;text\nLong;{long_body}\n")
    articles, skipped = ingest(path)
    assert skipped == []
    assert articles[0].text == long_body.strip()


def test_folder_walk_is_sorted_recursive_and_ignores_hidden(tmp_path, ingest):
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    write(tmp_path / "b" / "z.txt", "Z\n\nz body")
    write(tmp_path / "a.txt", "A\n\na body")
    write(tmp_path / "c.md", "# C\n\nc body")
    write(tmp_path / ".secret.txt", "S\n\ns body")
    write(tmp_path / ".hidden" / "h.txt", "H\n\nh body")
    articles, skipped = ingest(tmp_path)
    assert skipped == []
    assert [a.title for a in articles] == ["A", "Z", "C"]


def test_same_file_given_twice_is_read_once(tmp_path, ingest):
    path = write(tmp_path / "a.txt", "A\n\nbody")
    articles, _ = ingest(path, tmp_path)
    assert len(articles) == 1


def test_supported_suffixes_cover_every_format_and_gzip():
    for suffix in (".txt", ".md", ".markdown", ".html", ".htm", ".json", ".jsonl", ".csv"):
        assert suffix in SUPPORTED_SUFFIXES
        assert suffix + ".gz" in SUPPORTED_SUFFIXES
    assert "corpus.jsonl.gz".endswith(SUPPORTED_SUFFIXES)
