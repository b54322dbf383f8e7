"""The test ledgers: SQLite in the test's directory, and PostgreSQL when
``OWNIT_TEST_DATABASE_URL`` is set, e.g. ``postgresql://postgres@127.0.0.1:5432/test``.

On PostgreSQL each test session works in a database of its own, created on that server (and
dropped at exit), so two test runs on one machine never drop each other's tables; where the
role may not create databases, the given database itself is used. Its ownit tables are dropped
before each test. ``conftest.py`` turns these into fixtures."""

from __future__ import annotations

import atexit
import os
import uuid
from functools import cache

import pytest
import sqlalchemy as sa

from agent.ledger.database import sqlalchemy_url

PG_ENV = "OWNIT_TEST_DATABASE_URL"


# The tests connect to a ledger URL as the store does.
sa_url = sqlalchemy_url


def drop_ownit_tables(url: str) -> None:
    """Every table ownit's migrations create, so the next store migrates from nothing."""
    from sqlmodel import SQLModel

    import agent.ledger.records  # noqa: F401  (the tables, declared on SQLModel's metadata)

    names = ", ".join([*SQLModel.metadata.tables, "ownit_migrations"])
    engine = sa.create_engine(sa_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {names} CASCADE"))
    finally:
        engine.dispose()


def postgres_url() -> str:
    """The test PostgreSQL database with no ownit tables in it (skips without one)."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set")
    url = _session_database(url)
    drop_ownit_tables(url)
    return url


@cache
def _session_database(url: str) -> str:
    name = f"ownit_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(sa_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError:
        admin.dispose()
        return url  # no right to create databases: share the given one
    atexit.register(_drop_database, admin, name)
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
