"""Keeping credentials out of everything ownit prints, writes or stores.

One function, ``redact``, applied at the edges where text leaves the process: the terminal and
stderr (``cli.py`` wraps both streams), tracebacks and log records (``cli.main``, LiteLLM's
loggers), the artifacts (``render.write_artifacts``), and the ledger and its spool
(``ledger.Recorder``). It removes:

- every value ``remember``\\ ed: the keys of the configured models, resolved from providers.yaml;
- the values of environment variables named like credentials (``*_API_KEY``, ``*_TOKEN``,
  ``*_SECRET``, ``*_PASSWORD``, ...), which LiteLLM or a git host client may read, read at the
  time of the call so a variable set later is covered too;
- bearer and basic credentials, ``api-key``-style headers and ``sk-`` keys by their shape, so a
  key ownit was never told about (an echoing server, an exception's repr) goes too.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Iterable, Mapping

# Variables whose values are credentials, whoever reads them (LiteLLM, a git host client).
_SECRET_NAME = re.compile(
    r"(API_?KEY|_KEY|_TOKEN|_SECRET|_PASSWORD|_PASSWD|_PASS|_CREDENTIALS)$", re.I
)
_PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (
        re.compile(
            r"(?i)(x-api-key|api-key|x-goog-api-key|authorization)"
            r"([\"']?\s*[:=]\s*[\"']?)(?!bearer\b|basic\b)[^\s\"',}]{8,}"
        ),
        r"\1\2***",
    ),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), "sk-***"),
)
# Shorter values ("unused", "none", "true") are not secrets, and replacing them would mangle text.
_MIN_SECRET = 8


def _worth_hiding(value: str) -> bool:
    # A value of only lower-case letters ("production", "disabled") is a setting, not a key.
    return len(value) >= _MIN_SECRET and not value.isalpha()


class Redactor:
    """Replaces a fixed set of secrets, and any credential recognisable by its shape."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if s and _worth_hiding(s)}
        self._secrets = sorted(unique, key=len, reverse=True)  # longest first: no partial leaks

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], extra: Iterable[str] = ()) -> Redactor:
        values = [v for k, v in environ.items() if _SECRET_NAME.search(k)]
        return cls([*values, *extra])

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


_remembered: set[str] = set()


def remember(*secrets: str) -> None:
    """Add values ``redact`` must remove for the rest of the process (the models' keys)."""
    _remembered.update(s for s in secrets if s)


def redactor() -> Redactor:
    """What ``redact`` applies, as of now. Building it reads the environment: for many texts
    in a row, build it once."""
    return Redactor.from_environment(os.environ, _remembered)


def redact(text: str) -> str:
    """``text`` without any credential ownit knows of or can recognise."""
    return redactor()(text)


class RedactingFilter(logging.Filter):
    """A log record's message, redacted before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a record whose arguments do not fit its format
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info:  # formatted here, redacted, so no handler formats the original
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def guard_logger(name: str) -> None:
    """Redact every record logged on ``name`` and everything its handlers write."""
    logger = logging.getLogger(name)
    guard = RedactingFilter()
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(guard)
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(guard)
