"""What the model must answer, as pydantic models.

The JSON schema the model sees (through ``response_format``) and the one-line shape the prompt
shows (``reply_shape``) are generated from these classes, so the prompt and the parser cannot
drift apart. The schema is strict; parsing is
strict per item, not per reply: one question with line 0 or an unknown category is dropped and
counted (``ChunkReview.dropped``), and the rest of the reply stands.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from agent.validation import describe

Risk = Literal["low", "medium", "high"]
Priority = Literal["high", "medium", "low"]
Category = Literal["intent", "mechanism", "failure_mode", "edge_case", "tests", "security"]
Side = Literal["new", "old"]
Verdict = Literal["understood", "partly", "not_shown"]


def _word(value: Any) -> Any:
    """ "Failure mode", "failure-mode" and "FAILURE_MODE" are the same answer."""
    if isinstance(value, str):
        return "_".join(value.strip().lower().replace("-", " ").split())
    return value


def _compact(schema: dict[str, Any]) -> None:
    """Drop what costs tokens and tells the model nothing: titles, and the class docstring."""
    schema.pop("title", None)
    schema.pop("description", None)
    for field in (schema.get("properties") or {}).values():
        if isinstance(field, dict):
            field.pop("title", None)


class _Reply(BaseModel):
    # Models add stray keys; ignoring them is safe, failing the review over them is not.
    model_config = ConfigDict(extra="ignore", json_schema_extra=_compact)


class ProposedQuestion(_Reply):
    """A question the author must be able to answer, anchored to lines shown in the diff."""

    question: str = Field(min_length=5)
    category: Category
    path: str = Field(min_length=1, description="file path exactly as in the FILE header")
    side: Side = Field(
        default="new",
        description="'new' for added or context lines, 'old' for lines only removed",
    )
    start_line: int = Field(ge=1, description="first line, numbered on that side")
    end_line: int = Field(ge=1, description="last line, numbered on that side")
    why_it_matters: str
    priority: Priority = "medium"

    @field_validator("category", "side", "priority", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return _word(value)


class FileWalkthrough(_Reply):
    path: str = Field(min_length=1)
    walkthrough: str = Field(min_length=1)


class Dropped(BaseModel):
    """Part of a reply that was not used, and why."""

    # question: not a valid question; anchor: a question about lines the diff does not show
    kind: Literal["question", "anchor", "walkthrough", "risk_reason"]
    what: str  # the question's text (shortened), the walkthrough's path, the reason
    reason: str


class ChunkReview(_Reply):
    """The model's review of one chunk of the diff."""

    summary: str = Field(description="what this part of the change does and why it matters")
    files: list[FileWalkthrough]
    risk: Risk
    risk_reasons: list[str]
    questions: list[ProposedQuestion]

    _dropped: list[Dropped] = PrivateAttr(default_factory=list)

    @field_validator("risk", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return _word(value)

    @property
    def dropped(self) -> list[Dropped]:
        return self._dropped

    @model_validator(mode="wrap")
    @classmethod
    def _item_by_item(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        dropped: list[Dropped] = []
        if isinstance(data, dict):
            data = dict(data)
            data["questions"] = _keep_valid(data.get("questions"), "question", dropped)
            data["files"] = _keep_valid(data.get("files"), "walkthrough", dropped)
            if isinstance(data.get("risk_reasons"), list):
                data["risk_reasons"] = [r for r in data["risk_reasons"] if isinstance(r, str)]
        review = handler(data)
        if isinstance(review, ChunkReview):
            review._dropped = dropped
        return review


def _keep_valid(
    items: Any, kind: Literal["question", "walkthrough"], dropped: list[Dropped]
) -> Any:
    model: type[BaseModel] = ProposedQuestion if kind == "question" else FileWalkthrough
    name = "question" if kind == "question" else "path"
    kept, bad = _split_valid(items, model, name, f"(a {kind})")
    dropped += [Dropped(kind=kind, what=what, reason=why) for what, why in bad]
    return kept


def _split_valid(
    items: Any, model: type[BaseModel], name: str, unnamed: str
) -> tuple[Any, list[tuple[str, str]]]:
    """The items of a reply's list that validate as ``model``, and (what, why) for each that
    does not (``what``: its ``name`` field, cut, else ``unnamed``): one bad item is dropped,
    not the reply. Not a list: returned as it is, for the handler to say why."""
    if not isinstance(items, list):
        return items, []
    kept, bad = [], []
    for item in items:
        try:
            model.model_validate(item)
        except ValidationError as exc:
            text = item.get(name) if isinstance(item, dict) else None
            bad.append((str(text)[:80] if text else unnamed, describe(exc, limit=2)))
            continue
        kept.append(item)
    return kept, bad


class Synthesis(_Reply):
    """The PR-level view built from every chunk's review."""

    summary: str
    risk: Risk
    risk_reasons: list[str]
    question_order: list[int] = Field(
        description="the candidate question numbers (n of [Qn]), most important first"
    )

    @field_validator("risk", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return _word(value)

    @field_validator("question_order", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        # "Q3", 3.0 and "3" all name question 3; anything else is ignored, not fatal.
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            text = str(item).strip().lstrip("[Qq").rstrip("]")
            try:
                out.append(int(float(text)))
            except ValueError:
                continue
        return out


class Grade(_Reply):
    """A grader's verdict on one answer to an ownership question."""

    n: int = Field(description="the answer's number, as given")
    verdict: Verdict
    feedback: str

    @field_validator("verdict", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return _word(value)


class Grades(_Reply):
    grades: list[Grade]


class FileRisk(_Reply):
    """A triage model's rating of one file."""

    path: str = Field(min_length=1, description="the file's path exactly as in its FILE header")
    risk: Risk
    reason: str = Field(default="", description="one line: what in the change decided it")

    @field_validator("risk", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return _word(value)


class TriageReply(_Reply):
    """A triage model's ratings of the files it was shown (``agent.risk_triage``)."""

    files: list[FileRisk]

    # Ratings that were not valid, each as "path: why".
    _dropped: list[str] = PrivateAttr(default_factory=list)

    @property
    def dropped(self) -> list[str]:
        return self._dropped

    @model_validator(mode="wrap")
    @classmethod
    def _item_by_item(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # One rating with a risk outside the enum is dropped (its file keeps its path's risk),
        # not the whole reply.
        dropped: list[str] = []
        if isinstance(data, dict) and isinstance(data.get("files"), list):
            kept, bad = _split_valid(data["files"], FileRisk, "path", "(a rating)")
            dropped = [f"{what}: {why}" for what, why in bad]
            data = {**data, "files": kept}
        reply = handler(data)
        if isinstance(reply, TriageReply):
            reply._dropped = dropped
        return reply


def reply_shape(model: type[BaseModel]) -> str:
    """The reply's shape in one line, generated from the class's JSON schema: what the prompt
    shows (``response_format`` carries the full schema where the provider takes it)::

        {"summary":string,"risk":"low"|"medium"|"high","files":[{"path":string,…}],…}

    A key marked ``?`` may be left out.
    """
    schema = model.model_json_schema()
    return _shape(schema, schema.get("$defs") or {})


def _shape(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if ref := node.get("$ref"):
        return _shape(defs[str(ref).rsplit("/", 1)[-1]], defs)
    if "enum" in node:
        return "|".join(json.dumps(v) for v in node["enum"])
    if "anyOf" in node:
        return "|".join(_shape(n, defs) for n in node["anyOf"])
    kind = node.get("type")
    if kind == "object":
        required = set(node.get("required") or ())
        fields = [
            f"{json.dumps(name)}{'' if name in required else '?'}:{_shape(sub, defs)}"
            for name, sub in (node.get("properties") or {}).items()
        ]
        return "{" + ",".join(fields) + "}"
    if kind == "array":
        return f"[{_shape(node.get('items') or {}, defs)}]"
    return {"integer": "int", "number": "number", "boolean": "bool", "null": "null"}.get(
        str(kind), "string"
    )
