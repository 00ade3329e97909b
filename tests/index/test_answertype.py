"""Expected answer types, entity spotting, the answer inside a quote, and unmentioned names."""

from __future__ import annotations

import pytest

from index.answer import (
    FEATURES,
    QuestionAnalysis,
    SentenceCandidate,
    quoted_span,
    sentence_features,
    stands_alone,
)
from index.answertype import (
    AnswerType,
    EntityKind,
    answer_entity,
    counted_noun,
    entities,
    expected_type,
    key_names,
    unmentioned_name,
)
from index.models import Span
from index.reading.features import default_ranker
from index.text import tokens


@pytest.mark.parametrize(("question", "wanted"), [
    ("Who got the job?", AnswerType.PERSON),
    ("Whose dog won?", AnswerType.PERSON),
    ("Where did the storm hit?", AnswerType.PLACE),
    ("Which town introduced fines?", AnswerType.PLACE),
    ("On which city's light rail platform did it happen?", AnswerType.PLACE),
    ("When was power restored?", AnswerType.DATE),
    ("In what year did the album come out?", AnswerType.DATE),
    ("How much funding was awarded?", AnswerType.NUMBER),
    ("How many people were hurt?", AnswerType.NUMBER),
    ("What percentage of voters agreed?", AnswerType.NUMBER),
    ("Which actor played the lead?", AnswerType.PERSON),
    ("Which company makes the phone?", AnswerType.NAME),
    ("What team won the final?", AnswerType.NAME),
    ("How did China react to the rebellion?", AnswerType.OTHER),
    ("Why did the bridge close?", AnswerType.OTHER),
    ("What is going on with the bridge?", AnswerType.OTHER),
])
def test_expected_type_follows_the_question_words(question: str, wanted: AnswerType) -> None:
    assert expected_type(question) is wanted


def spotted(text: str) -> list[tuple[str, EntityKind]]:
    return [(text[e.start:e.end], e.kind) for e in entities(text)]


def test_entities_are_names_numbers_and_dates_without_overlap() -> None:
    text = ("The council appointed Ann Lee, 52, on March 3, 2023. But Mr. Smith said "
            "$1.2 million and 37% came from New York City on Tuesday.")
    assert spotted(text) == [
        ("Ann Lee", EntityKind.NAME), ("52", EntityKind.NUMBER),
        ("March 3, 2023", EntityKind.DATE), ("Mr. Smith", EntityKind.NAME),
        ("$1.2 million", EntityKind.NUMBER), ("37%", EntityKind.NUMBER),
        ("New York City", EntityKind.NAME), ("Tuesday", EntityKind.DATE),
    ]


def test_names_joined_by_and_are_two_names() -> None:
    assert spotted("The line between Cantle and Merrow Fields.") == [
        ("Cantle", EntityKind.NAME), ("Merrow Fields", EntityKind.NAME)]


def test_sentence_initial_common_words_are_not_names() -> None:
    assert spotted("The mayor spoke. He left.") == []
    assert spotted("But Kestle voted.") == [("Kestle", EntityKind.NAME)]


@pytest.mark.parametrize(("question", "sentence", "answer"), [
    # The misses the answer types exist for: the sentence about the topic names nothing.
    ("Who got the director job?", "The city has appointed a new director.", None),
    ("Who got the director job?", "Ann Lee, a former nurse, got the job.", "Ann Lee"),
    ("Which town introduced fines?", "A town on the coast has introduced fines.", None),
    ("Which town introduced fines?", "Fines start in Whitby next month.", "Whitby"),
    ("How much funding did Kestle get?", "Kestle has been awarded funding.", None),
    ("How much funding did Kestle get?", "Kestle gets £4.5 million.", "£4.5 million"),
    ("When did the bridge reopen?", "The bridge reopened on Monday.", "Monday"),
    # Of several, the one nearest the question's words; a weekday with its date is one date.
    ("How many homes lost power in the storm?",
     "Gusts of 130 km/h left about 12,000 homes without power for two days.", "12,000"),
    ("When did Lumen Orbital launch its satellite?",
     "It launched at dawn on Thursday, 2 May 2024, from the coast.", "Thursday, 2 May 2024"),
    # An entity the question already holds is not an answer.
    ("Who praised Ann Lee?", "Ann Lee was praised.", None),
    ("Why did Kestle vote no?", "Kestle voted no on 4 May.", None),
])
def test_the_answer_is_a_new_entity_of_the_expected_type(
    question: str, sentence: str, answer: str | None
) -> None:
    entity = answer_entity(sentence, expected_type(question), frozenset(tokens(question)))
    assert (sentence[entity.start:entity.end] if entity else None) == answer


@pytest.mark.parametrize(("question", "sentence", "answer"), [
    # A number that counts what the question counts wins over a nearer one.
    ("How many homes lost power?",
     "Some 3,000 crews worked to restore power to 12,000 homes on the coast.", "12,000"),
    # A duration never answers a count of something else...
    ("How many homes lost power?", "Power came back within two days.", None),
    # ...but answers a count of time.
    ("How many days did the outage last?", "Power came back within two days.", "two"),
    # With no number counting the word, the others stay candidates.
    ("How many people were evacuated?", "Officials moved 3,400 residents inland.", "3,400"),
])
def test_a_how_many_answer_counts_what_the_question_counts(
    question: str, sentence: str, answer: str | None
) -> None:
    entity = answer_entity(sentence, expected_type(question), frozenset(tokens(question)),
                           counted_noun(question))
    assert (sentence[entity.start:entity.end] if entity else None) == answer


def test_the_counted_noun_follows_how_many() -> None:
    assert counted_noun("How many homes lost power in the storm?") == "homes"
    assert counted_noun("In how many of the towns did it rain?") == "towns"
    assert counted_noun("How much funding was awarded?") == ""
    assert counted_noun("Who won?") == ""


def test_key_names_are_the_question_names_and_years() -> None:
    assert key_names("Who founded Zentrivo Labs in 2031?") == [
        ("Zentrivo Labs", ("zentrivo", "labs")), ("2031", ("2031",))]
    assert key_names("What is a good recipe for bread?") == []
    # A possessive's "s" and initials do not count.
    assert key_names("What did O'Dowd's say?") == [("O'Dowd's", ("dowd",))]


def test_a_question_whose_every_name_has_a_word_in_no_chunk_is_unmentioned() -> None:
    counts = {"labs": 40, "leeds": 3, "2023": 900}
    look_up = lambda words: {w: counts.get(w, 0) for w in words}  # noqa: E731
    assert unmentioned_name("Who founded Zentrivo Labs?", look_up) == "Zentrivo Labs"
    assert unmentioned_name("Did Quorvane meet Velmora in 2031?", look_up) == (
        "Quorvane or Velmora or 2031")
    # A name the collection knows leaves the question to retrieval.
    assert unmentioned_name("Who won in Leeds in 2031?", look_up) == ""
    assert unmentioned_name("Who won in Leeds in 2023?", look_up) == ""
    assert unmentioned_name("how do I bake bread?", look_up) == ""


def candidate(start: int, text: str, chunk_id: int = 1) -> SentenceCandidate:
    return SentenceCandidate(chunk_id, 0, 0.5, Span(start, start + len(text)), text)


ARTICLE = ("Kestle council has appointed a new director to tackle the potholes. "
           "She is Ann Lee, who ran the parks service for ten years.")
FIRST = candidate(0, ARTICLE[:67])
SECOND = candidate(68, ARTICLE[68:])


def test_a_sentence_that_leans_back_is_quoted_with_the_one_before() -> None:
    question = QuestionAnalysis.of("Who is Kestle's new director?", {})
    span, answer = quoted_span(SECOND, FIRST, question)
    quote = ARTICLE[span.start:span.end]
    assert quote == ARTICLE  # one verbatim slice, both sentences
    assert answer is not None and quote[answer.start:answer.end] == "Ann Lee"
    # Already quoted (or no sentence before it in the chunk): the sentence alone.
    span, answer = quoted_span(SECOND, None, question)
    assert (span.start, span.end) == (68, len(ARTICLE))
    assert answer is not None and ARTICLE[68 + answer.start:68 + answer.end] == "Ann Lee"


def test_a_sentence_that_stands_alone_is_quoted_alone_and_marks_no_answer_it_lacks() -> None:
    question = QuestionAnalysis.of("Who is Kestle's new director?", {})
    span, answer = quoted_span(FIRST, None, question)
    assert (span.start, span.end) == (0, 67) and answer is None
    assert stands_alone(FIRST.text) and not stands_alone(SECOND.text)
    assert not stands_alone("It rained.")  # short


def test_the_shipped_ranker_reads_the_features_this_code_computes() -> None:
    ranker = default_ranker()
    assert ranker.features == FEATURES
    features = sentence_features([FIRST, SECOND],
                                 QuestionAnalysis.of("Who is Kestle's new director?", {}))
    assert features.shape == (2, len(FEATURES))
    assert features[1, FEATURES.index("type_match")] == 1.0
    assert features[0, FEATURES.index("type_match")] == 0.0
    assert features[1, FEATURES.index("leans_back")] == 1.0
    probabilities = ranker.probabilities(features)
    assert probabilities.shape == (2,) and ((probabilities > 0) & (probabilities < 1)).all()
