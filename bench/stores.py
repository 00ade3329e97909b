"""The storage backends side by side: local (FAISS + SQLite) against PostgreSQL + pgvector.

    python -m bench.perf stores compare --database-url URL [--index DIR] [--corpus PATH]
    python -m bench.perf stores scale --database-url URL --size 1000000 [--index DIR] [--reuse]
    python -m bench.perf stores ask --database-url URL [--concurrency 4]

(also `articlebot bench stores …`).

`compare` ingests one corpus into a new local index and a new database (the same embedder,
one after the other: ingest throughput and its ratio), then copies a built local index (the
year, by default) into PostgreSQL and asks the same questions of both, one at a time and
from several askers at once (latency ratio). `scale` fills a database with a local index's
articles repeated, their vectors with Gaussian noise per copy, up to a size (or reuses what
an earlier run filled), and measures dense search's recall@10 against exact search and keyword
search's recall against an exhaustive one, without a filter, with one outlet and with one
month, and hybrid question latency end to end: with the database as found in memory, then
after reading the relations questions use into the page cache (`prewarm`). Every figure names
the machine and the load.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from bench.measure import (
    BENCH_DIR,
    DEFAULT_BACKEND,
    YEAR_CORPUS,
    bench_settings,
    clear_index,
    ingest_dir,
    load_average,
    news_question_texts,
    note,
    percentiles,
    print_report,
    ratio,
    running_top_k,
    squad_question_texts,
    timed_ms,
)
from bench.options import (
    MAX_BREADTH,
    MAX_DATABASE_CHUNKS,
    MAX_NOISE,
    MAX_QUERIES,
    MAX_SQUAD,
    MAX_THREADS,
    positive_ints,
)
from bench.quality import NEWS_CORPUS, OneLineErrorsCommand, OneLineErrorsGroup
from index.models import ArticleInfo
from index.store.filters import matches

if TYPE_CHECKING:
    from index.config import Settings
    from index.engine import Engine
    from index.models import SearchFilters
    from index.store.postgres import PostgresSnapshot

WARM_UP = 20
# The month filter of `scale` (the year corpus's March).
MONTH = (date(2023, 3, 1), date(2023, 3, 31))


def on_postgres(settings: Settings, url: str) -> Settings:
    """The same settings on the postgres backend at url."""
    from pydantic import SecretStr

    return settings.model_copy(update={"store": "postgres", "database_url": SecretStr(url)})


def fresh_database(server_url: str, name: str) -> str:
    """An empty database `name` on the server (dropped first when it exists)."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from index.store.postgres import ensure_database

    admin = make_conninfo(**{**conninfo_to_dict(server_url), "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
    return ensure_database(server_url, name)


def ask_figures(engine: Engine, questions: list[str], concurrency: int,
                filters: SearchFilters | None = None) -> dict[str, Any]:
    """Latency one question at a time (after a warm-up), then from `concurrency` askers."""

    def ask(question: str) -> Any:
        return engine.ask(question, filters)

    for question in questions[:WARM_UP]:
        ask(question)
    single = [timed_ms(ask, q) for q in questions]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        together = list(pool.map(lambda q: timed_ms(ask, q), questions))
    wall = time.perf_counter() - started
    return {"single": percentiles(single),
            f"{concurrency}_askers": percentiles(together)
            | {"questions_per_s": round(len(questions) / wall, 1)}}


def ingest_once(settings: Settings, corpus: Path) -> dict[str, Any]:
    """Ingest a corpus into an empty store; seconds and chunks per second."""
    from index.engine import Engine

    engine = Engine.open(settings, create=True)
    started = time.perf_counter()
    report = engine.ingest([corpus])
    seconds = time.perf_counter() - started
    chunks = engine.stats().n_chunks
    engine.close()
    return {"seconds": round(seconds, 1), "articles": report.added, "chunks": chunks,
            "chunks_per_s": round(chunks / seconds, 1)}


def compare(database_url: str, index: Path, corpus: Path, squad: int,
            concurrency: int) -> dict[str, Any]:
    """Ingest throughput and question latency, local against postgres, in one run."""
    from index.engine import Engine
    from index.migrate import copy_collection
    from index.store import make_store

    result: dict[str, Any] = {"what": "stores compare", "corpus": str(corpus),
                              "index": str(index), "load_before": load_average()}
    local_dir = BENCH_DIR / f"stores-{corpus.name.split('.')[0]}"
    clear_index(local_dir)
    local_settings = bench_settings(local_dir, DEFAULT_BACKEND)
    pg_settings = on_postgres(local_settings, fresh_database(database_url, "bench_ingest"))
    note(f"ingesting {corpus.name} into a local index")
    local = ingest_once(local_settings, corpus)
    note(f"ingesting {corpus.name} into PostgreSQL")
    remote = ingest_once(pg_settings, corpus)
    result["ingest"] = {"local": local, "postgres": remote,
                        "postgres_x_local_seconds": ratio(remote["seconds"], local["seconds"])}
    served = bench_settings(index, DEFAULT_BACKEND)
    copied = on_postgres(served, fresh_database(database_url, "bench_query"))
    note(f"copying {index} into PostgreSQL")
    started = time.perf_counter()
    report = copy_collection(make_store(served), make_store(copied))
    result["copy"] = {"articles": report.articles, "chunks": report.chunks,
                      "seconds": round(time.perf_counter() - started, 1)}
    questions = news_question_texts() + squad_question_texts(squad)
    result["questions"] = len(questions)
    for name, settings in (("local", served), ("postgres", copied)):
        note(f"asking {len(questions)} questions of the {name} store")
        engine = Engine.open(settings)
        result[name] = ask_figures(engine, questions, concurrency) | {
            "dense_search": engine.stats().dense_search}
        engine.close()
    result["postgres_x_local_p50"] = ratio(result["postgres"]["single"]["p50_ms"],
                                           result["local"]["single"]["p50_ms"])
    result["load_after"] = load_average()
    return result


def fill(database_url: str, index: Path, size: int, noise: float) -> dict[str, Any]:
    """A database holding the index's articles repeated (noisy vectors) up to `size` chunks."""
    from index.store import make_store
    from index.store.postgres import PostgresStore

    url = fresh_database(database_url, f"bench_scale_{size}")
    source = make_store(bench_settings(index, DEFAULT_BACKEND))
    if not source.open(None):
        raise typer.BadParameter(f"no index in {index}", param_hint="--index")
    target = PostgresStore(url, index_build_memory="4GB")
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    written = 0
    with source.reading() as snapshot:
        metadata = dict(snapshot.metadata)
        copies = math.ceil(size / max(snapshot.count_chunks(), 1))
        target.open(None)
        with target.writer(fresh=True) as writer:
            for copy in range(copies):
                for item in snapshot.export_articles():
                    if written >= size:
                        break
                    article = replace(item.article, key=f"{item.article.key}-{copy}")
                    chunk_ids = writer.add_article(article)
                    if not chunk_ids:
                        continue
                    vectors = item.vectors
                    if copy:
                        vectors = vectors + rng.normal(0, noise, vectors.shape).astype(np.float32)
                        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    writer.set_vectors(chunk_ids, vectors)
                    written += len(chunk_ids)
                note(f"copy {copy + 1}/{copies}: {written:,} chunks")
            note("committing (builds the HNSW and keyword indexes)")
            writer.commit({key: metadata[key] for key in ("embedding", "chunking")
                           if key in metadata})
    source.close()
    target.close()
    return {"url": url, "chunks": written, "copies": copies,
            "seconds": round(time.perf_counter() - started, 1)}


def passes(filters: SearchFilters | None, source: str, published: date | None) -> bool:
    """Whether a chunk of this outlet and date passes the filters (sources and dates only)."""
    if filters is not None and filters.labels:
        raise ValueError("label filters are not reproduced here")
    return matches(ArticleInfo(id="", title="", source=source, url="", published=published),
                   filters)


def exact_neighbours(url: str, queries: np.ndarray, k: int,
                     cases: dict[str, SearchFilters | None]) -> dict[str, list[set[int]]]:
    """Each query's exact top-k chunk ids under each case's filters.

    Streams every vector out of the database in blocks (numpy does the products), so it
    costs seconds where pgvector's exact scan would take ~3 s a query at 1M chunks.
    """
    import psycopg
    from pgvector.psycopg import register_vector


    best: dict[str, tuple[np.ndarray, np.ndarray] | None] = dict.fromkeys(cases)
    with psycopg.connect(url) as conn:
        register_vector(conn)
        with conn.cursor(name="every_vector", binary=True) as cursor:
            cursor.execute("SELECT id, source, published, embedding FROM chunks "
                           "WHERE removed_in IS NULL")
            while rows := cursor.fetchmany(50_000):
                ids = np.array([row[0] for row in rows], dtype=np.int64)
                matrix = np.stack([np.asarray(row[3].to_numpy(), dtype=np.float32)
                                   for row in rows])
                scores = queries @ matrix.T
                for label, filters in cases.items():
                    mask = np.array([passes(filters, row[1], row[2]) for row in rows])
                    if mask.any():
                        best[label] = running_top_k(best[label], scores[:, mask], ids[mask], k)
    return {label: [set(row.tolist()) for row in found[1]] if found is not None
            else [set() for _ in queries] for label, found in best.items()}


def reused(database_url: str, size: int) -> dict[str, Any] | None:
    """What `fill` left in bench_scale_{size} earlier (it writes whole articles, so up to one
    article more than `size` chunks), or None when there is no such database or it is short."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    url = make_conninfo(**{**conninfo_to_dict(database_url), "dbname": f"bench_scale_{size}"})
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if conn.execute("SELECT to_regclass('chunks')").fetchone()[0] is None:
                return None
            chunks = conn.execute(
                "SELECT count(*) FROM chunks WHERE removed_in IS NULL").fetchone()[0]
    except psycopg.OperationalError:  # no such database
        return None
    return {"url": url, "chunks": int(chunks), "reused": True} if chunks >= size else None


# Relations no question reads: the posting lists' heap (searches read the impact index alone)
# and their chunk index (only writers and garbage collection use it).
NOT_READ_BY_QUESTIONS = ("postings", "postings_chunk")
PREWARM_PIECE_BYTES = 64 << 20


def prewarm(database_url: str) -> dict[str, Any]:
    """Read every relation a question may read once, so the server's files are in the OS page
    cache (what pg_prewarm's "read" mode does; the bundled server lacks that extension).

    Every table of the database with its TOAST table and its indexes, except
    NOT_READ_BY_QUESTIONS. The server reads its own files (`pg_read_binary_file`), so the
    user must be a superuser or hold pg_read_server_files; raises psycopg.Error otherwise.
    Returns the bytes read (int), seconds, and the relations read.
    """
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        segment = int(conn.execute(
            "SELECT setting::bigint * current_setting('block_size')::bigint FROM pg_settings "
            "WHERE name = 'segment_size'").fetchone()[0])
        relations = conn.execute(
            "WITH own AS (SELECT c.oid, c.reltoastrelid FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'), "
            "rel AS (SELECT oid FROM own UNION SELECT "
            "reltoastrelid FROM own WHERE reltoastrelid <> 0 UNION SELECT i.indexrelid FROM "
            "pg_index i JOIN own ON own.oid = i.indrelid) SELECT c.relname, "
            "pg_relation_filepath(c.oid), pg_relation_size(c.oid) FROM rel JOIN pg_class c ON "
            "c.oid = rel.oid WHERE c.relname <> ALL(%(skip)s) ORDER BY 3 DESC",
            {"skip": list(NOT_READ_BY_QUESTIONS)}).fetchall()
        total = 0
        for _, path, size in relations:
            for offset in range(0, int(size), PREWARM_PIECE_BYTES):
                number, within = divmod(offset, segment)
                file = path if number == 0 else f"{path}.{number}"
                length = min(PREWARM_PIECE_BYTES, segment - within, int(size) - offset)
                total += int(conn.execute(
                    "SELECT length(pg_read_binary_file(%s, %s, %s))",
                    (file, within, length)).fetchone()[0])
    return {"bytes": total, "seconds": round(time.perf_counter() - started, 1),
            "relations": [name for name, _, _ in relations]}


def keyword_figures(snapshot: PostgresSnapshot, term_sets: list[list[str]], k: int,
                    filters: SearchFilters | None) -> dict[str, Any]:
    """Keyword search as the engine runs it, against an exhaustive search of every match:
    recall@k and both latencies (ms).

    Both rank by the same exact BM25, and the copies `fill` makes of a text score alike, so
    which copies make the top k is arbitrary: a result counts as found when it scores at
    least the exhaustive k-th best (`recall_at_k`); `id_recall_at_k` counts shared ids.
    """

    timed: dict[str, list[float]] = {"default": [], "exhaustive": []}
    recalls: list[float] = []
    id_recalls: list[float] = []
    for terms in term_sets:
        found: dict[str, list[tuple[int, float]]] = {}
        for route, exhaustive in (("default", None), ("exhaustive", True)):
            started = time.perf_counter()
            found[route] = snapshot.keyword_search(terms, k, filters, exhaustive=exhaustive)
            timed[route].append((time.perf_counter() - started) * 1000)
        best = found["exhaustive"]
        if best:
            floor = best[-1][1] - 1e-9
            recalls.append(min(sum(1 for _, score in found["default"] if score >= floor),
                               len(best)) / len(best))
            id_recalls.append(len({cid for cid, _ in found["default"]}
                                  & {cid for cid, _ in best}) / len(best))
    return {"recall_at_k": round(float(np.mean(recalls)), 4) if recalls else None,
            "id_recall_at_k": round(float(np.mean(id_recalls)), 4) if id_recalls else None,
            "k": k, "searches": len(recalls), "ms": percentiles(timed["default"]),
            "exhaustive_ms": percentiles(timed["exhaustive"])}


def scale(database_url: str, index: Path, size: int, noise: float, queries: int,
          ef_search: str, *, reuse: bool = False, concurrency: int = 4,
          warm: bool = True) -> dict[str, Any]:
    """At `size` chunks: HNSW recall@10 against exact search (with and without a source
    filter), keyword candidates' recall against an exhaustive search, and hybrid question
    latency end to end, one asker and several: with the database as found in memory, then
    (`warm`) again after `prewarm`."""
    from index.engine import Engine
    from index.models import SearchFilters
    from index.retrieve import search_terms
    from index.store.postgres import PostgresStore
    from index.text import terms as question_terms

    result: dict[str, Any] = {"what": "stores scale", "size": size, "noise_per_dim": noise,
                              "base": str(index), "load_before": load_average()}
    filled = reused(database_url, size) if reuse else None
    if filled is None:
        note(f"filling a database with {size:,} chunks")
        filled = fill(database_url, index, size, noise)
    else:
        note(f"reusing the {filled['chunks']:,} chunks already in bench_scale_{size}")
    result["fill"] = filled
    settings = on_postgres(bench_settings(index, DEFAULT_BACKEND), filled["url"])
    engine = Engine.open(settings)
    questions = news_question_texts()[:queries]
    vectors = [engine.embedder.encode_query(q) for q in questions]
    store = engine.store
    assert isinstance(store, PostgresStore)
    default_breadth = store.ef_search
    sources = engine.stats().sources
    source = sources[len(sources) // 2][0] if sources else ""
    share = (dict(sources).get(source, 0) / max(engine.stats().n_articles, 1))
    cases: dict[str, SearchFilters | None] = {
        "unfiltered": None, "source_filter": SearchFilters(sources=(source,)),
        # A date filter besides the outlet (the year corpus's March).
        "month_filter": SearchFilters(since=MONTH[0], until=MONTH[1])}
    result["filter"] = {"source": source, "source_share_of_articles": round(share, 3),
                        "month": [day.isoformat() for day in MONTH],
                        "exact_filter_limit": store.exact_filter_limit}
    # Questions first: the recall measurements below read every vector and every keyword
    # match, which pushes the indexes the questions use out of the caches.
    note("asking the questions end to end (hybrid), the database as found in memory")
    for label, filters in cases.items():
        result[label] = {"ask_ms": ask_figures(engine, questions, concurrency, filters)}
    if warm:
        note("reading the relations questions use into the page cache")
        result["prewarm"] = prewarm(filled["url"])
        note("asking the questions again, warm")
        # A new engine (the same loaded model): nothing the store memoised per version in the
        # first pass (lexemes, filter counts) helps the second.
        warm_engine = Engine.open(settings, embedder=engine.embedder)
        for label, filters in cases.items():
            result[label]["ask_ms_warm"] = ask_figures(warm_engine, questions, concurrency,
                                                       filters)
        warm_engine.close()
    note("exact neighbours by a blockwise scan of every vector")
    truths = exact_neighbours(filled["url"], np.stack(vectors), 10, cases)
    for label, filters in cases.items():
        exact = truths[label]
        with store.reading() as snapshot:
            if filters is not None:
                result["filter"][f"{label}_chunks"] = snapshot.allowed_chunks(filters)
            by_breadth = {}
            for breadth in ("default", *ef_search.split(",")):
                store.ef_search = default_breadth if breadth == "default" else int(breadth)
                # "default": as the engine searches (an exact scan for a filter that leaves at
                # most exact_filter_limit chunks); a number: through the HNSW index.
                forced = None if breadth == "default" else False
                times: list[float] = []
                recalls: list[float] = []
                for vector, truth in zip(vectors, exact, strict=True):
                    started = time.perf_counter()
                    found = snapshot.dense_search(vector, 10, filters, exact=forced)
                    times.append((time.perf_counter() - started) * 1000)
                    recalls.append(len({cid for cid, _ in found} & truth) / max(len(truth), 1))
                by_breadth[str(breadth)] = percentiles(times) | {
                    "recall_at_10": round(float(np.mean(recalls)), 4)}
            store.ef_search = default_breadth
            statistics = [snapshot.keyword_statistics(question_terms(q)) for q in questions]
            term_sets = [search_terms(question_terms(q), stats)
                         for q, stats in zip(questions, statistics, strict=True)]
            result[label] |= {"dense_search_by_ef_search": by_breadth,
                              "keyword_search": keyword_figures(
                                  snapshot, term_sets, settings.candidates, filters)}
    result["ef_search_default"] = default_breadth
    engine.close()
    result["load_after"] = load_average()
    return result


app = typer.Typer(
    help="Local (FAISS + SQLite) against PostgreSQL + pgvector: ingest, question latency, "
    "HNSW recall and latency at scale. Figures: docs/performance.md, docs/scaling.md.",
    cls=OneLineErrorsGroup, no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False,
)
UrlOption = Annotated[str, typer.Option(
    "--database-url", envvar="ARTICLEBOT_DATABASE_URL",
    help="A PostgreSQL server with pgvector whose user may create databases (postgresql://…).")]
IndexOption = Annotated[Path | None, typer.Option(
    "--index", help="A built local index to copy (default: the year index `bench.perf ingest "
    "--corpus …corpus-2023…` builds).")]


def _year_index(index: Path | None) -> Path:
    """The index given, or the one the year ingest benchmark builds."""
    return index or ingest_dir(YEAR_CORPUS, DEFAULT_BACKEND)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
SquadCountOption = Annotated[int, typer.Option(
    "--squad", min=0, max=MAX_SQUAD, help="SQuAD questions asked after the news quiz.")]
ConcurrencyOption = Annotated[int, typer.Option(
    "--concurrency", min=1, max=MAX_THREADS, help="Askers at once in the concurrent run.")]


@app.command("compare", cls=OneLineErrorsCommand)
def compare_command(
    database_url: UrlOption,
    index: IndexOption = None,
    corpus: Annotated[Path, typer.Option(
        "--corpus", help="Corpus ingested into both stores for the ingest figure.")] = NEWS_CORPUS,
    squad: SquadCountOption = 300,
    concurrency: ConcurrencyOption = 4,
    as_json: JsonOption = False,
) -> None:
    """Ingest chunks/s and question latency (ms), local against postgres, in one run."""
    print_report(compare(database_url, _year_index(index), corpus, squad, concurrency), as_json)


@app.command("scale", cls=OneLineErrorsCommand)
def scale_command(
    database_url: UrlOption,
    index: IndexOption = None,
    size: Annotated[int, typer.Option(
        "--size", min=1, max=MAX_DATABASE_CHUNKS, help="Chunks in the database.")] = 1_000_000,
    noise: Annotated[float, typer.Option(
        "--noise", min=0.0, max=MAX_NOISE, help="Gaussian noise per dimension added to each "
        "copy's vectors (unit vectors, renormalised).")] = 0.01,
    queries: Annotated[int, typer.Option(
        "--queries", min=1, max=MAX_QUERIES, help="News questions asked.")] = 200,
    ef_search: Annotated[str, typer.Option(
        "--ef-search", callback=positive_ints(MAX_BREADTH), metavar="N,N,...",
        help="HNSW ef_search values to measure, comma-separated, besides the store's "
        "default (which the end-to-end questions use).")] = "100,200,400",
    reuse: Annotated[bool, typer.Option(
        "--reuse", help="Measure the database an earlier run filled when it holds --size "
        "chunks, instead of filling it again.")] = False,
    concurrency: ConcurrencyOption = 4,
    warm: Annotated[bool, typer.Option(
        "--warm/--no-warm", help="Also ask the questions after reading the relations they "
        "use into the page cache (needs a superuser or pg_read_server_files).")] = True,
    as_json: JsonOption = False,
) -> None:
    """HNSW recall@10 against exact search, keyword candidates' recall against an exhaustive
    search, and hybrid latency (ms) at a size."""
    print_report(scale(database_url, _year_index(index), size, noise, queries, ef_search,
                       reuse=reuse, concurrency=concurrency, warm=warm), as_json)


@app.command("ask", cls=OneLineErrorsCommand)
def ask_command(
    database_url: UrlOption,
    squad: SquadCountOption = 300,
    concurrency: ConcurrencyOption = 4,
    as_json: JsonOption = False,
) -> None:
    """Question latency (ms) on a collection already in PostgreSQL (e.g. what `scale` filled),
    one at a time and from several askers."""
    from index.engine import Engine

    # Only the exported models come from the year index's folder: the collection is the
    # database.
    settings = on_postgres(bench_settings(_year_index(None), DEFAULT_BACKEND), database_url)
    engine = Engine.open(settings)
    questions = news_question_texts() + squad_question_texts(squad)
    result = {"what": "stores ask", "chunks": engine.stats().n_chunks,
              "dense_search": engine.stats().dense_search, "questions": len(questions),
              "load_before": load_average()}
    result |= ask_figures(engine, questions, concurrency)
    result["load_after"] = load_average()
    engine.close()
    print_report(result, as_json)

