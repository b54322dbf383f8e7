"""The ``spend_daily`` rollup: what each call adds to it, applied as a delta in the transaction
that writes the call, so the rollup and the calls can never disagree.

A call's contribution depends only on its own row. Writing a call adds its contribution;
changing one (pending → ok, an import that completes it, a repair) subtracts the old row's and
adds the new one's. ``rebuild`` recomputes the whole table from the calls (the migration that
fills it, and ``ownit ledger verify --fix``). Each row also carries its pull request's id in
``pull_requests``, so reports count PRs as integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agent.ledger.database import conflict_insert
from agent.ledger.periods import label
from agent.ledger.records import Call, utc
from agent.ledger.tables import KEY, NANO, SUMS
from agent.ledger.tables import pull_requests as _prs
from agent.ledger.tables import spend_daily as _spend

_calls = Call.__table__  # type: ignore[attr-defined]

__all__ = [
    "KEY",
    "NANO",
    "SUMS",
    "Deltas",
    "contribution",
    "drift",
    "nusd",
    "pr_ids",
    "rebuild",
    "rows_of",
]
# The columns of ``calls`` a contribution is computed from.
SOURCE = (
    "created_at",
    "team",
    "repo",
    "pr_number",
    "author",
    "model_name",
    "model",
    "provider",
    "outcome",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cache_savings_usd",
    "usage_estimated",
)
SOURCE_COLUMNS = tuple(_calls.c[name] for name in SOURCE)

Key = tuple[Any, ...]
_BILLED = ("answered", "ok", "invalid_output")


def nusd(usd: float | None) -> int:
    """Dollars as integer nano-dollars: sums of these are exact in any order."""
    return round(usd * NANO) if usd else 0


def contribution(call: Mapping[Any, Any]) -> tuple[Key, dict[str, int]]:
    created: datetime = call["created_at"]
    outcome = call["outcome"]
    billed = outcome in _BILLED
    key = (
        utc(created).date(),
        call["team"] or "",
        call["repo"] or "",
        call["pr_number"] or 0,
        call["author"] or "",
        call["model_name"],
        call["model"],
        call["provider"],
    )
    sums = {
        # A content-cache hit is no call: it adds only what it saved.
        "calls": int(outcome not in ("error", "cached")),
        "errors": int(outcome == "error"),
        # A pending call is in flight; after a crash it becomes unknown; an error with no cost
        # never got a complete answer (a timeout, a cut connection): each may have been billed
        # and nobody can say for how much. (A refused call, billed nothing, costs 0.)
        "unknown_calls": int(
            outcome in ("pending", "unknown") or (outcome == "error" and call["cost_usd"] is None)
        ),
        "unpriced_calls": int(billed and call["cost_usd"] is None),
        "estimated_calls": int(bool(call["usage_estimated"])),
        "prompt_tokens": call["prompt_tokens"] or 0,
        "completion_tokens": call["completion_tokens"] or 0,
        "cached_tokens": call["cached_tokens"] or 0,
        "cache_write_tokens": call["cache_write_tokens"] or 0,
        "reasoning_tokens": call["reasoning_tokens"] or 0,
        "cost_nusd": nusd(call["cost_usd"]),
        "cache_savings_nusd": nusd(call["cache_savings_usd"]),
    }
    return key, sums


class Deltas:
    """Changes to the rollup, summed per key before they are written."""

    def __init__(self) -> None:
        self.by_key: dict[Key, dict[str, int]] = {}

    def add(self, call: Mapping[Any, Any], sign: int = 1) -> None:
        key, sums = contribution(call)
        into = self.by_key.setdefault(key, dict.fromkeys(SUMS, 0))
        for name, value in sums.items():
            into[name] += sign * value

    def replace(self, old: Mapping[Any, Any] | None, new: Mapping[Any, Any]) -> None:
        if old is not None:
            self.add(old, -1)
        self.add(new)

    def apply(self, conn: Connection) -> None:
        rows = [
            {
                **dict(zip(KEY, key, strict=True)),
                "week": label(key[0], "week"),
                "month": label(key[0], "month"),
                "quarter": label(key[0], "quarter"),
                **sums,
            }
            for key, sums in sorted(self.by_key.items(), key=_order)
            if any(sums.values())
        ]
        if rows:
            ids = pr_ids(conn, {(r["repo"], r["pr_number"]) for r in rows if r["pr_number"]})
            for row in rows:
                row["pr_id"] = ids.get((row["repo"], row["pr_number"]))
            # Sorted: concurrent PostgreSQL writers lock rollup rows in one order, never
            # waiting on each other in a cycle.
            conn.execute(_upsert(conn), rows)
        self.by_key.clear()


# More pairs than this (a rebuild) are found by reading the whole table: faster than IN lists.
_LOOKUP = 1000


def pr_ids(conn: Connection, pairs: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The ``pull_requests`` id of each (repo, number), numbering the new ones. A review's
    writes find their PR already numbered: one lookup. Two writers numbering the same new PR
    at once (PostgreSQL) both read the one row the first committed."""
    found = _lookup(conn, pairs)
    if missing := sorted(pairs - found.keys()):
        conn.execute(
            conflict_insert(conn, _prs).on_conflict_do_nothing(
                index_elements=["repo", "pr_number"]
            ),
            [{"repo": repo, "pr_number": number} for repo, number in missing],
        )
        found.update(_lookup(conn, set(missing)))
    return found


def _lookup(conn: Connection, pairs: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
    query = sa.select(_prs.c.repo, _prs.c.pr_number, _prs.c.id)
    if len(pairs) <= _LOOKUP:
        query = query.where(sa.tuple_(_prs.c.repo, _prs.c.pr_number).in_(sorted(pairs)))
    return {(repo, n): id_ for repo, n, id_ in conn.execute(query) if (repo, n) in pairs}


def _order(item: tuple[Key, dict[str, int]]) -> tuple[str, ...]:
    return tuple(str(part) for part in item[0])


def _upsert(conn: Connection) -> Any:
    stmt = conflict_insert(conn, _spend)
    return stmt.on_conflict_do_update(
        index_elements=list(KEY),
        set_={name: _spend.c[name] + stmt.excluded[name] for name in SUMS},
    )


def rows_of(conn: Connection, where: Any) -> list[dict[str, Any]]:
    """The contributing columns of the calls ``where`` selects, locked for update on
    PostgreSQL (SQLite's write transaction already holds the whole database)."""
    query = sa.select(_calls.c.idempotency_key, *SOURCE_COLUMNS).where(where)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return [dict(row._mapping) for row in conn.execute(query)]


def rebuild(conn: Connection, batch: int = 10_000) -> int:
    """Recompute the rollup from every call; returns the number of calls read."""
    conn.execute(_spend.delete())
    deltas = Deltas()
    seen = 0
    # Per statement: a connection's execution options would stay on for the inserts below.
    result = conn.execute(sa.select(*SOURCE_COLUMNS).execution_options(yield_per=batch))
    for part in result.partitions():
        for row in part:
            deltas.add(row._mapping)
            seen += 1
    deltas.apply(conn)
    return seen


def drift(conn: Connection) -> list[tuple[Key, dict[str, int]]]:
    """Where the rollup and the calls disagree: (key, rollup minus calls) per differing key;
    and rows whose PR id is not their pull request's (``pr_id`` and ``pr_id_expected``)."""
    expected = Deltas()
    for row in conn.execute(sa.select(*SOURCE_COLUMNS).execution_options(yield_per=10_000)):
        expected.add(row._mapping)
    numbered = {(repo, n): id_ for id_, repo, n in conn.execute(sa.select(_prs))}
    stored: dict[Key, dict[str, int]] = {}
    misnumbered: dict[Key, dict[str, int]] = {}
    for row in conn.execute(sa.select(_spend)):
        m = row._mapping
        key = tuple(_normal_key(m))
        stored[key] = {name: int(m[name]) for name in SUMS}
        # A wrong PR id miscounts PRs while every sum is right.
        want_id = numbered.get((m["repo"], m["pr_number"])) if m["pr_number"] else None
        if m["pr_id"] != want_id or (m["pr_number"] and want_id is None):
            misnumbered[key] = {"pr_id": m["pr_id"] or 0, "pr_id_expected": want_id or 0}
    zero = dict.fromkeys(SUMS, 0)
    differ = []
    for key in sorted(set(stored) | set(expected.by_key), key=lambda k: tuple(map(str, k))):
        have, want = stored.get(key, zero), expected.by_key.get(key, zero)
        delta = {n: have[n] - want[n] for n in SUMS if have[n] != want[n]}
        if delta or key in misnumbered:
            differ.append((key, {**delta, **misnumbered.get(key, {})}))
    return differ


def _normal_key(m: Mapping[Any, Any]) -> Iterable[Any]:
    for name in KEY:
        value = m[name]
        if name == "day" and isinstance(value, str):  # a driver that hands dates back as text
            value = date.fromisoformat(value)
        yield value
