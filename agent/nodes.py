"""The review graph's nodes: small async functions that return only the keys they change."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from langgraph.runtime import Runtime

from agent import masking, prompts, replies, synthesis
from agent.assemble import build_review
from agent.chunking import Chunk, skip_reason, split_chunk
from agent.client import Endpoint, ModelClient
from agent.context import ReviewContext
from agent.diff import parse_diff
from agent.errors import (
    ContextOverflowError,
    ModelCallError,
    ModelOutputError,
    NoModelError,
    ProviderError,
)
from agent.plan import make_plan, schema_text, with_context
from agent.schema import ChunkReview, Synthesis
from agent.state import ChunkResult, ExplainTask, Failure, State
from agent.surround import worktree_reader


async def load(state: State) -> dict[str, Any]:
    return {"diff": parse_diff(state.source.data)}


async def mask(state: State, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    """Credentials in what will be sent become placeholders, before anything is sent."""
    assert state.diff is not None
    if not state.mask:
        return {"title": state.source.title}
    settings = runtime.context.settings
    # Only what will be sent is scanned: an excluded file's secrets stay on this machine anyway.
    sent = [f for f in state.diff.files if not skip_reason(f, settings)]
    masked = masking.mask(replace(state.diff, files=tuple(sent)), state.source.title)
    replaced = iter(masked.diff.files)
    chosen = {id(f) for f in sent}
    files = tuple(next(replaced) if id(f) in chosen else f for f in state.diff.files)
    return {
        "diff": replace(state.diff, files=files),
        "title": masked.title,
        "secrets": masked.findings,
    }


async def plan(state: State, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert state.diff is not None
    diff = state.diff
    made = make_plan(diff, ctx.facts, ctx.settings, ctx.model.name, ctx.model.litellm_model)
    refused = None
    notes = list(ctx.notes)
    facts = ctx.facts
    if ctx.budget is not None:
        decision = ctx.budget.decide(
            made,
            ctx.model,
            lambda m, facts: make_plan(diff, facts, ctx.settings, m.name, m.litellm_model),
        )
        refused = decision.refused
        if decision.note:
            notes.append(decision.note)
        if decision.switch_to and decision.facts and decision.plan:
            made, facts = decision.plan, decision.facts
            if ctx.client is not None:
                ctx.client.lead_with(Endpoint(decision.switch_to, decision.facts))
            if ctx.recorder is not None:
                ctx.recorder.update_run(model_name=decision.switch_to.name)
    if notes:
        made = replace(made, notes=(*notes, *made.notes))
    if (root := state.source.repo_root) is not None:
        made = with_context(
            made,
            facts,
            worktree_reader(root),
            max_lines=ctx.settings.context_lines,
            check=masking.is_clean if state.mask else lambda path, lines: True,
        )
    limit = ctx.settings.max_cost_usd
    cost = made.cost_usd
    if refused is None and limit is not None and cost is not None and cost > limit and made.chunks:
        refused = (
            f"not sent: the estimated cost ${cost:.4f} is over the limit ${limit:.4f} "
            "(review.max_cost_usd, --max-cost)"
        )
    if not state.dry_run:
        ctx.progress.planned(0 if refused else len(made.chunks))
    return {"plan": made, "refused": refused}


async def explain(task: ExplainTask, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert ctx.client is not None
    results = await _explain(task, task.chunk, ctx.client)
    ctx.progress.chunk_done(task.chunk.label, ok=all(r.ok for r in results))
    return {"results": results}


def _messages(task: ExplainTask, chunk: Chunk | None) -> list[dict[str, str]]:
    text = chunk.render() if chunk is not None else ""
    return prompts.load("chunk").render(
        schema=schema_text(ChunkReview),
        nonce=prompts.fence_nonce(text),
        diff=text,
        title=task.title,
        repo=task.repo,
        part=chunk.id if chunk is not None else "1",
        parts=str(task.parts),
    )


async def _explain(
    task: ExplainTask, chunk: Chunk, client: ModelClient, *, to_fallback: bool = False
) -> list[ChunkResult]:
    """One chunk's review. A chunk too large for the model's window is split in two and each
    half reviewed, recursively; one that cannot be made small enough for it (a single line, or
    a window the prompt alone fills) goes to the fallback models whose window it fits."""
    try:
        answer = await client.structured(
            _messages(task, chunk),
            ChunkReview,
            purpose=f"chunk-{chunk.id}",
            check=lambda reply: replies.problem(reply, chunk),
            overflow_to_fallback=to_fallback,
        )
    except ContextOverflowError as exc:
        halves = split_chunk(chunk)
        # Splitting helps only while the prompt without any diff still fits the model.
        if halves is not None and (to_fallback or client.fits(_messages(task, None))):
            return [
                *await _explain(task, halves[0], client, to_fallback=to_fallback),
                *await _explain(task, halves[1], client, to_fallback=to_fallback),
            ]
        if not to_fallback and len(client.endpoints) > 1:
            return await _explain(task, chunk, client, to_fallback=True)
        error = f"too large for the model's window even split to its smallest ({exc.message})"
        return [ChunkResult(chunk, None, error=error, failure="too_large")]
    except (NoModelError, ModelCallError) as exc:
        return [ChunkResult(chunk, None, error=exc.message, hint=exc.hint, failure=_failure(exc))]
    checked = replies.check(answer.value, chunk, task.diff)
    return [
        ChunkResult(
            chunk,
            checked.review,
            checked.questions,
            checked.dropped,
            checked.explained,
            model_name=answer.model_name,
        )
    ]


def _failure(exc: NoModelError | ModelCallError) -> Failure:
    if isinstance(exc, NoModelError) or (isinstance(exc, ProviderError) and exc.model_unusable):
        return "no_model"
    return "output" if isinstance(exc, ModelOutputError) else "provider"


async def synthesize(state: State, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert state.diff is not None and state.plan is not None
    reviewed = sorted((r for r in state.results if r.ok), key=lambda r: r.chunk.key)
    found: Synthesis | None = None
    notes = [*state.source.notes, *state.plan.notes]
    if len(reviewed) > 1 and ctx.client is not None:
        try:
            outcome = await synthesis.synthesize(
                ctx.client,
                reviewed,
                [q for r in reviewed for q in r.questions],
                title=state.title or "(untitled)",
                repo=state.source.repo or "(unknown)",
                keep=ctx.settings.max_questions,
            )
            found = outcome.synthesis
            if outcome.stages > 1:
                notes.append(
                    f"the PR-level summary was written in {outcome.stages} stages: the parts' "
                    "summaries did not fit one prompt"
                )
        except (ModelCallError, NoModelError) as exc:
            notes.append(
                f"the PR-level summary could not be written ({exc.message}); it is assembled "
                "from the parts' own summaries"
            )
    if ctx.client is not None:
        notes.extend(ctx.client.notes())
    review = build_review(
        run=state.run,
        diff=state.diff,
        secrets=state.secrets,
        refused=state.refused,
        plan=state.plan,
        results=state.results,
        synthesis=found,
        notes=notes,
        calls=ctx.recorder.rows if ctx.recorder else [],
        max_questions=ctx.settings.max_questions,
    )
    return {"review": review}
