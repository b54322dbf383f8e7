"""The review result: the one contract from the graph to every renderer and artifact."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from agent.schema import Category, Priority, Risk, Side


class Anchor(BaseModel):
    path: str
    side: Side
    start_line: int
    end_line: int

    def __str__(self) -> str:
        lines = (
            f"{self.start_line}"
            if self.start_line == self.end_line
            else f"{self.start_line}-{self.end_line}"
        )
        return f"{self.path}:{lines}" + (" (removed lines)" if self.side == "old" else "")


class Question(BaseModel):
    rank: int
    question: str
    category: Category
    priority: Priority
    why_it_matters: str
    anchor: Anchor
    # True when the model's range was clamped to the lines the diff shows.
    anchor_repaired: bool = False


class FileNote(BaseModel):
    path: str
    status: str
    walkthrough: str


class NotReviewed(BaseModel):
    path: str
    hunks: int
    reason: str


class Coverage(BaseModel):
    files_total: int
    files_reviewed: int
    hunks_total: int
    hunks_reviewed: int
    not_reviewed: list[NotReviewed]


class Usage(BaseModel):
    models: list[str]
    calls: int
    failed_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    # False when some call's price is unknown (the model is not in LiteLLM's price map and
    # providers.yaml gives no price): cost_usd is then a lower bound.
    cost_complete: bool


class LedgerRow(BaseModel):
    """A model call as the ledger stores it; carried in the JSON artifact for later import."""

    idempotency_key: str
    run_id: str
    created_at: datetime
    team: str | None
    repo: str | None
    pr_number: int | None
    head_sha: str | None
    author: str | None
    purpose: str
    model_name: str
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    latency_ms: int
    outcome: str
    error: str | None
    raw_usage: dict[str, object] | None


class Review(BaseModel):
    run_id: str
    created_at: datetime
    team: str | None
    repo: str | None
    pr_number: int | None
    head_sha: str | None
    base: str | None
    summary: str
    risk: Risk | None
    risk_reasons: list[str]
    files: list[FileNote]
    questions: list[Question]
    rejected_questions: int
    # Lower-ranked questions beyond review.max_questions.
    questions_omitted: int = 0
    coverage: Coverage
    usage: Usage
    complete: bool
    # Why the review is incomplete; empty when complete.
    problems: list[str]
    # Worth knowing, but the review is complete (e.g. uncommitted changes were not included).
    notes: list[str] = []
    prompt_version: str
    ownit_version: str
    ledger_error: str | None = None
    # Where calls went when the ledger could not be written (`ownit ledger import` loads it).
    ledger_spool: str | None = None
    calls: list[LedgerRow] = []
