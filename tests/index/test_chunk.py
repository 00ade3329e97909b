from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.chunk import chunk_text, pack_chunks, split_sentences
from index.models import Span
from tests.index.fakes import HashingEmbedder

EMBEDDER = HashingEmbedder(max_tokens=40)


def chunks_of(text: str, max_tokens: int = 30, overlap: int = 1):
    return chunk_text(
        text, max_tokens=max_tokens, overlap=overlap,
        count_tokens=EMBEDDER.token_counts, token_offsets=EMBEDDER.token_offsets,
    )


def test_sentences_keep_offsets_and_handle_abbreviations():
    text = "Mr. Li met Dr. Ames in the U.S. capital.  Then they left!\n\nA new paragraph."
    spans = split_sentences(text)
    assert [text[s.start : s.end] for s in spans] == [
        "Mr. Li met Dr. Ames in the U.S. capital.",
        "Then they left!",
        "A new paragraph.",
    ]


def test_chunks_respect_token_budget_and_overlap_one_sentence():
    text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(40))
    chunks = chunks_of(text)
    assert len(chunks) > 3
    for chunk in chunks:
        assert EMBEDDER.token_counts([text[chunk.start : chunk.end]])[0] <= 30
        assert chunk.n_tokens <= 30
    for before, after in itertools.pairwise(chunks):
        assert before.sentences[-1] == after.sentences[0]


def test_overlong_sentence_is_cut_to_fit():
    text = "word " * 200 + "end."
    chunks = chunks_of(text.strip())
    assert all(c.n_tokens <= 30 for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text.strip())


def test_pack_always_progresses_even_with_big_overlap():
    spans = [Span(i * 10, i * 10 + 9) for i in range(5)]
    chunks = pack_chunks(spans, [10] * 5, max_tokens=10, overlap=3)
    assert [c.start for c in chunks] == [0, 10, 20, 30, 40]


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=600))
def test_chunks_are_verbatim_slices_within_budget(text):
    for chunk in chunks_of(text, max_tokens=20):
        assert 0 <= chunk.start < chunk.end <= len(text)
        assert chunk.n_tokens <= 20
        for sentence in chunk.sentences:
            assert chunk.start <= sentence.start < sentence.end <= chunk.end
            piece = text[sentence.start : sentence.end]
            assert piece.strip() == piece


@pytest.mark.parametrize(("text", "expected"), [
    ("Turnout in the north was approx. 61 percent, officials said. Counting ended.",
     ["Turnout in the north was approx. 61 percent, officials said.", "Counting ended."]),
    ("The valley museum, est. 1921, reopened on Monday. Crowds came.",
     ["The valley museum, est. 1921, reopened on Monday.", "Crowds came."]),
    ("The bill came from then-Gov. Rick Scott in 2018. It passed.",
     ["The bill came from then-Gov. Rick Scott in 2018.", "It passed."]),
    ("The Tarantino vs. Everybody tour starts in spring. Tickets sold out.",
     ["The Tarantino vs. Everybody tour starts in spring.", "Tickets sold out."]),
    ("It was approx. the same size. Nobody minded.",
     ["It was approx. the same size.", "Nobody minded."]),
])
def test_sentences_are_not_cut_at_abbreviations(text, expected):
    assert [text[s.start:s.end] for s in split_sentences(text)] == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Prices fell 5%. 61 people came.", ["Prices fell 5%.", "61 people came."]),
    ("Read the story. https://example.com/story has more.",
     ["Read the story.", "https://example.com/story has more."]),
    ("The board said no. Then it met again.", ["The board said no.", "Then it met again."]),
    ("The first paragraph ends here.\n\nthe second starts in lower case.",
     ["The first paragraph ends here.", "the second starts in lower case."]),
])
def test_real_sentence_ends_stay(text, expected):
    assert [text[s.start:s.end] for s in split_sentences(text)] == expected
