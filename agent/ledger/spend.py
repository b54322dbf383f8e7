"""Building reports from the ``spend_daily`` rollup: groups per period, the previous period for
change, run-rate forecasts, budgets and burn, rising groups and what drove them.

Three GROUP BYs over the rollup (groups per period, totals per period, the whole range), and
one more for the pull requests of a ``--top`` rest row: a pull request reviewed by two models
is one PR in the total, so PR counts are counted, never summed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agent.ledger import budgets as budget_rules
from agent.ledger.database import BUSY_TIMEOUT_S, Database
from agent.ledger.periods import ONE_DAY, end_of, label, start_of, walk
from agent.ledger.reports import (
    DIMENSIONS,
    Dimension,
    Driver,
    Overview,
    Report,
    ReportQuery,
    Row,
)
from agent.ledger.tables import NANO
from agent.ledger.tables import SUMS as ROLLUP_SUMS
from agent.ledger.tables import spend_daily as _spend

# A driver is named when it alone moved cost by more than this.
DRIVER_MIN = 0.05
_PREVIOUS, _RANGE = "previous", "range"


# Summed per group, in this order in every query (then the PR count, where there is one): the
# rollup's sums, and the part of the cost spent on pull requests.
ADDITIVE = (*ROLLUP_SUMS, "pr_cost_nusd")


@dataclass(slots=True)
class Sums:
    calls: int = 0
    errors: int = 0
    unknown_calls: int = 0
    unpriced_calls: int = 0
    estimated_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nusd: int = 0
    cache_savings_nusd: int = 0
    pr_cost_nusd: int = 0
    prs: int = 0  # counted, not summed: ``add`` and ``minus`` leave it alone

    @classmethod
    def of(cls, values: Sequence[Any]) -> Sums:
        """From a query's ADDITIVE columns (PostgreSQL sums BIGINTs as NUMERIC)."""
        return cls(*(int(v or 0) for v in values))

    def add(self, other: Sums) -> None:
        for name in ADDITIVE:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def minus(self, other: Sums) -> Sums:
        return Sums(*(getattr(self, n) - getattr(other, n) for n in ADDITIVE))

    @property
    def cost(self) -> float:
        return self.cost_nusd / NANO

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# One pull request as an integer, NULL where there is none: COUNT(DISTINCT ...) counts PRs.
# (Counting "repo#number" strings built per row took a third of an 18-month report on SQLite,
# and its allocations kept the report's parallel queries from running at once.)
_PR = _spend.c.pr_id


def _aggregates(by: Sequence[Dimension] | None = ()) -> list[Any]:
    """The sums of ADDITIVE, then (unless ``by`` is None) the PRs of each group."""
    has_pr = _spend.c.pr_number > 0
    summed = [sa.func.sum(_spend.c[name]).label(name) for name in ADDITIVE[:-1]]
    summed.append(sa.func.sum(sa.case((has_pr, _spend.c.cost_nusd), else_=0)).label("pr_cost"))
    if by is None:
        return summed
    if "pr" in by:  # each group is one PR (or none): nothing to count
        summed.append(sa.func.max(sa.case((has_pr, 1), else_=0)).label("prs"))
    else:
        summed.append(sa.func.count(sa.distinct(_PR)).label("prs"))
    return summed


def _group_columns(by: Sequence[Dimension], bytewise: bool = False) -> list[Any]:
    """What ``by`` groups on; ``bytewise`` (PostgreSQL): text sorted by bytes, as SQLite does,
    not by the database's collation (the groups are the same; sorting them is faster)."""
    columns: list[Any] = []
    for dim in by:
        if dim == "pr":
            # Every review without a PR is one group, "no PR", whatever its repository.
            number = _spend.c.pr_number
            columns += [_text(sa.case((number > 0, _spend.c.repo), else_=""), bytewise), number]
        else:
            columns.append(_text(_spend.c[dim], bytewise))
    return columns


def _text(column: Any, bytewise: bool) -> Any:
    return column.collate("C") if bytewise else column


Key = tuple[str | None, ...]


def _key(by: Sequence[Dimension], values: Sequence[Any]) -> Key:
    """A group's key as the report shows it: "" (not recorded) becomes None, a PR
    "owner/repo#12"."""
    out: list[str | None] = []
    it = iter(values)
    for dim in by:
        if dim == "pr":
            repo, number = next(it), int(next(it) or 0)
            out.append(f"{repo}#{number}" if number else None)
        else:
            value = next(it)
            out.append(str(value) if value not in (None, "") else None)
    return tuple(out)


def _raw_key(by: Sequence[Dimension], key: Key) -> tuple[Any, ...]:
    """A report key back as the rollup stores it."""
    raw: list[Any] = []
    for dim, value in zip(by, key, strict=True):
        if dim == "pr":
            if value is None:
                raw += ["", 0]
            else:
                repo, _, number = value.rpartition("#")
                raw += [repo, int(number)]
        else:
            raw.append(value or "")
    return tuple(raw)


class _Range:
    """The days a report covers, its periods, and the period before the first."""

    def __init__(self, query: ReportQuery, first: date, until: date) -> None:
        self.period = query.period
        self.first, self.until = first, until
        if self.period is None:
            span = until - first + ONE_DAY
            # "The previous period" of a bare range is the same number of days before it; with
            # no --since the range is all history and has none.
            compare = query.compare and query.since is not None
            self.lookback = first - span if compare else first
            self.labels: tuple[str, ...] = ()
            self.previous_label: dict[str, str] = {_RANGE: _PREVIOUS} if compare else {}
        else:
            starts = list(walk(first, until, self.period))
            labels = [label(d, self.period) for d in starts]
            self.labels = tuple(labels)
            self.starts = dict(zip(labels, starts, strict=True))
            self.previous_label = dict(zip(labels[1:], labels, strict=False))
            if first == starts[0] and query.compare:
                self.lookback = start_of(first - ONE_DAY, self.period)
                self.previous_label[labels[0]] = label(self.lookback, self.period)
            else:
                # --since in the middle of a period counts that period from --since on; a part
                # of a period has no previous period to compare with. (Nor has a report that
                # does not compare: it reads only its range.)
                self.lookback = first

    def stored(self, period_label: str) -> Any:
        """A period label as the rollup's column holds it."""
        return date.fromisoformat(period_label) if self.period == "day" else period_label

    def column(self, bytewise: bool = False) -> Any:
        """The period each rollup row is in (see ``_group_columns`` for ``bytewise``)."""
        if self.period is None:
            return sa.case((_spend.c.day < self.first, _PREVIOUS), else_=_RANGE)
        if self.period == "day":
            return _spend.c.day
        return _text(_spend.c[self.period], bytewise)

    def where(self, whole: bool = True) -> Any:
        return _spend.c.day.between(self.lookback if whole else self.first, self.until)

    def run_rate(self, period_label: str, today: date) -> float | None:
        """Days in the period over days elapsed, for the period holding today (in range)."""
        if self.period is None or not (self.first <= today <= self.until):
            return None
        if period_label != label(today, self.period):
            return None
        begin = max(self.starts[period_label], self.first)
        total = (end_of(begin, self.period) - begin).days + 1
        return total / ((today - begin).days + 1)


Slot = tuple[str, Key]  # (period label, group key)
_SEP = "\x1f"  # the ASCII unit separator: in no label, team, repo or model name


def _period_label(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


class _Queries:
    """The report's queries over the rollup, on one connection."""

    def __init__(self, conn: Connection, rng: _Range, by: Sequence[Dimension]) -> None:
        self.conn, self.rng, self.by = conn, rng, by
        self.bytewise = conn.dialect.name == "postgresql"  # see _group_columns
        self.period = rng.column(self.bytewise)
        self.columns = _group_columns(by, self.bytewise)

    def _slots(self, rows: Any) -> dict[Slot, Sums]:
        width = len(self.columns)
        found: dict[Slot, Sums] = {}
        for row in rows:
            sums = Sums.of(row[1 + width : 1 + width + len(ADDITIVE)])
            if len(row) > 1 + width + len(ADDITIVE):
                sums.prs = int(row[1 + width + len(ADDITIVE)] or 0)
            found[_period_label(row[0]), _key(self.by, row[1 : 1 + width])] = sums
        return found

    def _grouped(self, *where: Any) -> Any:
        period = self.period.label("period")
        return (
            sa.select(period, *self.columns, *_aggregates(self.by))
            .where(self.rng.where(), *where)
            .group_by(self.period, *self.columns)
        )

    def groups(self) -> dict[Slot, Sums]:
        """Every group in every period (and the one before the first)."""
        return self._slots(self.conn.execute(self._grouped()))

    def top(self, n: int) -> tuple[dict[Slot, Sums], dict[str, int]]:
        """The ``n`` costliest groups of each period, and how many groups each period has.
        Ranked by the database: a report by PR over a year does not ship 100,000 groups to
        Python to keep ten."""
        cost = sa.func.sum(_spend.c.cost_nusd)
        ranked = self._grouped().add_columns(
            sa.func.row_number()
            .over(partition_by=self.period, order_by=[sa.desc(cost), *self.columns])
            .label("rank"),
            sa.func.count().over(partition_by=self.period).label("groups"),
        )
        sub = ranked.subquery()
        rows = self.conn.execute(sa.select(sub).where(sub.c.rank <= n)).all()
        counts = {_period_label(r[0]): int(r[-1]) for r in rows}
        return self._slots(r[:-2] for r in rows), counts

    def _composite(self) -> Any:
        """A row's (period, group) as one string: ``IN`` over a list of single values uses an
        index on both databases, where a row-value ``(a, b) IN (...)`` scans the list per row
        on SQLite."""
        parts = [sa.cast(e, sa.String) for e in (self.period, *self.columns)]
        joined: Any = parts[0]
        for part in parts[1:]:
            joined = joined + _SEP + part
        return joined

    def _composite_of(self, slots: list[Slot]) -> list[str]:
        return [
            _SEP.join(str(v) for v in (self.rng.stored(p), *_raw_key(self.by, key)))
            for p, key in slots
        ]

    def these(self, slots: list[Slot]) -> dict[Slot, Sums]:
        """The sums of the given groups in the given periods."""
        if not slots:
            return {}
        picked = self._composite().in_(self._composite_of(slots))
        return self._slots(self.conn.execute(self._grouped(picked)))

    def periods(
        self, top: list[Slot] | None = None, *, sums: bool = True
    ) -> tuple[dict[str, Sums], dict[str, int]]:
        """Each period's PRs, counted, and (with ``sums``) its sums, every group together; and,
        given the top groups, the PRs of each period's rest, counted: a PR reviewed in a top
        group and in a rest group (two models, two authors) is still one PR of the rest. One
        pass over the range."""
        columns = [*(_aggregates(None) if sums else []), sa.func.count(sa.distinct(_PR))]
        if top:
            outside = self._composite().not_in(self._composite_of(top))
            columns.append(sa.func.count(sa.distinct(sa.case((outside, _PR)))))
        query = (
            sa.select(self.period.label("period"), *columns)
            .where(self.rng.where())
            .group_by(self.period)
        )
        found: dict[str, Sums] = {}
        rest: dict[str, int] = {}
        width = len(ADDITIVE) if sums else 0
        for row in self.conn.execute(query):
            period = _period_label(row[0])
            found[period] = Sums.of(row[1 : 1 + width]) if sums else Sums()
            found[period].prs = int(row[1 + width] or 0)
            if top:
                rest[period] = int(row[2 + width] or 0)
        return found, rest

    def range_prs(self) -> int:
        """The PRs reviewed in the whole range: a PR reviewed in two months is one PR of it."""
        count = sa.func.count(sa.distinct(_PR))
        return int(self.conn.execute(sa.select(count).where(self.rng.where(False))).scalar() or 0)

    def range_total(self) -> Sums:
        """The whole range's sums and PRs (in the pass that counts its PRs)."""
        count = sa.func.count(sa.distinct(_PR))
        row = self.conn.execute(
            sa.select(*_aggregates(None), count).where(self.rng.where(False))
        ).one()
        total = Sums.of(row[: len(ADDITIVE)])
        total.prs = int(row[-1] or 0)
        return total


def build(store: Database, query: ReportQuery, *, now: datetime | None = None) -> Report:
    """The report ``query`` asks for, as of ``now`` (default: now)."""
    _check(query)
    now = now or datetime.now(UTC)
    today = now.date()
    with store.reading("cannot read spend") as conn:
        if conn.dialect.name == "sqlite":
            # An in-memory database is one connection's own: there is no sibling to open.
            in_memory = conn.engine.url.database in (None, "", ":memory:")
            siblings = None if in_memory else _sqlite_siblings(store, conn)
            return _build(conn, query, now, today, siblings)
        if conn.dialect.name != "postgresql":
            return _build(conn, query, now, today)
        # One snapshot for every query of the report, so its numbers add up even while reviews
        # write; exported, so independent queries can run at once on sibling connections.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _tune(conn)
        snapshot = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar())
        return _build(conn, query, now, today, _Siblings(lambda: _sibling(store, snapshot)))


@dataclass(frozen=True)
class _Siblings:
    """Where the report's independent queries may run at once: ``open`` gives another
    connection. ``check``: its reads may not see what the report's own connection sees
    (SQLite in WAL mode), so each is compared with the report's by the sums both read."""

    open: Callable[[], AbstractContextManager[Connection]]
    check: bool = False


def _sqlite_siblings(store: Database, conn: Connection) -> _Siblings:
    """SQLite cannot share a read snapshot between connections from Python. In its default
    (rollback journal) mode it needs none: the report's connection holds a shared lock from
    its first read to its last, and no write can commit while any reader holds one, so every
    connection the report opens reads the same database. In WAL mode readers do not hold
    writers back: each connection reads its own snapshot, and the sums are compared."""
    wal = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() == "wal"
    # The shared lock (rollback mode) or the snapshot (WAL), taken now and held until the
    # report is done: every later read of this connection sees this state of the ledger.
    conn.execute(sa.select(_spend.c.day).limit(1)).first()
    return _Siblings(lambda: _sqlite_sibling(store), check=wal)


@contextmanager
def _sqlite_sibling(store: Database) -> Iterator[Connection]:
    """Another SQLite connection that never waits for a lock. A review committing now holds
    SQLite's pending lock, which keeps new readers out while it waits for the report's shared
    lock to go: a sibling that waited for it would wait out the busy timeout with the review
    (whose calls would go to its spool). It fails at once instead (``_busy``), and the report
    reads that part on its own connection."""
    with store.reading("cannot read spend") as conn:
        conn.exec_driver_sql("PRAGMA busy_timeout = 0")
        try:
            yield conn
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")


def _busy(exc: sa.exc.OperationalError) -> bool:
    return "locked" in str(exc.orig) or "busy" in str(exc.orig)


def _tune(conn: Connection) -> None:
    # The GROUP BYs sort up to a row per run; PostgreSQL's default 4 MB sends that to disk and
    # triples the time. For this transaction only.
    conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")


_SNAPSHOT = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")


@contextmanager
def _sibling(store: Database, snapshot: str) -> Iterator[Connection]:
    """Another connection reading exactly what the report's own reads (PostgreSQL)."""
    if not _SNAPSHOT.match(snapshot):  # a utility statement: it takes no bound parameter
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    with store.reading("cannot read spend") as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        _tune(conn)
        yield conn


def _check(query: ReportQuery) -> None:
    bad = [d for d in query.by if d not in DIMENSIONS]
    if bad or not query.by or len(set(query.by)) != len(query.by):
        raise ValueError(f"group by {', '.join(DIMENSIONS)}, each at most once; got {query.by}")
    if query.top is not None and query.top < 1:
        raise ValueError("top must be at least 1")
    if query.since and query.until and query.since > query.until:
        raise ValueError(f"since ({query.since}) is after until ({query.until})")


def _build(
    conn: Connection,
    query: ReportQuery,
    now: datetime,
    today: date,
    siblings: _Siblings | None = None,
) -> Report:
    until = query.until or today
    first = query.since or _first_day(conn) or until
    rng = _Range(query, min(first, until), until)
    q = _Queries(conn, rng, query.by)
    labels = rng.labels or (_RANGE,)
    history = budget_rules.history(conn)

    counts: dict[str, int] = {}
    ranked: list[Slot] = []
    early: tuple[dict[str, Sums], dict[str, int]] | None = None
    whole: int | None = None
    if query.top is None and siblings is not None:
        # The groups, the periods' PRs and the range's PRs do not depend on each other: they
        # run at once, each on its own connection (a third of the time on two cores).
        groups, early, whole = _at_once(q, rng, query, siblings, len(labels) > 1)
    elif query.top is None:
        groups = q.groups()
    else:
        groups, counts = q.top(query.top)
        ranked = list(groups)
        if query.compare:
            # The previous period's sums of each top group, wherever it ranked then.
            wanted = [
                (prev, key)
                for (period, key) in groups
                if (prev := rng.previous_label.get(period)) and (prev, key) not in groups
            ]
            groups.update(q.these(wanted))
    cut = any(counts.get(p, 0) > (query.top or 0) for p in labels)
    # Grouped by repo or PR, no PR is in two groups: the rest's PRs are the period's less the
    # top groups'. Otherwise they are counted.
    partitioned = set(query.by) <= {"repo", "pr"}
    count_rest = cut and not partitioned
    totals, rest_prs = early or q.periods(
        ranked if count_rest else None, sums=query.top is not None
    )
    if query.top is None:  # every group is here: the periods' sums are theirs
        for (period, _), sums in groups.items():
            totals.setdefault(period, Sums()).add(sums)
    # One period: its PRs are the range's. Several: a PR reviewed in two is one of the range.
    range_prs = totals[labels[0]].prs if len(labels) == 1 and labels[0] in totals else whole

    rows: list[Row] = []
    for period in labels:
        rate = rng.run_rate(period, today)
        prev = rng.previous_label.get(period)
        here = sorted(
            ((key, s) for (p, key), s in groups.items() if p == period),
            key=lambda item: (-item[1].cost_nusd, [k or "" for k in item[0]]),
        )
        shown = here if query.top is None else here[: query.top]
        budgets = _budgets_for(history, rng, period, query)
        for key, sums in shown:
            previous = groups.get((prev, key)) if prev else None
            rows.append(_row(key, sums, period, rng, previous, prev, rate, query, budgets))
        rest_of = counts.get(period, 0) - len(shown)
        if query.top is not None and rest_of > 0:
            # The rest is the period's total less its top groups: it adds up by construction.
            rest = totals.get(period, Sums())
            prev_rest = totals.get(prev) if prev else None
            for key, sums in shown:
                rest = rest.minus(sums)
                if prev and prev_rest is not None and (before := groups.get((prev, key))):
                    prev_rest = prev_rest.minus(before)
            if partitioned:
                rest.prs = totals.get(period, Sums()).prs - sum(s.prs for _, s in shown)
            else:
                rest.prs = rest_prs.get(period, 0)
            row = _row((None,) * len(query.by), rest, period, rng, prev_rest, prev, rate, query, {})
            rows.append(replace(row, rising=False, drivers=(), rest_of=rest_of))

    total_rows = []
    for period in labels:
        prev = rng.previous_label.get(period)
        previous = totals.get(prev) if prev else None
        sums = totals.get(period, Sums())
        rate = rng.run_rate(period, today)
        total_rows.append(_row((), sums, period, rng, previous, prev, rate, query, {}))
    grand = Sums()
    for period in labels:
        grand.add(totals.get(period, Sums()))
    grand.prs = range_prs if range_prs is not None else (q.range_prs() if totals else 0)
    return Report(
        query=query,
        rows=tuple(_unlabel(r) for r in rows),
        totals=tuple(_unlabel(r) for r in total_rows),
        total=_row((), grand, None, rng, None, None, None, query, {}),
        generated_at=now,
        since=query.since or (rng.first if totals else None),
        until=until,
        periods=rng.labels,
        current_period=(
            label(today, query.period) if query.period and rng.first <= today <= until else None
        ),
        budgets=budget_rules.statuses_from(history, conn, today),
    )


_UNREAD: Any = object()  # a sibling's query that could not run (SQLite: a lock it would wait for)


def _at_once(
    q: _Queries, rng: _Range, query: ReportQuery, siblings: _Siblings, whole: bool
) -> tuple[dict[Slot, Sums], tuple[dict[str, Sums], dict[str, int]], int | None]:
    """Every group, the periods' PR counts and (when ``whole``) the range's, each on its own
    connection, reading what the report's own connection reads (see ``_Siblings``). Where a
    sibling could not read, or read other sums than the groups add up to (a review wrote in
    between, SQLite in WAL mode), that part is read again on the report's connection."""
    check = siblings.check

    def on_sibling(read: Callable[[_Queries], Any]) -> Any:
        # Connected here, in the worker: the report's own query starts at once.
        with siblings.open() as conn:
            try:
                return read(_Queries(conn, rng, query.by))
            except sa.exc.OperationalError as exc:
                if conn.dialect.name == "sqlite" and _busy(exc):
                    return _UNREAD
                raise

    with ThreadPoolExecutor(max_workers=2) as pool:
        periods = pool.submit(on_sibling, lambda other: other.periods(None, sums=check))
        in_range = None
        if whole:
            in_range = pool.submit(
                on_sibling, lambda third: third.range_total() if check else third.range_prs()
            )
        groups = q.groups()
        found = periods.result()
        counted = in_range.result() if in_range else None
    if check:
        found, counted = _agreeing(groups, rng, found, counted)
    if found is _UNREAD:
        found = q.periods(None, sums=False)
    if whole and counted in (_UNREAD, None):
        counted = q.range_prs()
    return groups, found, counted


def _agreeing(groups: dict[Slot, Sums], rng: _Range, found: Any, counted: Any) -> tuple[Any, Any]:
    """The siblings' reads where their sums are the groups' (they read the same ledger), else
    ``_UNREAD``; the periods' sums dropped (the caller adds the groups' own)."""
    per_period: dict[str, Sums] = {}
    in_range = Sums()
    labels = set(rng.labels) or {_RANGE}
    for (period, _), sums in groups.items():
        per_period.setdefault(period, Sums()).add(sums)
        if period in labels:
            in_range.add(sums)
    if found is not _UNREAD:
        totals, rest = found
        theirs = {p: _additive(s) for p, s in totals.items()}
        if theirs != {p: _additive(s) for p, s in per_period.items()}:
            found = _UNREAD
        else:
            found = ({p: Sums(prs=s.prs) for p, s in totals.items()}, rest)
    if counted is not None and counted is not _UNREAD:
        counted = counted.prs if _additive(counted) == _additive(in_range) else _UNREAD
    return found, counted


def _additive(sums: Sums) -> tuple[int, ...]:
    return tuple(getattr(sums, name) for name in ADDITIVE)


def _unlabel(row: Row) -> Row:
    """A bare range has one period, internal: rows of a report without periods have none."""
    return replace(row, period=None) if row.period == _RANGE else row


def _first_day(conn: Connection) -> date | None:
    value = conn.execute(sa.select(sa.func.min(_spend.c.day))).scalar()
    if value is None:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _budgets_for(
    history: list[Any], rng: _Range, period_label: str, query: ReportQuery
) -> dict[str, float]:
    """Each team's budget for a month or quarter of the report (team reports only)."""
    if "team" not in query.by or rng.period not in ("month", "quarter"):
        return {}
    begin = rng.starts[period_label]
    months = (
        [begin] if rng.period == "month" else list(walk(begin, end_of(begin, "quarter"), "month"))
    )
    amounts: dict[str, float] = {}
    for (team, _month), amount in budget_rules.monthly_amounts(history, months).items():
        amounts[team] = amounts.get(team, 0.0) + amount
    return amounts


def _row(
    key: tuple[str | None, ...],
    sums: Sums,
    period_label: str | None,
    rng: _Range,
    previous: Sums | None,
    prev_label: str | None,
    rate: float | None,
    query: ReportQuery,
    budgets: dict[str, float],
) -> Row:
    cost = sums.cost
    forecast = cost * rate if rate is not None else None
    has_previous = prev_label is not None and (rng.period is not None or rng.lookback < rng.first)
    previous_cost = (previous.cost if previous else 0.0) if has_previous else None
    # The current period is not over: compare where it is heading, not where it is.
    compared = forecast if forecast is not None else cost
    change = (compared - previous_cost) / previous_cost * 100 if previous_cost else None
    rising = (
        change is not None
        and change > query.rising_threshold * 100
        and max(compared, previous_cost or 0.0) >= query.rising_min_usd
    )
    team = key[query.by.index("team")] if "team" in query.by and key else None
    budget = budgets.get(team) if team is not None else None
    return Row(
        key=key,
        period=period_label,
        calls=sums.calls,
        errors=sums.errors,
        prs=sums.prs,
        prompt_tokens=sums.prompt_tokens,
        completion_tokens=sums.completion_tokens,
        cached_tokens=sums.cached_tokens,
        cache_write_tokens=sums.cache_write_tokens,
        reasoning_tokens=sums.reasoning_tokens,
        cost_usd=cost,
        pr_cost_usd=sums.pr_cost_nusd / NANO,
        unpriced_calls=sums.unpriced_calls,
        unknown_calls=sums.unknown_calls,
        estimated_calls=sums.estimated_calls,
        cache_savings_usd=sums.cache_savings_nusd / NANO,
        previous_cost_usd=previous_cost,
        change_pct=change,
        forecast_usd=forecast,
        budget_usd=budget,
        burn_pct=cost / budget * 100 if budget else None,
        rising=rising,
        drivers=drivers(sums, previous, rate or 1.0) if rising and previous else (),
    )


def drivers(now: Sums, before: Sums, rate: float = 1.0) -> tuple[Driver, ...]:
    """Why cost moved from ``before`` to ``now``: cost = units x tokens per unit x list price
    per token x the share paid after cache discounts, a unit being a PR (or a call, where
    there are none). Each factor is its ratio now to before; the product is the cost ratio.
    ``rate`` scales what a period not yet over has counted so far (PRs, calls) to its end."""
    by_pr = now.prs > 0 and before.prs > 0
    units_now = (now.prs if by_pr else now.calls) * rate
    units_before = before.prs if by_pr else before.calls
    found: list[Driver] = []

    def ratio(a: float, b: float) -> float | None:
        return a / b if a > 0 and b > 0 else None

    tokens_now, tokens_before = max(now.tokens, 1), max(before.tokens, 1)
    list_now = now.cost_nusd + now.cache_savings_nusd  # what it would cost with no cache
    list_before = before.cost_nusd + before.cache_savings_nusd
    size_now = now.tokens / max(units_now / rate, 1e-9)
    size_before = before.tokens / max(units_before, 1e-9)
    factors = [
        ("more PRs" if by_pr else "more calls", ratio(units_now, units_before)),
        ("bigger PRs" if by_pr else "bigger calls", ratio(size_now, size_before)),
        ("pricier models", ratio(list_now / tokens_now, list_before / tokens_before)),
        (
            "fewer cache hits",
            ratio(now.cost_nusd / max(list_now, 1), before.cost_nusd / max(list_before, 1)),
        ),
    ]
    for name, factor in factors:
        if factor is not None and math.isfinite(factor) and factor > 1 + DRIVER_MIN:
            found.append(Driver(name, factor))  # type: ignore[arg-type]
    return tuple(sorted(found, key=lambda d: -d.factor))


def overview(store: Database, query: ReportQuery, *, now: datetime | None = None) -> Overview:
    """The report asked for, and what the HTML page charts over the same range."""
    now = now or datetime.now(UTC)
    report = build(store, query, now=now)
    period = query.period or "month"
    since, until = query.since, query.until
    # The chart of spend per team is the report itself when that is what was asked for.
    same = query.by == ("team",) and query.top is None and query.period == period
    by_team = (
        report if same else build(store, ReportQuery(("team",), period, since, until), now=now)
    )

    # The top repos and PRs of the latest period (this month, by default): what drives spend
    # now, read from a month of the ledger rather than all of it.
    last = report.until
    recent = max(start_of(last, period), report.since) if report.since else start_of(last, period)

    def top(by: Dimension) -> Report:
        # Bars of the period's spend: no previous period to read.
        return build(store, ReportQuery((by,), None, recent, last, 10, compare=False), now=now)

    return Overview(
        report=report,
        by_team=by_team,
        top_repos=top("repo"),
        top_prs=top("pr"),
        budgets=report.budgets,
    )
