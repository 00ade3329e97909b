"""Follow-up questions: what a conversation lends the question asked next, without a model.

A `Conversation` is what came before in a thread: the questions asked, oldest first, and
the articles quoted in answer. A follow-up that cannot stand on its own ("Why?", "What did
he say?", "And in March?", "When was power restored?") borrows the key terms of the
questions before it (`borrowed_terms`: retrieval uses them beside the question's own, the
reader still reads the question as asked), and passages of the articles already quoted are
drawn in and preferred (`search_in_context`). The figures behind the choices: docs/quality.md,
"Follow-up questions".

Everything here but `search_in_context` is pure; the bot keeps conversations in a
`ConversationLog`.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from index.models import SearchFilters
from index.retrieve import ScoredChunk, score_candidates
from index.store import ChunkRow, KeywordStatistics, Snapshot
from index.text import terms as query_terms
from index.text import tokens

# What a conversation keeps: enough for the thread's topic, not a transcript.
MAX_QUESTIONS = 6
MAX_ARTICLES = 8
# A question with at most this many key terms is too short to stand alone.
SHORT_TERMS = 3
# Terms a follow-up borrows at most: a long first question should not drown a short one.
MAX_BORROWED_TERMS = 8
# Added to the fused score of the thread's articles' passages (cosine scale). Tuned on the
# samples pairs only (bench/followups.py); the news pairs were held out.
CONTEXT_BOOST = 0.05
# Words that point back at something said before. The personal pronouns count anywhere
# ("what did he say?"); a leading connective ("and in March?") marks a continuation.
REFERRING_WORDS = frozenset(
    "he she it they him her his hers its their theirs them himself herself itself themselves"
    .split()
)
LEADING_CONNECTIVES = frozenset("and but so also then plus or".split())
LEADING_PHRASES = (("what", "about"), ("how", "about"), ("what", "else"))

# How long and how many conversations the bot remembers. Discord archives an idle thread
# after a day by default, so a day covers a thread's active life.
CONVERSATION_TTL_SECONDS = 24 * 3600.0
CONVERSATIONS_REMEMBERED = 5000
# Named value in the state store holding the conversation kept under a key (a thread's id, or
# an answer message's): how a thread goes on after the bot restarts.
CONVERSATION_KEY = "conversation:{}"


@dataclass(frozen=True, slots=True)
class Conversation:
    """What was asked before in a thread and which articles were quoted, oldest first.

    Bounded: at most MAX_QUESTIONS questions and MAX_ARTICLES article ids (the oldest go).
    """

    questions: tuple[str, ...] = ()
    article_ids: tuple[str, ...] = ()

    def then(self, question: str, article_ids: Sequence[str] = ()) -> Conversation:
        """The conversation after one more question, answered from these articles.

        An article quoted again moves to the newest end, so the bound drops the ones the
        thread left behind.
        """
        questions = (*self.questions, question)[-MAX_QUESTIONS:]
        again = set(article_ids)
        kept = [key for key in self.article_ids if key not in again]
        articles = (*kept, *dict.fromkeys(article_ids))[-MAX_ARTICLES:]
        return Conversation(questions, tuple(articles))

    def __bool__(self) -> bool:
        """True when anything was asked before."""
        return bool(self.questions or self.article_ids)

    def to_json(self) -> str:
        """The conversation as JSON text: {"questions": [...], "article_ids": [...]}."""
        return json.dumps({"questions": list(self.questions),
                           "article_ids": list(self.article_ids)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> Conversation | None:
        """A conversation from `to_json`'s text; None for no text or text that holds none
        (unreadable, or of another shape), so a bad value costs the context, not the answer.
        """
        try:
            data = json.loads(text) if text else None
            questions = tuple(str(item) for item in data["questions"])
            article_ids = tuple(str(item) for item in data["article_ids"])
        except (ValueError, TypeError, KeyError):
            return None
        return cls(questions, article_ids) or None


def leans_on_context(question: str) -> bool:
    """Whether a question needs the one before it: short, pronoun-led or a continuation.

    'Why?', 'When was power restored?' (few key terms), 'What did he say?' (a pronoun),
    'And in March?' (a leading connective) do; 'Who won the Vale of Aster council
    election in June?' does not.
    """
    said = tokens(question)
    if not said:
        return False
    if said[0] in LEADING_CONNECTIVES or tuple(said[:2]) in LEADING_PHRASES:
        return True
    if any(word in REFERRING_WORDS for word in said):
        return True
    return len(query_terms(question)) <= SHORT_TERMS


def topic_terms(questions: Sequence[str]) -> list[str]:
    """The key terms the last of these questions stands on, its own first.

    A question that leans on context adds the terms of the one before (which may itself
    have leaned on the one before it); a question that stands alone starts a new topic.
    """
    terms: list[str] = []
    for question in questions:
        own = query_terms(question)
        if leans_on_context(question):
            terms = own + [term for term in terms if term not in own]
        else:
            terms = own
    return terms


def borrowed_terms(question: str, context: Conversation | None) -> tuple[str, ...]:
    """The key terms of the conversation's topic that the question lacks (`index.text.terms`
    form: lower-case words, stop words left out), for retrieval to add to the question's own.

    Empty without a conversation, or when the question stands on its own. At most
    MAX_BORROWED_TERMS are borrowed, the latest question's first.
    """
    if not context or not context.questions or not leans_on_context(question):
        return ()
    own = set(query_terms(question))
    borrowed = [term for term in topic_terms(context.questions) if term not in own]
    return tuple(borrowed[:MAX_BORROWED_TERMS])


def prefer(
    ranked: Sequence[ScoredChunk],
    article_of: Mapping[int, str],
    article_ids: Sequence[str],
    boost: float = CONTEXT_BOOST,
) -> list[ScoredChunk]:
    """Raise the passages of these articles by `boost` (fused-score units); best first."""
    wanted = set(article_ids)
    if not wanted or boost == 0:
        return list(ranked)
    boosted = [
        replace(chunk, score=chunk.score + boost)
        if article_of.get(chunk.chunk_id) in wanted else chunk
        for chunk in ranked
    ]
    boosted.sort(key=lambda c: (-c.score, c.chunk_id))
    return boosted


def search_in_context(
    snapshot: Snapshot,
    query_vector: np.ndarray,
    terms: Sequence[str],
    statistics: KeywordStatistics,
    ranked: Sequence[ScoredChunk],
    rows: dict[int, ChunkRow],
    context: Conversation | None,
    *,
    filters: SearchFilters,
    bm25_weight: float,
    boost: float | None = None,
) -> tuple[list[ScoredChunk], dict[int, ChunkRow]]:
    """The ranking with the conversation's articles drawn in and preferred, and its rows.

    Every passage of those articles becomes a candidate (their answer may share no word
    with the question: "what did he say?"), scored with the others by both retrievers, and
    each gets `boost` (default: CONTEXT_BOOST as it is when called). Under filters the
    passages are not drawn in (they might not pass), only preferred when they are
    candidates already. Reads the snapshot: raises what it raises.
    """
    if not context or not context.article_ids:
        return list(ranked), rows
    if filters.is_empty():
        extra = [chunk_id for chunk_id in snapshot.chunk_ids_of_articles(context.article_ids)
                 if chunk_id not in rows]
        if extra:
            rows = {**rows, **snapshot.chunk_rows(extra)}
            texts = {chunk_id: row.text for chunk_id, row in rows.items()}
            ranked = score_candidates(snapshot, query_vector, terms, texts, statistics,
                                      bm25_weight=bm25_weight)
    article_of = {chunk_id: row.article_key for chunk_id, row in rows.items()}
    return prefer(ranked, article_of, context.article_ids,
                  CONTEXT_BOOST if boost is None else boost), rows


class ConversationLog:
    """The conversations of recent threads (and answers), by an integer key, in memory.

    Bounded twice: at most `capacity` entries (the least recently used go first) and none
    older than `ttl_seconds` since it last changed. The clock is injectable (seconds).
    """

    def __init__(
        self,
        capacity: int = CONVERSATIONS_REMEMBERED,
        ttl_seconds: float = CONVERSATION_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[int, tuple[float, Conversation]] = OrderedDict()

    def get(self, key: int) -> Conversation | None:
        """The conversation under a key, or None when unknown or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        stamp, conversation = entry
        if self._clock() - stamp > self.ttl_seconds:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return conversation

    def put(self, keys: Sequence[int], conversation: Conversation) -> None:
        """Remember a conversation under each of these keys (a thread, its answers)."""
        now = self._clock()
        for key in keys:
            self._entries[key] = (now, conversation)
            self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        """How many keys are remembered (expired ones included until looked up)."""
        return len(self._entries)
