"""`articlebot serve` in this process against the fake Discord on 127.0.0.1, for stop tests.

    python -m tests.bot.serve_fake      # from the repository root, or with PYTHONPATH set

Builds a tiny index of invented articles (hashing embedder, feature reader: no model loads) in
ARTICLEBOT_INDEX_DIR (a temporary folder when unset), starts `fake_discord.FakeDiscord` in a
thread of its own, points discord.py at it and runs the CLI's `serve` in the main thread, as
a container's PID 1 would. Prints `serve_fake: ready` once the bot has connected; exits with
serve's code. Used by tests/bot/test_bot_stop.py and scripts/docker-smoke (inside the image,
where pytest is not installed: only the standard library, the project and its dependencies).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
from pathlib import Path

import discord
import yarl
from discord.gateway import DiscordWebSocket

from index.config import Settings
from index.engine import Engine
from tests.bot.fake_discord import FakeDiscord
from tests.index.fakes import HashingEmbedder

MODEL = "test-hashing"
# The feature reader, as the hashing embedder: no model loads, so a fresh container connects
# in seconds instead of first exporting the cross-encoder (the stop is the point here).
READER = "features"
READY = "serve_fake: ready"
# How long to wait for the fake to listen (s): it starts in milliseconds; the margin is for
# a machine busy with other work.
START_SECONDS = 60.0
ARTICLES = {
    "lighthouse.md": ("Kestrel Point lighthouse reopens", "2024-03-04",
                      "The lighthouse at Kestrel Point reopened to visitors on Saturday."),
    "tram.md": ("Tram line to the university opens", "2024-02-20",
                "The new tram line carried its first passengers on Monday."),
}


def build_index(index_dir: Path, articles: Path) -> None:
    """Write the invented articles and index them with the hashing embedder."""
    articles.mkdir(parents=True, exist_ok=True)
    for name, (title, day, text) in ARTICLES.items():
        front = f"---\ntitle: {title}\nsource: The Test Gazette\ndate: {day}\n---\n\n"
        (articles / name).write_text(front + text + "\n", encoding="utf-8")
    settings = Settings(_env_file=None, index_dir=index_dir, article_dirs=[articles], model=MODEL,
                        reader=READER)
    engine = Engine.open(settings, create=True, embedder=HashingEmbedder(MODEL))
    try:
        engine.reindex()
    finally:
        engine.close()


def start_fake() -> FakeDiscord:
    """The fake Discord, listening, its event loop running in a daemon thread.

    Prints READY once it has sent the bot READY and GUILD_CREATE.
    """
    started = threading.Event()
    holder: list[FakeDiscord] = []

    async def main() -> None:
        fake = FakeDiscord()
        await fake.start()
        holder.append(fake)
        started.set()
        await fake.ready.wait()
        # One write, so the line never interleaves with a log line of another thread.
        sys.stdout.write(READY + "\n")
        sys.stdout.flush()
        await asyncio.Event().wait()  # serve until the process ends

    threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()
    if not started.wait(START_SECONDS):
        raise SystemExit("serve_fake: the fake Discord did not start")
    return holder[0]


def main() -> None:
    """Build the index, start the fake, run `articlebot serve` against it."""
    given = os.environ.get("ARTICLEBOT_INDEX_DIR")
    index_dir = Path(given) if given else Path(tempfile.mkdtemp()) / "index"
    articles = index_dir.with_name(f"{index_dir.name}-articles")
    build_index(index_dir, articles)
    fake = start_fake()
    discord.http.Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    import index.engine

    index.engine.make_embedder = lambda model, backend, cache_dir=None: HashingEmbedder(model)
    os.environ.update(DISCORD_TOKEN=fake.token, ARTICLEBOT_INDEX_DIR=str(index_dir),
                      ARTICLEBOT_ARTICLE_DIRS=str(articles), ARTICLEBOT_MODEL=MODEL,
                      ARTICLEBOT_READER=READER)
    from articlebot.cli import main as cli

    sys.argv = ["articlebot", "serve"]
    cli()


if __name__ == "__main__":
    main()
