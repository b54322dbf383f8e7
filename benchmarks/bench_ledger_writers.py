"""Concurrent ledger writers: 8 processes open one brand-new ledger at once and record calls.

    python benchmarks/bench_ledger_writers.py [--processes 8] [--calls 200] [--rounds 5]
        [--pg-url postgresql://postgres@127.0.0.1:5432/ownit_bench_writers] [--no-pg]

Each round starts ``--processes`` processes (multiprocessing "spawn"). Each imports
``agent.ledger``, then waits on a shared barrier; when all are ready they are released together,
and each opens the same ledger with ``LedgerStore(url)`` (so the schema migration races), then
records ``--calls`` calls for its own run through ``agent.ledger.Recorder``: ``begin`` (the
write-ahead ``pending`` row) then ``update(..., outcome="answered", tokens, cost)``, as a review
does for every model call, and closes the run.

Stores: SQLite, a brand-new file each round (nothing exists before the processes open it), and
PostgreSQL, where the ownit tables (``calls``, ``runs``, ``ownit_migrations``) are dropped
before each round so the migration races too. The PostgreSQL database is a separate one
(``ownit_bench_writers``, created on first use through the ``test`` database) so the test
suite's tables are left alone; it is skipped with a message when the server does not answer.

Reported per store and round: processes that failed (an exception, or a recorder that gave up
on the ledger and wrote its spool file instead), rows expected / found, lost (expected calls
with no row, or still ``pending``), duplicated (rows beyond one per call), migrations recorded,
run rows, wall time from the barrier's release to the last process done, and writes/s (two
writes per call). Isolation: a temporary HOME/XDG dir (spool files land there), no vendor keys.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import apply_isolated_env, median, table

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql://postgres@127.0.0.1:5432/ownit_bench_writers"


def writer(
    index: int, url: str, calls: int, barrier: Any, results: Any, home: str, run_id: str
) -> None:
    """One process: import, wait for the others, open the ledger, record ``calls`` calls."""
    apply_isolated_env(Path(home))
    from datetime import UTC, datetime

    from agent.ledger import LedgerStore, Recorder, RunInfo

    result: dict[str, Any] = {"index": index, "run_id": run_id, "error": None, "spooled": 0}
    try:
        barrier.wait(timeout=120)
    except Exception as exc:  # a broken barrier: another process died before it
        result["error"] = f"barrier: {exc!r}"
        results.put(result)
        return
    result["start"] = time.time()
    try:
        store = LedgerStore(url)
        run = RunInfo(
            id=run_id,
            started_at=datetime.now(UTC),
            team="bench",
            repo="bench/ledger-writers",
            pr_number=index + 1,
            model_name="bench",
            host="bench-host",
            pid=os.getpid(),
        )
        recorder = Recorder(run, store, spool_dirs=[Path(home) / "spool"])
        result["opened"] = time.time()
        slowest = 0.0
        for i in range(calls):
            t0 = time.perf_counter()
            record = recorder.begin(
                purpose=f"chunk-{i + 1}",
                model_name="bench",
                model="openai/bench-model",
                provider="openai",
                estimated_prompt_tokens=1000 + i,
            )
            t1 = time.perf_counter()
            recorder.update(
                record,
                outcome="answered",
                prompt_tokens=1000 + i,
                completion_tokens=200 + i,
                cost_usd=(1000 + i) * 1e-6 + (200 + i) * 2e-6,
                latency_ms=5,
            )
            slowest = max(slowest, t1 - t0, time.perf_counter() - t1)
        result["slowest_write"] = slowest
        recorder.finish(status="complete")
        if recorder.error is not None:
            result["error"] = f"ledger given up, spooled: {recorder.error.message}"
            result["spooled"] = len(recorder.rows)
        recorder.close()
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        result["trace"] = traceback.format_exc()[-2000:]
    result["end"] = time.time()
    results.put(result)


@dataclass
class Round:
    store: str
    number: int
    failed: int
    errors: list[str]
    expected: int
    found: int
    lost: int
    duplicated: int
    pending: int
    migrations: int
    runs: int
    wall: float
    writes: int
    open_s: float  # the slowest LedgerStore(url) (connect + the migration race)
    slowest_write: float  # the slowest begin or update, over all processes


def count(url: str, run_ids: list[str], calls: int) -> dict[str, int]:
    """What the ledger holds, read with SQLAlchemy (not through ownit)."""
    import sqlalchemy as sa

    from agent.ledger.database import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT run_id, purpose, idempotency_key, outcome FROM calls")
            ).all()
            migrations = conn.execute(sa.text("SELECT count(*) FROM ownit_migrations")).scalar()
            runs = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar()
    finally:
        engine.dispose()
    expected = {(run_id, f"chunk-{i + 1}") for run_id in run_ids for i in range(calls)}
    per_call = Counter((r.run_id, r.purpose) for r in rows)
    answered = {(r.run_id, r.purpose) for r in rows if r.outcome == "answered"}
    return {
        "found": len(rows),
        "lost": len(expected - answered),
        "duplicated": sum(n - 1 for n in per_call.values() if n > 1)
        + sum(1 for key in per_call if key not in expected),
        "pending": sum(1 for r in rows if r.outcome == "pending"),
        "migrations": int(migrations or 0),
        "runs": int(runs or 0),
    }


def one_round(store: str, number: int, url: str, args: argparse.Namespace, home: Path) -> Round:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(args.processes)
    results = ctx.Queue()
    run_ids = [f"{store}-r{number}-p{i}-{os.urandom(4).hex()}" for i in range(args.processes)]
    procs = [
        ctx.Process(
            target=writer,
            args=(i, url, args.calls, barrier, results, str(home), run_ids[i]),
        )
        for i in range(args.processes)
    ]
    for p in procs:
        p.start()
    got: list[dict[str, Any]] = []
    deadline = time.time() + args.timeout
    while len(got) < len(procs) and time.time() < deadline:
        try:
            got.append(results.get(timeout=1))
        except Exception:
            if all(not p.is_alive() for p in procs) and results.empty():
                break
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join()
    errors = [f"p{r['index']}: {r['error']}" for r in got if r["error"]]
    crashed = len(procs) - len(got)
    errors += [f"{crashed} process(es) exited without a result"] if crashed else []
    starts = [r["start"] for r in got if "start" in r]
    ends = [r["end"] for r in got if "end" in r]
    wall = max(ends) - min(starts) if starts and ends else float("nan")
    try:
        found = count(url, run_ids, args.calls)
    except Exception as exc:  # no tables at all: every process failed before migrating
        errors.append(f"reading the ledger: {type(exc).__name__}: {exc}".splitlines()[0])
        found = dict.fromkeys(("found", "duplicated", "pending", "migrations", "runs"), 0)
        found["lost"] = args.processes * args.calls
    for r in got:
        if r.get("trace") and args.verbose:
            print(r["trace"])
    return Round(
        store=store,
        number=number,
        failed=sum(1 for r in got if r["error"]) + crashed,
        errors=errors,
        expected=args.processes * args.calls,
        found=found["found"],
        lost=found["lost"],
        duplicated=found["duplicated"],
        pending=found["pending"],
        migrations=found["migrations"],
        runs=found["runs"],
        wall=wall,
        writes=2 * args.processes * args.calls,
        open_s=max((r["opened"] - r["start"] for r in got if "opened" in r), default=float("nan")),
        slowest_write=max((r.get("slowest_write", 0.0) for r in got), default=float("nan")),
    )


def prepare_postgres(url: str, admin_url: str) -> str | None:
    """Create the benchmark database if needed; None when ready, else why it is skipped."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'ownit[postgres]')"
    name = url.rsplit("/", 1)[1]
    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        if f'database "{name}" does not exist' not in str(exc):
            return f"PostgreSQL at {url} does not answer: {str(exc).strip().splitlines()[0]}"
    try:
        with psycopg.connect(admin_url, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        return f"cannot create database {name}: {str(exc).strip().splitlines()[0]}"
    return None


def reset_postgres(url: str) -> None:
    from tests.ledger_db import drop_ownit_tables

    drop_ownit_tables(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--calls", type=int, default=200, help="calls recorded per process")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="to CREATE DATABASE")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per round")
    parser.add_argument("--verbose", action="store_true", help="print failing tracebacks")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ownit-bench-writers-") as tmpdir:
        tmp = Path(tmpdir)
        home = tmp / "home"
        apply_isolated_env(home)
        stores: list[tuple[str, Any]] = [
            ("sqlite", lambda n: f"sqlite:///{tmp / f'round{n}' / 'ledger.db'}")
        ]
        skipped = prepare_postgres(args.pg_url, args.pg_admin_url) if not args.no_pg else "--no-pg"
        if skipped:
            print(f"PostgreSQL skipped: {skipped}")
        else:
            stores.append(("postgresql", lambda n: args.pg_url))
        rounds: list[Round] = []
        for n in range(1, args.rounds + 1):  # interleaved, so drift hits both stores alike
            for store, url_of in stores:
                url = url_of(n)
                if store == "postgresql":
                    reset_postgres(url)
                print(
                    f"round {n}/{args.rounds} {store} ...",
                    flush=True,
                    file=sys.stderr,
                )
                rounds.append(one_round(store, n, url, args, home))

        print(
            f"\n{args.processes} processes x {args.calls} calls (begin + update: "
            f"{2 * args.processes * args.calls} writes) into one brand-new ledger per round\n"
        )
        rows = []
        for r in rounds:
            rows.append(
                [
                    f"{r.store} #{r.number}",
                    f"{r.failed}/{args.processes}",
                    f"{r.expected}/{r.found}",
                    r.lost,
                    r.duplicated,
                    r.pending,
                    r.migrations,
                    r.runs,
                    f"{r.open_s:.2f}",
                    f"{r.slowest_write * 1000:,.0f}",
                    f"{r.wall:.2f}",
                    f"{r.writes / r.wall:,.0f}" if r.wall == r.wall and r.wall > 0 else "-",
                ]
            )
        print(
            table(
                [
                    "store / round",
                    "failed",
                    "rows expected/found",
                    "lost",
                    "duplicated",
                    "still pending",
                    "migrations",
                    "runs",
                    "open s",
                    "slowest write ms",
                    "wall s",
                    "writes/s",
                ],
                rows,
            )
        )
        print()
        summary = []
        for store, _ in stores:
            mine = [r for r in rounds if r.store == store]
            walls = [r.wall for r in mine if r.wall == r.wall]
            summary.append(
                [
                    store,
                    len(mine),
                    sum(r.failed for r in mine),
                    sum(r.lost for r in mine),
                    sum(r.duplicated for r in mine),
                    f"{median(walls):.2f}" if walls else "-",
                    f"{mine[0].writes / median(walls):,.0f}" if walls else "-",
                ]
            )
        print(
            table(
                [
                    "store",
                    "rounds",
                    "processes failed",
                    "lost",
                    "duplicated",
                    "median wall s",
                    "median writes/s",
                ],
                summary,
            )
        )
        errors = [(r.store, r.number, e) for r in rounds for e in r.errors]
        if errors:
            print("\nfailures:")
            for store, number, error in errors[:20]:
                print(f"  {store} #{number}: {error}")
            if len(errors) > 20:
                print(f"  ... and {len(errors) - 20} more")


if __name__ == "__main__":
    main()
