"""Run-scoped dependencies handed to every node through LangGraph's runtime context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from agent.client import ModelClient
from agent.config import ReviewSettings
from agent.ledger import Recorder
from agent.providers import ModelFacts, ResolvedModel
from agent.reuse import ContentCache
from agent.routing import Router
from agent.spending import BudgetGuard


class Progress(Protocol):
    def planned(self, chunks: int) -> None: ...
    def chunk_done(self, label: str, ok: bool) -> None: ...


class NoProgress:
    def planned(self, chunks: int) -> None:
        pass

    def chunk_done(self, label: str, ok: bool) -> None:
        pass


@dataclass(frozen=True)
class ReviewContext:
    settings: ReviewSettings
    model: ResolvedModel
    # The run's model's facts, looked up when the plan needs them (which may wait for LiteLLM's
    # price map: ``llm.preload``), not before.
    facts_of: Callable[[], ModelFacts]
    recorder: Recorder | None = None  # None for dry runs
    client: ModelClient | None = None  # None for dry runs and empty diffs
    progress: Progress = field(default_factory=NoProgress)
    budget: BudgetGuard | None = None  # the team's budget, when it has one
    notes: tuple[str, ...] = ()  # said before the graph ran (a budget that could not be read)
    cache: ContentCache | None = None  # reviews of unchanged files; None: no ledger to hold them
    router: Router | None = None  # routing rules choose each file's model; None: no rules

    @property
    def facts(self) -> ModelFacts:
        return self.facts_of()
