"""The ``spend_daily`` rollup: what each call adds to it, applied as a delta in the transaction
that writes the call, so the rollup and the calls can never disagree.

A call's contribution depends only on its own row. Writing a call adds its contribution;
changing one (pending → ok, an import that completes it, a repair) subtracts the old row's and
adds the new one's. ``rebuild`` recomputes the whole table from the calls (the migration that
creates it, and ``ownit ledger verify --fix``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from agent.ledger.periods import label
from agent.ledger.records import Call, utc
from agent.ledger.tables import KEY, NANO, SUMS
from agent.ledger.tables import spend_daily as _spend

_calls = Call.__table__  # type: ignore[attr-defined]

__all__ = ["KEY", "NANO", "SUMS", "Deltas", "contribution", "drift", "nusd", "rebuild", "rows_of"]
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
            # Sorted: concurrent PostgreSQL writers lock rollup rows in one order, never
            # waiting on each other in a cycle.
            conn.execute(_upsert(conn), rows)
        self.by_key.clear()


def _order(item: tuple[Key, dict[str, int]]) -> tuple[str, ...]:
    return tuple(str(part) for part in item[0])


def _upsert(conn: Connection) -> Any:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(_spend)
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
    """Where the rollup and the calls disagree: (key, rollup minus calls) per differing key."""
    expected = Deltas()
    for row in conn.execute(sa.select(*SOURCE_COLUMNS).execution_options(yield_per=10_000)):
        expected.add(row._mapping)
    stored: dict[Key, dict[str, int]] = {}
    for row in conn.execute(sa.select(_spend)):
        m = row._mapping
        stored[tuple(_normal_key(m))] = {name: int(m[name]) for name in SUMS}
    zero = dict.fromkeys(SUMS, 0)
    differ = []
    for key in sorted(set(stored) | set(expected.by_key), key=lambda k: tuple(map(str, k))):
        have, want = stored.get(key, zero), expected.by_key.get(key, zero)
        if have != want:
            differ.append((key, {n: have[n] - want[n] for n in SUMS if have[n] != want[n]}))
    return differ


def _normal_key(m: Mapping[Any, Any]) -> Iterable[Any]:
    for name in KEY:
        value = m[name]
        if name == "day" and isinstance(value, str):  # a driver that hands dates back as text
            value = date.fromisoformat(value)
        yield value
