from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from index.ingest import SUPPORTED_SUFFIXES, article_key, iter_articles
from index.models import ParsedArticle, SkippedItem
from tests.index.synthetic import noise_bytes

GOOD_LINE = json.dumps({"title": "Good", "text": "A good body."})
NOISE = noise_bytes()


def reasons(skipped: list[SkippedItem]) -> list[str]:
    return [str(item) for item in skipped]


def test_binary_file_with_nul_bytes(tmp_path, ingest):
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    articles, skipped = ingest(path)
    assert articles == []
    assert reasons(skipped) == [f"{path}: binary file (contains NUL bytes)"]


def test_binary_without_nul_is_caught_by_control_characters(tmp_path, ingest):
    path = tmp_path / "blob.md"
    path.write_bytes(bytes([1, 2, 3, 4, 5, 6, 7, 8, 14, 15]) * 50)
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}: binary file (control characters)"]


def test_bytes_that_decode_to_no_text_are_refused(tmp_path, ingest):
    path = tmp_path / "noise.txt"
    path.write_bytes(b"Title\n" + NOISE)
    articles, skipped = ingest(path)
    assert articles == []
    assert reasons(skipped) == [f"{path}: not text in any known encoding"]


def test_utf16_is_refused_with_advice(tmp_path, ingest):
    path = tmp_path / "excel.csv"
    path.write_bytes("title,text\nT,Body\n".encode("utf-16"))
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}: UTF-16 text is not supported: save the file as UTF-8"]


@pytest.mark.parametrize("name", ["a.txt", "a.md", "a.html", "a.json", "a.jsonl", "a.csv"])
def test_empty_file(tmp_path, ingest, name):
    path = tmp_path / name
    path.write_bytes(b"")
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}: empty file"]


@pytest.mark.parametrize("name", ["a.txt", "a.md", "a.json"])
def test_whitespace_only_file(tmp_path, ingest, name):
    path = tmp_path / name
    path.write_text("  \n\n\t\n")
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}: empty file"]


def test_title_without_body(tmp_path, ingest):
    path = tmp_path / "t.txt"
    path.write_text("Just a title\n")
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}: empty body"]


def test_file_over_size_limit_is_not_read(tmp_path, ingest):
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as out:
        out.truncate(int(52.3 * 2**20))  # sparse: no real bytes written
    _, skipped = ingest(path)
    assert reasons(skipped) == [
        f"{path}: file is 54,840,524 bytes, over the 50 MB limit (52,428,800 bytes)"]


def test_gzip_bomb_is_capped_for_whole_file_formats(tmp_path, ingest):
    path = tmp_path / "bomb.txt.gz"
    path.write_bytes(gzip.compress(b"Title\n\n" + b"word " * 100_000))
    _, skipped = ingest(path, max_bytes=100_000)
    assert reasons(skipped) == [
        f"{path}: uncompressed size is over the 0.0954 MB limit (100,000 bytes)"]


def test_five_megabyte_word_is_not_prose(tmp_path, ingest):
    blob = "x" * 5_000_000
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(f"{GOOD_LINE}\n{json.dumps({'text': blob})}\n{GOOD_LINE}\n")
    txt = tmp_path / "b.txt"
    txt.write_text(f"Title\n\n{blob}\n")
    articles, skipped = ingest(jsonl, txt)
    assert len(articles) == 2
    expected = "has a 5,000,000-character run without spaces (over 10,000): not prose"
    assert reasons(skipped) == [f"{jsonl}:2: {expected}", f"{txt}: {expected}"]


def test_malformed_json_lines_among_good_ones(tmp_path, ingest):
    path = tmp_path / "a.jsonl"
    lines = [GOOD_LINE, '{"text": "unterminated', GOOD_LINE, "[1, 2]", GOOD_LINE, "[" * 100_000]
    path.write_text("\n".join(lines) + "\n")
    articles, skipped = ingest(path)
    assert [a.origin for a in articles] == [f"{path}:1", f"{path}:3", f"{path}:5"]
    assert [s.origin for s in skipped] == [f"{path}:2", f"{path}:4", f"{path}:6"]
    assert skipped[0].reason.startswith("invalid JSON: Unterminated string")
    assert skipped[1].reason == "not a JSON object (got array)"
    assert skipped[2].reason.startswith("invalid JSON")


def test_undecodable_jsonl_line_is_skipped(tmp_path, ingest):
    path = tmp_path / "a.jsonl"
    path.write_bytes(GOOD_LINE.encode() + b'\n{"text": "' + NOISE + b'"}\n' + GOOD_LINE.encode()
                     + b"\n")
    articles, skipped = ingest(path)
    assert len(articles) == 2
    assert reasons(skipped) == [f"{path}:2: not text in any known encoding"]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"title": "T", "text": ["a", "b"]}, "field 'text' is not a string (got list)"),
        ({"title": "T", "body": 42}, "field 'body' is not a string (got int)"),
        ({"title": "T", "text": "   "}, "empty body"),
        ({"title": "T"}, "no text field (expected text, body or content)"),
        ({"text": "bad\u0000data"}, "text contains NUL characters (binary data)"),
    ],
)
def test_bad_json_records(tmp_path, ingest, record, reason):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(record) + "\n")
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}:1: {reason}"]


def test_bad_fields_other_than_text_are_dropped_not_fatal(tmp_path, ingest):
    path = tmp_path / "a.jsonl"
    record = {"text": "Body.", "title": {"x": 1}, "authors": 5, "labels": None, "url": ["u"]}
    path.write_text(json.dumps(record) + "\n")
    (article,), skipped = ingest(path)
    assert skipped == []
    assert (article.title, article.authors, article.labels, article.url) == ("", (), (), "")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"text": ', "invalid JSON: Expecting value (line 1, column 9)"),
        ('"just a string"', "JSON must be an object or an array of objects (got string)"),
    ],
)
def test_bad_json_files(tmp_path, ingest, text, reason):
    path = tmp_path / "a.json"
    path.write_text(text)
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}: {reason}"]


def test_odd_dates_keep_the_article_without_a_date(tmp_path, ingest):
    path = tmp_path / "a.jsonl"
    dates = ["sometime last spring", "32/13/2023", "12", True, {"y": 2023}, "99999999999999999999"]
    path.write_text("".join(json.dumps({"text": "Body.", "date": d}) + "\n" for d in dates))
    articles, skipped = ingest(path)
    assert skipped == []
    assert [a.published for a in articles] == [None] * len(dates)


def test_csv_without_text_column_is_skipped_whole(tmp_path, ingest):
    path = tmp_path / "a.csv"
    path.write_text("title,url\nOne,https://example.com/1\n")
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}: no text, body or content column in the CSV header row"]


def test_csv_with_header_only(tmp_path, ingest):
    path = tmp_path / "a.csv"
    path.write_text("title,text\n")
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}: no articles in the file"]


def test_csv_undecodable_line_is_skipped_and_rest_read(tmp_path, ingest):
    path = tmp_path / "a.csv"
    path.write_bytes(b"title,text\nA,First.\nB,Bad " + NOISE + b".\nC,Third.\n")
    articles, skipped = ingest(path)
    assert [a.title for a in articles] == ["A", "C"]
    assert reasons(skipped) == [f"{path}:3: not text in any known encoding"]


def test_csv_with_classic_mac_line_endings_is_read(tmp_path, ingest):
    path = tmp_path / "a.csv"
    path.write_bytes(b'title,text\rA,First.\rB,"Two\rlines."\rC,Third.\r')
    articles, skipped = ingest(path)
    assert [a.title for a in articles] == ["A", "B", "C"]
    assert articles[1].text == "Two\nlines."
    assert skipped == []


@pytest.mark.parametrize("data", [b"\r\x01", b"\x01\r", b'"\rtitle', b"text\r\x00\r"])
def test_csv_that_csv_cannot_read_is_skipped_and_named(tmp_path, ingest, data):
    path = tmp_path / "a.csv"
    path.write_bytes(data)
    articles, skipped = ingest(path)  # once: csv.Error out of the header row, ingest aborted
    assert articles == [] and skipped and all(str(item).startswith(str(path)) for item in skipped)


def test_a_parser_failing_costs_its_file_not_the_ingest(tmp_path, ingest, monkeypatch):
    import index.ingest.reader as reader

    def broken(text, origin):
        raise KeyError("a case no parser foresaw")
        yield  # a generator, as every parser

    monkeypatch.setitem(reader.WHOLE_FILE_PARSERS, ".md", broken)
    (tmp_path / "a.md").write_text("# A\n\nBody.")
    (tmp_path / "b.txt").write_text("B\n\nAnother body.")
    articles, skipped = ingest(tmp_path)
    assert [a.title for a in articles] == ["B"]
    assert reasons(skipped) == [f"{tmp_path / 'a.md'}: cannot parse: KeyError: 'a case no parser "
                                "foresaw'; the rest of the file was not read"]


def test_duplicate_ids_are_all_yielded(tmp_path, ingest):
    path = tmp_path / "a.jsonl"
    line = json.dumps({"url": "https://example.com/same", "text": "Body."})
    path.write_text(f"{line}\n{line}\n")
    articles, _ = ingest(path)
    assert len(articles) == 2
    assert article_key(articles[0]) == article_key(articles[1])


def test_unsupported_extensions_are_reported(tmp_path, ingest):
    for name in ("notes.xyz", "README", "archive.tar.gz", "data.gz"):
        (tmp_path / name).write_text("whatever")
    _, skipped = ingest(tmp_path)
    assert reasons(skipped) == [
        f"{tmp_path / 'README'}: unsupported file type (no extension)",
        f"{tmp_path / 'archive.tar.gz'}: unsupported file type .tar.gz",
        f"{tmp_path / 'data.gz'}: unsupported file type .gz",
        f"{tmp_path / 'notes.xyz'}: unsupported file type .xyz",
    ]


def test_nonexistent_path(tmp_path, ingest):
    missing = tmp_path / "nope.txt"
    _, skipped = ingest(missing)
    assert reasons(skipped) == [f"{missing}: no such file or folder"]


def test_broken_symlink(tmp_path, ingest):
    link = tmp_path / "dangling.txt"
    link.symlink_to(tmp_path / "gone.txt")
    _, skipped = ingest(link)
    assert reasons(skipped) == [f"{link}: broken symbolic link"]


def test_symlink_loop_is_reported_once(tmp_path, ingest):
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("A\n\nbody")
    (root / "loop").symlink_to(root)
    articles, skipped = ingest(root)
    assert len(articles) == 1
    assert reasons(skipped) == [f"{root / 'loop'}: symbolic link loop"]


def test_paths_outside_allowed_roots_are_refused(tmp_path, ingest):
    root, outside = tmp_path / "articles", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("Secret\n\nDo not read.")
    (root / "ok.txt").write_text("Ok\n\nFine to read.")
    (root / "inner.txt").symlink_to(root / "ok.txt")
    (root / "escape.txt").symlink_to(secret)
    (root / "escape-dir").symlink_to(outside)
    articles, skipped = ingest(root, secret, allowed_roots=[root])
    assert [a.title for a in articles] == ["Ok"]
    assert reasons(skipped) == [
        f"{root / 'escape-dir'}: outside the allowed folders (resolves to {outside})",
        f"{root / 'escape.txt'}: outside the allowed folders (resolves to {secret})",
        f"{secret}: outside the allowed folders (resolves to {secret})",
    ]
    # without allowed_roots the same links are followed
    articles, _ = ingest(root)
    assert sorted(a.title for a in articles) == ["Ok", "Secret"]


def test_unreadable_file(tmp_path, ingest, monkeypatch):
    path = tmp_path / "locked.txt"
    path.write_text("T\n\nbody")
    path.chmod(0)
    if os.access(path, os.R_OK):  # running as root: permissions do not stop reads
        real_open = Path.open

        def refuse(self: Path, *args: object, **kwargs: object):
            if self == path:
                raise PermissionError(13, "Permission denied")
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refuse)
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}: cannot read: permission denied"]


def test_fifo_is_not_a_regular_file(tmp_path, ingest):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    _, skipped = ingest(fifo)
    assert reasons(skipped) == [f"{fifo}: not a regular file"]


def test_not_gzip_and_truncated_gzip(tmp_path, ingest):
    fake = tmp_path / "fake.txt.gz"
    fake.write_text("Title\n\nnot compressed at all")
    data = gzip.compress(("\n".join([GOOD_LINE] * 2000) + "\n").encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    articles, skipped = ingest(fake, cut)
    assert 0 < len(articles) < 2000
    assert reasons(skipped) == [
        f"{fake}: not a valid gzip file",
        f"{cut}: gzip data is truncated or corrupt; the rest was not read",
    ]


def test_invalid_front_matter(tmp_path, ingest):
    path = tmp_path / "a.md"
    path.write_text("---\ntitle: [unclosed\n---\n\nBody.\n")
    _, skipped = ingest(path)
    assert len(skipped) == 1
    assert skipped[0].reason.startswith("invalid front matter:")


def test_html_without_main_text(tmp_path, ingest):
    path = tmp_path / "a.html"
    path.write_text("<html><head><title>Nothing</title></head><body></body></html>")
    _, skipped = ingest(path)
    assert reasons(skipped) == [f"{path}: no main text found in the HTML"]


def test_bad_files_do_not_stop_good_ones(tmp_path, ingest):
    (tmp_path / "a.txt").write_text("A\n\nGood.")
    (tmp_path / "b.bin").write_bytes(b"\x00" * 10)
    (tmp_path / "c.json").write_text("{broken")
    (tmp_path / "d.txt").write_text("D\n\nAlso good.")
    articles, skipped = ingest(tmp_path)
    assert [a.title for a in articles] == ["A", "D"]
    assert len(skipped) == 2


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000), suffix=st.sampled_from(SUPPORTED_SUFFIXES))
@example(data=b"\r\x01", suffix=".csv")  # found by this test: a CSV header csv.Error
def test_arbitrary_bytes_never_raise(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    items = list(iter_articles([path]))
    assert items
    assert all(isinstance(item, ParsedArticle | SkippedItem) for item in items)
