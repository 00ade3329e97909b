"""The reference filter matcher: what `SearchFilters` mean, which every backend's query follows."""

from __future__ import annotations

from datetime import date

from index.models import ArticleInfo, SearchFilters
from index.questions import left_out_by
from index.store.filters import failed, matches

DATED = ArticleInfo(id="a", title="A", source="Gazette", url="", published=date(2023, 3, 6),
                    labels=("truenews", "farming"))
UNDATED = ArticleInfo(id="b", title="B", source="Herald", url="", published=None)


def test_no_filters_pass_everything() -> None:
    assert matches(DATED, None) and matches(UNDATED, SearchFilters())


def test_days_are_inclusive_and_an_undated_article_fails_either_bound() -> None:
    day = date(2023, 3, 6)
    assert matches(DATED, SearchFilters(since=day, until=day))
    assert failed(DATED, SearchFilters(since=date(2023, 3, 7))) == ("since",)
    assert failed(UNDATED, SearchFilters(since=day, until=day)) == ("since", "until")


def test_outlets_match_exactly_and_labels_any_of_them() -> None:
    assert failed(DATED, SearchFilters(sources=("gazette",))) == ("source",)
    assert matches(DATED, SearchFilters(labels=("satire", "farming")))
    assert failed(UNDATED, SearchFilters(labels=("truenews",))) == ("label",)


def test_every_failure_is_named_in_order_and_the_engine_names_the_same() -> None:
    filters = SearchFilters(sources=("Courier",), since=date(2024, 1, 1),
                            until=date(2020, 1, 1), labels=("satire",))
    assert failed(DATED, filters) == ("source", "since", "until", "label")
    assert left_out_by(DATED, filters) == failed(DATED, filters)
