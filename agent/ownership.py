"""An ownership check's result: each question's verdict, and whether the gate passed.

The contract from ``check.py`` to the renderers, the artifacts and the ledger, as ``Review`` is
for a review. Nothing here holds an expected answer: ownit never writes one, anywhere.

    understood / partly / not_shown   a grader's verdict on an answer (or a screen's, not_shown)
    unanswered                        no answer from someone who may answer for the PR
    stale                             answered, but the code it asks about changed since
    ungraded                          answered, but no grader could be reached (incomplete)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from agent.config import Ownership as Gate
from agent.ledger import CallRecord
from agent.result import Question
from agent.screening import Screen

Status = Literal["understood", "partly", "not_shown", "unanswered", "stale", "ungraded"]
_SHOWN: dict[str, tuple[str, ...]] = {
    "understood": ("understood",),
    "partly": ("understood", "partly"),
}

CHECK_SCHEMA = "ownit.check/1"


class Graded(BaseModel):
    question: Question
    status: Status
    # One line for the author; never the answer.
    feedback: str = ""
    screen: Screen | None = None
    answered_by: str | None = None
    answer_fingerprint: str | None = None
    # The verdict came from an earlier check of the same answer to the same code.
    reused: bool = False


class Override(BaseModel):
    by: str
    reason: str


class Check(BaseModel):
    format: str = CHECK_SCHEMA
    run_id: str
    repo: str | None
    pr_number: int | None
    head_sha: str | None
    author: str | None
    team: str | None
    require: str
    pass_on: str
    graded: list[Graded]
    passed: bool
    # The gate passed on a maintainer's word, not on the answers.
    override: Override | None = None
    # Answers or overrides that did not count, and why (not from the author, not a maintainer).
    ignored: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    model_name: str | None = None
    cost_usd: float = 0.0
    calls: list[CallRecord] = []

    @property
    def complete(self) -> bool:
        return not self.problems

    @property
    def shown(self) -> int:
        return sum(shown(g.status, self.pass_on) for g in self.graded)


def required(question: Question, require: str) -> bool:
    """Whether the gate needs this question shown. ``report`` never fails a job, and records
    ownership as ``high`` does."""
    return require == "all" or question.priority == "high"


def shown(status: str, pass_on: str) -> bool:
    return status in _SHOWN[pass_on]


def gate_passes(graded: list[Graded], gate: Gate) -> bool:
    return all(shown(g.status, gate.pass_on) for g in graded if required(g.question, gate.require))
