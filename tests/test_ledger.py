"""Tests for the cost ledger (agent.ledger): migrations, idempotent writes, imports, spend.

Store tests run on SQLite, and on PostgreSQL too when ``OWNIT_TEST_DATABASE_URL`` is set, e.g.
``OWNIT_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test``. That database's ownit
tables are dropped before each test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agent.errors import InputError, LedgerError
from agent.ledger import LedgerStore, Recorder, Run, read_rows
from agent.ledger.migrations import migrate
from agent.result import LedgerRow

PG_ENV = "OWNIT_TEST_DATABASE_URL"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def sa_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def drop_ownit_tables(url: str) -> None:
    engine = sa.create_engine(sa_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS calls, runs, ownit_migrations CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'ledger.db'}"
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set")
    drop_ownit_tables(url)
    return url


@pytest.fixture
def open_store(ledger_url: str) -> Iterator[Callable[[], LedgerStore]]:
    """Opens (and at the end closes) stores on this test's ledger."""
    opened: list[LedgerStore] = []

    def _open() -> LedgerStore:
        store = LedgerStore(ledger_url)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.engine.dispose()


@pytest.fixture
def store(open_store: Callable[[], LedgerStore]) -> LedgerStore:
    return open_store()


def make_row(n: int = 1, **values: Any) -> LedgerRow:
    fields: dict[str, Any] = {
        "idempotency_key": f"run-1:chunk-{n}:1",
        "run_id": "run-1",
        "created_at": T0,
        "team": "core",
        "repo": "acme/app",
        "pr_number": 7,
        "head_sha": "abc123",
        "author": "dev",
        "purpose": f"chunk-{n}",
        "model_name": "gpt",
        "model": "openai/gpt-4.1-mini",
        "provider": "openai",
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": 0.01,
        "latency_ms": 900,
        "outcome": "ok",
        "error": None,
        "raw_usage": {"prompt_tokens": 1000, "completion_tokens": 200},
    }
    fields.update(values)
    return LedgerRow(**fields)


def make_run(run_id: str = "run-1") -> Run:
    return Run(id=run_id, started_at=T0, team="core", repo="acme/app", model_name="gpt")


def table_names(store: LedgerStore) -> set[str]:
    return set(sa.inspect(store.engine).get_table_names())


def applied_migrations(store: LedgerStore) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT name FROM ownit_migrations"))]


# --- schema -------------------------------------------------------------------------------------


def test_fresh_store_creates_tables_and_records_the_migration(store: LedgerStore) -> None:
    assert {"runs", "calls", "ownit_migrations"} <= table_names(store)
    assert applied_migrations(store) == ["m001_initial"]


def test_opening_twice_is_a_no_op(open_store: Callable[[], LedgerStore]) -> None:
    first = open_store()
    first.start_run(make_run())
    assert first.add_call(make_row())
    second = open_store()
    assert applied_migrations(second) == ["m001_initial"]
    assert [c.idempotency_key for c in second.calls()] == ["run-1:chunk-1:1"]
    with second.engine.begin() as conn:
        assert migrate(conn) == []


def test_sqlite_ledger_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "ledger.db"
    LedgerStore(f"sqlite:///{path}").engine.dispose()
    assert path.is_file()


def test_default_url_comes_from_the_environment(tmp_path: Path) -> None:
    store = LedgerStore()
    store.engine.dispose()
    assert (tmp_path / "ledger.db").is_file()  # conftest points OWNIT_LEDGER_URL here


# --- writing calls ------------------------------------------------------------------------------


def test_add_call_is_idempotent(store: LedgerStore) -> None:
    store.start_run(make_run())
    assert store.add_call(make_row(1)) is True
    assert store.add_call(make_row(1, prompt_tokens=5)) is False
    assert store.add_call(make_row(2)) is True
    calls = store.calls()
    assert [c.idempotency_key for c in calls] == ["run-1:chunk-1:1", "run-1:chunk-2:1"]
    assert calls[0].prompt_tokens == 1000  # the first write stands
    assert calls[0].raw_usage == {"prompt_tokens": 1000, "completion_tokens": 200}
    assert [c.purpose for c in store.calls("run-1")] == ["chunk-1", "chunk-2"]
    assert store.calls("other-run") == []


def test_start_run_twice_keeps_one_run(store: LedgerStore) -> None:
    store.start_run(make_run())
    store.start_run(make_run())
    store.finish_run("run-1", status="complete", files_reviewed=3)
    (run,) = store.runs()
    assert (run.status, run.files_reviewed) == ("complete", 3)
    assert run.finished_at is not None


# --- importing ----------------------------------------------------------------------------------


def rows_for_import() -> list[LedgerRow]:
    return [
        make_row(1),
        make_row(2, cost_usd=None, outcome="invalid_output"),
        make_row(3, outcome="error", error="rate limited", completion_tokens=0),
    ]


def test_import_from_a_spool_file_is_idempotent(store: LedgerStore, tmp_path: Path) -> None:
    spool = tmp_path / "run-1.jsonl"
    spool.write_text("".join(r.model_dump_json() + "\n" for r in rows_for_import()))
    assert store.import_rows(read_rows(spool)) == (3, 0)
    assert store.import_rows(read_rows(spool)) == (0, 3)
    assert len(store.calls()) == 3
    (run,) = store.runs()
    assert (run.id, run.team, run.repo, run.status) == ("run-1", "core", "acme/app", "imported")


def test_import_from_a_json_artifact_is_idempotent(store: LedgerStore, tmp_path: Path) -> None:
    artifact = tmp_path / "review.json"
    artifact.write_text(
        json.dumps(
            {
                "run_id": "run-1",
                "summary": "Adds retries.",
                "calls": [r.model_dump(mode="json") for r in rows_for_import()],
            }
        )
    )
    rows = read_rows(artifact)
    assert rows == rows_for_import()
    assert store.import_rows(rows) == (3, 0)
    assert store.import_rows(read_rows(artifact)) == (0, 3)
    assert [r.id for r in store.runs()] == ["run-1"]
    errored = [c for c in store.calls() if c.outcome == "error"]
    assert [c.error for c in errored] == ["rate limited"]


def test_import_into_an_existing_run_does_not_replace_it(store: LedgerStore) -> None:
    store.start_run(make_run())
    store.finish_run("run-1", status="complete")
    assert store.import_rows([make_row(1), make_row(2)]) == (2, 0)
    (run,) = store.runs()
    assert run.status == "complete"


# --- spend --------------------------------------------------------------------------------------


def test_spend_groups_sums_and_counts_unpriced_calls(store: LedgerStore) -> None:
    rows = [
        make_row(1, team="a", repo="x", cost_usd=0.5, prompt_tokens=100, completion_tokens=10),
        make_row(2, team="a", repo="x", cost_usd=0.25, prompt_tokens=200, completion_tokens=20),
        make_row(3, team="a", repo="y", cost_usd=None, prompt_tokens=300, completion_tokens=30),
        make_row(4, team="b", repo="x", cost_usd=1.0, prompt_tokens=400, completion_tokens=40),
        make_row(5, team="b", repo="x", cost_usd=None, prompt_tokens=500, completion_tokens=50),
    ]
    assert store.import_rows(rows) == (5, 0)
    got = {(r["team"], r["repo"]): r for r in store.spend(("team", "repo"))}
    assert set(got) == {("a", "x"), ("a", "y"), ("b", "x")}

    def summary(key: tuple[str, str]) -> tuple[int, int, int, int]:
        r = got[key]
        return (r["calls"], r["prompt_tokens"], r["completion_tokens"], r["unpriced"])

    assert summary(("a", "x")) == (2, 300, 30, 0)
    assert summary(("a", "y")) == (1, 300, 30, 1)
    assert summary(("b", "x")) == (2, 900, 90, 1)
    assert got[("a", "x")]["cost_usd"] == pytest.approx(0.75)
    assert got[("a", "y")]["cost_usd"] is None  # nothing priced: unknown, not zero
    assert got[("b", "x")]["cost_usd"] == pytest.approx(1.0)  # a lower bound, 1 unpriced

    by_team = {r["team"]: r for r in store.spend(("team",))}
    assert {t: r["calls"] for t, r in by_team.items()} == {"a": 3, "b": 2}


def test_spend_since_leaves_out_older_calls(store: LedgerStore) -> None:
    old = datetime(2024, 1, 1, tzinfo=UTC)
    new = datetime(2025, 6, 1, tzinfo=UTC)
    store.import_rows([make_row(1, created_at=old, cost_usd=5.0), make_row(2, created_at=new)])
    (row,) = store.spend(("repo",), since=datetime(2025, 1, 1, tzinfo=UTC))
    assert row["calls"] == 1
    assert row["cost_usd"] == pytest.approx(0.01)


def test_spend_on_an_empty_ledger_is_empty(store: LedgerStore) -> None:
    assert store.spend(("team", "repo")) == []


# --- the recorder -------------------------------------------------------------------------------


def test_recorder_writes_each_call_at_once(store: LedgerStore) -> None:
    store.start_run(make_run())
    recorder = Recorder(run=make_run(), store=store)
    recorder.record(make_row(1))
    assert [c.purpose for c in store.calls()] == ["chunk-1"]  # before the run ends
    assert recorder.error is None and recorder.spool is None


def drop_remaining_tables(store: LedgerStore) -> None:
    """After ``calls`` was dropped: drop the rest too, so the next open starts blank."""
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS runs"))
        conn.execute(sa.text("DROP TABLE IF EXISTS ownit_migrations"))
    store.engine.dispose()


def test_recorder_spools_when_the_store_fails_and_the_spool_imports_later(
    store: LedgerStore, open_store: Callable[[], LedgerStore]
) -> None:
    store.start_run(make_run())
    recorder = Recorder(run=make_run(), store=store)
    recorder.record(make_row(1))
    with store.engine.begin() as conn:  # the ledger breaks mid-run
        conn.execute(sa.text("DROP TABLE calls"))
    recorder.record(make_row(2))
    recorder.record(make_row(3))

    assert isinstance(recorder.error, LedgerError)
    assert recorder.error.hint
    assert [r.purpose for r in recorder.rows] == ["chunk-1", "chunk-2", "chunk-3"]
    spool = recorder.spool
    assert spool is not None and spool.name == "run-1.jsonl"
    assert spool.is_relative_to(Path(os.environ["XDG_DATA_HOME"]))
    assert read_rows(spool) == [make_row(2), make_row(3)]

    # Later, with the ledger repaired, `ownit ledger import <spool>` loads what was missed.
    drop_remaining_tables(store)
    repaired = open_store()
    assert repaired.import_rows(read_rows(spool)) == (2, 0)
    assert [c.purpose for c in repaired.calls()] == ["chunk-2", "chunk-3"]


def test_recorder_without_a_store_spools_everything() -> None:
    recorder = Recorder(run=make_run("run-9"), store=None)
    recorder.record(make_row(1, run_id="run-9", idempotency_key="run-9:chunk-1:1"))
    recorder.record(make_row(2, run_id="run-9", idempotency_key="run-9:chunk-2:1"))
    assert recorder.spool is not None and recorder.spool.name == "run-9.jsonl"
    assert len(read_rows(recorder.spool)) == 2


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["proc", "under_a_file"])
def test_uncreatable_sqlite_directory_is_a_ledger_error(where: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    url = {
        "proc": "sqlite:////proc/forbidden/x.db",
        "under_a_file": f"sqlite:///{blocker}/sub/ledger.db",
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


def test_unreachable_postgres_is_a_ledger_error_without_the_password() -> None:
    with pytest.raises(LedgerError) as info:
        LedgerStore("postgresql://ownit:s3cret-pw@127.0.0.1:1/ledger?connect_timeout=2")
    assert "s3cret-pw" not in info.value.message
    assert "127.0.0.1" in info.value.message
    assert info.value.hint


def test_unparsable_url_is_a_ledger_error() -> None:
    with pytest.raises(LedgerError, match="not an SQLAlchemy URL"):
        LedgerStore("definitely not a url")


@pytest.mark.parametrize(
    "content", ["hello\nworld\n", "[1, 2, 3]\n", '{"calls": [{"purpose": "x"}]}\n']
)
def test_read_rows_rejects_files_that_are_not_ledger_rows(content: str, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        read_rows(path)
    assert str(path) in info.value.message


def test_read_rows_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_rows(tmp_path / "missing.jsonl")


def test_single_row_spool_is_read(tmp_path: Path) -> None:
    recorder = Recorder(run=make_run(), store=None)
    recorder.record(make_row(1))  # a one-chunk review makes one call
    assert recorder.spool is not None
    assert read_rows(recorder.spool) == [make_row(1)]


def test_read_rows_rejects_a_json_object_that_is_not_an_artifact(tmp_path: Path) -> None:
    path = tmp_path / "package.json"
    path.write_text('{"name": "web", "version": "1.0.0"}\n')
    with pytest.raises(InputError):
        read_rows(path)
