"""Every error ownit raises on purpose derives from ``OwnitError``.

The CLI is the only place that turns these into messages and exit codes;
the pipeline raises and never prints.

    OwnitError
    ├── InputError               the user's input cannot be used (exit 2)
    │   ├── DiffParseError       not a unified diff, or a malformed one
    │   └── SourceError          git / file / stdin could not be read
    ├── ConfigError              providers.yaml or settings are invalid (exit 2)
    ├── NoModelError             no usable model is configured (exit 3)
    ├── ModelCallError           a model call failed after retries
    │   └── ModelOutputError     the model answered, but not in the schema
    └── LedgerError              the ledger database cannot be written or read (exit 4)
"""

from __future__ import annotations


class OwnitError(Exception):
    """Root of ownit's errors. ``hint`` says what the user can do about it."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(OwnitError):
    exit_code = 2


class DiffParseError(InputError):
    """A diff could not be parsed. ``line`` is 1-based in the input, when known."""

    def __init__(self, message: str, *, line: int | None = None, hint: str | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{message}", hint=hint)
        self.line = line


class SourceError(InputError):
    pass


class ConfigError(OwnitError):
    exit_code = 2


class NoModelError(OwnitError):
    exit_code = 3


class ModelCallError(OwnitError):
    exit_code = 1


class ModelOutputError(ModelCallError):
    pass


class LedgerError(OwnitError):
    exit_code = 4
