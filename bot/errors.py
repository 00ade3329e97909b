"""What users hear when something goes wrong, and the one tree-wide error handler."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from index.engine import EngineError, IndexUnavailableError

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
GENERIC_FAILURE = "Something went wrong on my side. It has been logged; please try again later."
INDEX_UNAVAILABLE = "The article index is unavailable right now; please try again in a minute."
SEND_FALLBACK = "Something went wrong."


class UserFacingError(app_commands.AppCommandError):
    """An expected refusal whose message is shown to the user as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Busy(UserFacingError):
    """Every engine slot is taken."""

    def __init__(self) -> None:
        super().__init__("I'm busy answering other questions. Try again in a moment.")


class OnCooldown(UserFacingError):
    """The user asked too often in the cooldown window."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"You're asking faster than I can keep up. Try again in {retry_after:.0f}s."
        )
        self.retry_after = retry_after


class BadInput(UserFacingError):
    """A question or option the bot cannot use."""


class NotAllowed(app_commands.CheckFailure):
    """The user may not run this command."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def unwrap(error: BaseException) -> BaseException:
    """The exception a command raised, out of discord.py's CommandInvokeError wrapper."""
    if isinstance(error, app_commands.CommandInvokeError):
        return error.original
    return error


def is_expected(error: BaseException) -> bool:
    """True for refusals and engine messages that need no traceback in the log."""
    return isinstance(error, (UserFacingError, EngineError, app_commands.CheckFailure))


def friendly_message(error: BaseException) -> str:
    """The short sentence a user sees for an error."""
    if isinstance(error, (UserFacingError, NotAllowed)):
        return error.message
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f}s."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server, not in direct messages."
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the Manage Server permission (or an admin role) for this."
    if isinstance(error, app_commands.BotMissingPermissions):
        missing = ", ".join(error.missing_permissions).replace("_", " ")
        return f"I lack a permission I need here: {missing}."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here."
    if isinstance(error, IndexUnavailableError):  # its details (a server address) go to the log
        return INDEX_UNAVAILABLE
    if isinstance(error, EngineError):
        return " ".join(str(error).split()) or GENERIC_FAILURE
    if isinstance(error, app_commands.TransformerError):
        return f"I couldn't understand the value {error.value!r}."
    return GENERIC_FAILURE


def log_error(error: BaseException, context: str) -> None:
    """Log an expected refusal in one line, anything else with its traceback."""
    if is_expected(error):
        log.info("%s: %s", context, error)
    else:
        log.error("%s failed", context, exc_info=error)


async def send_ephemeral(interaction: discord.Interaction, text: str) -> bool:
    """Tell the user something only they see; on failure log once and try one plain fallback."""
    for attempt, content in enumerate((text, SEND_FALLBACK)):
        try:
            if interaction.response.is_done():
                await interaction.followup.send(
                    content, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            else:
                await interaction.response.send_message(
                    content, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            return True
        except discord.NotFound:
            # The interaction expired (or was deleted): nobody is left to tell.
            log.warning("could not reply to an interaction: it no longer exists")
            return False
        except discord.HTTPException as exc:
            if attempt == 0:
                log.warning("could not send a reply (HTTP %s): %s", exc.status, exc.text)
    return False


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Answer the user in one short ephemeral line and log the rest."""
    error = unwrap(error)
    name = interaction.command.qualified_name if interaction.command else "interaction"
    log_error(error, f"/{name} by user {interaction.user.id}")
    if interaction.type is discord.InteractionType.autocomplete:
        return  # suggestions cannot carry a message; the user just sees none
    await send_ephemeral(interaction, friendly_message(error))


class ArticleTree(app_commands.CommandTree):
    """The command tree, with one error handler for every command."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        """Tell the user and log; nothing fails silently."""
        await report_error(interaction, error)
