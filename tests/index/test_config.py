from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import BotSettings, load_bot_settings
from index.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DISCORD_FIELDS = {
    "discord_token", "dev_guild_id", "admin_role_ids", "admin_user_ids", "ask_channel_ids",
    "ask_cooldown_seconds", "ask_cooldown_rate", "max_question_chars", "max_concurrent_queries",
    "log_level", "shard_count", "shard_ids", "follow_ups",
}


def env_name(field: str) -> str:
    return "DISCORD_TOKEN" if field == "discord_token" else f"ARTICLEBOT_{field.upper()}"


def test_env_example_lists_every_setting_with_a_comment():
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    for field in BotSettings.model_fields:  # the engine's settings and the bot's
        match = re.search(rf"^# (.+)\n(# )?{env_name(field)}=", text, flags=re.M)
        assert match, f"{env_name(field)} is missing from .env.example or has no comment"


def test_env_example_groups_the_discord_settings_under_a_heading():
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    heading = text.index("\n# --- Discord")  # the last section
    for field in BotSettings.model_fields:
        line = re.search(rf"^(# )?{env_name(field)}=", text, flags=re.M)
        assert line is not None and (line.start() > heading) == (field in DISCORD_FIELDS), field


def test_readme_documents_every_setting():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [env_name(f) for f in BotSettings.model_fields if env_name(f) not in text]
    assert not missing


def test_env_example_loads_to_the_defaults():
    assert Settings(_env_file=ROOT / ".env.example") == Settings(_env_file=None)
    assert BotSettings(_env_file=ROOT / ".env.example") == BotSettings(_env_file=None)


def test_the_engine_settings_hold_nothing_of_discord():
    assert not DISCORD_FIELDS & set(Settings.model_fields)
    assert set(BotSettings.model_fields) == set(Settings.model_fields) | DISCORD_FIELDS


def test_settings_come_from_environment(monkeypatch):
    monkeypatch.setenv("ARTICLEBOT_INDEX_DIR", "/tmp/somewhere")
    monkeypatch.setenv("ARTICLEBOT_ADMIN_ROLE_IDS", "1, 2,3")
    monkeypatch.setenv("ARTICLEBOT_CAUTION_LABELS", "rumour=Unconfirmed.;fakenews=False.")
    monkeypatch.setenv("DISCORD_TOKEN", "abc")
    monkeypatch.setenv("DEV_GUILD_ID", "42")
    loaded = BotSettings(_env_file=None)
    assert loaded.index_dir == Path("/tmp/somewhere")
    assert loaded.admin_role_ids == [1, 2, 3]
    assert loaded.caution_labels == {"rumour": "Unconfirmed.", "fakenews": "False."}
    assert loaded.discord_token is not None and loaded.discord_token.get_secret_value() == "abc"
    assert loaded.dev_guild_id == 42
    assert "abc" not in repr(loaded)
    engine = Settings(_env_file=None)  # the same environment, the engine's part of it
    assert engine.index_dir == Path("/tmp/somewhere") and not hasattr(engine, "discord_token")


def test_overrides_win_and_none_is_no_override(monkeypatch):
    monkeypatch.setenv("ARTICLEBOT_MAX_QUESTION_CHARS", "300")
    loaded = load_bot_settings(_env_file=None, index_dir=Path("/tmp/x"), max_question_chars=None)
    assert loaded.index_dir == Path("/tmp/x") and loaded.max_question_chars == 300


def test_bad_setting_is_refused(monkeypatch):
    monkeypatch.setenv("ARTICLEBOT_EMBED_BACKEND", "gpu")
    with pytest.raises(ValueError, match="embed_backend"):
        Settings(_env_file=None)
    monkeypatch.delenv("ARTICLEBOT_EMBED_BACKEND")
    monkeypatch.setenv("ARTICLEBOT_ASK_COOLDOWN_RATE", "0")
    with pytest.raises(ValueError, match="ask_cooldown_rate"):
        BotSettings(_env_file=None)
