"""Ordered, named schema migrations, recorded in ``ownit_migrations``.

Written as SQLAlchemy DDL so they run on SQLite and PostgreSQL alike. A released migration is
never edited: change the schema by appending a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

Migration = Callable[[Connection], None]


def m001_initial(conn: Connection) -> None:
    meta = sa.MetaData()
    tz = sa.DateTime(timezone=True)
    sa.Table(
        "runs",
        meta,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("started_at", tz, nullable=False),
        sa.Column("finished_at", tz),
        sa.Column("team", sa.String),
        sa.Column("repo", sa.String),
        sa.Column("pr_number", sa.Integer),
        sa.Column("head_sha", sa.String),
        sa.Column("base", sa.String),
        sa.Column("author", sa.String),
        sa.Column("model_name", sa.String),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("files_total", sa.Integer, nullable=False),
        sa.Column("files_reviewed", sa.Integer, nullable=False),
        sa.Column("hunks_total", sa.Integer, nullable=False),
        sa.Column("hunks_reviewed", sa.Integer, nullable=False),
        sa.Column("prompt_version", sa.String),
        sa.Column("ownit_version", sa.String),
    )
    calls = sa.Table(
        "calls",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String, nullable=False, unique=True),
        sa.Column("run_id", sa.String, sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("team", sa.String),
        sa.Column("repo", sa.String),
        sa.Column("pr_number", sa.Integer),
        sa.Column("head_sha", sa.String),
        sa.Column("author", sa.String),
        sa.Column("purpose", sa.String, nullable=False),
        sa.Column("model_name", sa.String, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("error", sa.String),
        sa.Column("raw_usage", sa.JSON),
    )
    # Spend reports group by these; a covering index keeps them fast on large ledgers.
    sa.Index("ix_calls_team_repo_created", calls.c.team, calls.c.repo, calls.c.created_at)
    meta.create_all(conn)


MIGRATIONS: list[tuple[str, Migration]] = [
    ("m001_initial", m001_initial),
]

_applied = sa.Table(
    "ownit_migrations",
    sa.MetaData(),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


def migrate(conn: Connection) -> list[str]:
    """Apply the migrations not yet recorded; returns their names."""
    _applied.create(conn, checkfirst=True)
    done = {row[0] for row in conn.execute(sa.select(_applied.c.name))}
    applied = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        step(conn)
        conn.execute(_applied.insert().values(name=name, applied_at=datetime.now(UTC)))
        applied.append(name)
    return applied
