"""The ledger's writes: runs and calls as they happen, importing artifacts and spool files,
repairing crashed runs. Connecting, migrating and transactions are ``database.py``'s."""

from __future__ import annotations

import json
import os
import socket
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agent.errors import InputError, LedgerError
from agent.ledger.database import (
    URL_EXAMPLES,
    Database,
    data_dir,
    default_ledger_url,
    spool_dir,
)
from agent.ledger.records import Call, CallRecord, Run, RunInfo, outcome_rank, utc
from agent.ledger.rollup import Deltas, rows_of
from agent.validation import describe

_calls = Call.__table__  # type: ignore[attr-defined]
_runs = Run.__table__  # type: ignore[attr-defined]

__all__ = [
    "URL_EXAMPLES",
    "Database",
    "ImportResult",
    "LedgerStore",
    "RepairResult",
    "data_dir",
    "default_ledger_url",
    "host_name",
    "is_spool",
    "live_runs",
    "read_records",
    "spool_dir",
]


def host_name() -> str:
    return socket.gethostname()


# The runs this process is recording now, by id (their ``Recorder``; one that is dropped
# without being closed leaves by itself). Two reviews in one process share its pid: the second
# one's repair must not take the first for a crashed run.
live_runs: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class ImportResult:
    added: int = 0
    updated: int = 0  # a call known as pending or unknown, now with its outcome
    present: int = 0


@dataclass(frozen=True)
class RepairResult:
    runs: tuple[str, ...] = ()  # runs marked interrupted
    calls: int = 0  # in-flight calls marked outcome unknown


class LedgerStore(Database):
    """The ledger: runs and calls as they happen, imports, repairs (and, from ``Database``,
    connecting and transactions)."""

    # --- runs ---------------------------------------------------------------------------------

    def start_run(self, run: RunInfo) -> None:
        row = Run(**run.model_dump())
        with self.writing("cannot record the run") as conn:
            if conn.execute(sa.select(_runs.c.id).where(_runs.c.id == run.id)).first() is None:
                conn.execute(_runs.insert().values(**_values(row, _runs)))

    def update_run(self, run_id: str, **values: Any) -> None:
        with self.writing("cannot update the run") as conn:
            conn.execute(_runs.update().where(_runs.c.id == run_id).values(**values))

    def finish_run(self, run_id: str, **values: Any) -> None:
        self.update_run(run_id, finished_at=datetime.now(UTC), **values)

    # --- calls --------------------------------------------------------------------------------

    def insert_call(self, record: CallRecord) -> None:
        """The first write of a live call (pending). One INSERT: this runs for every call."""
        values = _values(record.as_row(), _calls)
        try:
            with self.writing("cannot record a model call") as conn:
                conn.execute(_calls.insert().values(**values))
                deltas = Deltas()
                deltas.add(values)
                deltas.apply(conn)
        except LedgerError as exc:
            # The key already there (a resumed spool, a retried CI job) is not an error: the
            # later state of the two stays. Any other refusal (a missing run row under
            # PostgreSQL's foreign key) must not pass as one.
            if isinstance(exc.__cause__, IntegrityError) and self._has_call(record):
                self.merge_call(record)
                return
            raise

    def _has_call(self, record: CallRecord) -> bool:
        key = _calls.c.idempotency_key == record.idempotency_key
        with self.reading("cannot read calls") as conn:
            return conn.execute(sa.select(_calls.c.id).where(key)).first() is not None

    def update_call(self, record: CallRecord) -> None:
        """A later state of a live call (answered, ok, ...)."""
        values = _values(record.as_row(), _calls)
        with self.writing("cannot record a model call") as conn:
            key = _calls.c.idempotency_key == record.idempotency_key
            old = rows_of(conn, key)
            if old:
                conn.execute(_calls.update().where(key).values(**values))
            else:  # its pending row was never written (the ledger came back)
                conn.execute(_calls.insert().values(**values))
            deltas = Deltas()
            deltas.replace(old[0] if old else None, values)
            deltas.apply(conn)

    def merge_call(self, record: CallRecord) -> Literal["added", "updated", "present"]:
        result = self.import_records([record], create_runs=False)
        return "added" if result.added else "updated" if result.updated else "present"

    def import_records(
        self, records: Iterable[CallRecord], *, create_runs: bool = True
    ) -> ImportResult:
        """Load calls carried in artifacts or spool files. A call already present is counted
        once: it is replaced only by a later state of itself (pending → ok), never duplicated."""
        latest: dict[str, CallRecord] = {}
        for record in records:
            seen = latest.get(record.idempotency_key)
            if seen is None or outcome_rank(record.outcome) >= outcome_rank(seen.outcome):
                latest[record.idempotency_key] = record
        added = updated = present = 0
        with self.writing("cannot import") as conn:
            if create_runs:
                self._create_missing_runs(conn, latest.values())
            keys = sorted(latest)  # one lock order for concurrent importers
            existing: dict[str, dict[str, Any]] = {}
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                for row in rows_of(conn, _calls.c.idempotency_key.in_(part)):
                    existing[row["idempotency_key"]] = row
            deltas = Deltas()
            for key in keys:
                record = latest[key]
                values = _values(record.as_row(), _calls)
                old = existing.get(key)
                if old is None:
                    conn.execute(_calls.insert().values(**values))
                    added += 1
                elif outcome_rank(record.outcome) > outcome_rank(old["outcome"]):
                    where = _calls.c.idempotency_key == key
                    conn.execute(_calls.update().where(where).values(**values))
                    updated += 1
                else:
                    present += 1
                    continue
                deltas.replace(old, values)
            deltas.apply(conn)
        return ImportResult(added, updated, present)

    def _create_missing_runs(self, conn: Connection, records: Iterable[CallRecord]) -> None:
        first: dict[str, CallRecord] = {}
        for r in records:
            if r.run_id not in first or r.created_at < first[r.run_id].created_at:
                first[r.run_id] = r
        ids = list(first)
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            query = sa.select(_runs.c.id).where(_runs.c.id.in_(ids[start : start + 500]))
            known.update(row[0] for row in conn.execute(query))
        for run_id, r in first.items():
            if run_id in known:
                continue
            run = Run(
                id=run_id,
                started_at=r.created_at,
                team=r.team,
                repo=r.repo,
                pr_number=r.pr_number,
                head_sha=r.head_sha,
                author=r.author,
                model_name=r.model_name,
                status="imported",
            )
            conn.execute(_runs.insert().values(**_values(run, _runs)))

    # --- crashed runs -------------------------------------------------------------------------

    def repair(
        self,
        *,
        stale_after: timedelta = timedelta(hours=6),
        now: datetime | None = None,
        exclude: str | None = None,
    ) -> RepairResult:
        """Runs whose process is gone become ``interrupted`` and their in-flight calls
        ``unknown``: billed or not, nobody can say, but they are neither dropped nor counted
        twice. A run on this host is gone when its process is; a run elsewhere when nothing was
        recorded for ``stale_after``."""
        now = utc(now or datetime.now(UTC))
        here = host_name()
        with self.reading("cannot read runs") as conn:
            running = conn.execute(
                sa.select(_runs.c.id, _runs.c.host, _runs.c.pid, _runs.c.started_at)
                .where(_runs.c.status == "running")
                .order_by(_runs.c.started_at, _runs.c.id)
            ).all()
            last_call: dict[str, datetime] = dict(
                conn.execute(
                    sa.select(_calls.c.run_id, sa.func.max(_calls.c.created_at))
                    .where(_calls.c.run_id.in_([r.id for r in running]))
                    .group_by(_calls.c.run_id)
                ).all()
            )
        dead: list[str] = []
        for run_id, host, pid, started in running:
            if run_id == exclude:
                continue
            if host == here and pid == os.getpid():
                # Our pid on a run this process is not recording: an earlier process had it.
                gone = run_id not in live_runs
            elif host == here and pid is not None:
                gone = not _process_alive(pid)
            else:
                last = max(utc(started), utc(last_call.get(run_id) or started))
                gone = now - last > stale_after
            if gone:
                dead.append(run_id)
        if not dead:
            return RepairResult()
        with self.writing("cannot repair runs") as conn:
            # Under the write lock: a run that finished since it was read is left as it is.
            still = {
                row[0]
                for row in conn.execute(
                    sa.select(_runs.c.id).where(_runs.c.id.in_(dead), _runs.c.status == "running")
                )
            }
            dead = [run_id for run_id in dead if run_id in still]
            if not dead:
                return RepairResult()
            in_flight = _calls.c.run_id.in_(dead) & (_calls.c.outcome == "pending")
            lost = rows_of(conn, in_flight)
            change = {"outcome": "unknown", "error": "the run was interrupted during this call"}
            conn.execute(_calls.update().where(in_flight).values(**change))
            deltas = Deltas()
            for row in lost:
                deltas.replace(row, {**row, **change})
            deltas.apply(conn)
            conn.execute(
                _runs.update()
                .where(_runs.c.id.in_(dead), _runs.c.status == "running")
                .values(status="interrupted", finished_at=now)
            )
        return RepairResult(tuple(dead), len(lost))

    # --- reading ------------------------------------------------------------------------------

    def calls(self, run_id: str | None = None) -> list[Call]:
        query = sa.select(_calls).order_by(_calls.c.id)
        if run_id:
            query = query.where(_calls.c.run_id == run_id)
        with self.reading("cannot read calls") as conn:
            return [Call.model_validate(dict(r._mapping)) for r in conn.execute(query)]

    def runs(self) -> list[Run]:
        with self.reading("cannot read runs") as conn:
            rows = conn.execute(sa.select(_runs).order_by(_runs.c.started_at))
            return [Run.model_validate(dict(r._mapping)) for r in rows]


def _values(row: Any, table: sa.Table) -> dict[str, Any]:
    data = row.model_dump()
    # An autoincrement id is the database's to give.
    return {
        c.name: data[c.name]
        for c in table.columns
        if c.name in data and not (c.name == "id" and data[c.name] is None)
    }


def _process_alive(pid: int) -> bool:
    if pid <= 0:  # 0 and negative numbers name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


# --- reading artifacts and spool files ------------------------------------------------------


def read_records(path: Path) -> list[CallRecord]:
    """The calls in a spool file (JSON lines) or a review's JSON artifact (its ``calls``),
    validated against the call record. A bad file is an ``InputError`` that says where."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path} is not UTF-8 text (byte {exc.start + 1}): it is neither an ownit JSON "
            "artifact nor a ledger spool file"
        ) from exc
    try:
        whole: Any = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        whole = None
    if isinstance(whole, dict) and "calls" not in whole and _looks_like_call(whole):
        items = [(1, whole)]  # a spool file of a single line
        where = "line"
    elif isinstance(whole, dict):
        calls = whole.get("calls", _MISSING)
        if calls is _MISSING:
            raise InputError(
                f'{path} is a JSON object without "calls": it is not an ownit review artifact',
                hint="import the ownit-review.json a review wrote, or a spool file it named",
            )
        if not isinstance(calls, list):
            raise InputError(f'{path}: "calls" must be a list of call records, not {_kind(calls)}')
        items = list(enumerate(calls))
        where = "calls"
    elif whole is not None and not isinstance(whole, dict):
        raise InputError(f"{path} holds {_kind(whole)}, not an ownit review artifact or spool file")
    else:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append((n, json.loads(line)))
            except (json.JSONDecodeError, RecursionError) as exc:
                raise InputError(
                    f"{path} line {n}: not JSON ({exc.msg if hasattr(exc, 'msg') else exc}); "
                    "it is neither an ownit JSON artifact nor a ledger spool file"
                ) from exc
        where = "line"
    records: list[CallRecord] = []
    problems: list[str] = []
    for n, item in items:
        label = f"{where}[{n}]" if where == "calls" else f"line {n}"
        if not isinstance(item, dict):
            problems.append(f"{label}: must be a call record (a JSON object), not {_kind(item)}")
            continue
        try:
            records.append(CallRecord.model_validate(_upgrade(item)))
        except ValidationError as exc:
            if where == "calls":  # calls[2].prompt_tokens: ...
                problems.append(describe(exc, prefix=label, limit=3))
            else:  # line 3: prompt_tokens: ...
                problems.append(f"{label}: {describe(exc, limit=3)}")
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InputError(
            f"{path}: {len(problems)} call record(s) are not valid: {shown}{more}",
            hint="nothing was imported; fix or remove those records and import again",
        )
    return records


_MISSING = object()


def _looks_like_call(item: dict[str, Any]) -> bool:
    return "idempotency_key" in item or "run_id" in item


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {list: "a list", dict: "an object", str: "text", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _upgrade(item: dict[str, Any]) -> dict[str, Any]:
    """Artifacts written before calls carried their attempt number kept it in the key."""
    if "attempt" not in item and isinstance(item.get("idempotency_key"), str):
        tail = item["idempotency_key"].rsplit(":", 1)[-1]
        if tail.isdigit() and len(tail) < 10:
            return {**item, "attempt": int(tail)}
    return item


def is_spool(path: Path) -> bool:
    """Whether ``path`` is a spool file ownit wrote (safe to delete once imported)."""
    return path.name.startswith("ownit-spool-") and path.suffix == ".jsonl"
