"""The migrated schema is the schema the models in ``agent/ledger/records.py`` declare.

``migrations.py`` writes the tables by hand (a released migration is never edited); the models
are what every query and insert is built from. Alembic's autogenerate comparison reflects a
migrated database and lists every difference from the models' metadata: column types,
nullability, server defaults, indexes, unique constraints and foreign keys. Both a blank
database and one upgraded from the first release (m001 only, with rows) must show none.

Runs on SQLite, and on PostgreSQL when ``OWNIT_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from agent.ledger import Call, LedgerStore, Run, tables
from agent.ledger.migrations import m001_initial
from tests.test_ledger import create_m001_ledger, postgres_url

# ownit's tables; ``ownit_migrations`` is the migrations' own bookkeeping, not a model.
OWNIT_TABLES = {"runs", "calls", "budgets", "chunk_cache", "spend_daily"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations' / 'ledger.db'}"
    return postgres_url()


@pytest.fixture
def opened(blank_url: str) -> Iterator[list[LedgerStore]]:
    stores: list[LedgerStore] = []
    yield stores
    for store in stores:
        store.close()


def _ours(name: str | None, type_: str, parent_names: Any) -> bool:
    return type_ != "table" or name in OWNIT_TABLES


def _ours_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return type_ != "table" or name in OWNIT_TABLES


def schema_diff(engine: sa.Engine, metadata: sa.MetaData | None = None) -> list[Any]:
    """Every difference between the database behind ``engine`` and the models."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": _ours,
                "include_object": _ours_object,
            },
        )
        return list(compare_metadata(context, metadata or SQLModel.metadata))


def test_the_models_are_exactly_ownit_s_tables() -> None:
    # The comparison reads the shared metadata: it must hold the very tables the store uses.
    assert SQLModel.metadata.tables["calls"] is Call.__table__  # type: ignore[attr-defined]
    assert SQLModel.metadata.tables["runs"] is Run.__table__  # type: ignore[attr-defined]


def test_a_blank_database_migrates_to_the_models_schema(
    blank_url: str, opened: list[LedgerStore]
) -> None:
    store = LedgerStore(blank_url)
    opened.append(store)
    assert schema_diff(store.engine) == []


def test_an_upgrade_from_the_first_release_migrates_to_the_models_schema(
    blank_url: str, opened: list[LedgerStore]
) -> None:
    create_m001_ledger(blank_url, ["run:chunk-1:1", "run:chunk-1:101", "run:synthesis:1"])
    store = LedgerStore(blank_url)
    opened.append(store)
    assert schema_diff(store.engine) == []
    assert [c.attempt for c in store.calls()] == [1, 101, 1]


def _mutated_models() -> sa.MetaData:
    """The models with one difference of each kind the comparison must notice."""
    meta = sa.MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(meta)
    calls, runs = meta.tables["calls"], meta.tables["runs"]
    # Sums of a million calls' tokens and nano-dollars outgrow a 32-bit INTEGER.
    meta.tables["spend_daily"].c.cost_nusd.type = sa.Integer()
    calls.c.model.nullable = True
    calls.c.latency_ms.type = sa.BigInteger()
    calls.c.attempt.server_default = sa.DefaultClause(sa.text("7"))
    calls.append_constraint(sa.UniqueConstraint("purpose", "model", name="uq_calls_purpose"))
    runs.indexes.discard(next(ix for ix in runs.indexes if ix.name == "ix_runs_status"))
    return meta


def test_the_comparison_notices_drift(blank_url: str, opened: list[LedgerStore]) -> None:
    """Guards the check itself: on each database it sees types, nullability, defaults, unique
    constraints and indexes (a check that sees nothing would pass forever)."""
    store = LedgerStore(blank_url)
    opened.append(store)
    found: set[tuple[str, str]] = set()
    for entry in schema_diff(store.engine, _mutated_models()):
        for op in entry if isinstance(entry, list) else [entry]:
            kind = op[0]
            if kind.startswith("modify_"):
                found.add((kind, op[3]))
            elif kind in ("add_constraint", "remove_index"):
                found.add((kind, op[1].name))
            else:
                found.add((kind, ""))
    assert found == {
        ("modify_nullable", "model"),
        ("modify_type", "latency_ms"),
        ("modify_type", "cost_nusd"),
        ("modify_default", "attempt"),
        ("add_constraint", "uq_calls_purpose"),
        ("remove_index", "ix_runs_status"),
    }


def _report_tables_only(metadata: sa.MetaData) -> dict[str, Any]:
    names = set(metadata.tables)
    return {
        "include_name": lambda name, type_, parent: type_ != "table" or name in names,
        "include_object": lambda obj, name, type_, reflected, other: (
            type_ != "table" or name in names
        ),
    }


def report_tables_diff(engine: sa.Engine, metadata: sa.MetaData = tables.metadata) -> list[Any]:
    """Every difference between the migrated database and the Core tables reports read."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                **_report_tables_only(metadata),
            },
        )
        return list(compare_metadata(context, metadata))


def _columns(table: sa.Table) -> list[tuple[Any, ...]]:
    dialects = [sa.dialects.sqlite.dialect(), sa.dialects.postgresql.dialect()]
    return [
        (
            c.name,
            *(c.type.compile(dialect=d) for d in dialects),
            c.nullable,
            c.primary_key,
            c.autoincrement if c.primary_key else None,
            str(c.server_default.arg) if c.server_default is not None else None,
        )
        for c in table.columns
    ]


def test_the_reports_core_tables_are_the_models_tables() -> None:
    """``ownit ledger report`` reads through ``tables.py`` rather than the SQLModel classes
    (they cost a third of its start-up): the two must declare the same columns."""
    for name, table in tables.metadata.tables.items():
        model = SQLModel.metadata.tables[name]
        assert _columns(table) == _columns(model), name
        assert table.dialect_kwargs == model.dialect_kwargs, name


def test_the_reports_core_tables_match_the_migrated_schema(
    blank_url: str, opened: list[LedgerStore]
) -> None:
    store = LedgerStore(blank_url)
    opened.append(store)
    assert report_tables_diff(store.engine) == []


def test_the_report_tables_comparison_notices_drift(
    blank_url: str, opened: list[LedgerStore]
) -> None:
    store = LedgerStore(blank_url)
    opened.append(store)
    meta = sa.MetaData()
    for table in tables.metadata.tables.values():
        table.to_metadata(meta)
    meta.tables["spend_daily"].c.cost_nusd.type = sa.Integer()
    meta.tables["budgets"].c.warn_at.nullable = True
    found = {
        (op[0], op[3])
        for entry in report_tables_diff(store.engine, meta)
        for op in (entry if isinstance(entry, list) else [entry])
    }
    assert found == {("modify_type", "cost_nusd"), ("modify_nullable", "warn_at")}
    # And the column-by-column comparison with the models sees it too.
    assert _columns(meta.tables["spend_daily"]) != _columns(SQLModel.metadata.tables["spend_daily"])


# What m001 creates on SQLite, as the first release shipped it. A released migration is never
# edited: ledgers in the field were made by exactly this.
M001_SQLITE = {
    "runs": (
        "CREATE TABLE runs (\n\tid VARCHAR NOT NULL, \n\tstarted_at DATETIME NOT NULL, \n\t"
        "finished_at DATETIME, \n\tteam VARCHAR, \n\trepo VARCHAR, \n\tpr_number INTEGER, \n\t"
        "head_sha VARCHAR, \n\tbase VARCHAR, \n\tauthor VARCHAR, \n\tmodel_name VARCHAR, \n\t"
        "status VARCHAR NOT NULL, \n\tfiles_total INTEGER NOT NULL, \n\t"
        "files_reviewed INTEGER NOT NULL, \n\thunks_total INTEGER NOT NULL, \n\t"
        "hunks_reviewed INTEGER NOT NULL, \n\tprompt_version VARCHAR, \n\t"
        "ownit_version VARCHAR, \n\tPRIMARY KEY (id)\n)"
    ),
    "calls": (
        "CREATE TABLE calls (\n\tid INTEGER NOT NULL, \n\tidempotency_key VARCHAR NOT NULL, \n\t"
        "run_id VARCHAR NOT NULL, \n\tcreated_at DATETIME NOT NULL, \n\tteam VARCHAR, \n\t"
        "repo VARCHAR, \n\tpr_number INTEGER, \n\thead_sha VARCHAR, \n\tauthor VARCHAR, \n\t"
        "purpose VARCHAR NOT NULL, \n\tmodel_name VARCHAR NOT NULL, \n\tmodel VARCHAR NOT NULL, "
        "\n\tprovider VARCHAR NOT NULL, \n\tprompt_tokens INTEGER NOT NULL, \n\t"
        "completion_tokens INTEGER NOT NULL, \n\tcached_tokens INTEGER NOT NULL, \n\t"
        "reasoning_tokens INTEGER NOT NULL, \n\tcost_usd FLOAT, \n\t"
        "latency_ms INTEGER NOT NULL, \n\toutcome VARCHAR NOT NULL, \n\terror VARCHAR, \n\t"
        "raw_usage JSON, \n\tPRIMARY KEY (id), \n\tUNIQUE (idempotency_key), \n\t"
        "FOREIGN KEY(run_id) REFERENCES runs (id)\n)"
    ),
    "ix_calls_run_id": "CREATE INDEX ix_calls_run_id ON calls (run_id)",
    "ix_calls_team_repo_created": (
        "CREATE INDEX ix_calls_team_repo_created ON calls (team, repo, created_at)"
    ),
}


def test_the_released_first_migration_is_unchanged() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        m001_initial(conn)
        rows = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
        assert dict(rows.all()) == M001_SQLITE
    engine.dispose()
