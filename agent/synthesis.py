"""The pull-request-level view, built from every reviewed chunk, in stages when it must be.

The synthesis prompt grows with the number of chunks (a summary and the candidate questions of
each). When it does not fit the model's window, the parts are synthesised in batches that fit,
and the batches' summaries (with their best questions, in the order each batch chose) are
synthesised again, until one prompt holds them all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agent import prompts
from agent.client import Messages, ModelClient
from agent.errors import ContextOverflowError
from agent.plan import schema_text
from agent.ranking import default_key
from agent.schema import Risk, Synthesis
from agent.state import AnchoredQuestion, ChunkResult
from agent.tokens import count_tokens

# A candidate question is shown to the synthesis at most this long.
QUESTION_CHARS = 300
# Candidates shown to the synthesis, as a multiple of the questions a review keeps.
SHORTLIST = 2


@dataclass(frozen=True)
class Unit:
    """A part (a chunk, or a batch of parts already synthesised) as the synthesis sees it."""

    label: str
    summary: str
    risk: Risk
    reasons: tuple[str, ...]
    # Indexes into the run's candidate list, best first.
    candidates: tuple[int, ...]


@dataclass(frozen=True)
class Outcome:
    synthesis: Synthesis  # question_order holds 1-based indexes into the candidates
    stages: int  # 1 when everything fit in one prompt


def _render(units: list[Unit], candidates: list[AnchoredQuestion]) -> tuple[str, list[int]]:
    """The parts text and the candidate indexes in the order they are numbered [Q1].."""
    lines: list[str] = []
    shown: list[int] = []
    for n, u in enumerate(units, 1):
        lines.append(f"## Part {n}: {u.label}")
        lines.append(f"Summary: {u.summary}")
        lines.append(f"Risk: {u.risk} ({'; '.join(u.reasons)})")
    lines.append("")
    lines.append("## Candidate questions")
    for u in units:
        for index in u.candidates:
            q = candidates[index]
            shown.append(index)
            text = (
                q.question
                if len(q.question) <= QUESTION_CHARS
                else q.question[:QUESTION_CHARS] + "…"
            )
            lines.append(
                f"[Q{len(shown)}] ({q.category}, {q.priority}) {q.path}:{q.start_line}: {text}"
            )
    return "\n".join(lines), shown


def _messages(parts: str, title: str, repo: str) -> Messages:
    return prompts.load("synthesis").render(
        schema=schema_text(Synthesis),
        nonce=prompts.fence_nonce(parts),
        parts=parts,
        title=title,
        repo=repo,
    )


def _order(reply: Synthesis, shown: list[int]) -> list[int]:
    """The reply's order as candidate indexes; numbers it made up are ignored and what it left
    out follows in the order shown."""
    picked = [shown[n - 1] for n in dict.fromkeys(reply.question_order) if 1 <= n <= len(shown)]
    seen = set(picked)
    return picked + [i for i in shown if i not in seen]


async def synthesize(
    client: ModelClient,
    results: list[ChunkResult],
    candidates: list[AnchoredQuestion],
    *,
    title: str,
    repo: str,
    keep: int,
    concurrency: int = 4,
) -> Outcome:
    """One Synthesis for the run. ``keep``: questions each batch passes on to the next stage;
    ``concurrency``: batches of a stage asked at once.

    Raises ``ModelCallError`` when a stage fails (the caller falls back to the parts' own
    summaries) and ``ContextOverflowError`` when even one part cannot be synthesised.
    """
    index = {id(q): i for i, q in enumerate(candidates)}
    # The synthesis orders the strongest candidates only: a review shows ``keep`` questions,
    # and the rest follow in the default order anyway. Showing it every question of a large PR
    # made its prompt grow with the diff, and a re-review of one changed file pay for all.
    ranked = sorted(range(len(candidates)), key=lambda i: default_key(candidates[i]))
    shortlist = set(ranked[: SHORTLIST * keep])
    units = []
    for r in results:
        assert r.review is not None
        units.append(
            Unit(
                label=r.chunk.label,
                summary=r.review.summary,
                risk=r.review.risk,
                reasons=tuple(r.review.risk_reasons),
                candidates=tuple(i for q in r.questions if (i := index[id(q)]) in shortlist),
            )
        )
    stage = 1
    while True:
        parts, shown = _render(units, candidates)
        messages = _messages(parts, title, repo)
        if client.fits(messages):
            answer = await client.structured(messages, Synthesis, purpose="synthesis")
            order = [i + 1 for i in _order(answer.value, shown)]
            return Outcome(answer.value.model_copy(update={"question_order": order}), stage)
        batches = _batches(client, units, candidates, title, repo)
        if len(batches) >= len(units):
            raise ContextOverflowError(
                f"the summary of one part alone does not fit {client.primary.name}'s window"
            )
        # A stage's batches are independent: asked at once, as the chunks were. One failing
        # cancels the others (the caller falls back to the parts' own summaries).
        limit = asyncio.Semaphore(concurrency)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(
                        _merge(
                            client,
                            batch,
                            candidates,
                            title,
                            repo,
                            f"synthesis-{stage}.{n}",
                            keep,
                            limit,
                        )
                    )
                    for n, batch in enumerate(batches, 1)
                ]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        units = [t.result() for t in tasks]
        stage += 1


async def _merge(
    client: ModelClient,
    batch: list[Unit],
    candidates: list[AnchoredQuestion],
    title: str,
    repo: str,
    purpose: str,
    keep: int,
    limit: asyncio.Semaphore,
) -> Unit:
    """One batch of a stage, synthesised into a unit of the next."""
    parts, shown = _render(batch, candidates)
    async with limit:
        answer = await client.structured(_messages(parts, title, repo), Synthesis, purpose=purpose)
    return Unit(
        label=f"{batch[0].label} … {batch[-1].label}" if len(batch) > 1 else batch[0].label,
        summary=answer.value.summary,
        risk=answer.value.risk,
        reasons=tuple(answer.value.risk_reasons),
        candidates=tuple(_order(answer.value, shown)[:keep]),
    )


def _batches(
    client: ModelClient,
    units: list[Unit],
    candidates: list[AnchoredQuestion],
    title: str,
    repo: str,
) -> list[list[Unit]]:
    """Consecutive groups of units, each as large as fits one prompt (at least one unit).
    Each unit's size is counted once: re-counting growing prompts would be quadratic."""
    frame = client.count(_messages("", title, repo)) + 50  # the framing, and the nonce lines
    budget = client.prompt_budget()
    batches: list[list[Unit]] = []
    current: list[Unit] = []
    used = frame
    for unit in units:
        size = count_tokens(_render([unit], candidates)[0])
        if current and used + size > budget:
            batches.append(current)
            current, used = [], frame
        current.append(unit)
        used += size
    if current:
        batches.append(current)
    return batches
