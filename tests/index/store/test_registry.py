"""Backends are chosen by name through one registry; nothing else compares their names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from index.config import Settings
from index.store import (
    Backend,
    Store,
    StoreError,
    backend,
    index_folder,
    make_store,
    names,
    register,
)
from index.store import registry as registry_module

ROOT = Path(__file__).resolve().parents[3]


def settings(**values: object) -> Settings:
    """Settings from these values alone (no environment file)."""
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_built_in_backends_are_registered() -> None:
    assert {"local", "postgres", "memory"} <= set(names())


def test_memory_stores_of_one_folder_setting_share_a_collection(tmp_path: Path) -> None:
    chosen = settings(store="memory", index_dir=tmp_path / "one")
    first, second = make_store(chosen), make_store(chosen)
    other = make_store(settings(store="memory", index_dir=tmp_path / "two"))
    assert first.name == "memory" and index_folder(chosen) is None
    assert first.state() is second.state() and other.state() is not first.state()
    assert not (tmp_path / "one").exists()  # nothing written to disk


def test_the_store_setting_accepts_only_registered_names() -> None:
    with pytest.raises(ValidationError, match="unknown store 'nosql'"):
        settings(store="nosql")
    with pytest.raises(StoreError, match="choose local, postgres"):
        backend("nosql")


def test_each_backend_reads_its_own_settings(tmp_path: Path) -> None:
    store = make_store(settings(store="local", index_dir=tmp_path / "index"))
    assert store.name == "local" and store.location == str(tmp_path / "index")
    assert index_folder(settings(store="local", index_dir=tmp_path)) == tmp_path
    assert index_folder(settings(store="postgres", index_dir=tmp_path)) is None
    with pytest.raises(StoreError, match="needs ARTICLEBOT_DATABASE_URL"):
        make_store(settings(store="postgres"))
    url = "postgresql://user:secret@127.0.0.1:1/none"
    store = make_store(settings(store="postgres", database_url=SecretStr(url),
                                database_pool_size=3))
    assert store.name == "postgres" and "secret" not in store.location
    store.close()


def test_a_registered_backend_is_chosen_by_its_name(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    class OwnSettings(BaseModel):
        index_dir: Path

    made: list[Path] = []

    def factory(own: OwnSettings) -> Store:
        made.append(own.index_dir)
        return make_store(settings(store="local", index_dir=own.index_dir))

    monkeypatch.setattr(registry_module, "_BACKENDS", dict(registry_module._BACKENDS))
    register(Backend("elsewhere", "a test backend", OwnSettings, factory, in_index_dir=True))
    chosen = settings(store="elsewhere", index_dir=tmp_path)
    make_store(chosen).close()
    assert made == [tmp_path] and index_folder(chosen) == tmp_path


# Comparisons of the `store` setting or a backend's name with a literal name, a name in a
# literal collection (`in ("local", ...)`), or an enum member of the name (`LOCAL = "local"`).
NAMES = r"""["'](local|postgres|memory)["']"""
NAME_TEST = re.compile(rf"""(store|name|backend)\s*[!=]=\s*{NAMES}|{NAMES}\s*[!=]="""
                       rf"""|\bin\s*[(\[{{]\s*{NAMES}|^\s*[A-Z_]+\s*(:\s*\w+\s*)?=\s*{NAMES}""")
# Every package of the product and its benchmarks; tests and docs may name backends.
CHECKED_PACKAGES = ("index", "bot", "articlebot", "bench")


def backend_name_comparisons(root: Path) -> list[str]:
    """`path:line` of every line outside index/store that compares a backend's name."""
    checked = [path for package in CHECKED_PACKAGES for path in (root / package).rglob("*.py")
               if not path.relative_to(root).as_posix().startswith("index/store/")]
    return [f"{path.relative_to(root)}:{n}" for path in sorted(checked)
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if NAME_TEST.search(line)]


def test_no_backend_name_is_compared_outside_the_store_package() -> None:
    assert backend_name_comparisons(ROOT) == []


@pytest.mark.parametrize("line", [
    'if settings.store == "local" and not folder.is_dir():',
    "if 'postgres' != settings.store:",
    'if settings.store in ("local", "memory"):',
    '    LOCAL = "local"',
])
def test_the_name_check_finds_each_form_of_comparison(tmp_path: Path, line: str) -> None:
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "run.py").write_text(f"x = 1\n{line}\n", encoding="utf-8")
    (tmp_path / "index" / "store").mkdir(parents=True)
    (tmp_path / "index" / "store" / "registry.py").write_text(line + "\n", encoding="utf-8")
    assert backend_name_comparisons(tmp_path) == [str(Path("bot", "run.py")) + ":2"]
