"""A CSV quote left open: the row it opened in is skipped by name, the rows it swallowed are
read again, and quoted bodies over many lines still read whole."""

from __future__ import annotations

from pathlib import Path


def csv_rows(tmp_path: Path, ingest, text: str) -> tuple[list[str], dict[str, str]]:
    path = tmp_path / "sheet.csv"
    path.write_text(text, "utf-8")
    articles, skipped = ingest(path)
    return ([f"{article.title}|{article.text}" for article in articles],
            {Path(item.origin).name.rsplit(":", 1)[-1]: item.reason for item in skipped})


def test_a_quote_left_open_to_the_end_of_the_file_costs_its_own_row(tmp_path, ingest):
    rows, skipped = csv_rows(tmp_path, ingest, (
        "title,text\n"
        "One,The canal froze.\n"
        'Two,"The mill burned.\n'
        "Three,The tram stopped.\n"
        "Four,The ferry sank.\n"
    ))
    assert rows == ["One|The canal froze.", "Three|The tram stopped.", "Four|The ferry sank."]
    assert list(skipped) == ["3"] and "quote" in skipped["3"] and "2 lines" in skipped["3"]


def test_a_quote_left_open_and_closed_rows_later_resyncs(tmp_path, ingest):
    rows, skipped = csv_rows(tmp_path, ingest, (
        "title,text\n"
        "One,The canal froze.\n"
        'Two,"The mill burned.\n'
        "Three,The tram stopped.\n"
        'Four,"The ferry sank, twice."\n'
        "Five,The lake rose.\n"
    ))
    assert rows == ["One|The canal froze.", "Three|The tram stopped.",
                    "Four|The ferry sank, twice.", "Five|The lake rose."]
    assert list(skipped) == ["3"] and "quote" in skipped["3"]


def test_two_quotes_left_open_each_cost_their_own_row(tmp_path, ingest):
    rows, skipped = csv_rows(tmp_path, ingest, (
        "title;text\n"
        'One;"The canal froze.\n'
        "Two;The mill burned.\n"
        'Three;"The tram stopped.\n'
        "Four;The ferry sank.\n"
    ))
    assert rows == ["Two|The mill burned.", "Four|The ferry sank."]
    assert list(skipped) == ["2", "4"]


def test_a_quote_left_open_in_the_header_row_names_the_file(tmp_path, ingest):
    rows, skipped = csv_rows(tmp_path, ingest, 'title,"text\nOne,The canal froze.\n')
    assert rows == [] and list(skipped) == ["sheet.csv"]
    assert "header row: a quote opened in this row is left open" in skipped["sheet.csv"]


def test_quoted_bodies_over_many_lines_are_still_read_whole(tmp_path, ingest):
    rows, skipped = csv_rows(tmp_path, ingest, (
        "title,text\n"
        'One,"First paragraph, with a comma.\n\nSecond, also with one.\nThird,again."\n'
        'Two,"He said ""no"", twice."\n'
        'Three,A 5" pipe burst.\n'
    ))
    assert rows == [
        "One|First paragraph, with a comma.\n\nSecond, also with one.\nThird,again.",
        'Two|He said "no", twice.', 'Three|A 5" pipe burst.']
    assert skipped == {}


def test_a_quote_left_open_with_classic_mac_line_endings_resyncs(tmp_path, ingest):
    path = tmp_path / "mac.csv"
    path.write_bytes(b'title,text\rOne,The canal froze.\rTwo,"The mill burned.\r'
                     b'Three,The tram stopped.\rFour,"The ferry, sank."\r')
    articles, skipped = ingest(path)
    assert [article.title for article in articles] == ["One", "Three", "Four"]
    assert len(skipped) == 1 and "quote opened in this row is left open" in skipped[0].reason
