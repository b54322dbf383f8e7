"""Graph state: what goes in, what nodes share, and what comes out."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from agent.chunking import Chunk
from agent.diff import Diff
from agent.plan import Plan
from agent.result import Review
from agent.schema import Category, ChunkReview, Priority, Side
from agent.sources import DiffSource


@dataclass(frozen=True)
class RunMeta:
    run_id: str
    started_at: datetime
    team: str | None
    pr_number: int | None


@dataclass
class InputState:
    source: DiffSource
    meta: RunMeta
    dry_run: bool = False


@dataclass(frozen=True)
class AnchoredQuestion:
    """A model-proposed question whose anchor was checked against the diff."""

    chunk_id: int
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


@dataclass(frozen=True)
class ChunkResult:
    chunk: Chunk
    review: ChunkReview | None
    questions: tuple[AnchoredQuestion, ...] = ()
    rejected: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.review is not None


@dataclass
class State(InputState):
    diff: Diff | None = None
    plan: Plan | None = None
    # Fan-in from the parallel explain nodes.
    results: Annotated[list[ChunkResult], operator.add] = field(default_factory=list)
    review: Review | None = None


@dataclass
class OutputState:
    plan: Plan | None = None
    review: Review | None = None


@dataclass(frozen=True)
class ExplainTask:
    """What one explain node receives through ``Send``."""

    chunk: Chunk
    parts: int
    diff: Diff
    title: str
    repo: str
