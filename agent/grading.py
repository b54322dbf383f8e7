"""Grading answers with a model: the rubric prompt (``prompts/grade_*.md``), its reply schema,
and one call for a batch of answers.

Only answers that passed ``screening`` reach the model, each fenced as data with the code it is
about. A reply must grade every answer it was given (else it is sent back for repair); a verdict
for a number it was not given is ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from agent import prompts
from agent.client import ModelClient
from agent.result import Question
from agent.schema import Grades, Verdict, reply_shape

FEEDBACK_CHARS = 300


@dataclass(frozen=True)
class ToGrade:
    question: Question
    answer: str
    code: str


@dataclass(frozen=True)
class Graded:
    verdict: Verdict
    feedback: str


def version() -> str:
    """The grading prompt and schema, as the ledger records it and verdicts are reused by."""
    schema = json.dumps(Grades.model_json_schema(), sort_keys=True)
    return hashlib.sha256(f"{prompts.load('grade').version}\0{schema}".encode()).hexdigest()[:12]


def _block(n: int, item: ToGrade, nonce: str) -> str:
    q = item.question
    return (
        f"## Answer {n}: question ({q.priority} priority, {q.category.replace('_', ' ')}) "
        f"about {q.anchor}\n{q.question}\n\n"
        f"Code (lines marked > are the ones asked about):\n<<<CODE-{nonce}\n{item.code}\n"
        f"CODE-{nonce}>>>\n\nThe author's answer:\n<<<ANSWER-{nonce}\n{item.answer}\n"
        f"ANSWER-{nonce}>>>\n"
    )


def messages(items: Sequence[ToGrade], title: str, repo: str) -> list[dict[str, str]]:
    nonce = prompts.fence_nonce("".join(f"{i.answer}\0{i.code}" for i in items))
    body = "\n".join(_block(n, item, nonce) for n, item in enumerate(items, 1))
    return prompts.load("grade").render(
        schema=reply_shape(Grades), nonce=nonce, answers=body, title=title, repo=repo
    )


def _problem(reply: Grades, count: int) -> str | None:
    missing = sorted(set(range(1, count + 1)) - {g.n for g in reply.grades})
    if missing:
        return "it has no grade for answer " + ", ".join(map(str, missing)) + ": grade every one"
    return None


async def grade(
    client: ModelClient, items: Sequence[ToGrade], title: str, repo: str, *, batch: int = 12
) -> list[Graded]:
    """A verdict per item, in order. Raises the client's errors (the caller records the answers
    as ungraded)."""
    out: list[Graded] = []
    for start in range(0, len(items), batch):
        part = items[start : start + batch]
        answer = await client.structured(
            messages(part, title, repo),
            Grades,
            purpose=f"grade-{start // batch + 1}",
            check=partial(_problem, count=len(part)),
        )
        by_n = {g.n: g for g in answer.value.grades}
        for n in range(1, len(part) + 1):
            g = by_n[n]
            out.append(Graded(g.verdict, " ".join(g.feedback.split())[:FEEDBACK_CHARS]))
    return out
