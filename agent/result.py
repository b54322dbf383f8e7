"""The review result: the one contract from the graph to every renderer and artifact."""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, computed_field

from agent.ledger import CallRecord, RunInfo
from agent.masking import Finding
from agent.schema import Category, Dropped, Priority, Risk, Side


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
    # A hash of the anchored lines: an answer holds while they stay the same (anchored_code).
    code_fingerprint: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        """A stable identity across pushes: the file, the side and the question's words, not
        its line numbers (code above it may move). SARIF fingerprints, PR comments and answers
        refer to a question by it."""
        words = " ".join(re.findall(r"\w+", self.question.lower()))
        key = f"{self.anchor.path}\0{self.anchor.side}\0{words}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]


class FileNote(BaseModel):
    path: str
    status: str
    walkthrough: str


class NotReviewed(BaseModel):
    path: str
    hunks: int
    reason: str


class Summarized(BaseModel):
    """A file the model was told about instead of shown (a deleted file, named with its size
    and reviewed as a deletion): neither reviewed lines nor a failure."""

    path: str
    hunks: int
    reason: str


class Coverage(BaseModel):
    files_total: int
    files_reviewed: int
    hunks_total: int
    hunks_reviewed: int
    not_reviewed: list[NotReviewed]
    summarized: list[Summarized] = []


class DroppedCounts(BaseModel):
    """What the model proposed that was not used, by kind, with examples and reasons."""

    questions_invalid: int = 0  # not a valid question: line 0, unknown category, no text
    questions_outside_diff: int = 0  # anchored to lines or files the diff does not show
    walkthroughs: int = 0  # of files outside the part, empty or echoed
    risk_reasons: int = 0  # naming files the diff does not change
    examples: list[Dropped] = []

    @property
    def questions(self) -> int:
        return self.questions_invalid + self.questions_outside_diff


class ModelUsage(BaseModel):
    """One model's share of a run: what it was asked, why, and what it cost."""

    model_name: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cost_complete: bool
    # Why it was asked: routing rules ("rule 'security'"), "default", a budget switch, or
    # "fallback for X"; empty for the run's own model when no rule is configured.
    routes: list[str] = []


class Usage(BaseModel):
    models: list[str]
    calls: int
    failed_calls: int
    # Calls whose outcome is unknown (the run was interrupted while they were in flight, or
    # the connection dropped): they may have been billed.
    unknown_calls: int = 0
    # Calls answered by a fallback model instead of the one chosen.
    fallback_calls: int = 0
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    # False when some billed call has no price (the model is unpriced) or a call's outcome is
    # unknown: cost_usd is then a lower bound.
    cost_complete: bool
    unpriced_models: list[str] = []
    # Files whose review came from the content cache (unchanged since an earlier review), and
    # what producing those reviews had cost: what this run did not pay again.
    cached_files: int = 0
    cache_saved_usd: float = 0.0
    # Per model, when more than one was asked or routing rules chose them.
    by_model: list[ModelUsage] = []


class TriagedFile(BaseModel):
    """One file's risk as routing used it (routing.triage)."""

    path: str
    risk: Risk  # what the rules' risk conditions matched on
    path_risk: Risk  # the path heuristic's
    rated: Risk | None = None  # the triage model's; None when it did not rate the file
    reason: str = ""  # the triage model's, when it rated the file


class TriageMove(BaseModel):
    """A file the triage's rating sent to another model than its path's risk would have."""

    path: str
    from_model: str
    to_model: str


class TriageReport(BaseModel):
    """The triage pass: which model rated the files, what it cost, and what it moved."""

    model_name: str
    # False when the triage model could not be used or every call to it failed (the notes say
    # why): routed by path risk.
    ran: bool
    calls: int  # its ledger rows (a retry or a repair is a call)
    cost_usd: float | None  # None when a billed call has no price
    files: list[TriagedFile] = []
    moved: list[TriageMove] = []


# The JSON artifact's format; bumped when a field changes meaning or goes away (additions keep
# it). agent/_data/schemas/ownit-review.v1.json is generated from this model.
SCHEMA_VERSION = 1


class Review(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run: RunInfo
    summary: str
    risk: Risk | None
    risk_reasons: list[str]
    files: list[FileNote]
    questions: list[Question]
    dropped: DroppedCounts = DroppedCounts()
    # Lower-ranked questions beyond review.max_questions.
    questions_omitted: int = 0
    # Credentials found in what was sent, masked before sending: kind and place, no value.
    secrets: list[Finding] = []
    coverage: Coverage
    usage: Usage
    complete: bool
    # Why the review is incomplete; empty when complete.
    problems: list[str]
    # What the user can do about the problems (from the errors behind them), once each.
    hints: list[str] = []
    # Worth knowing, but the review is complete (e.g. uncommitted changes were not included).
    notes: list[str] = []
    # The run was stopped (SIGINT/SIGTERM) before it finished: this is what it had by then.
    interrupted: str | None = None
    # Every part that failed, failed because no configured model could be used (exit 3).
    no_usable_model: bool = False
    # Nothing was sent: the plan's estimated cost was over the limit (--max-cost).
    over_budget: bool = False
    # The triage pass (routing.triage), when one is configured.
    triage: TriageReport | None = None
    ledger_error: str | None = None
    # Where calls went when the ledger could not be written (`ownit ledger import` loads it).
    ledger_spool: str | None = None
    calls: list[CallRecord] = []
