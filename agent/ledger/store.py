"""The ledger database: connecting, migrating, writing calls as they happen, importing.

SQLite (the default, in the user's data directory) and PostgreSQL (``postgresql://...``, the
shared store) behave the same. Every failure to reach or write the database becomes a
``LedgerError`` that says what to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

from agent.errors import InputError, LedgerError
from agent.ledger.migrations import migrate
from agent.ledger.models import Call, Run
from agent.result import LedgerRow


def default_ledger_url() -> str:
    if url := os.environ.get("OWNIT_LEDGER_URL"):
        return url
    path = Path(platformdirs.user_data_dir("ownit")) / "ledger.db"
    return f"sqlite:///{path}"


def spool_dir() -> Path:
    return Path(platformdirs.user_data_dir("ownit")) / "unrecorded"


def _normalise(url: str) -> str:
    # Users paste libpq URLs; SQLAlchemy would pick psycopg2, which ownit does not install.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _redact_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we can find; show only the scheme
        return url.split(":", 1)[0] + ":..."


class LedgerStore:
    def __init__(self, url: str | None = None) -> None:
        self.url = _normalise(url or default_ledger_url())
        self.display_url = _redact_url(self.url)
        try:
            parsed = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError as exc:
            raise LedgerError(
                f"ledger URL {self.display_url!r} is not an SQLAlchemy URL",
                hint="use e.g. sqlite:////path/ledger.db or postgresql://user@host/db",
            ) from exc
        kwargs: dict[str, Any] = {}
        try:
            if parsed.get_backend_name() == "sqlite":
                if parsed.database and parsed.database != ":memory:":
                    Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                # Wait for a concurrent writer (another review, a report) instead of failing.
                kwargs["connect_args"] = {"timeout": 15}
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
            with self.engine.begin() as conn:
                migrate(conn)
        except (SQLAlchemyError, OSError, ModuleNotFoundError) as exc:
            raise self._error("cannot open", exc) from exc

    def _error(self, doing: str, exc: BaseException) -> LedgerError:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = detail[0] if detail else type(exc).__name__
        if isinstance(exc, ModuleNotFoundError):
            hint = "install the PostgreSQL driver: pip install 'ownit[postgres]'"
        elif "locked" in reason:
            hint = "another process holds the ledger; wait for it to finish and run again"
        else:
            hint = "check --ledger / OWNIT_LEDGER_URL and that the database is reachable"
        return LedgerError(f"ledger {self.display_url}: {doing}: {reason}", hint=hint)

    @contextmanager
    def session(self, doing: str) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                yield session
                session.commit()
        except SQLAlchemyError as exc:
            raise self._error(doing, exc) from exc

    def start_run(self, run: Run) -> None:
        with self.session("cannot record the run") as s:
            if s.get(Run, run.id) is None:
                # A copy: the caller's object stays usable after this session closes.
                s.add(Run(**run.model_dump()))

    def finish_run(self, run_id: str, **values: Any) -> None:
        with self.session("cannot finish the run") as s:
            run = s.get(Run, run_id)
            if run is None:
                return
            for key, value in values.items():
                setattr(run, key, value)
            run.finished_at = datetime.now(UTC)

    def add_call(self, row: LedgerRow) -> bool:
        """Insert unless a row with the same idempotency key exists; True when inserted.

        One INSERT, no look-up first: this runs on the event loop for every model call.
        """
        try:
            with Session(self.engine) as s:
                s.add(Call(**row.model_dump()))
                s.commit()
                return True
        except IntegrityError as exc:
            # The key already there (a re-import, a retried CI job) is fine; anything else (a
            # missing run row under PostgreSQL's foreign key) must not pass as "already there".
            if self._has_call(row.idempotency_key):
                return False
            raise self._error("cannot record a model call", exc) from exc
        except SQLAlchemyError as exc:
            raise self._error("cannot record a model call", exc) from exc

    def _has_call(self, key: str) -> bool:
        with Session(self.engine) as s:
            return s.exec(select(Call.id).where(Call.idempotency_key == key)).first() is not None

    def calls(self, run_id: str | None = None) -> list[Call]:
        with self.session("cannot read calls") as s:
            query = select(Call).order_by(Call.id)  # type: ignore[arg-type]
            if run_id:
                query = query.where(Call.run_id == run_id)
            return list(s.exec(query).all())

    def runs(self) -> list[Run]:
        with self.session("cannot read runs") as s:
            return list(s.exec(select(Run).order_by(Run.started_at)).all())  # type: ignore[arg-type]

    def import_rows(self, rows: Iterable[LedgerRow]) -> tuple[int, int]:
        """Load rows carried in artifacts or spool files; re-importing counts nothing twice."""
        inserted = skipped = 0
        for row in rows:
            with self.session("cannot import") as s:
                if s.get(Run, row.run_id) is None:
                    s.add(
                        Run(
                            id=row.run_id,
                            started_at=row.created_at,
                            team=row.team,
                            repo=row.repo,
                            pr_number=row.pr_number,
                            head_sha=row.head_sha,
                            author=row.author,
                            model_name=row.model_name,
                            status="imported",
                        )
                    )
            if self.add_call(row):
                inserted += 1
            else:
                skipped += 1
        return inserted, skipped

    def spend(
        self, group_by: tuple[str, ...], since: datetime | None = None
    ) -> list[dict[str, Any]]:
        columns = [getattr(Call, name) for name in group_by]
        query = (
            sa.select(
                *columns,
                sa.func.count().label("calls"),
                sa.func.sum(Call.prompt_tokens).label("prompt_tokens"),
                sa.func.sum(Call.completion_tokens).label("completion_tokens"),
                sa.func.sum(Call.cost_usd).label("cost_usd"),
                sa.func.sum(sa.case((Call.cost_usd.is_(None), 1), else_=0)).label("unpriced"),  # type: ignore[union-attr]
            )
            .group_by(*columns)
            .order_by(sa.desc("cost_usd"))
        )
        if since is not None:
            query = query.where(Call.created_at >= since)  # type: ignore[arg-type]
        try:
            with self.engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(query)]
        except SQLAlchemyError as exc:
            raise self._error("cannot read spend", exc) from exc


@dataclass
class Recorder:
    """Writes each call the moment it completes; if the ledger fails, nothing is lost.

    Rows that cannot be written go to a spool file (and into the JSON artifact), and the error
    is kept so the run can say what happened and how to import them later.
    """

    run: Run
    store: LedgerStore | None
    rows: list[LedgerRow] = field(default_factory=list)
    error: LedgerError | None = None
    spool: Path | None = None

    def record(self, row: LedgerRow) -> None:
        self.rows.append(row)
        if self.store is not None and self.error is None:
            try:
                self.store.add_call(row)
                return
            except LedgerError as exc:
                self.error = exc
        self._spool(row)

    def _spool(self, row: LedgerRow) -> None:
        if self.spool is None:
            self.spool = spool_dir() / f"{self.run.id}.jsonl"
            self.spool.parent.mkdir(parents=True, exist_ok=True)
        with self.spool.open("a", encoding="utf-8") as fh:
            fh.write(row.model_dump_json() + "\n")


def read_rows(path: Path) -> list[LedgerRow]:
    """Rows from a spool file (JSON lines) or a review's JSON artifact (its ``calls``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # not one JSON document: JSON lines
        if isinstance(whole, dict) and "calls" in whole:
            return [LedgerRow.model_validate(r) for r in whole["calls"]]
        return [LedgerRow.model_validate_json(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise InputError(
            f"{path} is neither an ownit JSON artifact nor a ledger spool file: {exc}"
        ) from exc
