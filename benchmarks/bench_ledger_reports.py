"""Finance reports over a million calls: how long each takes, on SQLite and PostgreSQL.

    python benchmarks/bench_ledger_reports.py [--calls 1000000] [--rounds 5] [--reuse]
        [--pg-url postgresql://postgres@127.0.0.1:5432/ownit_bench_reports] [--no-pg]
        [--writers 8] [--writer-calls 200]     (--writers 0: skip the concurrent writers)

A synthetic ledger (``tests/ledger_data.fill``: --calls calls in PR reviews of ten calls over
18 months, 40 teams, 400 repos, six models, some errors, unpriced and unknown calls) is
written to each store, and its rollup filled. Then, each timed ``--rounds`` times, the median:

    team x month     ``ownit ledger report --by team --period month`` over all 18 months
    repo, 1 month    ``--by repo --since <last full month> --until <its end> --top 20``
    html             ``--format html``: a year of months (the default), and all 18; the page
                     charts spend per team over the range, the top repos and PRs of its last
                     month, growth and budgets
    focus (day)      ``ownit ledger export --format focus`` over the last full month
    focus (call)     the same, one row per call

each run in-process, from the query to the rendered text. Then the command itself, in a fresh
process as a user runs it (interpreter start, imports, query, rendering): ``ownit ledger report``
with its default window (this month and the two before: on the synthetic data, which ends in
November 2025, that reads an empty range, so it measures start-up), ``ownit ledger report
--since <3 months before the data's end>`` (the same report over the data's last three months),
and ``ownit ledger --help``. Last, 8 processes record calls into the million-row ledger at once
(each a review's write-ahead traffic: pending, then answered), and the ledger is checked: every
call there exactly once, and the rollup equal to a rebuild from the calls.

Floors (the issue): each report under 0.5 s on both stores; the command under 0.5 s; 0 calls
lost or duplicated. The SQLite file is kept in benchmarks/.data (--reuse skips regenerating it).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import OWNIT, ROOT, apply_isolated_env, isolated_env, median, ms, table

# The synthetic history runs 548 days from tests.ledger_data.START: "today" is its last day.
END = date(2025, 11, 30)
NOW = datetime(END.year, END.month, END.day, 12, tzinfo=UTC)
LAST_3_MONTHS = date(2025, 9, 1)  # the last three months of the data, to END
DATA = ROOT / "benchmarks" / ".data"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql://postgres@127.0.0.1:5432/ownit_bench_reports"
FLOOR = 0.5


def timed(fn: Callable[[], Any], rounds: int) -> float:
    fn()  # warm: the first run pays for imports and the database's cold cache
    took = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        took.append(time.perf_counter() - began)
    return median(took)


def cases(url: str) -> dict[str, Callable[[], Any]]:
    from agent.ledger import LedgerStore, formats, spend
    from agent.ledger.exports import export
    from agent.ledger.reports import ReportQuery

    store = LedgerStore(url)
    month = (END.replace(day=1) - timedelta(days=1)).replace(day=1)  # the last full month
    month_end = END.replace(day=1) - timedelta(days=1)
    first = date(2024, 6, 1)

    def report(query: ReportQuery) -> Callable[[], str]:
        return lambda: formats.render(spend.build(store, query, now=NOW), "table")

    def html(since: date) -> Callable[[], str]:
        query = ReportQuery(("team",), "month", since, END)
        return lambda: formats.render_html(spend.overview(store, query, now=NOW))

    def focus(granularity: str) -> Callable[[], int]:
        def run() -> int:
            out = io.StringIO()
            return export(
                store, "focus", out, since=month, until=month_end, granularity=granularity
            )

        return run

    return {
        "team x month (18 months)": report(ReportQuery(("team",), "month", first, END)),
        "repo, 1 month, --top 20": report(ReportQuery(("repo",), "month", month, month_end, 20)),
        "html, 12 months (the default)": html(date(2024, 12, 1)),
        "html, 18 months": html(first),
        "focus export, day rows (1 month)": focus("day"),
        "focus export, call rows (1 month)": focus("call"),
    }


def command_time(url: str, rounds: int, *args: str) -> float:
    env = isolated_env(Path(tempfile.mkdtemp(prefix="ownit-bench-")))
    env["OWNIT_LEDGER_URL"] = url
    took = []
    for _ in range(rounds + 1):
        began = time.perf_counter()
        subprocess.run([str(OWNIT), *args], env=env, check=True, capture_output=True)
        took.append(time.perf_counter() - began)
    return median(took[1:])


# --- 8 writers into the large ledger ------------------------------------------------------------


def writer(url: str, n: int, calls: int, barrier: Any, home: str, errors: Any) -> None:
    apply_isolated_env(Path(home))
    from agent.ledger import LedgerStore, Recorder, RunInfo

    try:
        store = LedgerStore(url)
        run = RunInfo(id=f"writer-{n}-{os.getpid()}", started_at=datetime.now(UTC), team="w")
        recorder = Recorder(run, store)
        barrier.wait(timeout=120)
        for i in range(calls):
            record = recorder.begin(
                purpose=f"chunk-{i}",
                model_name="gpt",
                model="openai/gpt-4.1-mini",
                provider="openai",
                estimated_prompt_tokens=1000,
            )
            recorder.update(
                record, outcome="ok", prompt_tokens=1000, completion_tokens=100, cost_usd=0.001
            )
        recorder.finish(status="complete")
        if recorder.error is not None:
            errors.put(f"writer {n}: {recorder.error.message}")
        recorder.close()
    except Exception as exc:
        errors.put(f"writer {n}: {type(exc).__name__}: {exc}")


def writers(url: str, processes: int, calls: int) -> dict[str, Any]:
    import sqlalchemy as sa

    from agent.ledger import LedgerStore
    from agent.ledger.rollup import drift

    store = LedgerStore(url)
    calls_t = sa.table("calls", sa.column("run_id"), sa.column("outcome"))
    with store.reading("bench") as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(calls_t)).scalar() or 0
    ctx = mp.get_context("spawn")
    barrier, errors = ctx.Barrier(processes), ctx.Queue()
    home = tempfile.mkdtemp(prefix="ownit-bench-writers-")
    procs = [
        ctx.Process(target=writer, args=(url, n, calls, barrier, home, errors))
        for n in range(processes)
    ]
    began = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    took = time.perf_counter() - began
    failed = []
    while not errors.empty():
        failed.append(errors.get())
    with store.reading("bench") as conn:
        written = conn.execute(
            sa.select(calls_t.c.run_id, calls_t.c.outcome).where(calls_t.c.run_id.like("writer-%"))
        ).all()
        after = conn.execute(sa.select(sa.func.count()).select_from(calls_t)).scalar() or 0
        differ = drift(conn)
    # Writers of earlier --reuse runs are in the ledger too: count this run's rows only.
    expected = processes * calls
    added = after - before
    return {
        "failed": failed,
        "expected": expected,
        "lost": max(0, expected - added),
        "duplicated": max(0, added - expected),
        "still pending": sum(1 for _, outcome in written if outcome == "pending"),
        "rollup rows differing": len(differ),
        "seconds": took,
    }


# --- main -----------------------------------------------------------------------------------


def prepare(label: str, url: str, calls: int, reuse: bool) -> str:
    import sqlalchemy as sa

    from agent.ledger import LedgerStore
    from tests.ledger_data import fill
    from tests.ledger_db import drop_ownit_tables

    if reuse:
        try:
            store = LedgerStore(url)
            with store.reading("bench") as conn:
                have = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar() or 0
            if have >= calls:
                with store.writing("bench") as conn:
                    conn.execute(sa.text("ANALYZE"))
                return f"{label}: reusing {have:,} calls"
        except Exception:
            pass
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    else:
        drop_ownit_tables(url)
    store = LedgerStore(url)
    began = time.perf_counter()
    fill(store, calls)
    took = time.perf_counter() - began
    # What autovacuum (PostgreSQL) and a long-lived ledger would have: the planner's statistics.
    with store.writing("bench") as conn:
        conn.execute(sa.text("ANALYZE"))
    with store.reading("bench") as conn:
        rollup = conn.execute(sa.text("SELECT count(*) FROM spend_daily")).scalar()
    return f"{label}: wrote {calls:,} calls in {took:.0f} s; the rollup holds {rollup:,} rows"


def pg_available(admin: str, url: str) -> bool:
    import sqlalchemy as sa

    from agent.ledger.database import sqlalchemy_url

    try:
        engine = sa.create_engine(sqlalchemy_url(admin), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            name = url.rsplit("/", 1)[1]
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return True
    except Exception as exc:
        print(f"PostgreSQL skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep a ledger already generated")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--writer-calls", type=int, default=200)
    args = parser.parse_args()
    apply_isolated_env(Path(tempfile.mkdtemp(prefix="ownit-bench-")))
    DATA.mkdir(exist_ok=True)
    stores = {"sqlite": f"sqlite:///{DATA / f'ledger-{args.calls}.db'}"}
    if not args.no_pg and pg_available(PG_ADMIN_URL, args.pg_url):
        stores["postgresql"] = args.pg_url
    results: dict[str, dict[str, float]] = {}
    for label, url in stores.items():
        print(prepare(label, url, args.calls, args.reuse), flush=True)
        results[label] = {name: timed(fn, args.rounds) for name, fn in cases(url).items()}
        report = ("ledger", "report", "--by", "team", "--period", "month")
        results[label]["ownit ledger report (process)"] = command_time(url, args.rounds, *report)
        three = f"{LAST_3_MONTHS:%Y-%m}"
        results[label][f"... --since {three} (process)"] = command_time(
            url, args.rounds, *report, "--since", three, "--until", f"{END}"
        )
        results[label]["ownit ledger --help (process)"] = command_time(
            url, args.rounds, "ledger", "--help"
        )
    names = list(next(iter(results.values())))
    print(f"\nmedian of {args.rounds} rounds, ms ({args.calls:,} calls; floor {FLOOR * 1000:.0f})")
    print(
        table(
            ["", *stores],
            [[n, *(ms(results[s][n]) for s in stores)] for n in names],
        )
    )
    for label, url in stores.items():
        if not args.writers:
            break
        found = writers(url, args.writers, args.writer_calls)
        print(
            f"\n{label}: {args.writers} processes wrote {found['expected']:,} calls into the "
            f"ledger at once in {found['seconds']:.1f} s: {found['lost']} lost, "
            f"{found['duplicated']} duplicated, {found['still pending']} left pending, "
            f"{found['rollup rows differing']} rollup rows "
            f"differing from the calls; failures: {found['failed'] or 'none'}"
        )


if __name__ == "__main__":
    main()
