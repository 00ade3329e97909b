from __future__ import annotations

import re
from pathlib import Path

import pytest

from index.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def env_name(field: str) -> str:
    return "DISCORD_TOKEN" if field == "discord_token" else f"ARTICLEBOT_{field.upper()}"


def test_env_example_lists_every_setting_with_a_comment():
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    for field in Settings.model_fields:
        match = re.search(rf"^# (.+)\n(# )?{env_name(field)}=", text, flags=re.M)
        assert match, f"{env_name(field)} is missing from .env.example or has no comment"


def test_readme_documents_every_setting():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [env_name(f) for f in Settings.model_fields if env_name(f) not in text]
    assert not missing


def test_env_example_loads_to_the_defaults():
    loaded = Settings(_env_file=ROOT / ".env.example")
    assert loaded == Settings(_env_file=None)


def test_settings_come_from_environment(monkeypatch):
    monkeypatch.setenv("ARTICLEBOT_INDEX_DIR", "/tmp/somewhere")
    monkeypatch.setenv("ARTICLEBOT_ADMIN_ROLE_IDS", "1, 2,3")
    monkeypatch.setenv("ARTICLEBOT_CAUTION_LABELS", "rumour=Unconfirmed.;fakenews=False.")
    monkeypatch.setenv("DISCORD_TOKEN", "abc")
    monkeypatch.setenv("DEV_GUILD_ID", "42")
    loaded = Settings(_env_file=None)
    assert loaded.index_dir == Path("/tmp/somewhere")
    assert loaded.admin_role_ids == [1, 2, 3]
    assert loaded.caution_labels == {"rumour": "Unconfirmed.", "fakenews": "False."}
    assert loaded.discord_token is not None and loaded.discord_token.get_secret_value() == "abc"
    assert loaded.dev_guild_id == 42
    assert "abc" not in repr(loaded)


def test_bad_setting_is_refused(monkeypatch):
    monkeypatch.setenv("ARTICLEBOT_EMBED_BACKEND", "gpu")
    with pytest.raises(ValueError, match="embed_backend"):
        Settings(_env_file=None)
