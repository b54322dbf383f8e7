"""What reports read, as plain SQLAlchemy Core tables: the ``spend_daily`` rollup, the
``pull_requests`` it numbers, and ``budgets``.

The SQLModel classes in ``records.py`` declare the same tables, and ``migrations.py`` creates
them; a report builds its SQL from these instead, so ``ownit ledger report`` never imports
SQLModel, the ORM or the call models (about a third of its start-up). ``tests/test_migrations.py``
fails when these and the models or the migrated schema differ.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Dollars are stored in the rollup as integer nano-dollars: sums of these are exact in any order.
NANO = 1_000_000_000

# The rollup's key: one row per UTC day and everything a report groups by.
KEY = ("day", "team", "repo", "pr_number", "author", "model_name", "model", "provider")
# What each row sums.
SUMS = (
    "calls",
    "errors",
    "unknown_calls",
    "unpriced_calls",
    "estimated_calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nusd",
    "cache_savings_nusd",
)

_TZ = sa.DateTime(timezone=True)

spend_daily = sa.Table(
    "spend_daily",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    *(sa.Column(name, sa.String, primary_key=True) for name in ("team", "repo")),
    sa.Column("pr_number", sa.Integer, primary_key=True, autoincrement=False),
    *(
        sa.Column(name, sa.String, primary_key=True)
        for name in ("author", "model_name", "model", "provider")
    ),
    *(sa.Column(name, sa.String, nullable=False) for name in ("week", "month", "quarter")),
    *(sa.Column(name, sa.BigInteger, nullable=False, server_default=sa.text("0")) for name in SUMS),
    # The row's pull request as one integer (``pull_requests.id``; NULL: no PR), set when the row
    # is written: reports count distinct PRs by it, not by building "repo#number" per row.
    sa.Column("pr_id", sa.Integer),
    sqlite_with_rowid=False,
)

# Every pull request the rollup has seen, numbered once: (repo, number) -> id.
pull_requests = sa.Table(
    "pull_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("repo", sa.String, nullable=False),
    sa.Column("pr_number", sa.Integer, nullable=False),
    sa.UniqueConstraint("repo", "pr_number", name="uq_pull_requests_repo_pr"),
)

budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("team", sa.String, primary_key=True),
    sa.Column("starts", sa.Date, primary_key=True),
    sa.Column("monthly_usd", sa.Float),
    sa.Column("warn_at", sa.Float, nullable=False),
    sa.Column("on_exceed", sa.String, nullable=False),
    sa.Column("downgrade_to", sa.String),
    sa.Column("set_at", _TZ, nullable=False),
    sa.Column("set_by", sa.String),
)
