"""Run-scoped dependencies handed to every node through LangGraph's runtime context."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agent.config import ReviewSettings
from agent.ledger import Recorder
from agent.llm import ModelClient, ModelFacts
from agent.providers import ResolvedModel


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
    facts: ModelFacts
    recorder: Recorder
    client: ModelClient | None  # None for dry runs
    progress: Progress = field(default_factory=NoProgress)
    formats: tuple[str, ...] = ()
    out_dir: Path | None = None
    ownit_version: str = "0"
