"""``ownit ledger export``: FOCUS 1.2 per day and per call, CSV and JSON Lines of calls.

    python benchmarks/bench_export.py [--calls 200000] [--runs 3] [--days 548]
        [--url postgresql://postgres@127.0.0.1:5432/<a database of its own, created beforehand>]

Generates ``--calls`` calls (default 200,000; the issue's size is ``--calls 1000000``) with
``tests/ledger_data.fill``: runs of ten calls over 18 months, 40 teams, 400 repos, 2,000
authors, six models (one unpriced), 3 % errors and 1 % unknown outcomes, bulk-inserted into a
brand-new SQLite ledger (and into the ``--url`` PostgreSQL database, whose ownit tables are
DROPPED first: never point it at a ledger in use); ``rollup.rebuild`` then fills
``spend_daily``. Each export (``agent.ledger.exports.export``, in-process, to /dev/null: CSV and
JSON encoding included, no disk) runs ``--runs`` times after one untimed warm-up; reported:
median and min-max seconds, rows, rows/s. Then, untimed, each FOCUS file is written to a
temporary file and read back: its BilledCost must equal the calls' costs in the database, to the
nano-dollar.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from _common import apply_isolated_env, median, table

if TYPE_CHECKING:
    from agent.ledger import LedgerStore

EXPORTS: tuple[tuple[str, str, str | None], ...] = (
    ("focus, day", "focus", "day"),
    ("focus, call", "focus", "call"),
    ("csv", "csv", None),
    ("json lines", "json", None),
)


def recorded_total(store: LedgerStore) -> Decimal:
    """The calls' costs summed in the database's own rows, as the rollup counts them."""
    import sqlalchemy as sa

    from agent.ledger.records import Call
    from agent.ledger.rollup import NANO, nusd

    cost = Call.__table__.c.cost_usd  # type: ignore[attr-defined]
    total = 0
    with store.reading("cannot sum costs") as conn:
        for (usd,) in conn.execute(sa.select(cost).execution_options(yield_per=10_000)):
            total += nusd(usd)
    return Decimal(total) / NANO


def billed_total(path: Path) -> Decimal:
    with path.open(newline="", encoding="utf-8") as f:
        return sum((Decimal(r["BilledCost"]) for r in csv.DictReader(f)), Decimal(0))


def bench(name: str, url: str, args: argparse.Namespace, tmp: Path) -> list[list[object]]:
    from agent.ledger import LedgerStore
    from agent.ledger.exports import export
    from tests.ledger_data import fill

    store = LedgerStore(url)
    t0 = time.perf_counter()
    fill(store, args.calls, days=args.days)
    print(f"{name}: {args.calls:,} calls generated in {time.perf_counter() - t0:.1f} s", flush=True)
    rows: list[list[object]] = []
    for label, fmt, granularity in EXPORTS:
        times = []
        written = 0
        for run in range(args.runs + 1):
            with open(os.devnull, "w", encoding="utf-8", newline="") as out:
                t0 = time.perf_counter()
                written = export(store, fmt, out, granularity=granularity)  # type: ignore[arg-type]
                if run:  # the first run warms caches and is not counted
                    times.append(time.perf_counter() - t0)
        mid = median(times)
        rows.append(
            [
                f"{name}: {label}",
                f"{mid:.2f}",
                f"{min(times):.2f}-{max(times):.2f}",
                f"{written:,}",
                f"{written / mid:,.0f}",
            ]
        )
    expected = recorded_total(store)
    for granularity in ("day", "call"):
        path = tmp / f"{name}-{granularity}.csv"
        with path.open("w", encoding="utf-8", newline="") as out:
            export(store, "focus", out, granularity=granularity)
        got = billed_total(path)
        state = "reconciles" if got == expected else f"DIFFERS by {got - expected}"
        print(f"{name}: FOCUS per {granularity}: BilledCost {got} vs calls {expected}: {state}")
        path.unlink()
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=548, help="the calls' spread (18 months)")
    parser.add_argument("--url", help="a PostgreSQL database to run against as well")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ownit-bench-export-") as tmpdir:
        tmp = Path(tmpdir)
        apply_isolated_env(tmp / "home")
        stores = [("sqlite", f"sqlite:///{tmp / 'ledger.db'}")]
        if args.url:
            from tests.ledger_db import drop_ownit_tables

            drop_ownit_tables(args.url)
            stores.append(("postgresql", args.url))
        rows = [row for name, url in stores for row in bench(name, url, args, tmp)]
    print(
        f"\n{args.calls:,} calls, median of {args.runs} runs (after a warm-up), "
        f"Python {sys.version.split()[0]}\n"
    )
    print(table(["export", "median s", "min-max s", "rows", "rows/s"], rows))


if __name__ == "__main__":
    main()
