"""Several reviews opening one brand-new ledger at once.

Parallel CI jobs share one PostgreSQL ledger, and reviews started together on a laptop share one
SQLite file: the first of them to open a new ledger creates its tables while the others race it.
Eight processes (spawned, so each has its own interpreter and connections) wait at a barrier,
then each opens the ledger, which migrates it, and records 50 calls of its own run through the
write-ahead recorder (pending, then answered). None may fail, every call must be there once,
and the spend rollup must add up to the calls exactly.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from agent.ledger import LedgerStore, Recorder, RunInfo
from agent.ledger.migrations import MIGRATIONS
from agent.ledger.reports import ReportQuery
from agent.ledger.rollup import drift
from agent.ledger.spend import build
from agent.ledger.store import host_name
from tests.test_ledger import postgres_url

PROCESSES = 8
CALLS = 50
# Spawning 8 interpreters and importing the ledger takes a few seconds on 2 cores.
DEADLINE_SECONDS = 60


def record_run(url: str, n: int, start: Barrier, errors: Any) -> None:
    """One review's worth of ledger traffic; runs in a child process."""
    try:
        start.wait(timeout=DEADLINE_SECONDS)  # everyone is imported and ready: go
        store = LedgerStore(url)
        run = RunInfo(
            id=f"run-{n}",
            started_at=datetime.now(UTC),
            team="core",
            repo="acme/app",
            host=host_name(),
            pid=os.getpid(),
        )
        recorder = Recorder(run, store)
        for i in range(CALLS):
            record = recorder.begin(
                purpose=f"chunk-{i}",
                model_name="gpt",
                model="openai/gpt-4.1-mini",
                provider="openai",
                estimated_prompt_tokens=1000 + i,
            )
            recorder.update(record, outcome="answered", prompt_tokens=1000 + i, completion_tokens=n)
        recorder.finish(status="complete")
        error = recorder.error
        recorder.close()
        if error is not None:
            errors.put(f"run-{n}: {type(error).__name__}: {error.message}")
            raise SystemExit(3)
    except SystemExit:
        raise
    except BaseException:
        errors.put(f"run-{n}: {traceback.format_exc()}")
        raise SystemExit(4) from None


def race(url: str) -> float:
    """Run the processes against ``url``; returns the seconds they took."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    errors = ctx.Queue()
    processes = [
        ctx.Process(target=record_run, args=(url, n, start, errors), name=f"ledger-writer-{n}")
        for n in range(PROCESSES)
    ]
    began = time.monotonic()
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=max(1.0, DEADLINE_SECONDS - (time.monotonic() - began)))
    took = time.monotonic() - began
    stuck = [p for p in processes if p.is_alive()]
    for process in stuck:
        process.kill()
        process.join()
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert not stuck, f"{len(stuck)} writer(s) still running after {took:.0f} s"
    assert reported == []
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    return took


def check_ledger(url: str) -> None:
    store = LedgerStore(url)
    try:
        calls = store.calls()
        keys = {c.idempotency_key for c in calls}
        assert len(calls) == PROCESSES * CALLS
        assert keys == {f"run-{n}:chunk-{i}:1" for n in range(PROCESSES) for i in range(CALLS)}
        assert {c.outcome for c in calls} == {"answered"}
        assert all(c.completion_tokens == int(c.run_id.split("-")[1]) for c in calls)
        assert {(r.id, r.status) for r in store.runs()} == {
            (f"run-{n}", "complete") for n in range(PROCESSES)
        }
        # Eight writers updating the same rollup rows at once: it still adds up exactly.
        report = build(store, ReportQuery(("team",), None), now=datetime.now(UTC))
        assert (report.total.calls, report.total.prompt_tokens) == (
            PROCESSES * CALLS,
            PROCESSES * sum(1000 + i for i in range(CALLS)),
        )
        with store.engine.connect() as conn:
            assert drift(conn) == []
            names = conn.exec_driver_sql("SELECT name FROM ownit_migrations").scalars().all()
        assert sorted(names) == sorted(name for name, _ in MIGRATIONS)
    finally:
        store.close()


def test_processes_racing_on_a_new_sqlite_ledger_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "ledger.db"
    assert not path.exists()
    url = f"sqlite:///{path}"
    race(url)
    check_ledger(url)


@pytest.mark.postgres
def test_processes_racing_on_a_new_postgres_ledger_lose_nothing() -> None:
    url = postgres_url()  # no ownit tables: the migration itself is raced
    race(url)
    check_ledger(url)
