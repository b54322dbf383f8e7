"""Graph state: what goes in, what nodes share, and what comes out."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Literal

from agent.chunking import Chunk
from agent.diff import Diff
from agent.ledger import RunInfo
from agent.masking import Finding
from agent.plan import Plan
from agent.result import Review
from agent.risk_triage import Outcome
from agent.schema import Category, ChunkReview, Dropped, Priority, Side
from agent.sources import DiffSource


@dataclass
class InputState:
    source: DiffSource
    run: RunInfo
    dry_run: bool = False
    # Mask credentials before anything is sent (off only with --no-mask).
    mask: bool = True


@dataclass(frozen=True)
class AnchoredQuestion:
    """A model-proposed question whose anchor was checked against the diff."""

    chunk: tuple[int, ...]
    order: int
    question: str
    category: Category
    priority: Priority
    why_it_matters: str
    path: str
    side: Side
    start_line: int
    end_line: int
    repaired: bool


# Why a chunk was not reviewed, as the exit code and the report need to tell them apart.
Failure = Literal["provider", "output", "too_large", "no_model", "interrupted"]


@dataclass(frozen=True)
class ChunkResult:
    chunk: Chunk
    review: ChunkReview | None
    questions: tuple[AnchoredQuestion, ...] = ()
    # Questions and walkthroughs the reply proposed that were not used, with why.
    dropped: tuple[Dropped, ...] = ()
    # Files of the chunk the reply explained; the others are "not explained".
    explained: frozenset[str] = frozenset()
    error: str | None = None
    hint: str | None = None  # what the user can do about the error
    failure: Failure | None = None
    model_name: str | None = None  # the model that answered (a fallback, when one did)
    cached: bool = False  # taken from the content cache: the same files were reviewed before

    @property
    def ok(self) -> bool:
        return self.review is not None


@dataclass
class State(InputState):
    diff: Diff | None = None  # masked, once the mask node ran
    title: str | None = None  # the PR title as sent (masked)
    secrets: tuple[Finding, ...] = ()
    # What the triage pass rated (routing.triage), when it is configured.
    triage: Outcome | None = None
    plan: Plan | None = None
    # Why nothing is sent (the plan's estimate is over review.max_cost_usd), when so.
    refused: str | None = None
    # Fan-in from the parallel explain nodes.
    results: Annotated[list[ChunkResult], operator.add] = field(default_factory=list)
    review: Review | None = None


@dataclass
class OutputState:
    plan: Plan | None = None
    secrets: tuple[Finding, ...] = ()
    refused: str | None = None
    review: Review | None = None


@dataclass(frozen=True)
class ExplainTask:
    """What one explain node receives through ``Send``."""

    chunk: Chunk
    parts: int
    diff: Diff
    title: str
    repo: str
