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


# Comparisons of the `store` setting or a backend's name with a literal name.
NAME_TEST = re.compile(r"""(store|name|backend)\s*[!=]=\s*["'](local|postgres|memory)["']"""
                       r"""|["'](local|postgres|memory)["']\s*[!=]=""")


def test_no_backend_name_is_compared_outside_the_store_package() -> None:
    checked = [path for path in (ROOT / "index").rglob("*.py")
               if "store" not in path.relative_to(ROOT / "index").parts[:1]]
    checked += [ROOT / "bench" / "perf.py", ROOT / "bench" / "stores.py"]
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in checked
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if NAME_TEST.search(line)]
    assert offenders == []
