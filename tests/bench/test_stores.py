"""The store comparison harness on a tiny index: the scale fill and the commands' help."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import psycopg
from typer.testing import CliRunner

from bench import stores
from bench.perf import app
from index.config import Settings
from index.engine import Engine
from index.models import SearchFilters
from index.store.postgres import PostgresStore
from tests.index.fakes import HashingEmbedder


def test_store_commands_have_help() -> None:
    runner = CliRunner()
    for command in ("compare", "scale", "ask"):
        result = runner.invoke(app, ["stores", command, "--help"])
        assert result.exit_code == 0 and "--database-url" in result.output


def test_fill_repeats_the_articles_with_noisy_vectors(tmp_path: Path, postgres_url: str) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    for n in range(3):
        (folder / f"a{n}.txt").write_text(
            f"Story {n}\n\nThe harbour bridge story number {n}. The ferry stopped.\n",
            encoding="utf-8")
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", article_dirs=[folder],
                        model="test-hashing")
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder())
    engine.reindex()
    chunks = engine.stats().n_chunks
    engine.close()
    filled = stores.fill(postgres_url, settings.index_dir, size=chunks * 2 + 1, noise=0.05)
    assert filled["chunks"] == chunks * 2 + 1 and filled["copies"] == 3
    store = PostgresStore(filled["url"])
    assert store.open(None)
    with store.reading() as snapshot:
        assert snapshot.count_chunks() == filled["chunks"]
        exported = {item.article.key: item.vectors for item in snapshot.export_articles()}
    assert len(exported) == 7 and all(key.rsplit("-", 1)[1] in "012" for key in exported)
    # The "-0" copies keep the local index's vectors, stored there as float16 (unit length
    # within ~1e-4); the noisy copies are normalised again.
    for key, vectors in exported.items():
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        original = exported[key.rsplit("-", 1)[0] + "-0"]
        cosine = float((vectors * original).sum())
        assert (abs(cosine - 1.0) < 1e-4) if key.endswith("-0") else (0.8 < cosine < 0.9999)
    queries = np.stack([vectors[0] for vectors in exported.values()])
    truths = stores.exact_neighbours(filled["url"], queries, 3, {
        "unfiltered": None, "source_filter": SearchFilters(sources=("",)),
        "dated": SearchFilters(since=date(2023, 3, 1))})
    with store.reading() as snapshot:
        for query, truth in zip(queries, truths["unfiltered"], strict=True):
            # Scores, not ids: copies can tie.
            found = [score for _, score in snapshot.dense_search(query, 3, exact=True)]
            truth_scores = sorted(snapshot.dense_scores(query, sorted(truth)), reverse=True)
            assert np.allclose(truth_scores, found, atol=1e-5)
    assert truths["source_filter"] == truths["unfiltered"]  # every article has source ''
    assert truths["dated"] == [set() for _ in queries]  # and none has a date
    store.close()
    size = filled["chunks"]
    assert stores.reused(postgres_url, size) == {"url": filled["url"], "chunks": size,
                                                  "reused": True}
    assert stores.reused(postgres_url, size + 10) is None  # another size: no such database
    warmed = stores.prewarm(filled["url"])
    with psycopg.connect(filled["url"]) as conn:
        sizes = dict(conn.execute(
            "SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)",
            (warmed["relations"],)).fetchall())
    assert warmed["bytes"] == sum(sizes.values()) > 0  # every page of each, read once
    assert {"chunks", "chunks_pkey", "postings_by_impact", "sentences"} <= set(sizes)
    assert any(name.startswith("pg_toast_") for name in sizes)  # long texts live there
    assert not set(stores.NOT_READ_BY_QUESTIONS) & set(sizes)


def test_the_exact_neighbours_filter_as_the_store_does() -> None:
    march = SearchFilters(sources=("Gazette",), since=date(2023, 3, 1), until=date(2023, 3, 31))
    assert stores.passes(None, "Herald", None)
    assert stores.passes(march, "Gazette", date(2023, 3, 31))
    assert not stores.passes(march, "Herald", date(2023, 3, 9))
    assert not stores.passes(march, "Gazette", date(2023, 4, 1))
    assert not stores.passes(march, "Gazette", None)  # undated: outside any period
