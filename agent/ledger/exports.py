"""``ownit ledger export``: the ledger as FOCUS 1.2 cost rows, or its calls as CSV or JSON Lines.

    focus  FOCUS 1.2 CSV (``focus.py``). Granularity "day" (the default): one row per row of the
           ``spend_daily`` rollup (day x team x repo x PR x author x model); "call": one row per
           call. Both total the same BilledCost, to the nano-dollar.
    csv    every column of ``calls``, one call per line, times in ISO 8601 UTC; text a
           spreadsheet would run as a formula is quoted away (``values.text``).
    json   JSON Lines, one call per line, exactly as stored: the shape of a spool file, so
           ``ownit ledger import`` reads an export back. Lines, not one array, so neither side
           has to hold the whole export.

Rows are written as they are read: one statement, fetched ``BATCH`` rows at a time (a
server-side cursor on PostgreSQL), so a million calls never sit in memory, and the export is one
consistent snapshot. On SQLite that snapshot is a read transaction: a review committing to the
same file meanwhile waits for the export to end (up to the store's 30 s busy timeout, then it
spools its calls). ``since`` and ``until`` are UTC days, both included.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from agent.errors import InputError
from agent.ledger import focus
from agent.ledger.records import Call
from agent.ledger.rollup import KEY, SOURCE, SUMS, contribution
from agent.ledger.store import LedgerStore
from agent.ledger.tables import spend_daily as _spend
from agent.ledger.values import flag, text, utc_iso

Format = Literal["focus", "csv", "json"]
Granularity = Literal["day", "call"]
FORMATS: tuple[Format, ...] = ("focus", "csv", "json")
GRANULARITIES: tuple[Granularity, ...] = ("day", "call")
# Rows per fetch: large enough to amortise a round trip, small enough to be a few MB at most.
BATCH = 2_000

_calls = Call.__table__  # type: ignore[attr-defined]
# The plain exports' columns: the ledger's id, then the record's fields in declared order.
CALL_COLUMNS = ("id", *(c.name for c in _calls.columns if c.name != "id"))
_CREATED = CALL_COLUMNS.index("created_at")
_ESTIMATED = CALL_COLUMNS.index("usage_estimated")
_RAW = CALL_COLUMNS.index("raw_usage")
_FOCUS_CALL_COLUMNS = (*SOURCE, *(n for n in focus.CALL_EXTRA if n not in SOURCE))


def export(
    store: LedgerStore,
    fmt: Format,
    out: TextIO,
    *,
    since: date | None = None,
    until: date | None = None,
    granularity: Granularity | None = None,
    team: str | None = None,
    repo: str | None = None,
) -> int:
    """Write the export to ``out`` (a file opened with ``newline=""``, as for any CSV); returns
    the number of rows written, the header aside. ``granularity`` is FOCUS's (default "day");
    csv and json are always one line per call."""
    _check(fmt, since, until, granularity)
    if fmt == "focus" and granularity != "call":
        return _focus_days(store, _days(since, until, team, repo), out)
    if fmt == "focus":
        return _focus_calls(store, _calls_of(_FOCUS_CALL_COLUMNS, since, until, team, repo), out)
    write = _calls_csv if fmt == "csv" else _calls_json
    return write(store, _calls_of(CALL_COLUMNS, since, until, team, repo), out)


def _check(fmt: str, since: date | None, until: date | None, granularity: str | None) -> None:
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if granularity is not None and granularity not in GRANULARITIES:
        raise InputError(
            f"unknown granularity {granularity!r}: choose one of {', '.join(GRANULARITIES)}"
        )
    if fmt != "focus" and granularity == "day":
        raise InputError(
            f"--granularity day applies to --format focus; {fmt} has one line per call",
            hint="leave out --granularity, or use --format focus",
        )
    if since is not None and until is not None and since > until:
        raise InputError(f"--since {since} is after --until {until}: the range is empty")


def _days(
    since: date | None, until: date | None, team: str | None, repo: str | None
) -> sa.Select[Any]:
    """The rollup's rows in the range, in key order (its primary key: no sort)."""
    day = _spend.c.day
    return (
        sa.select(*(_spend.c[n] for n in (*KEY, *SUMS)))
        .where(
            *([day >= since] if since else []),
            *([day <= until] if until else []),
            *_match(_spend, team, repo),
        )
        .order_by(*(_spend.c[n] for n in KEY))
    )


def _calls_of(
    columns: Sequence[str],
    since: date | None,
    until: date | None,
    team: str | None,
    repo: str | None,
) -> sa.Select[Any]:
    """The calls made in the range (UTC days), in time order (``ix_calls_created_at``)."""
    created = _calls.c.created_at
    return (
        sa.select(*(_calls.c[n] for n in columns))
        .where(
            *([created >= _midnight(since)] if since else []),
            *([created < _midnight(until + timedelta(days=1))] if until else []),
            *_match(_calls, team, repo),
        )
        .order_by(created, _calls.c.id)
    )


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _match(table: sa.Table, team: str | None, repo: str | None) -> list[Any]:
    return [
        *([table.c.team == team] if team is not None else []),
        *([table.c.repo == repo] if repo is not None else []),
    ]


def _stream(conn: Connection, query: sa.Select[Any]) -> Iterator[Row[Any]]:
    # On the statement, not the connection: there it would stay on for later statements.
    result = conn.execute(query.execution_options(yield_per=BATCH))
    for part in result.partitions():
        yield from part


def _focus_days(store: LedgerStore, query: sa.Select[Any], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(focus.HEADER)
    written = 0
    width = len(KEY)
    with store.reading("cannot export spend") as conn:
        for r in _stream(conn, query):
            writer.writerow(focus.row(tuple(r[:width]), dict(zip(SUMS, r[width:], strict=True))))
            written += 1
    return written


def _focus_calls(store: LedgerStore, query: sa.Select[Any], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(focus.HEADER)
    written = 0
    with store.reading("cannot export calls") as conn:
        for r in _stream(conn, query):
            call = r._mapping
            # The rollup's own arithmetic: a call row adds to its day row exactly.
            key, sums = contribution(call)
            writer.writerow(focus.row(key, sums, call))
            written += 1
    return written


def _calls_csv(store: LedgerStore, query: sa.Select[Any], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(CALL_COLUMNS)
    written = 0
    with store.reading("cannot export calls") as conn:
        for r in _stream(conn, query):
            writer.writerow(_csv_cells(r))
            written += 1
    return written


def _csv_cells(r: Sequence[Any]) -> list[Any]:
    # The csv module writes None as an empty cell and numbers as their repr (exact for floats).
    cells: list[Any] = [text(v) if isinstance(v, str) else v for v in r]
    cells[_CREATED] = utc_iso(cells[_CREATED])
    cells[_ESTIMATED] = flag(bool(cells[_ESTIMATED]))
    if cells[_RAW] is not None:
        cells[_RAW] = json.dumps(cells[_RAW], ensure_ascii=False, separators=(",", ":"))
    return cells


def _calls_json(store: LedgerStore, query: sa.Select[Any], out: TextIO) -> int:
    written = 0
    with store.reading("cannot export calls") as conn:
        for r in _stream(conn, query):
            record = dict(zip(CALL_COLUMNS, r, strict=True))
            record["created_at"] = utc_iso(record["created_at"])
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            written += 1
    return written
