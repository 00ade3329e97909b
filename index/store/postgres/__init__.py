"""The PostgreSQL + pgvector backend: one collection shared by several machines.

As the local backend splits: `schema.py` (versioned tables and their migrations),
`connection.py` (the pool), `snapshot.py` (the read side), `writer.py` (the write side),
`state.py` (the bot's state) and `store.py` (versions: opening, pinning, retiring).
"""

from __future__ import annotations

from index.store.postgres.snapshot import PostgresSnapshot
from index.store.postgres.store import PostgresStore
from index.store.postgres.writer import PostgresWriter

__all__ = ["PostgresSnapshot", "PostgresStore", "PostgresWriter", "ensure_database"]


def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` (with pgvector) on the server of `server_url` if it does not
    exist; return its URL. For harnesses that keep one collection per data set.
    """
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(server_url)
    admin = make_conninfo(**{**info, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not found:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(**{**info, "dbname": name})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return url
