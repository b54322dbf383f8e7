"""The ledger database: the URL, the engine, migrating on opening, and read and write
transactions. What reports read needs only this (and ``tables.py``); ``store.py`` adds writing
calls and runs, importing and repairing.

SQLite (the default, in the user's data directory) and PostgreSQL (``postgresql://...``, the
shared store) behave the same. A URL that cannot work is a ``ConfigError`` (found before any
model is called); a database that cannot be reached or written is a ``LedgerError`` that says
what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import ConfigError, LedgerError
from agent.ledger.migrations import migrate

URL_EXAMPLES = "e.g. sqlite:////home/me/ownit/ledger.db or postgresql://user@db.internal/ownit"
# The databases ownit's migrations and queries are written and tested for.
BACKENDS = ("sqlite", "postgresql")
# How long an SQLite connection waits for another's lock (a review's write, a report's read).
BUSY_TIMEOUT_S = 30


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir("ownit"))


def default_ledger_url() -> str:
    if url := os.environ.get("OWNIT_LEDGER_URL"):
        return url
    return f"sqlite:///{data_dir() / 'ledger.db'}"


def spool_dir() -> Path:
    return data_dir() / "unrecorded"


def sqlalchemy_url(url: str) -> str:
    # Users paste libpq URLs; SQLAlchemy would pick psycopg2, which ownit does not install.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def conflict_insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT into ``table`` that can say ON CONFLICT: both databases have it, SQLAlchemy's
    generic INSERT does not."""
    from sqlalchemy.dialects import postgresql, sqlite  # not on the report's import path

    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _redact_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we can find; show only the scheme
        return url.split(":", 1)[0] + ":..." if ":" in url else url


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event below own transactions instead of pysqlite's implicit ones.
    dbapi_connection.isolation_level = None


def _on_sqlite_begin(conn: Connection) -> None:
    # A writer takes the write lock up front: two writers that both read first and then write
    # would otherwise deadlock, and SQLite answers that with "database is locked" at once
    # instead of waiting out the busy timeout.
    write = conn.get_execution_options().get("ownit_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """An open ledger database: its engine, migrated on opening, and transactions on it."""

    def __init__(self, url: str | None = None) -> None:
        self.url = sqlalchemy_url(url or default_ledger_url())
        self.display_url = _redact_url(self.url)
        self._sqlite_path: Path | None = None
        self.engine = self._create_engine()
        try:
            migrate(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            self.engine.dispose()
            raise self._error("cannot open", exc) from exc
        # Taken once the file surely exists (a new ledger's is created by the migration): every
        # write checks that the path still names this file.
        self._file_id = _file_id(self._sqlite_path) if self._sqlite_path else None

    # --- connecting ---------------------------------------------------------------------------

    def _create_engine(self) -> Engine:
        try:
            parsed = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError as exc:
            raise ConfigError(
                f"ledger URL {self.display_url!r} is not an SQLAlchemy URL",
                hint=f"set --ledger / OWNIT_LEDGER_URL to a database URL, {URL_EXAMPLES}",
            ) from exc
        if parsed.get_backend_name() not in BACKENDS:
            # Another database SQLAlchemy knows (MySQL, Oracle, ...) would get tables and
            # queries no one has run on it, or fail on a driver hint about PostgreSQL.
            raise ConfigError(
                f"ledger URL {self.display_url!r}: unsupported database type {parsed.drivername!r}",
                hint=f"ownit stores its ledger in SQLite or PostgreSQL, {URL_EXAMPLES}",
            )
        kwargs: dict[str, Any] = {}
        sqlite = parsed.get_backend_name() == "sqlite"
        if sqlite:
            if parsed.database and parsed.database != ":memory:" and "uri" not in parsed.query:
                # SQLite opens the path as written, relative to whatever the working directory
                # is when a connection is made, and does not expand "~": pin it down once.
                path = Path(parsed.database).expanduser().absolute()
                parsed = parsed.set(database=str(path))
                self.url = parsed.render_as_string(hide_password=False)
                self.display_url = _redact_url(self.url)
                self._sqlite_path = path
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise self._error("cannot open", exc) from exc
            # Wait for a concurrent writer (another review, an import) instead of failing.
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S}
        elif parsed.drivername == "postgresql+psycopg":
            # The ledger has no hstore column: do not look its type up on every first connect
            # (a catalog query, ~7 ms of each report's start on a fresh server backend).
            kwargs["use_native_hstore"] = False
        try:
            engine = sa.create_engine(parsed, **kwargs)
        except (sa.exc.NoSuchModuleError, sa.exc.ArgumentError) as exc:
            raise ConfigError(
                f"ledger URL {self.display_url!r}: unknown database type {parsed.drivername!r}",
                hint=f"ownit stores its ledger in SQLite or PostgreSQL, {URL_EXAMPLES}",
            ) from exc
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"ledger URL {self.display_url!r} needs the {exc.name} driver, "
                "which is not installed",
                hint="install the PostgreSQL driver: pip install 'ownit[postgres]'",
            ) from exc
        if sqlite:
            sa.event.listen(engine, "connect", _on_sqlite_connect)
            sa.event.listen(engine, "begin", _on_sqlite_begin)
        return engine

    def _check_file(self) -> None:
        """SQLite keeps writing to a database file that was deleted or replaced under it, and
        those writes are lost with it. Refuse instead, so the calls go to the spool."""
        if self._sqlite_path is None:
            return
        now = _file_id(self._sqlite_path)
        if now is None or now != self._file_id:
            raise LedgerError(
                f"ledger {self.display_url}: the database file was deleted or replaced "
                "during the run",
                hint="the calls are kept in a spool file; import it into the ledger you use",
            )

    def _error(self, doing: str, exc: BaseException) -> LedgerError:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = detail[0] if detail else type(exc).__name__
        if "locked" in reason:
            hint = "another process holds the ledger; wait for it to finish and run again"
        elif "readonly" in reason or "read-only" in reason or "ermission" in reason:
            hint = "the ledger is not writable: fix its permissions or choose another --ledger"
        else:
            hint = "check --ledger / OWNIT_LEDGER_URL and that the database is reachable"
        return LedgerError(f"ledger {self.display_url}: {doing}: {reason}", hint=hint)

    @contextmanager
    def writing(self, doing: str) -> Iterator[Connection]:
        self._check_file()
        try:
            with (
                self.engine.connect().execution_options(ownit_write=True) as conn,
                conn.begin(),
            ):
                yield conn
        except SQLAlchemyError as exc:
            raise self._error(doing, exc) from exc

    @contextmanager
    def reading(self, doing: str) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self._error(doing, exc) from exc

    def close(self) -> None:
        self.engine.dispose()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
