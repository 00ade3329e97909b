"""The import graph's rules, read from the source with `ast` (nothing is imported):

- no import cycle among the modules of index, bot, articlebot and bench (imports that run
  when a module loads; those under `if TYPE_CHECKING:` and inside functions do not);
- a cog (bot/exts) imports no other cog: what cogs share lives in bot/;
- bot/ imports nothing from index.store (the backends included) or index.build: it reaches
  the engine through `ArticleBot.run_engine` and the state store as `Engine.state` hands it out;
- only index/store imports the storage libraries (faiss, sqlite3, psycopg, pgvector), but for
  the one named exception below;
- the command line (articlebot.cli) loads no bench module when it loads: `eval` and `bench`
  import theirs when they run;
- no module imports a private name (`_name`) or a private module from another package.

Each rule is also checked on a made-up breach, so a rule that stops seeing is caught too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("index", "bot", "articlebot", "bench")
STORAGE_LIBRARIES = frozenset({"faiss", "sqlite3", "psycopg", "pgvector"})
# Modules outside index/store that may import a storage library, with why.
STORAGE_LIBRARY_USERS = {
    "bench.stores": "measures the PostgreSQL backend from outside it: creates the databases it "
                    "compares on and scans every vector exactly for the recall it reports",
}
COGS = "bot.exts"
CLI = "articlebot.cli"


@dataclass(frozen=True, slots=True)
class Import:
    """One imported module (or name from a module), as the importing source spells it."""

    importer: str  # the importing module, dotted
    target: str  # the module imported, resolved to a module of ours when it is one
    name: str | None  # the name imported `from` it; None for `import target`
    line: int
    lazy: bool  # inside a function: runs when the function does
    typing: bool  # under `if TYPE_CHECKING:`: never runs

    @property
    def at_load(self) -> bool:
        """Whether the import runs when the importing module loads."""
        return not (self.lazy or self.typing)

    def where(self) -> str:
        """'bot.client:23' for messages."""
        return f"{self.importer}:{self.line}"


def module_name(path: Path, root: Path = ROOT) -> str:
    """'bot/exts/ask.py' -> 'bot.exts.ask'; a package's __init__.py is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_sources(root: Path = ROOT) -> dict[str, str]:
    """Every module of PACKAGES: {dotted name: source text}."""
    return {module_name(path, root): path.read_text(encoding="utf-8")
            for package in PACKAGES for path in sorted((root / package).rglob("*.py"))}


def read_imports(module: str, source: str, known: Iterable[str]) -> list[Import]:
    """The imports of one module. `from pkg import mod` counts as importing the module
    pkg.mod when that is one of `known`; a relative import is resolved against `module`."""
    known = set(known)
    package = module if is_package(module, known) else module.rpartition(".")[0]
    found: list[Import] = []

    def base_of(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = package.split(".")
        parts = parts[: len(parts) - node.level + 1]
        return ".".join([*parts, *([node.module] if node.module else [])])

    def visit(body: Iterable[ast.AST], lazy: bool, typing: bool) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend(Import(module, alias.name, None, node.lineno, lazy, typing)
                             for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = base_of(node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in known else base
                    found.append(Import(module, target, alias.name, node.lineno, lazy, typing))
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.body, lazy, True)
                visit(node.orelse, lazy, typing)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(node.body, True, typing)
            else:  # class bodies, if, try (its handlers too), with, for, while: all run
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit(getattr(node, field, None) or (), lazy, typing)

    visit(ast.parse(source).body, False, False)
    return found


def is_package(module: str, known: set[str]) -> bool:
    """Whether a known module is a package (some known module lies inside it)."""
    return any(other.startswith(f"{module}.") for other in known)


def all_imports(sources: Mapping[str, str]) -> list[Import]:
    """The imports of every module in `sources`."""
    return [item for module, source in sources.items()
            for item in read_imports(module, source, sources)]


def top(name: str) -> str:
    """A dotted name's first part: its package."""
    return name.partition(".")[0]


def is_under(name: str, prefix: str) -> bool:
    """Whether a dotted module name is `prefix` or lies inside it."""
    return name == prefix or name.startswith(f"{prefix}.")


def load_graph(imports: Iterable[Import], modules: Iterable[str]) -> dict[str, set[str]]:
    """Which of our modules each of ours imports when it loads. Importing pkg.mod also loads
    the packages above it, so those count too."""
    modules = set(modules)
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for item in imports:
        if not item.at_load:
            continue
        parts = item.target.split(".")
        for size in range(1, len(parts) + 1):
            target = ".".join(parts[:size])
            if target in modules and target != item.importer and not is_under(
                    item.importer, target):  # a module's own packages are loaded already
                graph[item.importer].add(target)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The graph's cycles: each strongly connected set of two or more modules, sorted
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def is_private(name: str) -> bool:
    """'_split_list' is; '__future__' and '__version__' are not."""
    return name.startswith("_") and not name.startswith("__")


def violations(sources: Mapping[str, str]) -> list[str]:
    """Every breach of the rules in this module's docstring, one line each ([] when none)."""
    imports = all_imports(sources)
    graph = load_graph(imports, sources)
    found = [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    for item in imports:
        source_top, target_top = top(item.importer), top(item.target)
        if (is_under(item.importer, COGS) and is_under(item.target, COGS)
                and item.target not in (COGS, item.importer)):
            found.append(f"{item.where()}: a cog imports another cog, {item.target}")
        if source_top == "bot" and (is_under(item.target, "index.store")
                                    or is_under(item.target, "index.build")):
            found.append(f"{item.where()}: bot/ imports {item.target}")
        if (target_top in STORAGE_LIBRARIES and not is_under(item.importer, "index.store")
                and item.importer not in STORAGE_LIBRARY_USERS):
            found.append(f"{item.where()}: {item.target} imported outside index/store")
        if target_top in PACKAGES and target_top != source_top:
            private = [part for part in (*item.target.split("."), item.name or "")
                       if is_private(part)]
            if private:
                found.append(f"{item.where()}: private {private[-1]} from another package, "
                             f"{item.target}")
    if CLI in graph:
        loaded, todo = {CLI}, [CLI]
        while todo:
            for target in graph[todo.pop()] - loaded:
                loaded.add(target)
                todo.append(target)
        found += [f"{CLI} loads {module} when it loads" for module in sorted(loaded)
                  if top(module) == "bench"]
    return found


def test_the_source_keeps_every_rule() -> None:
    sources = our_sources()
    assert {"index.engine", "bot.client", "bot.exts.ask", CLI, "bench.quality"} <= set(sources)
    assert violations(sources) == []


def test_the_storage_library_exceptions_still_need_to_be_exceptions() -> None:
    sources = our_sources()
    for module in STORAGE_LIBRARY_USERS:
        uses = [item for item in read_imports(module, sources[module], sources)
                if top(item.target) in STORAGE_LIBRARIES]
        assert uses, f"{module} no longer imports a storage library: drop its exception"


# A small package set with everything in its place; each breach below adds one module or
# line to it and must be reported.
GOOD = {
    "index": "",
    "index.engine": "from index.store import StateStore\nfrom index import build\n",
    "index.build": "from index.store import StateStore\n",
    "index.store": "from index.store.local import LocalStore\n",
    "index.store.local": "import faiss\nimport sqlite3\n",
    "index.config": "def _split(value):\n    return value\n",
    "bot": "",
    "bot.client": "from index.engine import Engine\n",
    "bot.exts": "",
    "bot.exts.ask": "from bot.client import ArticleBot\nfrom bot.render import text\n",
    "bot.exts.news": "from bot.client import ArticleBot\n",
    "bot.render": "",
    "bot.render.text": "from articlebot import wording\n",
    "articlebot": "",
    "articlebot.wording": "from index import engine\n",
    "articlebot.cli": ("from typing import TYPE_CHECKING\nfrom articlebot import wording\n"
                       "if TYPE_CHECKING:\n    from bench.quality import app\n"
                       "def run():\n    from bench.quality import app\n    return app\n"),
    "bench": "",
    "bench.quality": "from index.engine import Engine\nfrom articlebot import wording\n",
}


def test_a_tidy_graph_breaks_no_rule() -> None:
    assert violations(GOOD) == []


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("index.store", "from index.store.local import LocalStore\nfrom index import engine\n",
     "import cycle: index.build -> index.engine -> index.store"),
    ("articlebot.wording", "from index import engine\nfrom articlebot.cli import run\n",
     "import cycle: articlebot.cli -> articlebot.wording"),
    ("bot.exts.news", "from bot.exts import ask\n",
     "bot.exts.news:1: a cog imports another cog, bot.exts.ask"),
    ("bot.exts.news", "def later():\n    from bot.exts.ask import Ask\n",
     "bot.exts.news:2: a cog imports another cog, bot.exts.ask"),
    ("bot.client", "from index.store import StateStore\n",
     "bot.client:1: bot/ imports index.store"),
    ("bot.client", "from index.store.local import LocalStore\n",
     "bot.client:1: bot/ imports index.store.local"),
    ("bot.exts.news", "from index.build import sync_outcomes\n",
     "bot.exts.news:1: bot/ imports index.build"),
    ("index.engine", "import sqlite3\n", "index.engine:1: sqlite3 imported outside index/store"),
    ("bot.render.text", "def f():\n    import psycopg\n",
     "bot.render.text:2: psycopg imported outside index/store"),
    ("bench.quality", "from faiss import IndexFlatIP\n",
     "bench.quality:1: faiss imported outside index/store"),
    ("articlebot.cli", "from bench.quality import app\n",
     "articlebot.cli loads bench.quality when it loads"),
    ("articlebot.wording", "import bench.quality\n",
     "articlebot.cli loads bench.quality when it loads"),
    ("bot.client", "from index.config import _split\n",
     "bot.client:1: private _split from another package, index.config"),
    ("bench.quality", "from bot.render import _text\n",
     "bench.quality:1: private _text from another package, bot.render"),
])
def test_each_rule_reports_its_breach(module: str, source: str, expected: str) -> None:
    broken = dict(GOOD, **{module: source})
    assert expected in violations(broken)


def test_a_private_name_within_its_own_package_is_fine() -> None:
    assert violations(dict(GOOD, **{"index.engine": "from index.config import _split\n"})) == []
