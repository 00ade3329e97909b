from __future__ import annotations

from pathlib import Path

import pytest

from index.ingest import article_key

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "samples"


def test_bundled_samples_ingest_cleanly(ingest):
    articles, skipped = ingest(SAMPLES / "articles")
    assert skipped == []
    assert 8 <= len(articles) <= 12
    assert len({article_key(a) for a in articles}) == len(articles)
    assert all(a.title and a.labels for a in articles)
    assert {a.labels for a in articles} == {("truenews",), ("satire",)}
    attributed = [a for a in articles if a.url]
    assert len(attributed) == 3
    for article in attributed:
        assert article.url.startswith("https://example.com/")
        assert article.source and article.published and article.authors
    for article in articles:
        assert 150 <= len(article.text.split()) <= 300, article.origin


def test_sample_questions_exist():
    questions = (SAMPLES / "questions.txt").read_text(encoding="utf-8").splitlines()
    assert 5 <= len([q for q in questions if q.strip()]) <= 6


@pytest.mark.slow
def test_eight_week_corpus_ingests_whole(ingest):
    corpus = DATA / "news2023" / "corpus-8w.jsonl.gz"
    if not corpus.exists():
        pytest.skip(f"shared data not found at {corpus}")
    articles, skipped = ingest(corpus)
    assert skipped == []
    assert len(articles) == 1477
    assert all(a.published is not None and a.source for a in articles)
    assert {a.source for a in articles} == {"usatoday.com", "cnn.com", "theweek.co.uk"}
