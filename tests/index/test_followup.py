"""Follow-up questions: the conversation, the expansion, the preference, and the engine path."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import create_autospec

import numpy as np
import pytest

from index import followup
from index.config import Settings
from index.engine import Engine
from index.followup import (
    Conversation,
    ConversationLog,
    borrowed_terms,
    leans_on_context,
    prefer,
)
from index.models import SearchFilters
from index.retrieve import ScoredChunk
from index.store import ChunkRow, KeywordStatistics, Snapshot
from tests.index.fakes import HashingEmbedder

FIRST = "How many homes lost power in Storm Odile?"


# --- the conversation


def test_conversation_keeps_questions_and_articles_oldest_first_and_bounded() -> None:
    conversation = Conversation()
    assert not conversation
    for n in range(followup.MAX_QUESTIONS + 2):
        conversation = conversation.then(f"question {n}", [f"a{n}", f"b{n}"])
    assert conversation.questions[-1] == f"question {followup.MAX_QUESTIONS + 1}"
    assert len(conversation.questions) == followup.MAX_QUESTIONS
    assert conversation.questions[0] == "question 2"  # the oldest went first
    assert len(conversation.article_ids) == followup.MAX_ARTICLES
    assert conversation.article_ids[-2:] == (f"a{followup.MAX_QUESTIONS + 1}",
                                             f"b{followup.MAX_QUESTIONS + 1}")


def test_an_article_quoted_again_moves_to_the_newest_end() -> None:
    conversation = Conversation().then("q1", ["a", "b"]).then("q2", ["a", "a"])
    assert conversation.article_ids == ("b", "a")


# --- which questions lean on the one before


@pytest.mark.parametrize(
    "question",
    ["Why?", "When was power restored?", "And in March?", "What did he say?",
     "How many books does it sort an hour?", "What about the ferry?", "So who paid?"],
)
def test_short_pronoun_led_and_continuing_questions_lean_on_context(question: str) -> None:
    assert leans_on_context(question)


@pytest.mark.parametrize(
    "question",
    ["Who won the Vale of Aster council election in June 2024?",
     "How much did the Brindle library robot cost the town council?",
     "?"],
)
def test_questions_that_stand_alone_do_not(question: str) -> None:
    assert not leans_on_context(question)


# --- expansion


def test_a_short_follow_up_borrows_the_terms_it_lacks() -> None:
    borrowed = borrowed_terms("When was power restored?", Conversation((FIRST,)))
    assert borrowed == ("many", "homes", "lost", "storm", "odile")


def test_why_borrows_every_key_term_of_the_question_before() -> None:
    assert borrowed_terms("Why?", Conversation((FIRST,))) == (
        "many", "homes", "lost", "power", "storm", "odile")


def test_a_question_that_stands_alone_borrows_nothing() -> None:
    question = "Who won the Vale of Aster council election in June 2024?"
    assert borrowed_terms(question, Conversation((FIRST,))) == ()


def test_without_a_conversation_nothing_is_borrowed() -> None:
    assert borrowed_terms("Why?", None) == ()
    assert borrowed_terms("Why?", Conversation()) == ()
    assert borrowed_terms("Why?", Conversation((), ("a0001",))) == ()


def test_a_chain_of_follow_ups_keeps_the_topic_of_the_first() -> None:
    conversation = Conversation((FIRST, "When was it restored?"))
    borrowed = borrowed_terms("Why?", conversation)
    assert borrowed[0] == "restored"  # the latest question's terms come first
    assert "odile" in borrowed and "homes" in borrowed


def test_a_new_topic_in_the_thread_replaces_the_old_one() -> None:
    conversation = Conversation((FIRST, "Which rocket carried the Kestrel-2 satellite into orbit?"))
    borrowed = borrowed_terms("When?", conversation)
    assert "kestrel" in borrowed and "odile" not in borrowed


def test_borrowed_terms_are_bounded() -> None:
    long_first = " ".join(f"word{n}" for n in range(30)) + "?"
    borrowed = borrowed_terms("Why?", Conversation((long_first,)))
    assert len(borrowed) == followup.MAX_BORROWED_TERMS


# --- preference


def chunk(chunk_id: int, score: float) -> ScoredChunk:
    return ScoredChunk(chunk_id, dense=score, keyword=0.0, score=score)


def test_prefer_lifts_the_conversations_articles_past_near_ties() -> None:
    ranked = [chunk(1, 0.60), chunk(2, 0.58), chunk(3, 0.40)]
    article_of = {1: "other", 2: "thread", 3: "thread"}
    preferred = prefer(ranked, article_of, ["thread"], boost=0.05)
    assert [c.chunk_id for c in preferred] == [2, 1, 3]
    assert preferred[0].score == pytest.approx(0.63)
    assert preferred[2].score == pytest.approx(0.45)  # boosted, but not past a clear winner


def test_prefer_without_articles_or_boost_changes_nothing() -> None:
    ranked = [chunk(1, 0.60), chunk(2, 0.58)]
    assert prefer(ranked, {1: "a", 2: "b"}, []) == ranked
    assert prefer(ranked, {1: "a", 2: "b"}, ["b"], boost=0.0) == ranked


def snapshot_with(rows: dict[int, ChunkRow], cosine: dict[int, float]) -> Any:
    """A spec'd Snapshot holding these chunks, with fixed cosines to the question."""
    snapshot = create_autospec(Snapshot, instance=True, spec_set=True)
    snapshot.chunk_ids_of_articles.side_effect = lambda keys: sorted(
        chunk_id for chunk_id, row in rows.items() if row.article_key in keys)
    snapshot.chunk_rows.side_effect = lambda ids: {i: rows[i] for i in ids}
    snapshot.dense_scores.side_effect = lambda vector, ids: np.array([cosine[i] for i in ids])
    return snapshot


def test_search_in_context_draws_in_the_threads_passages_and_prefers_them() -> None:
    rows = {
        1: ChunkRow(1, "other", 0, 30, "The council met about the harbour."),
        2: ChunkRow(2, "thread", 0, 30, "She said the vote was close."),
    }
    snapshot = snapshot_with(rows, {1: 0.50, 2: 0.48})
    statistics = KeywordStatistics({}, n_chunks=2, mean_chunk_words=6.0)
    found = [ScoredChunk(1, 0.50, 0.0, 0.35)]  # what retrieval found: not the thread's passage
    ranked, got_rows = followup.search_in_context(
        snapshot, np.zeros(4), [], statistics, found, {1: rows[1]},
        Conversation(("q",), ("thread",)), filters=SearchFilters(), bm25_weight=0.3,
    )
    assert set(got_rows) == {1, 2}
    assert [c.chunk_id for c in ranked] == [2, 1]  # drawn in, and preferred past a near tie
    # Under filters its passages might not pass them: only those already found are preferred.
    ranked, got_rows = followup.search_in_context(
        snapshot, np.zeros(4), [], statistics, found, {1: rows[1]},
        Conversation(("q",), ("thread",)), filters=SearchFilters(sources=("x",)),
        bm25_weight=0.3,
    )
    assert set(got_rows) == {1} and [c.chunk_id for c in ranked] == [1]


# --- the log the bot keeps


def test_conversation_log_forgets_after_the_ttl_and_beyond_capacity() -> None:
    now = [0.0]
    log = ConversationLog(capacity=2, ttl_seconds=60, clock=lambda: now[0])
    first = Conversation(("q1",))
    log.put([10, 11], first)
    assert log.get(10) == first and log.get(11) == first
    now[0] = 61
    assert log.get(10) is None
    log.put([1], Conversation(("a",)))
    log.put([2], Conversation(("b",)))
    log.put([3], Conversation(("c",)))
    assert log.get(1) is None and log.get(3) == Conversation(("c",))
    assert len(log) == 2


# --- through the engine


# Two stories told alike, so that nothing but the conversation tells them apart.
ARTICLES = {
    "brook.txt": (
        "Brook council meets\n\n"
        "The council of Brook met on Monday about the harbour.\n\n"
        "The mayor said the work would be done by Friday.\n"
    ),
    "brindle.txt": (
        "Brindle council meets\n\n"
        "The council of Brindle met on Monday about the library.\n\n"
        "The mayor said the work would be done by Friday.\n"
    ),
}


@pytest.fixture
def two_stories(tmp_path: Path) -> Engine:
    folder = tmp_path / "stories"
    folder.mkdir()
    for name, text in ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", article_dirs=[folder],
                        model="test-hashing", min_score=0.05, min_answer_score=0.05)
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    engine.reindex()
    return engine


def article_id(engine: Engine, title_word: str) -> str:
    return next(a.id for a in engine.recent_articles(10) if title_word in a.title)


def test_the_engine_prefers_the_articles_of_the_conversation(two_stories: Engine) -> None:
    brook, brindle = article_id(two_stories, "Brook"), article_id(two_stories, "Brindle")
    question = "What did the mayor say about Friday?"  # both articles answer it alike
    for wanted in (brook, brindle):
        answer = two_stories.ask(question, context=Conversation((), (wanted,)))
        assert answer.answered
        assert answer.quotes[0].article.id == wanted
        assert answer.results[0].article.id == wanted


def test_the_engine_answers_a_bare_why_from_the_thread(two_stories: Engine) -> None:
    brook = article_id(two_stories, "Brook")
    alone = two_stories.ask("Why?")
    assert not alone.answered  # nothing to go on
    conversation = Conversation(("When did the council of Brook meet?",), (brook,))
    answer = two_stories.ask("Why?", context=conversation)
    assert answer.answered and answer.quotes[0].article.id == brook
    assert answer.question == "Why?"  # the answer echoes what was asked, not the expansion


def test_borrowed_terms_reach_retrieval_as_data_and_the_reader_reads_the_question_as_asked(
) -> None:
    from index.questions import Query

    snapshot = create_autospec(Snapshot, instance=True, spec_set=True)
    snapshot.keyword_statistics.side_effect = lambda terms: KeywordStatistics(
        {term: 1 for term in terms}, 10, 20.0)
    embedder = HashingEmbedder()
    borrowed = borrowed_terms("When was power restored?", Conversation((FIRST,)))
    query = Query.of(snapshot, embedder, "When was power restored?", borrowed)
    assert query.text == "When was power restored?"
    assert query.terms[:2] == ("power", "restored") and "odile" in query.terms
    snapshot.keyword_statistics.assert_called_once_with(list(query.terms))
    assert np.allclose(query.vector,
                       embedder.encode_query("When was power restored? " + " ".join(borrowed)))
    asked = query.analysis()
    assert asked.text == "When was power restored?"  # what a cross-encoder reads
    assert "odile" not in asked.tokens and any(w.startswith("odil") for w in asked.weights)
