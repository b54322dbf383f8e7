"""The test ledgers: SQLite in the test's directory, and PostgreSQL when
``OWNIT_TEST_DATABASE_URL`` is set, e.g. ``postgresql://postgres@127.0.0.1:5432/test``, whose
ownit tables are dropped before each test. ``conftest.py`` turns these into fixtures."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

PG_ENV = "OWNIT_TEST_DATABASE_URL"


def sa_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def drop_ownit_tables(url: str) -> None:
    engine = sa.create_engine(sa_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "DROP TABLE IF EXISTS calls, runs, budgets, chunk_cache, spend_daily,"
                    " ownit_migrations CASCADE"
                )
            )
    finally:
        engine.dispose()


def postgres_url() -> str:
    """The test PostgreSQL database with no ownit tables in it (skips without one)."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set")
    drop_ownit_tables(url)
    return url
