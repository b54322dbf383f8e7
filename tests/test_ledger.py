"""Tests for the cost ledger (agent.ledger): migrations, write-ahead recording, repair of crashed
runs, imports, the spool, and spend.

Store tests run on SQLite, and on PostgreSQL too when ``OWNIT_TEST_DATABASE_URL`` is set, e.g.
``OWNIT_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test``. That database's ownit
tables are dropped before each test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from agent.errors import ConfigError, InputError, LedgerError
from agent.ledger import (
    CallRecord,
    ImportResult,
    LedgerStore,
    Recorder,
    RepairResult,
    RunInfo,
    is_spool,
    read_records,
)
from agent.ledger.migrations import MIGRATIONS, migrate
from agent.ledger.recorder import spool_name
from agent.ledger.records import call_key, outcome_rank
from agent.ledger.reports import ReportQuery
from agent.ledger.spend import build
from agent.ledger.store import host_name
from tests.ledger_db import postgres_url, sa_url

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALL_MIGRATIONS = [name for name, _ in MIGRATIONS]
PYDANTIC_WORDING = ("errors.pydantic.dev", "Input should be", "validation error for")


# --- shared helpers (also used by test_migrations.py and test_ledger_concurrency.py) ----------


def create_m001_ledger(url: str, keys: list[str]) -> None:
    """A ledger as the first release left it: only m001 applied, one run and one call per key
    (keys in the old ``<run>:<purpose>:<attempt>`` form, retries numbered attempt * 100 + try)."""
    from agent.ledger.migrations import m001_initial

    applied = sa.Table(
        "ownit_migrations",
        sa.MetaData(),
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )
    parsed = sa.engine.make_url(sa_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed)
    try:
        with engine.begin() as conn:
            m001_initial(conn)
            applied.create(conn)
            conn.execute(applied.insert().values(name="m001_initial", applied_at=T0))
            conn.execute(
                sa.text(
                    "INSERT INTO runs (id, started_at, team, repo, pr_number, model_name, status,"
                    " files_total, files_reviewed, hunks_total, hunks_reviewed)"
                    " VALUES ('run', :t, 'core', 'acme/app', 7, 'gpt', 'complete', 3, 3, 5, 5)"
                ),
                {"t": T0},
            )
            for n, key in enumerate(keys):
                conn.execute(
                    sa.text(
                        "INSERT INTO calls (idempotency_key, run_id, created_at, team, repo,"
                        " pr_number, purpose, model_name, model, provider, prompt_tokens,"
                        " completion_tokens, cached_tokens, reasoning_tokens, cost_usd,"
                        " latency_ms, outcome, raw_usage)"
                        " VALUES (:key, 'run', :t, 'core', 'acme/app', 7, :purpose, 'gpt',"
                        " 'openai/gpt-4.1-mini', 'openai', :pt, 200, 10, 0, 0.01, 900, 'ok',"
                        " :usage)"
                    ),
                    {
                        "key": key,
                        "t": T0 + timedelta(seconds=n),
                        "purpose": key.split(":")[1],
                        "pt": 1000 + n,
                        "usage": json.dumps({"prompt_tokens": 1000 + n}),
                    },
                )
    finally:
        engine.dispose()


def make_run(run_id: str = "run-1", **values: Any) -> RunInfo:
    fields: dict[str, Any] = {
        "id": run_id,
        "started_at": T0,
        "team": "core",
        "repo": "acme/app",
        "pr_number": 7,
        "head_sha": "abc123",
        "author": "dev",
        "model_name": "gpt",
        "host": host_name(),
        "pid": os.getpid(),
    }
    fields.update(values)
    return RunInfo(**fields)


def make_record(n: int = 1, **values: Any) -> CallRecord:
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "created_at": T0 + timedelta(seconds=n),
        "team": "core",
        "repo": "acme/app",
        "pr_number": 7,
        "head_sha": "abc123",
        "author": "dev",
        "purpose": f"chunk-{n}",
        "attempt": 1,
        "model_name": "gpt",
        "model": "openai/gpt-4.1-mini",
        "provider": "openai",
        "outcome": "ok",
        "estimated_prompt_tokens": 990,
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "cost_usd": 0.01,
        "latency_ms": 900,
        "raw_usage": {"prompt_tokens": 1000, "completion_tokens": 200},
    }
    fields.update(values)
    return CallRecord(**fields)


def begin(recorder: Recorder, purpose: str = "chunk-1", estimate: int = 1234) -> CallRecord:
    return recorder.begin(
        purpose=purpose,
        model_name="gpt",
        model="openai/gpt-4.1-mini",
        provider="openai",
        estimated_prompt_tokens=estimate,
    )


def answer(recorder: Recorder, record: CallRecord, outcome: str = "answered") -> CallRecord:
    return recorder.update(
        record,
        outcome=outcome,
        prompt_tokens=1200,
        completion_tokens=300,
        cost_usd=0.02,
        latency_ms=800,
        raw_usage={"prompt_tokens": 1200, "completion_tokens": 300},
    )


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def by_key(store: LedgerStore) -> dict[str, Any]:
    return {c.idempotency_key: c for c in store.calls()}


def applied_migrations(store: LedgerStore) -> list[str]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name FROM ownit_migrations ORDER BY name"))
        return [r[0] for r in rows]


def block_directory(base: Path) -> Path:
    """A path no process can create a directory at, even as root: it lies under a regular
    file."""
    blocker = base / "a-regular-file"
    blocker.write_text("not a directory")
    return blocker / "dir"


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> Iterator[LedgerStore]:
    """A second, empty ledger (where a spool is imported after the first one broke)."""
    fresh = LedgerStore(f"sqlite:///{tmp_path / 'fresh' / 'ledger.db'}")
    yield fresh
    fresh.close()


# --- schema -------------------------------------------------------------------------------------


def test_blank_database_gets_every_migration(store: LedgerStore) -> None:
    inspector = sa.inspect(store.engine)
    tables = {"runs", "calls", "budgets", "chunk_cache", "spend_daily", "ownit_migrations"}
    tables |= {"ownership_checks", "ownership_answers", "pull_requests"}
    assert tables <= set(inspector.get_table_names())
    assert (
        applied_migrations(store)
        == ALL_MIGRATIONS
        == [
            "m001_initial",
            "m002_write_ahead_and_prices",
            "m003_secret_masking",
            "m004_finance",
            "m005_routing",
            "m006_ownership",
            "m007_pull_request_ids",
        ]
    )
    calls = {c["name"] for c in inspector.get_columns("calls")}
    assert {"attempt", "estimated_prompt_tokens", "fallback_from", "price_source", "route"} <= calls
    runs = {c["name"] for c in inspector.get_columns("runs")}
    assert {"host", "pid", "masking", "secrets_masked", "secret_findings"} <= runs


def test_opening_twice_is_a_no_op(open_store: Callable[[], LedgerStore]) -> None:
    first = open_store()
    first.start_run(make_run())
    first.import_records([make_record(1)])
    second = open_store()
    assert applied_migrations(second) == ALL_MIGRATIONS
    assert migrate(second.engine) == []
    assert [c.idempotency_key for c in second.calls()] == ["run-1:chunk-1:1"]
    assert [r.id for r in second.runs()] == ["run-1"]


def test_upgrade_from_the_first_release_keeps_rows_and_reads_attempts_from_keys(
    ledger_url: str, open_store: Callable[[], LedgerStore], tmp_path: Path
) -> None:
    keys = ["run:chunk-1:1", "run:chunk-1:101", "run:chunk-1:201", "run:chunk-2:99999999999"]
    create_m001_ledger(ledger_url, keys)
    store = open_store()
    assert applied_migrations(store) == ALL_MIGRATIONS
    calls = store.calls()
    assert [c.idempotency_key for c in calls] == keys
    # A number no attempt can be (past an INTEGER) leaves the default rather than failing.
    assert [c.attempt for c in calls] == [1, 101, 201, 1]
    assert [c.prompt_tokens for c in calls] == [1000, 1001, 1002, 1003]
    assert [c.raw_usage for c in calls] == [{"prompt_tokens": 1000 + n} for n in range(4)]
    assert {(c.outcome, c.cost_usd, c.cached_tokens, c.team) for c in calls} == {
        ("ok", 0.01, 10, "core")
    }
    assert [c.created_at for c in calls] == [T0 + timedelta(seconds=n) for n in range(4)]
    # New columns get their neutral values, never NULL.
    assert {(c.estimated_prompt_tokens, c.cache_write_tokens) for c in calls} == {(0, 0)}
    (run,) = store.runs()
    assert (run.status, run.files_reviewed, run.host, run.pid) == ("complete", 3, None, None)
    # An artifact the first release wrote (no attempt field) re-imports onto the same rows.
    old = [c.model_dump(mode="json", exclude={"id", "attempt"}) for c in calls[:3]]
    artifact = write_artifact(tmp_path / "first-release.json", old)
    assert store.import_records(read_records(artifact)) == ImportResult(present=3)


def test_sqlite_ledger_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "ledger.db"
    LedgerStore(f"sqlite:///{path}").close()
    assert path.is_file()


def test_sqlite_path_with_a_tilde_is_under_the_home_directory(tmp_path: Path) -> None:
    LedgerStore("sqlite:///~/ledgers/ledger.db").close()
    assert (Path(os.environ["HOME"]) / "ledgers" / "ledger.db").is_file()


def test_default_url_comes_from_the_environment(tmp_path: Path) -> None:
    LedgerStore().close()
    assert (tmp_path / "ledger.db").is_file()  # conftest points OWNIT_LEDGER_URL here


# --- runs ---------------------------------------------------------------------------------------


def test_start_run_twice_keeps_one_run_and_finish_records_the_end(store: LedgerStore) -> None:
    store.start_run(make_run())
    store.start_run(make_run())
    store.finish_run("run-1", status="complete", files_reviewed=3)
    (run,) = store.runs()
    assert (run.status, run.files_reviewed, run.team, run.pid) == (
        "complete",
        3,
        "core",
        os.getpid(),
    )
    assert run.started_at == T0 and run.started_at.tzinfo is not None
    assert run.finished_at is not None and run.finished_at.tzinfo is not None


# --- write-ahead recording ----------------------------------------------------------------------


def test_a_call_is_pending_in_the_ledger_before_its_request_is_sent(store: LedgerStore) -> None:
    recorder = Recorder(make_run(), store)
    record = begin(recorder, estimate=1234)
    (row,) = store.calls()
    assert (row.idempotency_key, row.outcome, row.attempt) == ("run-1:chunk-1:1", "pending", 1)
    assert (row.estimated_prompt_tokens, row.prompt_tokens, row.cost_usd) == (1234, 0, None)
    assert (row.team, row.repo, row.pr_number) == ("core", "acme/app", 7)
    (run,) = store.runs()  # the run is written with its first call
    assert (run.status, run.host, run.pid) == ("running", host_name(), os.getpid())

    answered = answer(recorder, record)
    (row,) = store.calls()  # the same row, now answered
    assert (row.idempotency_key, row.outcome) == ("run-1:chunk-1:1", "answered")
    assert (row.prompt_tokens, row.completion_tokens, row.cost_usd) == (1200, 300, 0.02)
    assert row.estimated_prompt_tokens == 1234
    assert row.raw_usage == {"prompt_tokens": 1200, "completion_tokens": 300}

    recorder.update(answered, outcome="ok")
    (row,) = store.calls()
    assert (row.outcome, row.prompt_tokens) == ("ok", 1200)
    assert [(r.idempotency_key, r.outcome) for r in recorder.rows] == [("run-1:chunk-1:1", "ok")]
    recorder.finish(status="complete")
    (run,) = store.runs()
    assert run.status == "complete" and run.finished_at is not None
    assert recorder.error is None and recorder.spool is None


def test_attempts_are_numbered_per_purpose(store: LedgerStore) -> None:
    recorder = Recorder(make_run(), store)
    for purpose in ("chunk-1", "chunk-1", "chunk-2", "synthesis", "chunk-1"):
        answer(recorder, begin(recorder, purpose))
    got = [(c.purpose, c.attempt, c.idempotency_key) for c in store.calls()]
    assert got == [
        ("chunk-1", 1, "run-1:chunk-1:1"),
        ("chunk-1", 2, "run-1:chunk-1:2"),
        ("chunk-2", 1, "run-1:chunk-2:1"),
        ("synthesis", 1, "run-1:synthesis:1"),
        ("chunk-1", 3, "run-1:chunk-1:3"),
    ]
    assert {c.outcome for c in store.calls()} == {"answered"}


def test_a_recorded_state_is_validated(store: LedgerStore) -> None:
    """A state that could never be imported back from a spool is refused when it is made."""
    recorder = Recorder(make_run(), store)
    record = begin(recorder)
    with pytest.raises(ValidationError):
        recorder.update(record, outcome="billed-twice")
    with pytest.raises(ValidationError):
        recorder.update(record, prompt_tokens=-5)
    assert [(c.outcome, c.prompt_tokens) for c in store.calls()] == [("pending", 0)]


def test_writing_a_live_call_twice_keeps_one_row_and_its_later_state(store: LedgerStore) -> None:
    """A resumed spool or a retried job may write a call the ledger already has."""
    store.start_run(make_run())
    store.insert_call(make_record(1, outcome="answered"))
    store.insert_call(make_record(1, outcome="pending", prompt_tokens=0))
    assert [(c.outcome, c.prompt_tokens) for c in store.calls()] == [("answered", 1000)]
    store.insert_call(make_record(1, outcome="ok"))
    assert [c.outcome for c in store.calls()] == ["ok"]
    # A later state whose first write never arrived is written whole.
    store.update_call(make_record(2, outcome="ok"))
    assert [c.idempotency_key for c in store.calls()] == ["run-1:chunk-1:1", "run-1:chunk-2:1"]


@pytest.mark.postgres
def test_a_call_without_its_run_is_refused_by_postgres() -> None:
    store = LedgerStore(postgres_url())
    try:
        with pytest.raises(LedgerError, match="cannot"):
            store.insert_call(make_record(1, run_id="no-such-run"))
        assert store.calls() == []
    finally:
        store.close()


def test_outcome_ranks_only_move_forward() -> None:
    assert outcome_rank("pending") < outcome_rank("unknown") < outcome_rank("answered")
    assert {outcome_rank(o) for o in ("ok", "invalid_output", "error")} == {
        outcome_rank("answered") + 1
    }
    assert call_key("r", "chunk-1.2", 3) == "r:chunk-1.2:3"


# --- repairing crashed runs ---------------------------------------------------------------------


def seed_run(store: LedgerStore, run: RunInfo, outcomes: list[str]) -> None:
    store.start_run(run)
    store.import_records(
        [make_record(n, run_id=run.id, outcome=o) for n, o in enumerate(outcomes, 1)],
        create_runs=False,
    )


def test_repair_closes_a_run_whose_process_is_gone(store: LedgerStore) -> None:
    seed_run(store, make_run(pid=dead_pid()), ["pending", "answered", "ok", "pending"])
    seed_run(store, make_run("run-live", pid=os.getppid()), ["pending"])  # our parent lives
    before = by_key(store)

    assert store.repair() == RepairResult(runs=("run-1",), calls=2)
    runs = {r.id: r for r in store.runs()}
    assert runs["run-1"].status == "interrupted" and runs["run-1"].finished_at is not None
    assert runs["run-live"].status == "running"
    after = by_key(store)
    assert {k: c.outcome for k, c in after.items()} == {
        "run-1:chunk-1:1": "unknown",
        "run-1:chunk-2:1": "answered",
        "run-1:chunk-3:1": "ok",
        "run-1:chunk-4:1": "unknown",
        "run-live:chunk-1:1": "pending",
    }
    assert after["run-1:chunk-1:1"].error and "interrupted" in after["run-1:chunk-1:1"].error
    # Answered and finished calls are untouched, tokens and cost included.
    for key in ("run-1:chunk-2:1", "run-1:chunk-3:1", "run-live:chunk-1:1"):
        assert after[key] == before[key]
    # The estimate of an unknown call is kept: it is what the call may have cost.
    assert after["run-1:chunk-1:1"].estimated_prompt_tokens == 990

    snapshot = (store.runs(), store.calls())
    assert store.repair() == RepairResult()
    assert (store.runs(), store.calls()) == snapshot


def test_repair_leaves_the_run_of_this_process_alone_when_excluded(store: LedgerStore) -> None:
    seed_run(store, make_run(pid=os.getpid()), ["pending"])
    assert store.repair(exclude="run-1") == RepairResult()
    assert [r.status for r in store.runs()] == ["running"]
    assert [c.outcome for c in store.calls()] == ["pending"]


def test_repair_leaves_a_run_this_process_is_recording_alone(store: LedgerStore) -> None:
    """Two reviews in one process: the second one's repair must not interrupt the first."""
    first = Recorder(make_run("run-first"), store)
    begin(first)
    assert store.repair() == RepairResult()
    assert [(r.id, r.status) for r in store.runs()] == [("run-first", "running")]
    assert [c.outcome for c in store.calls()] == ["pending"]
    first.close()  # the run stopped without finishing: now it is a crashed run
    assert store.repair() == RepairResult(runs=("run-first",), calls=1)


def test_repair_of_a_run_on_another_host_waits_until_it_is_stale(store: LedgerStore) -> None:
    run = make_run(host="ci-runner-17", pid=1)
    seed_run(store, run, ["ok", "pending"])  # the last call was made at T0 + 2 s
    last = T0 + timedelta(seconds=2)
    assert store.repair(now=last + timedelta(hours=5)) == RepairResult()
    assert store.repair(now=last + timedelta(minutes=30), stale_after=timedelta(hours=1)) == (
        RepairResult()
    )
    assert [r.status for r in store.runs()] == ["running"]
    later = last + timedelta(hours=6, minutes=1)
    assert store.repair(now=later) == RepairResult(runs=("run-1",), calls=1)
    assert [(r.status, r.finished_at) for r in store.runs()] == [("interrupted", later)]
    assert [c.outcome for c in store.calls()] == ["ok", "unknown"]
    assert store.repair(now=later + timedelta(days=1)) == RepairResult()


def test_repair_counts_time_from_the_last_call_not_the_start(store: LedgerStore) -> None:
    run = make_run(host="ci-runner-17", pid=1)
    seed_run(store, run, ["ok"])
    store.import_records(
        [make_record(9, created_at=T0 + timedelta(hours=5), outcome="pending")], create_runs=False
    )
    assert store.repair(now=T0 + timedelta(hours=7)) == RepairResult()
    assert store.repair(now=T0 + timedelta(hours=11, minutes=1)).runs == ("run-1",)


# --- importing ----------------------------------------------------------------------------------


def three_records(run_id: str = "run-1") -> list[CallRecord]:
    return [
        make_record(1, run_id=run_id),
        make_record(2, run_id=run_id, cost_usd=None, outcome="invalid_output"),
        make_record(3, run_id=run_id, outcome="error", error="rate limited", completion_tokens=0),
    ]


def write_artifact(path: Path, records: list[CallRecord] | list[dict[str, Any]]) -> Path:
    calls = [r if isinstance(r, dict) else r.model_dump(mode="json") for r in records]
    path.write_text(json.dumps({"run_id": "run-1", "summary": "Adds retries.", "calls": calls}))
    return path


def write_spool(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "".join(
            (r.model_dump_json() if isinstance(r, CallRecord) else json.dumps(r)) + "\n"
            for r in lines
        )
    )
    return path


def test_import_of_an_artifact_is_idempotent(store: LedgerStore, tmp_path: Path) -> None:
    artifact = write_artifact(tmp_path / "ownit-review.json", three_records())
    records = read_records(artifact)
    assert records == three_records()
    assert store.import_records(records) == ImportResult(added=3)
    assert store.import_records(read_records(artifact)) == ImportResult(present=3)
    calls = store.calls()
    assert [c.idempotency_key for c in calls] == [f"run-1:chunk-{n}:1" for n in (1, 2, 3)]
    assert [c.error for c in calls if c.outcome == "error"] == ["rate limited"]
    (run,) = store.runs()
    assert (run.id, run.team, run.repo, run.status) == ("run-1", "core", "acme/app", "imported")


def test_import_into_an_existing_run_does_not_replace_it(store: LedgerStore) -> None:
    store.start_run(make_run())
    store.finish_run("run-1", status="complete")
    assert store.import_records(three_records()) == ImportResult(added=3)
    assert [r.status for r in store.runs()] == ["complete"]


def test_a_spool_with_every_state_of_a_call_imports_as_one_answered_call(
    store: LedgerStore, tmp_path: Path
) -> None:
    pending = make_record(1, outcome="pending", prompt_tokens=0, cost_usd=None, raw_usage=None)
    answered = make_record(1, outcome="answered")
    spool = write_spool(tmp_path / spool_name("run-1"), [pending, answered])
    assert is_spool(spool)
    assert read_records(spool) == [pending, answered]
    assert store.import_records(read_records(spool)) == ImportResult(added=1)
    (row,) = store.calls()
    assert (row.outcome, row.prompt_tokens, row.cost_usd) == ("answered", 1000, 0.01)
    assert store.import_records(read_records(spool)) == ImportResult(present=1)


def test_a_spool_of_a_single_call_is_read(store: LedgerStore, tmp_path: Path) -> None:
    """A one-chunk review whose ledger failed at its last write spools exactly one line."""
    spool = write_spool(tmp_path / spool_name("run-1"), [make_record(1)])
    assert read_records(spool) == [make_record(1)]
    assert store.import_records(read_records(spool)) == ImportResult(added=1)


@pytest.mark.parametrize("earlier", ["pending", "unknown"])
def test_import_never_downgrades_a_call(store: LedgerStore, earlier: str) -> None:
    store.import_records([make_record(1, outcome="answered")])
    stale = make_record(1, outcome=earlier, prompt_tokens=0, cost_usd=None)
    assert store.import_records([stale]) == ImportResult(present=1)
    (row,) = store.calls()
    assert (row.outcome, row.prompt_tokens, row.cost_usd) == ("answered", 1000, 0.01)


def test_import_completes_a_call_known_as_pending(store: LedgerStore) -> None:
    recorder = Recorder(make_run(), store)
    begin(recorder)  # the process died after this: the ledger holds a pending call
    final = make_record(1, created_at=store.calls()[0].created_at, outcome="ok")
    assert store.import_records([final, make_record(2)]) == ImportResult(added=1, updated=1)
    assert [(c.idempotency_key, c.outcome) for c in store.calls()] == [
        ("run-1:chunk-1:1", "ok"),
        ("run-1:chunk-2:1", "ok"),
    ]
    assert store.calls()[0].prompt_tokens == 1000


def test_an_artifact_with_edited_keys_imports_nothing_new(
    store: LedgerStore, tmp_path: Path
) -> None:
    store.import_records(three_records())
    edited = [
        {**r.model_dump(mode="json"), "idempotency_key": f"edited-{n}"}
        for n, r in enumerate(three_records())
    ]
    artifact = write_artifact(tmp_path / "edited.json", edited)
    assert store.import_records(read_records(artifact)) == ImportResult(present=3)
    assert len(store.calls()) == 3


def test_an_artifact_from_before_attempts_imports_with_the_attempt_of_its_key(
    store: LedgerStore, tmp_path: Path
) -> None:
    old = make_record(1).model_dump(mode="json", exclude={"attempt"})
    old["idempotency_key"] = "run-1:chunk-1:101"
    artifact = write_artifact(tmp_path / "old.json", [old])
    (record,) = read_records(artifact)
    assert (record.attempt, record.idempotency_key) == (101, "run-1:chunk-1:101")
    assert store.import_records([record]) == ImportResult(added=1)
    assert [(c.attempt, c.idempotency_key) for c in store.calls()] == [(101, "run-1:chunk-1:101")]


def test_an_import_with_other_time_zones_is_stored_in_utc(store: LedgerStore) -> None:
    paris = timezone(timedelta(hours=2))
    store.import_records([make_record(1, created_at=T0.astimezone(paris))])
    (row,) = store.calls()
    assert row.created_at == T0
    assert row.created_at.utcoffset() == timedelta(0)
    # 23:30 UTC is 01:30 the next day in Paris: spend counts on the UTC day.
    late = T0.replace(hour=23, minute=30)
    store.import_records([make_record(2, created_at=late.astimezone(paris))])
    query = ReportQuery(("team",), "day", since=T0.date(), until=T0.date() + timedelta(days=1))
    report = build(store, query, now=late)
    assert [(r.period, r.calls) for r in report.rows] == [("2025-03-01", 2)]


def _record_json(**changes: Any) -> dict[str, Any]:
    return {**make_record(1).model_dump(mode="json"), **changes}


BAD_FILES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "negative-tokens": (
        json.dumps({"calls": [_record_json(prompt_tokens=-5)]}).encode(),
        ("calls[0]", "prompt_tokens", "at least 0"),
    ),
    "negative-cost": (
        json.dumps({"calls": [_record_json(), _record_json(cost_usd=-0.5)]}).encode(),
        ("calls[1]", "cost_usd", "at least 0"),
    ),
    "infinite-cost": (
        json.dumps({"calls": [_record_json(cost_usd=float("inf"))]}).encode(),
        ("calls[0]", "cost_usd", "finite"),
    ),
    "calls-null": (b'{"calls": null}', ('"calls"', "null")),
    "calls-number": (b'{"calls": 5}', ('"calls"', "a number")),
    "a-list": (b"[1, 2]", ("a list", "not an ownit review artifact")),
    "not-utf8": (b'{"calls": []}\xff\xfe', ("not UTF-8",)),
    "huge-pr-number": (
        json.dumps({"calls": [_record_json(pr_number=2**70)]}).encode(),
        ("pr_number", "at most 2147483647"),
    ),
    "unknown-outcome": (
        json.dumps({"calls": [_record_json(outcome="billed")]}).encode(),
        ("outcome", "must be one of"),
    ),
    "missing-field": (
        json.dumps(
            {"calls": [{k: v for k, v in _record_json().items() if k != "run_id"}]}
        ).encode(),
        ("run_id", "is required"),
    ),
    "spool-non-object-line": (
        (json.dumps(_record_json()) + "\n[1, 2]\n").encode(),
        ("line 2", "JSON object"),
    ),
    "spool-bad-line": (
        (
            json.dumps(_record_json())
            + "\n"
            + json.dumps(_record_json(completion_tokens=-1))
            + "\n"
        ).encode(),
        ("line 2", "completion_tokens", "at least 0"),
    ),
    "spool-not-json": (
        (json.dumps(_record_json()) + "\n{half a record\n").encode(),
        ("line 2", "not JSON"),
    ),
    "not-an-artifact": (b'{"name": "web", "version": "1.0.0"}\n', ('without "calls"',)),
    "plain-text": (b"hello\nworld\n", ("line 1", "not JSON")),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_an_input_error_in_plain_words(case: str, tmp_path: Path) -> None:
    content, expected = BAD_FILES[case]
    path = tmp_path / f"{case}.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_records(path)
    text = f"{info.value.message} {info.value.hint or ''}"
    assert str(path) in info.value.message
    for words in expected:
        assert words in info.value.message
    for wording in PYDANTIC_WORDING:
        assert wording not in text
    assert info.value.exit_code == 2


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_records(tmp_path / "missing.jsonl")


def test_an_empty_artifact_imports_nothing(store: LedgerStore, tmp_path: Path) -> None:
    artifact = write_artifact(tmp_path / "empty.json", [])
    assert read_records(artifact) == []
    assert store.import_records([]) == ImportResult()


# --- the recorder's spool -----------------------------------------------------------------------


def run_three_calls(recorder: Recorder, break_after: Callable[[], None]) -> None:
    """chunk-1 finishes, the ledger breaks, chunk-2 is answered and chunk-3 left in flight."""
    answer(recorder, answer(recorder, begin(recorder, "chunk-1")), outcome="ok")
    break_after()
    answer(recorder, begin(recorder, "chunk-2"))
    begin(recorder, "chunk-3")


def test_a_ledger_that_breaks_mid_run_spools_every_call_of_the_run(
    store: LedgerStore, fresh_sqlite: LedgerStore
) -> None:
    recorder = Recorder(make_run(), store)

    def drop_calls() -> None:
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE calls"))

    run_three_calls(recorder, drop_calls)

    assert isinstance(recorder.error, LedgerError)
    assert recorder.error.hint
    assert not recorder.writing_ledger
    assert [(r.purpose, r.outcome) for r in recorder.rows] == [
        ("chunk-1", "ok"),
        ("chunk-2", "answered"),
        ("chunk-3", "pending"),
    ]
    spool = recorder.spool
    assert spool is not None and spool.name == spool_name("run-1") and is_spool(spool)
    assert spool.is_relative_to(Path(os.environ["XDG_DATA_HOME"]) / "ownit" / "unrecorded")
    recorder.close()

    # Later, `ownit ledger import <spool>` loads the run into a working ledger, once.
    assert fresh_sqlite.import_records(read_records(spool)) == ImportResult(added=3)
    assert fresh_sqlite.import_records(read_records(spool)) == ImportResult(present=3)
    got = [(c.idempotency_key, c.outcome, c.prompt_tokens) for c in fresh_sqlite.calls()]
    assert got == [
        ("run-1:chunk-1:1", "ok", 1200),
        ("run-1:chunk-2:1", "answered", 1200),
        ("run-1:chunk-3:1", "pending", 0),
    ]


def test_a_spooled_run_completes_the_calls_its_ledger_holds(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger had chunk-1 as pending when it stopped answering; the spool completes it."""
    recorder = Recorder(make_run(), store)
    first = begin(recorder, "chunk-1")

    def unreachable(record: CallRecord) -> None:
        raise LedgerError("ledger: cannot record a model call: server closed the connection")

    monkeypatch.setattr(store, "update_call", unreachable)
    answer(recorder, first, outcome="ok")
    assert recorder.error is not None
    assert recorder.spool is not None
    assert [c.outcome for c in store.calls()] == ["pending"]
    recorder.close()
    reopened = LedgerStore(store.url)
    try:
        assert reopened.import_records(read_records(recorder.spool)) == ImportResult(updated=1)
        assert [c.outcome for c in reopened.calls()] == ["ok"]
    finally:
        reopened.close()


def test_with_no_ledger_every_call_goes_to_the_spool(fresh_sqlite: LedgerStore) -> None:
    recorder = Recorder(make_run("run-9"), None, error=LedgerError("cannot open"))
    answer(recorder, begin(recorder, "chunk-1"), outcome="ok")
    answer(recorder, begin(recorder, "chunk-2"))
    recorder.update_run(files_total=2)
    recorder.finish(status="complete")
    assert recorder.spool is not None and recorder.spool.name == spool_name("run-9")
    assert len(read_records(recorder.spool)) == 4  # one line per state change
    recorder.close()
    assert fresh_sqlite.import_records(read_records(recorder.spool)) == ImportResult(added=2)
    assert [c.outcome for c in fresh_sqlite.calls()] == ["ok", "answered"]


@pytest.mark.parametrize("blocked", ["under-a-file", "read-only"])
def test_the_spool_goes_to_the_artifact_directory_when_the_data_directory_is_unusable(
    blocked: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if blocked == "under-a-file":
        data = block_directory(tmp_path)
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories")
        readonly = tmp_path / "readonly"
        readonly.mkdir()
        readonly.chmod(0o500)
        data = readonly / "share"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    out = tmp_path / "artifacts"
    recorder = Recorder(make_run(), None, error=LedgerError("cannot open"), spool_dirs=[out])
    answer(recorder, begin(recorder), outcome="ok")
    assert recorder.spool == out / spool_name("run-1")
    assert recorder.spool_problem is None
    assert [r.outcome for r in read_records(recorder.spool)] == ["pending", "ok"]
    recorder.close()


def test_with_nowhere_to_write_the_run_keeps_its_calls_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(block_directory(tmp_path)))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "a-regular-file" / "tmp"))
    out = tmp_path / "a-regular-file" / "out"
    recorder = Recorder(make_run(), None, error=LedgerError("cannot open"), spool_dirs=[out])
    answer(recorder, begin(recorder, "chunk-1"), outcome="ok")
    answer(recorder, begin(recorder, "chunk-2"))
    assert recorder.spool is None
    assert recorder.spool_problem is not None
    for folder in ("unrecorded", "out", "tmp"):
        assert folder in recorder.spool_problem
    assert [(r.purpose, r.outcome, r.prompt_tokens) for r in recorder.rows] == [
        ("chunk-1", "ok", 1200),
        ("chunk-2", "answered", 1200),
    ]
    recorder.close()


def test_a_spool_that_cannot_be_written_does_not_stop_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    unrecorded = data / "ownit" / "unrecorded"
    unrecorded.mkdir(parents=True)
    (unrecorded / spool_name("run-1")).symlink_to("/dev/full")  # a full disk
    recorder = Recorder(make_run(), None, error=LedgerError("cannot open"))
    answer(recorder, begin(recorder, "chunk-1"), outcome="ok")
    begin(recorder, "chunk-2")
    assert recorder.spool is None  # not a place that holds every call
    assert recorder.spool_problem and "No space left" in recorder.spool_problem
    assert [(r.purpose, r.outcome) for r in recorder.rows] == [
        ("chunk-1", "ok"),
        ("chunk-2", "pending"),
    ]
    recorder.close()


# --- a SQLite file deleted under a running review -----------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_ledger_file_deleted_mid_run_sends_the_calls_to_the_spool(
    how: str, tmp_path: Path, fresh_sqlite: LedgerStore
) -> None:
    path = tmp_path / "ledger.db"
    store = LedgerStore(f"sqlite:///{path}")
    recorder = Recorder(make_run(), store)

    def lose_the_file() -> None:
        path.unlink()
        if how == "replaced":
            other = LedgerStore(f"sqlite:///{path}")  # a new ledger at the same path
            other.close()

    run_three_calls(recorder, lose_the_file)
    assert isinstance(recorder.error, LedgerError)
    assert "deleted or replaced" in recorder.error.message
    assert recorder.spool is not None
    recorder.close()
    assert fresh_sqlite.import_records(read_records(recorder.spool)) == ImportResult(added=3)
    if how == "replaced":  # nothing of this run went into the new file
        other = LedgerStore(f"sqlite:///{path}")
        assert other.calls() == [] and other.runs() == []
        other.close()


def test_a_new_ledger_file_deleted_before_its_first_write_is_not_written_blind(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new.db"
    store = LedgerStore(f"sqlite:///{path}")
    path.unlink()
    with pytest.raises(LedgerError, match="deleted or replaced"):
        store.start_run(make_run())
    with pytest.raises(LedgerError, match="deleted or replaced"):
        store.insert_call(make_record(1))
    store.close()


# --- URLs and unreachable databases -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["definitely not a url", "oracle+cx://x/y", "oracle://scott@db/x", "mysql://u:pw@db/ownit"],
)
def test_a_url_ownit_cannot_use_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        LedgerStore(url)
    assert info.value.exit_code == 2
    assert info.value.hint
    assert "sqlite:///" in info.value.hint and "postgresql://" in info.value.hint
    assert "pw" not in info.value.message


def test_unreachable_postgres_is_a_ledger_error_without_the_password() -> None:
    with pytest.raises(LedgerError) as info:
        LedgerStore("postgresql://ownit:s3cret-pw@127.0.0.1:1/ledger?connect_timeout=2")
    assert "s3cret-pw" not in f"{info.value.message} {info.value.hint}"
    assert "127.0.0.1" in info.value.message
    assert info.value.hint and "OWNIT_LEDGER_URL" in info.value.hint
    assert info.value.exit_code == 4


@pytest.mark.parametrize("where", ["proc", "under_a_file"])
def test_uncreatable_sqlite_directory_is_a_ledger_error(where: str, tmp_path: Path) -> None:
    url = {
        "proc": "sqlite:////proc/forbidden/x.db",
        "under_a_file": f"sqlite:///{block_directory(tmp_path)}/ledger.db",
    }[where]
    with pytest.raises(LedgerError) as info:
        LedgerStore(url)
    assert info.value.hint and "OWNIT_LEDGER_URL" in info.value.hint
    assert info.value.exit_code == 4


def test_sqlite_path_that_is_a_directory_is_a_ledger_error(tmp_path: Path) -> None:
    folder = tmp_path / "ledger.db"
    folder.mkdir()
    with pytest.raises(LedgerError) as info:
        LedgerStore(f"sqlite:///{folder}")
    assert "cannot open" in info.value.message
    assert info.value.hint and "OWNIT_LEDGER_URL" in info.value.hint


def test_the_ledger_package_s_names_load_on_first_use() -> None:
    """``agent.ledger`` loads its names lazily (the report must not pay for the models):
    every advertised name still resolves, and to the object its module defines."""
    import importlib

    import agent.ledger as package

    for name in package.__all__:
        value = getattr(package, name)
        assert value is getattr(importlib.import_module(value.__module__), name)
    with pytest.raises(AttributeError):
        package.NoSuchName  # noqa: B018
