"""The store interface's conformance suite: every backend must pass it unchanged.

Backends are the parameters of the `new_store` fixture; a backend that needs a server skips
with the reason when it cannot have one (and fails in CI, which provides one). Vectors are
tiny (DIM) and chosen by topic, so the expected results are known exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from index.build import text_hash
from index.models import ArticleInfo, ChunkSpan, ParsedArticle, SearchFilters, Span
from index.retrieve import hybrid_search
from index.store import (
    IdentityMismatch,
    NewArticle,
    NewChunk,
    Snapshot,
    Store,
    StoreEmpty,
    StoreError,
    WriterBusy,
)
from index.store.filters import matches

DIM = 8
IDENTITY = {"model": "conformance", "dim": DIM, "normalized": True}
METADATA = {"embedding": {**IDENTITY, "backend": "test"}, "chunking": {"max_tokens": 64}}
TOPICS = ("bridge", "harvest", "comet", "election", "storm", "museum", "tram", "ferry")


def topic_vector(*topics: str) -> np.ndarray:
    """A unit vector pointing at the given topics' axes."""
    vector = np.zeros(DIM, dtype=np.float32)
    for topic in topics:
        vector[TOPICS.index(topic)] = 1.0
    return vector / np.linalg.norm(vector)


def local_stores(tmp_path: Path) -> Callable[[], Store]:
    """Makes stores of one local collection in a temporary folder."""
    from index.store.local import LocalStore

    return lambda: LocalStore(tmp_path / "index")


def postgres_stores(url: str, *, hnsw: bool = False) -> Callable[[], Store]:
    """Makes stores of one collection: a database of its own on the test server.

    With `hnsw`, every search goes through the HNSW index and the posting lists, however
    small the collection and its filters (else small filters are searched exhaustively).
    """
    from index.store.postgres import PostgresStore

    # Old versions are retired at once, so the tests meet every race of the clean-up.
    return lambda: PostgresStore(url, pool_size=4, retire_after_seconds=0,
                                 approximate_threshold=0 if hnsw else 200_000,
                                 exact_filter_limit=0 if hnsw else 50_000)


def memory_stores() -> Callable[[], Store]:
    """Makes stores of one in-memory collection of its own."""
    from index.store.memory import MemoryCollection, MemoryStore

    shared = MemoryCollection("conformance")
    return lambda: MemoryStore(shared)


@pytest.fixture(params=["local", "postgres", "postgres-hnsw", "memory"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Makes another store object on the same (initially empty) collection, per backend."""
    made: list[Store] = []
    if request.param.startswith("postgres"):
        stores = postgres_stores(request.getfixturevalue("fresh_database"),
                                 hnsw=request.param == "postgres-hnsw")
    elif request.param == "memory":
        stores = memory_stores()
    else:
        stores = local_stores(tmp_path)

    def factory() -> Store:
        store = stores()
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


@pytest.fixture
def store(new_store: Callable[[], Store]) -> Store:
    """A store on a new, empty collection."""
    return new_store()


def article(
    key: str, sentences: Sequence[tuple[str, str]], *, source: str = "", published: date | None
    = None, labels: tuple[str, ...] = (), title: str = "",
) -> tuple[NewArticle, list[str]]:
    """An article of (topic, sentence) pairs, one chunk per sentence; returns it and its topics."""
    text = ""
    spans: list[Span] = []
    for _, sentence in sentences:
        if text:
            text += " "
        spans.append(Span(len(text), len(text) + len(sentence)))
        text += sentence
    parsed = ParsedArticle(text=text, origin=f"/data/{key}.txt", title=title or key.title(),
                           source=source, url=f"https://news.example/{key}",
                           published=published, labels=labels)
    chunks = tuple(NewChunk(ChunkSpan(s.start, s.end, (s,), 8), text_hash(text[s.start:s.end]))
                   for s in spans)
    new = NewArticle(key=key, article=parsed, content_hash=f"c-{key}-{len(text)}",
                     norm_hash=f"n-{key}-{len(text)}", origin_file=f"/data/{key}.txt",
                     chunks=chunks, sentences=tuple(spans))
    return new, [topic for topic, _ in sentences]


Articles = list[tuple[NewArticle, list[str]]]


def write(
    store: Store, articles: Articles, *, delete: Sequence[str] = (), fresh: bool = False,
    stories: dict[str, str] | None = None,
) -> dict[str, list[int]]:
    """Commit a version with these changes; returns each added article's chunk ids."""
    ids: dict[str, list[int]] = {}
    with store.writer(fresh=fresh) as writer:
        writer.delete_articles(list(delete))
        for new, topics in articles:
            chunk_ids = writer.add_article(new)
            writer.set_vectors(chunk_ids, np.stack([topic_vector(t) for t in topics]))
            ids[new.key] = chunk_ids
        keys = list(writer.stored_articles())
        writer.set_story_ids({key: (stories or {}).get(key, key) for key in keys})
        writer.commit(METADATA)
    return ids


def opened(store: Store) -> Store:
    """The store serving its current version."""
    store.open(IDENTITY)
    return store


NEWS: Callable[[], Articles] = lambda: [  # noqa: E731
    article("bridge-a", [("bridge", "The harbour bridge reopened on Monday."),
                         ("ferry", "Ferries will stop running next week.")],
            source="Gazette", published=date(2023, 3, 6), labels=("truenews",),
            title="Harbour bridge reopens"),
    article("bridge-b", [("bridge", "Traffic returned to the harbour bridge.")],
            source="Herald", published=date(2023, 3, 8), title="Bridge traffic back"),
    article("harvest", [("harvest", "Farmers picked a record apple harvest.")],
            source="Gazette", published=date(2023, 1, 15), labels=("truenews", "farming"),
            title="Record apple harvest"),
    article("comet", [("comet", "A teacher discovered a comet with a telescope.")],
            source="Courier", labels=("satire",), title="Teacher finds comet"),
]


# ------------------------------------------------------------------ empty and opening


def test_an_empty_store_has_no_version(store: Store) -> None:
    assert not store.exists()
    assert store.open(IDENTITY) is False
    with pytest.raises(StoreEmpty), store.reading():
        pass


def test_an_empty_collection_answers_every_read_with_nothing(store: Store) -> None:
    write(opened(store), [])
    assert store.exists()
    with store.reading() as snapshot:
        assert snapshot.count_articles() == snapshot.count_chunks() == 0
        assert snapshot.dense_search(topic_vector("bridge"), 5) == []
        assert snapshot.keyword_search(["bridge"], 5) == []
        assert snapshot.coverage().n_articles == 0
        stats = snapshot.keyword_statistics(["bridge"])
        assert stats.n_chunks == 0 and stats.doc_counts == {"bridge": 0}
        assert snapshot.recent_articles(10) == [] and snapshot.sources() == []
        assert snapshot.find_article("bridge") is None


def test_a_version_built_with_another_model_is_refused(
    store: Store, new_store: Callable[[], Store]
) -> None:
    write(opened(store), NEWS())
    again = new_store()
    with pytest.raises(IdentityMismatch):
        again.open({**IDENTITY, "model": "other"})
    assert again.open({**IDENTITY, "model": "other"}, repair=True) is False


# ------------------------------------------------------------------ filters


FILTERS = {
    "none": (SearchFilters(), {"bridge-a", "bridge-b", "harvest", "comet"}),
    "source": (SearchFilters(sources=("Gazette",)), {"bridge-a", "harvest"}),
    "two-sources": (SearchFilters(sources=("Herald", "Courier")), {"bridge-b", "comet"}),
    "since": (SearchFilters(since=date(2023, 3, 7)), {"bridge-b"}),
    "until": (SearchFilters(until=date(2023, 3, 6)), {"bridge-a", "harvest"}),
    "since-until": (SearchFilters(since=date(2023, 1, 1), until=date(2023, 3, 6)),
                    {"bridge-a", "harvest"}),
    "label": (SearchFilters(labels=("truenews",)), {"bridge-a", "harvest"}),
    "any-label": (SearchFilters(labels=("satire", "farming")), {"comet", "harvest"}),
    "source-label": (SearchFilters(sources=("Gazette",), labels=("farming",)), {"harvest"}),
    "source-date-label": (SearchFilters(sources=("Gazette", "Herald"), since=date(2023, 3, 1),
                                        labels=("truenews",)), {"bridge-a"}),
    "nothing": (SearchFilters(sources=("Nobody",)), set()),
    "empty-period": (SearchFilters(since=date(2024, 1, 1)), set()),
}


@pytest.mark.parametrize("name", FILTERS)
def test_filters_restrict_both_retrievers_and_coverage(store: Store, name: str) -> None:
    ids = write(opened(store), NEWS())
    filters, expected = FILTERS[name]
    infos = [info_of(new) for new, _ in NEWS()]
    assert {info.id for info in infos if matches(info, filters)} == expected  # the reference
    allowed = {cid for key in expected for cid in ids[key]}
    with store.reading() as snapshot:
        for topic in TOPICS:
            found = snapshot.dense_search(topic_vector(topic), 10, filters)
            assert {cid for cid, _ in found} == allowed  # k exceeds the collection
        keyword = snapshot.keyword_search(["harbour", "apple", "comet", "ferries"], 10, filters)
        assert {cid for cid, _ in keyword} <= allowed
        assert {snapshot.chunk_rows([cid])[cid].article_key for cid, _ in keyword} == expected
        assert snapshot.coverage(filters).n_articles == len(expected)


def info_of(new: NewArticle) -> ArticleInfo:
    """The metadata a store gives back for an article written as `new`."""
    parsed = new.article
    return ArticleInfo(id=new.key, title=parsed.title, source=parsed.source, url=parsed.url,
                       published=parsed.published, authors=parsed.authors, labels=parsed.labels)


FILTER_GRID = [
    SearchFilters(sources=sources, since=since, until=until, labels=labels)
    for sources in ((), ("Gazette",), ("Herald", "Courier"), ("Nobody",))
    for since in (None, date(2023, 1, 15), date(2023, 3, 7))
    for until in (None, date(2023, 3, 6), date(2022, 12, 31))
    for labels in ((), ("truenews",), ("satire", "farming"))
]


def test_every_filter_means_what_the_reference_matcher_says(store: Store) -> None:
    """Each backend's own filter query (SQL, a scan) against `index.store.filters.matches`,
    over every combination of outlets, inclusive day bounds and labels."""
    news = NEWS()
    ids = write(opened(store), news)
    infos = [info_of(new) for new, _ in news]
    with store.reading() as snapshot:
        for filters in FILTER_GRID:
            expected = {info.id for info in infos if matches(info, filters)}
            allowed = {cid for key in expected for cid in ids[key]}
            found = snapshot.dense_search(topic_vector("bridge"), 10, filters)
            assert {cid for cid, _ in found} == allowed, filters
            keyword = snapshot.keyword_search(["harbour", "apple", "comet", "ferries"], 10,
                                              filters)
            assert {snapshot.chunk_rows([cid])[cid].article_key for cid, _ in keyword} == (
                expected), filters
            assert snapshot.coverage(filters).n_articles == len(expected), filters


def test_dense_search_ranks_by_inner_product_and_honours_k(store: Store) -> None:
    ids = write(opened(store), NEWS())
    with store.reading() as snapshot:
        found = snapshot.dense_search(topic_vector("bridge"), 2)
        assert {cid for cid, _ in found} == {ids["bridge-a"][0], ids["bridge-b"][0]}
        assert all(score == pytest.approx(1.0, abs=1e-5) for _, score in found)
        scores = snapshot.dense_scores(topic_vector("bridge", "ferry"), ids["bridge-a"])
        assert scores.shape == (2,) and np.allclose(scores, [2 ** -0.5] * 2, atol=1e-5)


def test_keyword_search_scores_rarer_terms_higher_and_counts_documents(store: Store) -> None:
    ids = write(opened(store), NEWS())
    with store.reading() as snapshot:
        found = snapshot.keyword_search(["harbour", "reopened"], 10)
        assert found[0][0] == ids["bridge-a"][0] and found[0][1] > found[-1][1] > 0
        stats = snapshot.keyword_statistics(["harbour", "comet", "zeppelin"])
        assert stats.doc_counts == {"harbour": 2, "comet": 1, "zeppelin": 0}
        assert stats.n_chunks == 5 and stats.mean_chunk_words > 3


def test_fusion_works_when_one_retriever_finds_nothing(store: Store) -> None:
    ids = write(opened(store), NEWS())
    with store.reading() as snapshot:
        terms = ["zeppelin"]  # in no chunk: the keyword side is empty
        ranked, rows = hybrid_search(
            snapshot, topic_vector("comet"), terms, snapshot.keyword_statistics(terms),
            candidates=3, bm25_weight=0.3,
        )
        assert ranked[0].chunk_id == ids["comet"][0] and ranked[0].keyword == 0.0
        assert set(rows) == {c.chunk_id for c in ranked}
        terms = ["telescope"]  # the dense side points elsewhere; the keyword side finds it
        ranked, _ = hybrid_search(
            snapshot, topic_vector("storm"), terms, snapshot.keyword_statistics(terms),
            candidates=3, bm25_weight=0.3,
        )
        assert ids["comet"][0] in {c.chunk_id for c in ranked}


# ------------------------------------------------------------------ rows


def test_rows_spans_and_articles_read_back_what_was_written(store: Store) -> None:
    news = NEWS()
    ids = write(opened(store), news, stories={"bridge-a": "s-bridge", "bridge-b": "s-bridge"})
    with store.reading() as snapshot:
        rows = snapshot.chunk_rows(ids["bridge-a"])
        text = news[0][0].article.text
        for cid, row in rows.items():
            assert row.article_key == "bridge-a" and row.text == text[row.start : row.end]
            assert row.published == date(2023, 3, 6) and row.story_id == "s-bridge"
            assert [text[s.start : s.end] for s in snapshot.sentence_spans([cid])[cid]] == [
                row.text
            ]
        assert snapshot.chunk_ids_of_articles(["bridge-a", "comet"]) == sorted(
            ids["bridge-a"] + ids["comet"]
        )
        info = snapshot.articles(["comet"])["comet"]
        assert (info.source, info.published, info.labels) == ("Courier", None, ("satire",))
        members = snapshot.story_members(["s-bridge"])["s-bridge"]
        assert [a.id for a in members] == ["bridge-a", "bridge-b"]  # oldest first
        assert [a.id for a in snapshot.recent_articles(10)] == [
            "bridge-b", "bridge-a", "harvest", "comet"  # undated last
        ]
        assert [a.id for a in snapshot.recent_articles(2, offset=1, source="Gazette")] == [
            "harvest"
        ]
        assert snapshot.sources() == [("Gazette", 2), ("Courier", 1), ("Herald", 1)]
        assert snapshot.count_articles("Gazette") == 2
        found = snapshot.find_article("Record apple harvest")
        assert found is not None and found[0].id == "harvest" and "apple" in found[1]
        assert found[2] == len(snapshot.chunk_ids_of_articles(["harvest"])) >= 1
        assert snapshot.find_article("harv")[0].id == "harvest"  # unique id prefix
        assert [a.id for a in snapshot.search_titles("bridge", 5)] == ["bridge-b", "bridge-a"]
        cover = snapshot.coverage()
        assert (cover.n_articles, cover.first, cover.last) == (
            4, date(2023, 1, 15), date(2023, 3, 8))
        since = snapshot.articles_since(published_since=date(2023, 3, 1), ingested_since=None,
                                        limit=10)
        assert [(a.id, story) for a, story in since] == [
            ("bridge-b", "s-bridge"), ("bridge-a", "s-bridge")]
        assert snapshot.metadata["embedding"]["model"] == "conformance"
        counts = snapshot.metadata["counts"]
        assert (counts["articles"], counts["chunks"]) == (4, 5)
        assert snapshot.capabilities.dense_search in ("exact", "approximate")
        assert snapshot.size_bytes() > 0


def test_articles_ingested_since_a_build_are_the_ones_it_added(store: Store) -> None:
    write(opened(store), NEWS())
    with store.reading() as snapshot:
        first_build = snapshot.metadata["build_started"]
    write(store, [article("storm", [("storm", "A storm cut power to the coast.")])])
    with store.reading() as snapshot:
        assert snapshot.metadata["build_started"] >= first_build
        newer = snapshot.articles_since(published_since=None,
                                        ingested_since=snapshot.metadata["build_started"],
                                        limit=10)
        assert [a.id for a, _ in newer] == ["storm"]


# ------------------------------------------------------------------ writing


def test_deletes_and_updates_leave_no_stale_ids(store: Store) -> None:
    ids = write(opened(store), NEWS())
    old_ids = ids["bridge-a"]
    updated = article("bridge-a", [("tram", "The tram line opened beside the harbour.")],
                      source="Gazette", published=date(2023, 3, 9))
    new_ids = write(store, [updated], delete=["bridge-a", "comet"])["bridge-a"]
    assert not set(new_ids) & set(old_ids)
    with store.reading() as snapshot:
        live = set(snapshot.chunk_ids_of_articles(["bridge-a", "bridge-b", "harvest", "comet"]))
        assert live == set(new_ids) | set(ids["bridge-b"]) | set(ids["harvest"])
        for topic in TOPICS:
            assert {cid for cid, _ in snapshot.dense_search(topic_vector(topic), 10)} == live
        found = snapshot.keyword_search(["harbour", "comet", "ferries", "tram"], 10)
        assert {cid for cid, _ in found} <= live
        assert snapshot.keyword_statistics(["comet", "ferries"]).doc_counts == {
            "comet": 0, "ferries": 0}
        assert snapshot.chunk_rows(old_ids) == {}
        with pytest.raises(KeyError):
            snapshot.dense_scores(topic_vector("bridge"), old_ids)
        assert snapshot.count_articles() == 3 and "comet" not in snapshot.articles(["comet"])
        assert snapshot.articles(["bridge-a"])["bridge-a"].published == date(2023, 3, 9)


def test_an_article_id_is_stored_once(store: Store) -> None:
    write(opened(store), NEWS())
    with store.writer() as writer, pytest.raises(StoreError):
        writer.add_article(NEWS()[0][0])


def test_abort_changes_nothing(store: Store, new_store: Callable[[], Store]) -> None:
    write(opened(store), NEWS())
    with store.reading() as snapshot:
        version = snapshot.version
    with store.writer() as writer:  # left without commit
        writer.delete_articles(["bridge-a"])
        writer.add_article(article("storm", [("storm", "A storm hit.")])[0])
    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.delete_articles(["harvest"])
        raise RuntimeError("the build failed")
    with store.reading() as snapshot:
        assert snapshot.version == version and snapshot.count_articles() == 4
    again = new_store()  # as another process would see it
    assert again.open(IDENTITY) and again.exists()
    with again.reading() as snapshot:
        assert snapshot.version == version and snapshot.count_articles() == 4


def test_vectors_are_reused_by_text_hash(store: Store) -> None:
    news = NEWS()
    write(opened(store), news)
    digest = news[2][0].chunks[0].text_hash
    with store.writer() as writer:
        reused = writer.reusable_vectors([digest, "no-such-hash"])
        assert set(reused) == {digest}
        assert np.allclose(reused[digest], topic_vector("harvest"))
        # Kept chunks keep their vectors without being given them again.
        kept = writer.stored_articles()
        assert set(kept) == {"bridge-a", "bridge-b", "harvest", "comet"}
        chunk_ids = [cid for summary in writer.article_summaries(100)
                     for cid in summary.chunk_ids]
        assert writer.vectors(chunk_ids).shape == (5, DIM)
    with store.writer(fresh=True) as writer:  # a rebuild (another model, say) reuses nothing
        assert writer.reusable_vectors([digest]) == {}


def test_a_fresh_writer_starts_empty(store: Store) -> None:
    write(opened(store), NEWS())
    write(store, [article("storm", [("storm", "A storm hit.")])], fresh=True)
    with store.reading() as snapshot:
        assert [a.id for a in snapshot.recent_articles(10)] == ["storm"]


def test_one_writer_at_a_time(store: Store) -> None:
    write(opened(store), NEWS())
    with store.writer(), pytest.raises(WriterBusy):
        store.writer()
    with store.writer():  # released by the first
        pass


def test_readers_see_the_old_or_the_new_version_never_a_mix(store: Store) -> None:
    write(opened(store), NEWS())
    with store.reading() as held:
        before = held.count_articles()
        write(store, [article("storm", [("storm", "A storm cut power.")])])
        # The held version is unchanged: its counts, its rows and its searches.
        assert held.count_articles() == before
        assert {cid for cid, _ in held.dense_search(topic_vector("storm"), 10)} == set(
            held.chunk_ids_of_articles([a.id for a in held.recent_articles(10)]))
    with store.reading() as current:
        assert current.count_articles() == before + 1

    problems: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        """Every read within one snapshot agrees with that snapshot's own chunk set."""
        try:
            read()
        except Exception as exc:  # a failing reader must fail the test, not just stop
            problems.append(f"{type(exc).__name__}: {exc}")

    def read() -> None:
        """Read until told to stop."""
        while not stop.is_set():
            with store.reading() as snapshot:
                keys = [a.id for a in snapshot.recent_articles(100)]
                chunk_ids = set(snapshot.chunk_ids_of_articles(keys))
                dense = {cid for cid, _ in snapshot.dense_search(topic_vector("storm"), 100)}
                rows = snapshot.chunk_rows(sorted(dense))
                if dense != chunk_ids or set(rows) != dense:
                    problems.append(f"{snapshot.version}: {dense ^ chunk_ids}")

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for n in range(6):
            write(store, [article(f"storm-{n}", [("storm", f"Storm number {n} hit.")])],
                  delete=[f"storm-{n - 1}"] if n else [])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert problems == []


# ------------------------------------------------------------------ the bot's state


def test_state_keeps_votes_follows_and_values(store: Store) -> None:
    state = store.state()
    state.record_feedback("q", [3, 1], 1, "user-a")
    state.record_feedback("q", [1, 3], -1, "user-a")  # the same answer: replaces the vote
    state.record_feedback("q", [1, 3], 1, "user-b")
    assert state.feedback_counts() == {"up": 1, "down": 1}
    with pytest.raises(ValueError):
        state.record_feedback("q", [1], 0, "user-c")
    follow = state.add_follow("  harbour   bridge ", channel_id=10, user_id=7, guild_id=1)
    assert follow.topic == "harbour bridge"
    assert state.add_follow("harbour bridge", channel_id=10, user_id=8).id == follow.id
    state.add_follow("storm", channel_id=11, user_id=7, guild_id=2)
    assert [f.topic for f in state.list_follows(guild_id=1)] == ["harbour bridge"]
    assert [f.topic for f in state.list_follows(channel_id=11)] == ["storm"]
    with pytest.raises(ValueError):
        state.add_follow("   ", channel_id=10, user_id=7)
    assert state.remove_follow(follow.id) and not state.remove_follow(follow.id)
    assert state.get_value("commands_sha256") is None
    state.set_value("commands_sha256", "abc")
    state.set_value("commands_sha256", "def")
    assert state.get_value("commands_sha256") == "def"
    assert store.state() is state


def test_rate_limits_are_windows_shared_through_the_store(
    store: Store, new_store: Callable[[], Store]
) -> None:
    first, second = store.state(), new_store().state()  # as two bot processes would
    assert first.take_token("ask:1", 2, 10.0, now=1000.0) is None
    assert second.take_token("ask:1", 2, 10.0, now=1001.0) is None
    assert first.take_token("ask:1", 2, 10.0, now=1004.0) == pytest.approx(6.0)
    assert second.take_token("ask:2", 2, 10.0, now=1004.0) is None  # its own allowance
    assert second.take_token("ask:1", 2, 10.0, now=1010.5) is None  # a new window
    assert first.take_token("ask:1", 1, 10.0, now=1011.0) == pytest.approx(9.5)


def test_a_snapshot_is_a_snapshot(store: Store) -> None:
    write(opened(store), NEWS())
    with store.reading() as snapshot:
        assert isinstance(snapshot, Snapshot)


def test_the_keyword_index_counts_terms_and_lengths_as_the_analyser_does(store: Store) -> None:
    """BM25's document counts come from the store and its term counts from `index.text`:
    both must stem and split alike, or a term weighs one thing in the index and another in
    scoring (once: "voted/voting/votes" one stem in the index, three in scoring)."""
    from index.text import stem, tokens

    sentences = ["Voters voted in the general election; voting generously.",
                 "Relational conditions: the ponies agreed, hopefulness ran high.",
                 "Buses ran late; the bus-driver's union said 3.5% more trams."]
    write(opened(store), [article("words", [(TOPICS[i], s) for i, s in enumerate(sentences)])])
    forms = ["votes", "voting", "elections", "generous", "relations", "conditional", "pony",
             "agreeing", "hopeful", "running", "bus", "drivers", "union", "trams", "5"]
    with store.reading() as snapshot:
        statistics = snapshot.keyword_statistics(forms)
        for form in forms:
            expected = sum(stem(form) in {stem(t) for t in tokens(s)} for s in sentences)
            assert statistics.doc_counts[form] == expected, form
        mean = sum(len(tokens(s)) for s in sentences) / len(sentences)
        assert statistics.mean_chunk_words == pytest.approx(mean)
