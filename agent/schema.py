"""What the model must answer, as pydantic models.

The JSON schema the model sees (in the prompt and through ``response_format``) is generated from
these classes, so the prompt and the parser cannot drift apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Risk = Literal["low", "medium", "high"]
Priority = Literal["high", "medium", "low"]
Category = Literal["intent", "mechanism", "failure_mode", "edge_case", "tests", "security"]
Side = Literal["new", "old"]


class _Reply(BaseModel):
    # Models add stray keys; ignoring them is safe, failing the review over them is not.
    model_config = ConfigDict(extra="ignore")


class ProposedQuestion(_Reply):
    """A question the author must be able to answer, anchored to lines shown in the diff."""

    question: str = Field(min_length=5)
    category: Category
    path: str = Field(description="file path exactly as in the FILE header")
    side: Side = Field(
        default="new",
        description="'new' for added or context lines, 'old' for lines only removed",
    )
    start_line: int = Field(ge=1, description="first line, numbered on that side")
    end_line: int = Field(ge=1, description="last line, numbered on that side")
    why_it_matters: str
    priority: Priority = "medium"


class FileWalkthrough(_Reply):
    path: str
    walkthrough: str


class ChunkReview(_Reply):
    """The model's review of one chunk of the diff."""

    summary: str = Field(description="what this part of the change does and why it matters")
    files: list[FileWalkthrough]
    risk: Risk
    risk_reasons: list[str]
    questions: list[ProposedQuestion]


class Synthesis(_Reply):
    """The PR-level view built from every chunk's review."""

    summary: str
    risk: Risk
    risk_reasons: list[str]
    question_order: list[int] = Field(
        description="the candidate question numbers (n of [Qn]), most important first"
    )
