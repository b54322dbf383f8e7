"""The ledger's records: one definition each, shared by the tables, the JSON artifact, the spool
file and ``ownit ledger import`` (SQLModel's "multiple models with inheritance").

    RunInfo   frozen identity of one ``ownit review``, built once and passed down
    └── Run   the ``runs`` table: the identity plus status and coverage
    CallBase  every field of one model call attempt, validated
    ├── Call        the ``calls`` table
    └── CallRecord  the same row as data: artifact, spool, import; its key derived from content

The tables' schema is created and changed only by ``migrations.py``; a test compares the two.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import ConfigDict, field_validator, model_validator
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    String,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlmodel import Field, SQLModel

from agent.ledger.periods import utc
from agent.ledger.reports import OnExceed

__all__ = [
    "MAX_INT",
    "Budget",
    "CachedChunk",
    "Call",
    "CallBase",
    "CallRecord",
    "OnExceed",
    "Outcome",
    "PullRequest",
    "Run",
    "RunInfo",
    "RunStatus",
    "SpendDaily",
    "outcome_rank",
    "utc",
]

# PostgreSQL's INTEGER; a larger PR number is a mistake, not a PR.
MAX_INT = 2**31 - 1

RunStatus = Literal["running", "complete", "incomplete", "failed", "interrupted", "imported"]

# pending       written before the request is sent (a kill after this point loses nothing)
# answered      the provider replied and billed; the reply was not yet checked
# ok            the reply was used
# invalid_output  billed, but the reply was unusable (not the schema, empty, echoed)
# error         the provider failed the request; nothing was billed for it
# unknown       the process died while the call was in flight (set by ``ownit ledger repair``)
# cached        no call: the review of unchanged files came from the content cache; it costs
#               nothing and saves (cache_savings_usd) what producing it cost
Outcome = Literal["pending", "answered", "ok", "invalid_output", "error", "unknown", "cached"]
_RANK = {
    "pending": 0,
    "unknown": 1,
    "answered": 2,
    "ok": 3,
    "invalid_output": 3,
    "error": 3,
    "cached": 3,
}


def outcome_rank(outcome: str) -> int:
    """How far a call got; a later state of the same call replaces an earlier one, never back."""
    return _RANK.get(outcome, 0)


def _cost() -> Any:
    """A price or cost: never negative, never infinite or NaN (either would poison every sum)."""
    return Field(default=None, ge=0, schema_extra={"allow_inf_nan": False})


def _server_default(value: int) -> dict[str, Any]:
    return {"server_default": text(str(value))}


class RunInfo(SQLModel):
    """Who and what a run is for. Frozen: built once in ``review.py``."""

    model_config = ConfigDict(frozen=True)  # type: ignore[assignment]

    id: str = Field(primary_key=True)
    started_at: datetime = Field(sa_type=DateTime(timezone=True))
    team: str | None = None
    repo: str | None = None
    pr_number: int | None = Field(default=None, ge=1, le=MAX_INT)
    head_sha: str | None = None
    base: str | None = None
    author: str | None = None
    model_name: str | None = None
    prompt_version: str | None = None
    ownit_version: str | None = None
    # Where the run's process lives, so a later run can tell a crashed run from a running one.
    host: str | None = None
    pid: int | None = Field(default=None, ge=1, le=MAX_INT)
    # False when the run sent the diff unmasked (--no-mask).
    masking: bool = Field(default=True, sa_column_kwargs={"server_default": true()})

    @field_validator("started_at")
    @classmethod
    def _started_utc(cls, value: datetime) -> datetime:
        return utc(value)


class Run(RunInfo, table=True):
    """One ``ownit review``."""

    __tablename__ = "runs"
    model_config = ConfigDict(frozen=False)

    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    status: RunStatus = Field(default="running", sa_type=String, index=True)
    files_total: int = 0
    files_reviewed: int = 0
    hunks_total: int = 0
    hunks_reviewed: int = 0
    # Credentials masked in what was sent: how many, and [{kind, path, side, line}], no values.
    secrets_masked: int = Field(default=0, sa_column_kwargs=_server_default(0))
    secret_findings: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON)

    @field_validator("finished_at")
    @classmethod
    def _finished_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)


def call_key(run_id: str, purpose: str, attempt: int) -> str:
    """The idempotency key of a call: a re-imported artifact or a retried CI job never counts
    one call twice, and a key that was edited in an artifact does not make a new call."""
    return f"{run_id}:{purpose}:{attempt}"


class CallBase(SQLModel):
    """One model call attempt: the unit a vendor bills."""

    idempotency_key: str = Field(unique=True)
    run_id: str = Field(foreign_key="runs.id", index=True)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    # Denormalised from the run so spend reports read one table.
    team: str | None = None
    repo: str | None = None
    pr_number: int | None = Field(default=None, ge=1, le=MAX_INT)
    head_sha: str | None = None
    author: str | None = None
    purpose: str  # chunk-3, chunk-3.2 (a split), synthesis, synthesis-1.2 (a stage)
    # Server defaults: what rows older than the column (m002) hold; the table says so too.
    attempt: int = Field(default=1, ge=1, le=MAX_INT, sa_column_kwargs=_server_default(1))
    model_name: str
    model: str
    provider: str
    # The model this call stood in for, when a fallback answered.
    fallback_from: str | None = None
    # Why this model was asked, when not by the run's choice: the routing rule that chose it,
    # or the budget policy that switched to it.
    route: str | None = None
    outcome: Outcome = Field(sa_type=String)
    # Our own count of the prompt, written before sending: what an interrupted call may have cost.
    estimated_prompt_tokens: int = Field(
        default=0, ge=0, le=MAX_INT, sa_column_kwargs=_server_default(0)
    )
    prompt_tokens: int = Field(default=0, ge=0, le=MAX_INT)
    completion_tokens: int = Field(default=0, ge=0, le=MAX_INT)
    cached_tokens: int = Field(default=0, ge=0, le=MAX_INT)
    cache_write_tokens: int = Field(
        default=0, ge=0, le=MAX_INT, sa_column_kwargs=_server_default(0)
    )
    reasoning_tokens: int = Field(default=0, ge=0, le=MAX_INT)
    # None: unpriced (the model has no known price); tokens are kept so it can be priced later.
    cost_usd: float | None = _cost()
    # The unit prices the cost was computed with, and where they came from, so a later price
    # change never rewrites history.
    input_cost_per_token: float | None = _cost()
    output_cost_per_token: float | None = _cost()
    cache_read_input_token_cost: float | None = _cost()
    cache_creation_input_token_cost: float | None = _cost()
    price_source: str | None = None
    # What the provider's cache saved against the full input price: cached reads at their
    # discount, less the premium for writing the cache (negative when writing cost more).
    cache_savings_usd: float | None = Field(default=None, schema_extra={"allow_inf_nan": False})
    # The provider reported no usage (some streams, some local servers, a gateway hiding it):
    # the tokens were counted with the tokenizer, and the cost is an estimate unless
    # price_source says a gateway reported it.
    usage_estimated: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    latency_ms: int = Field(default=0, ge=0, le=MAX_INT)
    error: str | None = None
    # The provider's own usage block, so costs can be recomputed when prices change.
    raw_usage: dict[str, Any] | None = Field(default=None, sa_type=JSON)

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return utc(value)

    @property
    def billed(self) -> bool:
        """The provider answered this call (and, if the model is priced, charged for it)."""
        return self.outcome in ("answered", "ok", "invalid_output")


class Call(CallBase, table=True):
    __tablename__ = "calls"
    # Exports and repairs read calls in time order; reports read the ``spend_daily`` rollup.
    __table_args__ = (Index("ix_calls_created_at", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)


class CallRecord(CallBase):
    """A call as data. Its idempotency key is always derived from its own content, whatever
    key it arrived with."""

    model_config = ConfigDict(extra="ignore")  # type: ignore[assignment]

    idempotency_key: str = ""

    @model_validator(mode="after")
    def _derive_key(self) -> CallRecord:
        self.idempotency_key = call_key(self.run_id, self.purpose, self.attempt)
        return self

    def as_row(self) -> Call:
        return Call(**self.model_dump())


# --- budgets, the chunk cache and the spend rollup --------------------------------------------


class Budget(SQLModel, table=True):
    """A team's monthly budget from the month ``starts`` on, until a later row replaces it.
    Rows are never rewritten, so last year's burn is measured against last year's budget."""

    __tablename__ = "budgets"

    team: str = Field(primary_key=True)
    starts: date = Field(primary_key=True)  # the first day of the month it applies from
    # None: no budget from this month on (``ownit ledger budget clear``).
    monthly_usd: float | None = Field(default=None, ge=0, schema_extra={"allow_inf_nan": False})
    warn_at: float = Field(default=0.8, gt=0, le=1)  # a fraction of the budget
    # What ``ownit review`` does when the planned cost does not fit what is left: refuse to
    # call, switch to a cheaper configured model that fits, or only warn.
    on_exceed: OnExceed = Field(default="refuse", sa_type=String)
    downgrade_to: str | None = None  # the model to switch to (default: the best that fits)
    set_at: datetime = Field(sa_type=DateTime(timezone=True))
    set_by: str | None = None

    @field_validator("set_at")
    @classmethod
    def _set_utc(cls, value: datetime) -> datetime:
        return utc(value)


class CachedChunk(SQLModel, table=True):
    """A file's reviewed result, addressed by what produced it: a re-review of unchanged
    content reuses it instead of paying for it again (``agent/reuse.py``)."""

    __tablename__ = "chunk_cache"

    key: str = Field(primary_key=True)  # sha256 of prompt version, schema, model, content
    prompt_version: str
    model: str
    result: dict[str, Any] = Field(sa_type=JSON)
    cost_usd: float | None = _cost()  # what producing it cost: what each hit saves
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    last_used_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    hits: int = Field(default=0, ge=0)


def _sum() -> Any:
    return Field(default=0, sa_type=BigInteger, sa_column_kwargs=_server_default(0))


class SpendDaily(SQLModel, table=True):
    """Calls summed per UTC day and per everything a report groups by. The store keeps it in
    step with ``calls`` in the same transaction as each call write, so a report over a million
    calls reads a table a fraction of the size and still adds up to the calls exactly.

    Key columns are never NULL (a unique key must treat two unknown teams as one): "" stands
    for "not recorded", 0 for "no pull request". Costs are integer nano-dollars, so sums are
    exact in any order."""

    __tablename__ = "spend_daily"
    # SQLite: the primary key is the table's own b-tree, so a date range is one range scan.
    __table_args__ = {"sqlite_with_rowid": False}

    day: date = Field(primary_key=True)
    team: str = Field(default="", primary_key=True)
    repo: str = Field(default="", primary_key=True)
    pr_number: int = Field(default=0, primary_key=True, sa_column_kwargs={"autoincrement": False})
    author: str = Field(default="", primary_key=True)
    model_name: str = Field(primary_key=True)
    model: str = Field(primary_key=True)
    provider: str = Field(primary_key=True)
    # The day's ISO week, month and quarter ("2026-W48", "2026-11", "2026-Q4"): every report
    # groups by one of them, the same on SQLite and PostgreSQL.
    week: str
    month: str
    quarter: str
    calls: int = _sum()
    errors: int = _sum()
    unknown_calls: int = _sum()
    unpriced_calls: int = _sum()
    estimated_calls: int = _sum()
    prompt_tokens: int = _sum()
    completion_tokens: int = _sum()
    cached_tokens: int = _sum()
    cache_write_tokens: int = _sum()
    reasoning_tokens: int = _sum()
    cost_nusd: int = _sum()
    cache_savings_nusd: int = _sum()
    # The pull request as ``pull_requests.id`` (None: no PR), so reports count PRs as integers.
    # No foreign key: the rollup is derived data, rebuilt from the calls, and PostgreSQL would
    # check the key on every call's write.
    pr_id: int | None = None


class PullRequest(SQLModel, table=True):
    """Each (repo, number) the rollup has seen, numbered once. Rows are never deleted or
    renumbered: a rollup row's ``pr_id`` stays true across rebuilds."""

    __tablename__ = "pull_requests"
    __table_args__ = (UniqueConstraint("repo", "pr_number", name="uq_pull_requests_repo_pr"),)

    id: int | None = Field(default=None, primary_key=True)
    repo: str
    pr_number: int


# --- the ownership loop -----------------------------------------------------------------------


class OwnershipCheck(SQLModel, table=True):
    """One ``ownit check``: whether a pull request's author showed they own its change. Its id
    is the check's run id (its grading calls are in ``calls`` under that run)."""

    __tablename__ = "ownership_checks"
    __table_args__ = (Index("ix_ownership_checks_repo_pr", "repo", "pr_number", "created_at"),)

    id: str = Field(primary_key=True)
    created_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    team: str | None = None
    repo: str | None = None
    pr_number: int | None = Field(default=None, ge=1, le=MAX_INT)
    head_sha: str | None = None
    author: str | None = None
    require: str  # report | high | all
    pass_on: str  # understood | partly
    questions: int = Field(ge=0)
    required: int = Field(ge=0)  # of them, those the gate needs shown
    shown: int = Field(ge=0)
    passed: bool  # every required question shown, or a maintainer's override
    complete: bool  # every answer was graded
    override_by: str | None = None
    override_reason: str | None = None
    model_name: str | None = None
    cost_usd: float | None = _cost()

    @field_validator("created_at")
    @classmethod
    def _created_utc(cls, value: datetime) -> datetime:
        return utc(value)


class OwnershipAnswer(SQLModel, table=True):
    """A question's verdict in one check. Fingerprints, never the text: the ledger says which
    answer to which question about which code got which verdict, and reuses the verdict when the
    same answer to the same code is checked again."""

    __tablename__ = "ownership_answers"
    __table_args__ = (
        Index(
            "ix_ownership_answers_reuse", "question_id", "code_fingerprint", "answer_fingerprint"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    check_id: str = Field(foreign_key="ownership_checks.id", index=True)
    question_id: str
    rank: int = Field(ge=0, le=MAX_INT)
    priority: str
    category: str
    question_fingerprint: str  # of the question's words (its id also covers the anchor)
    code_fingerprint: str | None = None
    answer_fingerprint: str | None = None
    answered_by: str | None = None
    status: str  # understood | partly | not_shown | unanswered | stale | ungraded
    screen: str | None = None  # why no grader was asked (empty, copied_question, ...)
    feedback: str | None = None
    reused: bool = False
    grade_version: str | None = None
