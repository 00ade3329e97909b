"""docs/architecture.md names only what exists: every name it writes in backticks (outside
its picture) is found in the code, so a rename or a removal that leaves the page behind fails.

Names are looked up in the source with `ast` (nothing is imported):

- `a/path.py`, `a/folder/`: the path exists in the repository;
- `tests/x.py::test_name`: the file defines that test;
- `index.engine.Engine.ask`: the module (the longest importable prefix) defines the rest,
  as a top-level name (defined or imported there) and then class members;
- `Engine.ask`, `wording.confidence_text`: a class, or a module by its last name, that
  defines the member;
- `answer_question`, `CONTENT_LIMIT`: defined somewhere in index, bot, articlebot or bench;
- `slot_wait_seconds`: also an attribute a class sets on `self`;
- `store=memory`: a setting and a registered backend; `slot=False`: a function's parameter;
  `articlebot ask`: a command;
  `/ask`: a slash command of a cog.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from articlebot.cli import app
from index.config import Settings
from index.store import names

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("index", "bot", "articlebot", "bench")
IDENTIFIER = r"[A-Za-z_]\w*"
DOTTED = re.compile(rf"{IDENTIFIER}(\.{IDENTIFIER})*")


def doc_names(text: str) -> list[str]:
    """The backticked names of a Markdown text, fenced blocks (the picture) left out."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    return re.findall(r"`([^`\n]+)`", prose)


def defined_names(node: ast.AST) -> Iterator[str]:
    """Names a module or class body binds: definitions, assignments and imports."""
    for child in getattr(node, "body", []):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield child.name
        elif isinstance(child, ast.Assign):
            yield from (t.id for t in child.targets if isinstance(t, ast.Name))
        elif isinstance(child, ast.AnnAssign) and isinstance(child.target, ast.Name):
            yield child.target.id
        elif isinstance(child, ast.Import | ast.ImportFrom):
            yield from ((alias.asname or alias.name).split(".")[0] for alias in child.names)
        elif isinstance(child, ast.If | ast.Try):  # `if TYPE_CHECKING:` and the like
            yield from defined_names(child)


def instance_attributes(cls: ast.ClassDef) -> Iterator[str]:
    """Attributes a class's methods set on `self`."""
    for node in ast.walk(cls):
        if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name) and node.value.id == "self"):
            yield node.attr


class Source:
    """What the packages define, read once with `ast`."""

    def __init__(self, root: Path) -> None:
        self.modules: dict[str, ast.Module] = {}
        for package in PACKAGES:
            for path in (root / package).rglob("*.py"):
                parts = path.relative_to(root).with_suffix("").parts
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                self.modules[name] = ast.parse(path.read_text(encoding="utf-8"))
        self.members: dict[str, set[str]] = defaultdict(set)  # class or module's last name
        self.anywhere: set[str] = set()
        self.parameters: set[str] = set()
        for name, module in self.modules.items():
            self.members[name.rsplit(".", 1)[-1]] |= set(defined_names(module))
            for node in ast.walk(module):
                if isinstance(node, ast.ClassDef):
                    own = set(defined_names(node)) | set(instance_attributes(node))
                    self.members[node.name] |= own
                    self.anywhere |= own
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.parameters |= {arg.arg for arg in ast.walk(node.args)
                                        if isinstance(arg, ast.arg)}
            self.anywhere |= set(defined_names(module))

    def in_module(self, module: str, rest: list[str]) -> bool:
        """Whether `module` defines `rest[0]`, and each later part is a member of the last."""
        if not rest:
            return True
        scope: ast.AST = self.modules[module]
        for part in rest:
            if part not in set(defined_names(scope)):
                return False
            found = [node for node in ast.walk(scope)
                     if isinstance(node, ast.ClassDef) and node.name == part]
            if part != rest[-1] and not found:  # a name imported here: its class by name
                return all(later in self.members[part] for later in rest[rest.index(part) + 1:])
            scope = found[0] if found else scope
        return True

    def exists(self, name: str) -> bool:
        """Whether a dotted or bare name is defined (see the module docstring)."""
        parts = name.split(".")
        if parts[0] in PACKAGES:
            for cut in range(len(parts), 0, -1):
                module = ".".join(parts[:cut])
                if module in self.modules:
                    return self.in_module(module, parts[cut:])
            return False
        if len(parts) == 1:
            return name in self.anywhere or name in self.members
        *owners, member = parts
        return member in self.members.get(owners[-1], set())


@pytest.fixture(scope="module")
def source() -> Source:
    return Source(ROOT)


def commands() -> set[str]:
    """The `articlebot` commands by name."""
    return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def missing(name: str, source: Source) -> bool:
    """Whether a backticked name of the page names nothing in the repository."""
    if "::" in name:
        path, test = name.split("::")
        return not (ROOT / path).is_file() or f"def {test}(" not in (ROOT / path).read_text(
            encoding="utf-8")
    if name.startswith("/"):
        cogs = "".join(path.read_text(encoding="utf-8")
                       for path in (ROOT / "bot" / "exts").glob("*.py"))
        return f"async def {name[1:]}(" not in cogs
    if "/" in name:
        return not (ROOT / name.rstrip("/")).exists()
    if "=" in name:  # a setting and its value, or a keyword argument
        key, value = name.split("=")
        if key in Settings.model_fields:
            return key == "store" and value not in names()
        return key not in source.parameters
    if name.startswith("articlebot "):
        return name.split()[1] not in commands()
    if DOTTED.fullmatch(name):
        return not source.exists(name)
    raise AssertionError(f"docs/architecture.md: `{name}` is not a form this test checks")


def test_every_name_the_architecture_page_gives_exists(source: Source) -> None:
    found = doc_names(DOC.read_text(encoding="utf-8"))
    assert len(found) > 50  # the page still names the code
    assert [name for name in found if missing(name, source)] == []


@pytest.mark.parametrize("name", [
    "index.engine.Engine.ask_twice", "Engine.no_such_method", "answer_question_v2",
    "bot/render.py", "tests/test_architecture.py::test_nothing", "store=nosql",
    "articlebot nothing", "/nothing", "no_such_keyword=1", "wording.no_such_words",
    "index.no_such_module",
])
def test_a_name_that_does_not_exist_is_caught(name: str, source: Source) -> None:
    assert missing(name, source)


def test_names_that_exist_are_found(source: Source) -> None:
    assert not any(missing(name, source) for name in (
        "index.engine.Engine.ask", "Engine.ask", "answer_question", "bot/render/",
        "index.store.index_folder", "wording.confidence_text", "store=memory",
        "articlebot eval", "/ask", "slot=False", "slot_wait_seconds", "bot.render.text",
        "index.questions.Query.of"))
