"""Logging setup whose every line has the bot token (and anything shaped like one) redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

REDACTED = "[redacted]"
# Discord bot tokens: base64 user id, a timestamp part and an HMAC part, dot-separated.
TOKEN_SHAPE = re.compile(r"[A-Za-z\d_-]{23,28}\.[A-Za-z\d_-]{6,7}\.[A-Za-z\d_-]{27,}")
LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
FILTERED_LOGGERS = ("", "discord", "discord.http", "discord.gateway", "discord.client")


class RedactingFilter(logging.Filter):
    """Replaces given secrets and token-shaped strings with [redacted] in each record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """The text with every secret replaced."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return TOKEN_SHAPE.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message, traceback and stack in place; never drops a record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            # A malformed call (arguments that do not fit the format) must not raise at the
            # caller, nor reach logging's error report, which prints the arguments unredacted.
            message = f"{record.msg} (bad logging arguments: {record.args!r})"
            record.msg, record.args = message, None
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Format the traceback now, so formatters reuse this redacted copy.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> RedactingFilter:
    """Log to stderr (or the handlers already set up) through the redacting filter."""
    redactor = RedactingFilter(secrets)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    # Handler filters see records from every logger; logger filters only their own records.
    for handler in root.handlers:
        handler.addFilter(redactor)
    root.setLevel(level.upper())
    for name in FILTERED_LOGGERS:
        logging.getLogger(name).addFilter(redactor)
    return redactor
