"""The review graph's nodes: small async functions that return only the keys they change."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agent import anchors, prompts
from agent.context import ReviewContext
from agent.diff import parse_diff
from agent.errors import LedgerError, ModelCallError, NoModelError
from agent.plan import make_plan, schema_text
from agent.ranking import build_review
from agent.render import write_artifacts
from agent.schema import ChunkReview, Synthesis
from agent.state import AnchoredQuestion, ChunkResult, ExplainTask, State


async def load(state: State) -> dict[str, Any]:
    return {"diff": parse_diff(state.source.data)}


async def plan(state: State, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert state.diff is not None
    made = make_plan(state.diff, ctx.facts, ctx.settings, ctx.model.name, ctx.model.litellm_model)
    if not state.dry_run:
        ctx.progress.planned(len(made.chunks))
    return {"plan": made}


async def explain(task: ExplainTask, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert ctx.client is not None
    chunk = task.chunk
    text = chunk.render()
    messages = prompts.load("chunk").render(
        schema=schema_text(ChunkReview),
        nonce=prompts.fence_nonce(text),
        diff=text,
        title=task.title,
        repo=task.repo,
        part=str(chunk.id),
        parts=str(task.parts),
    )
    try:
        reply = await ctx.client.structured(messages, ChunkReview, purpose=f"chunk-{chunk.id}")
    except NoModelError:
        raise  # bad credentials fail every chunk the same way: stop the run
    except ModelCallError as exc:
        ctx.progress.chunk_done(chunk.label, ok=False)
        return {"results": [ChunkResult(chunk, None, error=exc.message)]}

    kept: list[AnchoredQuestion] = []
    rejected: list[str] = []
    for order, q in enumerate(reply.questions):
        checked = anchors.anchor(q, task.diff)
        if isinstance(checked, str):
            rejected.append(f"{q.question[:80]!r}: {checked}")
            continue
        a = checked.anchor
        kept.append(
            AnchoredQuestion(
                chunk_id=chunk.id,
                order=order,
                question=q.question,
                category=q.category,
                priority=q.priority,
                why_it_matters=q.why_it_matters,
                path=a.path,
                side=a.side,
                start_line=a.start_line,
                end_line=a.end_line,
                repaired=checked.repaired,
            )
        )
    ctx.progress.chunk_done(chunk.label, ok=True)
    return {"results": [ChunkResult(chunk, reply, tuple(kept), tuple(rejected))]}


async def synthesize(state: State, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert state.diff is not None and state.plan is not None
    results = sorted(state.results, key=lambda r: r.chunk.id)
    reviewed = [r for r in results if r.ok]
    synthesis: Synthesis | None = None
    problem: str | None = None
    if len(reviewed) > 1 and ctx.client is not None:
        candidates = [q for r in reviewed for q in r.questions]
        parts_text = _parts_for_synthesis(reviewed, candidates)
        messages = prompts.load("synthesis").render(
            schema=schema_text(Synthesis),
            nonce=prompts.fence_nonce(parts_text),
            parts=parts_text,
            title=state.source.title or "(untitled)",
            repo=state.source.repo or "(unknown)",
        )
        try:
            synthesis = await ctx.client.structured(messages, Synthesis, purpose="synthesis")
        except ModelCallError as exc:
            problem = f"the PR-level summary could not be written ({exc.message}); "
            problem += "it is assembled from the parts' summaries instead"
    review = build_review(
        state=state,
        results=results,
        synthesis=synthesis,
        synthesis_problem=problem,
        ctx=ctx,
    )
    return {"review": review}


def _parts_for_synthesis(reviewed: list[ChunkResult], candidates: list[AnchoredQuestion]) -> str:
    lines: list[str] = []
    for r in reviewed:
        assert r.review is not None
        lines.append(f"## Part {r.chunk.id}: {r.chunk.label}")
        lines.append(f"Summary: {r.review.summary}")
        lines.append(f"Risk: {r.review.risk} ({'; '.join(r.review.risk_reasons)})")
    lines.append("")
    lines.append("## Candidate questions")
    for n, q in enumerate(candidates, 1):
        lines.append(f"[Q{n}] ({q.category}, {q.priority}) {q.path}:{q.start_line}: {q.question}")
    return "\n".join(lines)


async def record(state: State, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    ctx = runtime.context
    review = state.review
    assert review is not None
    recorder = ctx.recorder
    if recorder.store is not None and recorder.error is None:
        try:
            recorder.store.finish_run(
                review.run_id,
                status="complete" if review.complete else "incomplete",
                files_reviewed=review.coverage.files_reviewed,
                hunks_reviewed=review.coverage.hunks_reviewed,
            )
        except LedgerError as exc:
            recorder.error = exc
    if recorder.error is not None:
        review = review.model_copy(update={"ledger_error": recorder.error.message})
    spool = str(recorder.spool) if recorder.spool else None
    return {
        "review": review.model_copy(update={"calls": list(recorder.rows), "ledger_spool": spool})
    }


async def render(state: State, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert state.review is not None
    if ctx.out_dir is not None:
        write_artifacts(state.review, ctx.formats, ctx.out_dir)
    return {}
