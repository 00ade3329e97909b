"""BM25 over candidate texts and question coverage count stems as the analyser makes them."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from index.answer import coverage_score
from index.retrieve import bm25_scores
from index.text import stem, tokens

# Words chosen so that stems collide ("elects", "elected", "electing" → "elect") and so that
# some forms keep apart ("buses" → "buse", "bus" → "bu").
VOCABULARY = ["elect", "elects", "elected", "electing", "election", "elections", "votes",
              "voted", "bus", "buses", "the", "a", "ruling", "rules", "ed", "Elects", "ELECTION"]


def reference_bm25(text: str, idf: dict[str, float], average: float) -> float | None:
    """BM25 computed the plain way: stem every word, then count."""
    stems = [stem(word) for word in tokens(text)]
    counts = Counter(s for s in stems if s in idf)
    if not counts:
        return None
    norm = 0.9 * (1.0 - 0.4 + 0.4 * len(stems) / max(average, 1.0))
    return sum(idf[s] * tf * 1.9 / (tf + norm) for s, tf in counts.items())


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.lists(st.sampled_from(VOCABULARY), max_size=30), min_size=1, max_size=5),
    terms=st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=4, unique=True),
)
def test_bm25_matches_stemming_every_word(texts: list[list[str]], terms: list[str]) -> None:
    joined = {i: " ".join(text) + "." for i, text in enumerate(texts)}
    terms = [term.casefold() for term in terms]
    doc_counts = {term: 1 for term in terms}
    scores = bm25_scores(joined, terms, doc_counts, n_docs=10, average_words=12.0)
    idf = {stem(t): math.log(1.0 + (10 - 1 + 0.5) / 1.5) for t in terms}
    for key, text in joined.items():
        expected = reference_bm25(text, idf, 12.0)
        if expected is None:
            assert key not in scores
        else:
            assert math.isclose(scores[key], expected, rel_tol=1e-9)


def test_one_stem_for_every_form_of_a_word() -> None:
    # The four-suffix stemmer this replaced gave "vot", "vot" and "votes" → three stems.
    assert {stem(w) for w in ("voted", "voting", "votes", "vote")} == {"vote"}
    assert {stem(w) for w in ("elections", "election", "elected")} == {"elect"}
    assert stem("generously") == "gener" and stem("ponies") == "poni"  # Porter, not Porter2


@given(st.lists(st.sampled_from(VOCABULARY), max_size=20))
def test_coverage_counts_stems_present(text_words: list[str]) -> None:
    weights = {stem("electing"): 2.0, stem("buses"): 1.0}
    text = " ".join(text_words)
    present = {stem(word) for word in tokens(text)}
    expected = sum(w for s, w in weights.items() if s in present) / 3.0
    assert math.isclose(coverage_score(text, weights), expected)
