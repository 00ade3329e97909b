"""The bot's settings: the engine's, plus those only the Discord adapter reads."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from index.config import Settings, split_list


class BotSettings(Settings):
    """The engine's settings and the Discord ones; each can be given as ARTICLEBOT_<NAME>.

    The token is read as DISCORD_TOKEN (or ARTICLEBOT_DISCORD_TOKEN), the development guild
    also as DEV_GUILD_ID.
    """

    # --- Discord
    discord_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("DISCORD_TOKEN", "ARTICLEBOT_DISCORD_TOKEN"),
        description="Bot token from the Discord developer portal.",
    )
    dev_guild_id: int | None = Field(
        None, ge=1, le=2**64 - 1,
        validation_alias=AliasChoices("ARTICLEBOT_DEV_GUILD_ID", "DEV_GUILD_ID"),
        description="Guild that gets commands synced at start (instant, for development).",
    )
    admin_role_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Extra roles allowed to /reindex."
    )
    admin_user_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Extra users allowed to /reindex."
    )
    ask_channel_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Channels where every question is answered without a mention (needs the "
        "Message Content intent).",
    )
    # On by default so threads work as people expect; `serve` carries on without follow-ups
    # (one warning) when the intent is off in the developer portal.
    follow_ups: bool = Field(
        True,
        description="Answer messages in the bot's threads and replies to its answers as "
        "follow-up questions without a mention (asks for the Message Content intent).",
    )
    ask_cooldown_seconds: float = Field(
        20.0, ge=0, le=86_400, description="Window of the per-user question cooldown (s)."
    )
    ask_cooldown_rate: int = Field(
        3, ge=1, le=1000, description="Questions allowed per window per user."
    )
    # Discord caps a slash command's text option at 6,000 characters.
    max_question_chars: int = Field(
        500, ge=10, le=6000, description="Longest question accepted (characters)."
    )
    max_concurrent_queries: int = Field(4, ge=1, le=64, description="Engine calls at once.")
    # --- several processes: Discord splits the guilds into shard_count shards
    shard_count: int | None = Field(
        None, ge=1, le=100_000,
        description="Shards across all bot processes; default: as Discord recommends, all here.",
    )
    shard_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Shards this process runs (comma-separated, each below shard_count); "
        "default: all.",
    )
    # Only the bot configures logging from settings; the CLI logs warnings and up.
    log_level: str = Field("INFO", description="Logging level.")

    @field_validator(
        "admin_role_ids", "admin_user_ids", "ask_channel_ids", "shard_ids", mode="before"
    )
    @classmethod
    def _id_lists(cls, value: Any) -> Any:
        """Parse comma-separated id lists."""
        return split_list(value)

    @model_validator(mode="after")
    def _shards(self) -> Self:
        """Shard ids need the shard count, and each must be one of its shards, once."""
        if not self.shard_ids:
            return self
        if self.shard_count is None:
            raise ValueError(
                "ARTICLEBOT_SHARD_IDS needs ARTICLEBOT_SHARD_COUNT, the number of shards "
                "across all processes"
            )
        count = self.shard_count
        for shard_id in self.shard_ids:
            if not 0 <= shard_id < count:
                raise ValueError(f"ARTICLEBOT_SHARD_IDS: shard {shard_id} is not one of "
                                 f"0..{count - 1} (ARTICLEBOT_SHARD_COUNT={count})")
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError("ARTICLEBOT_SHARD_IDS lists a shard more than once")
        return self


def load_bot_settings(**overrides: Any) -> BotSettings:
    """Read the bot's settings from the environment and `.env`, with explicit overrides on top.

    Overrides that are None are ignored. Raises pydantic's ValidationError for a bad value.
    """
    return BotSettings(**{key: value for key, value in overrides.items() if value is not None})
