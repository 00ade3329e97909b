"""Pure steps of the question pipeline (index.questions)."""

from __future__ import annotations

from index.models import ArticleHit, ArticleInfo, Quote
from index.questions import answer_first


def info(key: str) -> ArticleInfo:
    return ArticleInfo(key, f"Title {key}", "outlet", f"https://example.org/{key}", None)


def hit(key: str, score: float) -> ArticleHit:
    return ArticleHit(info(key), score, 1, "passage")


def quote(key: str, score: float) -> Quote:
    return Quote("A sentence.", info(key), 1, 0, 11, score)


def test_the_article_of_the_best_quote_comes_first_and_the_rest_keep_their_order() -> None:
    results = [hit("a", 0.9), hit("b", 0.8), hit("c", 0.7), hit("d", 0.6)]
    ordered = answer_first(results, [quote("b", 0.4), quote("c", 0.7)])
    assert [h.article.id for h in ordered] == ["c", "a", "b", "d"]
    assert [h.score for h in ordered] == [0.7, 0.9, 0.8, 0.6]  # scores as retrieval gave them


def test_without_quotes_or_with_the_best_already_first_nothing_moves() -> None:
    results = [hit("a", 0.9), hit("b", 0.8)]
    assert answer_first(results, []) == tuple(results)
    assert answer_first(results, [quote("a", 0.5), quote("b", 0.2)]) == tuple(results)
    # A quote from an article outside the listed results leaves the ranking as it was.
    assert answer_first(results, [quote("z", 0.9)]) == tuple(results)
