"""Tests for index.stories: grouping articles that tell the same story."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest

from index import stories as stories_module
from index.stories import StoryInput, group_stories


class CountingNumpy:
    """Stands in for numpy in index.stories, counting np.mean calls (one per MinHash pair)."""

    def __init__(self) -> None:
        self.means = 0

    def mean(self, *args: Any, **kwargs: Any) -> Any:
        self.means += 1
        return np.mean(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

WIRE = (
    "The central bank raised its benchmark interest rate by a quarter of a percentage point on "
    "Wednesday, its ninth increase in a row, and signalled that more rises could follow as "
    "inflation stays well above the target. Officials said the labour market remained tight "
    "and that price growth in services had not slowed as much as they had hoped. Markets had "
    "expected the move, and shares rose modestly after the announcement. The governor told "
    "reporters the committee would watch the data closely before deciding on the next step, "
    "and that the banking turmoil of recent weeks had been taken into account."
)
FIRE = (
    "Firefighters battled a wildfire that forced thousands of residents to leave their homes in "
    "the hills above the coastal town overnight, as strong winds pushed the flames towards "
    "houses. Officials said three homes had burned and no injuries had been reported so far, "
    "but warned the danger was not over as the forecast called for more wind and dry air."
)


def unit(values: list[float]) -> np.ndarray:
    """A normalised float32 vector."""
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def article(
    article_id: str,
    title: str,
    text: str,
    published: date | None,
    source: str = "example.com",
    vector: np.ndarray | None = None,
) -> StoryInput:
    """A StoryInput with defaults for what a test does not care about."""
    return StoryInput(article_id, title, text, published, source, vector)


def test_empty_input() -> None:
    assert group_stories([]) == {}


def test_wire_copy_in_two_outlets_is_grouped() -> None:
    day = date(2023, 3, 22)
    edited = WIRE.replace("Officials said", "Policymakers said") + " More follows."
    stories = group_stories(
        [
            article("b", "Bank lifts rates again", edited, day + timedelta(days=1), "two.com"),
            article("a", "Central bank raises rates", WIRE, day, "one.com"),
            article("c", "Wildfire forces evacuations", FIRE, day, "one.com"),
        ]
    )
    assert stories == {"a": "a", "b": "a", "c": "c"}


def test_wire_copy_is_grouped_without_vectors_or_dates() -> None:
    stories = group_stories(
        [article("x", "Rates rise", WIRE, None), article("y", "Rates rise again", WIRE, None)]
    )
    assert stories["x"] == stories["y"] == "x"


def test_same_boilerplate_under_unrelated_titles_is_not_grouped() -> None:
    day = date(2023, 1, 4)
    stories = group_stories(
        [
            article("p", "Speaker vote drags on", WIRE, day, "week.example"),
            article("q", "Alligator found in park", WIRE, day, "week.example"),
        ]
    )
    assert stories == {"p": "p", "q": "q"}


def test_reused_template_a_year_apart_is_not_grouped() -> None:
    next_year = WIRE.replace("ninth", "tenth").replace("Wednesday", "Thursday")
    stories = group_stories(
        [
            article("y1", "Bank raises rates", WIRE, date(2022, 3, 1)),
            article("y2", "Bank raises rates", next_year, date(2023, 3, 1)),
        ]
    )
    assert stories == {"y1": "y1", "y2": "y2"}


def test_same_event_different_wording_close_dates_is_grouped() -> None:
    day = date(2023, 2, 6)
    stories = group_stories(
        [
            article(
                "cnn-1",
                "Powerful earthquake strikes southern Turkey and Syria",
                "A magnitude 7.8 earthquake hit near Gaziantep before dawn, toppling buildings.",
                day,
                "cnn.com",
                unit([1.0, 0.1, 0.0]),
            ),
            article(
                "usat-1",
                "Turkey earthquake: death toll climbs as rescuers dig through rubble",
                "Rescue teams searched collapsed apartment blocks after the quake in Turkey.",
                day + timedelta(days=2),
                "usatoday.com",
                unit([1.0, 0.15, 0.05]),
            ),
        ]
    )
    assert stories == {"cnn-1": "cnn-1", "usat-1": "cnn-1"}


def test_same_topic_months_apart_is_not_grouped() -> None:
    vector = unit([0.2, 1.0, 0.0])
    stories = group_stories(
        [
            article(
                "jan",
                "Earthquake strikes Turkey",
                "Quake in Turkey.",
                date(2023, 1, 10),
                vector=vector,
            ),
            article(
                "jun",
                "Earthquake strikes Turkey",
                "Quake in Turkey.",
                date(2023, 6, 10),
                vector=vector,
            ),
        ]
    )
    assert stories == {"jan": "jan", "jun": "jun"}


def test_different_stories_same_day_are_not_grouped() -> None:
    day = date(2023, 3, 1)
    stories = group_stories(
        [
            article("fire", "Wildfire forces evacuations", FIRE, day, vector=unit([1, 0, 0])),
            article("rates", "Central bank raises rates", WIRE, day, vector=unit([0, 1, 0])),
        ]
    )
    assert stories == {"fire": "fire", "rates": "rates"}


def test_similar_vectors_without_shared_words_are_not_grouped() -> None:
    day = date(2023, 3, 1)
    vector = unit([1.0, 0.2, 0.1])
    stories = group_stories(
        [
            article("a", "Senate passes budget bill", "Lawmakers voted late.", day, vector=vector),
            article("b", "Governor signs tax cut", "The measure takes effect.", day, vector=vector),
        ]
    )
    assert stories == {"a": "a", "b": "b"}


def test_chains_do_not_grow_past_the_date_span() -> None:
    # A rolling topic: each day's article resembles the next; no single story spans 20 days.
    base = date(2023, 1, 1)
    articles = [
        article(
            f"d{day:02d}",
            "Storm coverage continues across the state",
            "Storm rain floods the state again.",
            base + timedelta(days=day),
            vector=unit([1.0, day * 0.02, 0.0]),
        )
        for day in range(20)
    ]
    stories = group_stories(articles, max_days=3)
    for story_id in set(stories.values()):
        days = [int(k[1:]) for k, v in stories.items() if v == story_id]
        assert max(days) - min(days) <= 6


def test_group_size_is_capped() -> None:
    day = date(2023, 1, 1)
    articles = [
        article(f"w{i:02d}", "Wire story on rates", WIRE, day, vector=unit([1.0, 0.0]))
        for i in range(12)
    ]
    stories = group_stories(articles, max_group_size=5)
    sizes = [list(stories.values()).count(story) for story in set(stories.values())]
    assert max(sizes) <= 5


def test_story_id_is_earliest_article() -> None:
    stories = group_stories(
        [
            article("z", "Rates rise", WIRE, date(2023, 1, 3)),
            article("m", "Rates rise", WIRE, date(2023, 1, 1)),
            article("a", "Rates rise", WIRE, None),
        ]
    )
    assert set(stories.values()) == {"m"}


def test_scales_to_thousands(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    words = [f"w{index}" for index in range(3000)]
    vectors = rng.normal(size=(5000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    base = date(2023, 1, 1)
    articles = [
        article(
            f"a{index}",
            " ".join(rng.choice(words, size=8)),
            " ".join(rng.choice(words, size=300)),
            base + timedelta(days=int(rng.integers(0, 365))),
            vector=vectors[index],
        )
        for index in range(5000)
    ]
    # Counted, not timed (a busy machine once took 15 s against a 20 s bound): the work that
    # could grow with the square of the articles is the vector comparisons, kept to date blocks,
    # and the MinHash candidate pairs, kept to shared bands. The seconds are printed (-s).
    counting = CountingNumpy()
    cells: list[int] = []
    date_blocks = stories_module._date_blocks

    def counted_blocks(days: np.ndarray, max_days: int) -> Iterator[tuple[int, int, int]]:
        for start, stop, reach in date_blocks(days, max_days):
            cells.append((stop - start) * (reach - start))
            yield start, stop, reach

    monkeypatch.setattr(stories_module, "np", counting)
    monkeypatch.setattr(stories_module, "_date_blocks", counted_blocks)
    started = time.perf_counter()
    stories = group_stories(articles)
    seconds = time.perf_counter() - started
    print(f"\n{len(articles)} articles grouped in {seconds:.1f} s")
    assert len(stories) == 5000
    assert len(set(stories.values())) == 5000  # random text and vectors: nothing in common
    pairs = len(articles) * (len(articles) - 1) // 2
    assert 0 < sum(cells) < pairs / 2  # every pair compared would be `pairs` (12.5 million)
    assert counting.means < len(articles)  # MinHash pairs compared: not every pair either
