"""Generated article folders for reliability tests: many small, distinct, searchable articles."""

from __future__ import annotations

import random
from pathlib import Path

TOPICS = (
    "harbour bridge", "apple harvest", "comet sighting", "river flood", "city budget",
    "school strike", "wind farm", "railway tunnel", "museum opening", "forest fire",
    "fishing quota", "hospital wing", "tram line", "copper mine", "art festival",
    "chess final", "wheat prices", "ferry service", "lighthouse repair", "glacier retreat",
)
PLACES = ("Port Ellin", "Tamsin", "Oslen", "Varrow", "Kestle", "Brimhold", "Anselby", "Dunmere")
VERBS = ("announced", "confirmed", "delayed", "approved", "criticised", "celebrated", "reviewed")
PEOPLE = ("the mayor", "engineers", "the council", "farmers", "residents", "the minister")
FILLER = (
    "Officials said more details would follow next month.",
    "Local businesses expect the change to affect trade.",
    "The work is funded by the regional authority.",
    "Critics asked for an independent review of the costs.",
    "A public meeting is planned at the town hall.",
    "The decision follows two years of consultation.",
)


def article_text(number: int, rng: random.Random) -> str:
    """One plain-text article (title line, body paragraphs) about a numbered topic and place."""
    topic = TOPICS[number % len(TOPICS)]
    place = PLACES[number % len(PLACES)]
    title = f"{place} {topic} update {number}"
    sentences = [
        f"In {place}, {rng.choice(PEOPLE)} {rng.choice(VERBS)} the {topic} plan number {number}.",
        f"The {topic} project in {place} involves {rng.randint(2, 900)} workers.",
        *rng.sample(FILLER, 3),
        f"Report {number} on the {topic} was filed on day {rng.randint(1, 28)}.",
    ]
    body = " ".join(sentences[:3]) + "\n\n" + " ".join(sentences[3:])
    return f"{title}\n\n{body}\n"


def write_articles(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Write `count` articles as .txt files into folder; returns their paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for number in range(count):
        path = folder / f"article-{number:04d}.txt"
        path.write_text(article_text(number, rng), encoding="utf-8")
        paths.append(path)
    return paths


def change_articles(paths: list[Path], marker: str) -> None:
    """Append a sentence carrying `marker` to each file, so a reindex must update them."""
    for path in paths:
        text = path.read_text(encoding="utf-8").rstrip("\n")
        path.write_text(f"{text} Revision {marker} was published.\n", encoding="utf-8")


def noise_bytes(words: int = 300, seed: int = 1) -> bytes:
    """Random bytes 0xA0-0xFF in space-separated words: valid cp1252, but text of no language
    (and holding no quote, comma or newline, so it fits inside a JSON string or CSV field)."""
    rng = random.Random(seed)
    return b" ".join(bytes(rng.randrange(0xA0, 0x100) for _ in range(rng.randrange(3, 9)))
                     for _ in range(words))
