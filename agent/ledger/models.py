"""Ledger tables. The schema itself is created and changed only by ``migrations.py``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel


def _utc() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False)


class Run(SQLModel, table=True):
    """One ``ownit review``."""

    __tablename__ = "runs"

    id: str = Field(primary_key=True)
    started_at: datetime = Field(sa_column=_utc())
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    team: str | None = None
    repo: str | None = None
    pr_number: int | None = None
    head_sha: str | None = None
    base: str | None = None
    author: str | None = None
    model_name: str | None = None
    status: str = "running"  # running | complete | incomplete | failed
    files_total: int = 0
    files_reviewed: int = 0
    hunks_total: int = 0
    hunks_reviewed: int = 0
    prompt_version: str | None = None
    ownit_version: str | None = None


class Call(SQLModel, table=True):
    """One model call attempt: the unit a vendor bills."""

    __tablename__ = "calls"

    id: int | None = Field(default=None, primary_key=True)
    # "<run id>:<purpose>:<attempt>": a re-imported artifact or retried CI job never counts twice.
    idempotency_key: str = Field(unique=True)
    run_id: str = Field(foreign_key="runs.id", index=True)
    created_at: datetime = Field(sa_column=_utc())
    # Denormalised from the run so spend reports group one table.
    team: str | None = None
    repo: str | None = None
    pr_number: int | None = None
    head_sha: str | None = None
    author: str | None = None
    purpose: str
    model_name: str
    model: str
    provider: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: int = 0
    outcome: str  # ok | invalid_output | error
    error: str | None = None
    # The provider's own usage block, so costs can be recomputed when prices change.
    raw_usage: dict[str, object] | None = Field(default=None, sa_column=Column(JSON))
