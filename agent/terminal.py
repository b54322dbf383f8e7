"""What every command shares: the terminal (redacted, escaped), and turning ownit's errors into
a message and an exit code."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, TextIO, cast

import typer

from agent.errors import OwnitError
from agent.redact import redact
from agent.render.safe import visible

if TYPE_CHECKING:
    from rich.console import Console


class _Redacting(io.TextIOBase):
    """A terminal stream that redacts credentials from everything written to it: every line
    ownit prints, whatever its source (a provider's message, a path, a model's reply)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8") or "utf-8"


class _Consoles:
    """Made on first use, after the test runner or the shell has set up the streams. When
    output is not a terminal (CI logs, pipes) lines are not wrapped at 80 columns."""

    def __getattr__(self, name: str) -> Console:
        # Imported on the first line printed: a report written to stdout or a file prints none.
        from rich.console import Console

        stream = sys.stderr if name == "err" else sys.stdout
        wide = None if stream.isatty() else 160
        redacting = cast(TextIO, _Redacting(stream))
        return Console(file=redacting, highlight=False, width=wide, soft_wrap=True)


consoles = _Consoles()


def err(text: str) -> None:
    """A line on stderr. Paths, provider messages and model text may hold control characters
    and escape sequences: they are shown escaped, never interpreted by the terminal."""
    consoles.err.print(visible(text), markup=False)


def out(text: str) -> None:
    consoles.out.print(visible(text), markup=False)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except OwnitError as exc:
        err(f"error: {exc.message}")
        if exc.hint:
            err(exc.hint)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err("interrupted: calls made so far are recorded in the ledger")
        raise typer.Exit(130) from None


LedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        envvar="OWNIT_LEDGER_URL",
        help="Ledger database as an SQLAlchemy URL (default: SQLite in your data directory).",
    ),
]
