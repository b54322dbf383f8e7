"""The review graph's nodes: small async functions that return only the keys they change."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agent import masking, prompts, replies, reuse, risk_triage, riskiest, synthesis
from agent.assemble import build_review
from agent.chunking import Chunk, skip_reason, split_chunk
from agent.client import Endpoint, ModelClient
from agent.config import ReviewSettings
from agent.context import ReviewContext
from agent.diff import Diff, FileDiff, parse_diff
from agent.errors import (
    ContextOverflowError,
    ModelCallError,
    ModelOutputError,
    NoModelError,
    ProviderError,
)
from agent.ledger import Recorder
from agent.narrow import narrow
from agent.parts import Route
from agent.plan import Plan, make_plan, make_routed_plan, schema_text, with_context
from agent.providers import ModelFacts
from agent.routing import Router
from agent.schema import ChunkReview, Synthesis
from agent.state import ChunkResult, ExplainTask, Failure, State
from agent.surround import worktree_reader
from agent.tokens import count_messages


async def load(state: State) -> dict[str, Any]:
    return {"diff": parse_diff(state.source.data)}


async def mask(state: State, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    """Credentials in what will be sent become placeholders, before anything is sent."""
    assert state.diff is not None
    if not state.mask:
        return {"title": state.source.title}
    settings = runtime.context.settings
    # Only what will be sent is scanned: an excluded file's secrets stay on this machine anyway.
    sent = _sent(state.diff, settings)
    masked = masking.mask(replace(state.diff, files=tuple(sent)), state.source.title)
    replaced = iter(masked.diff.files)
    chosen = {id(f) for f in sent}
    files = tuple(next(replaced) if id(f) in chosen else f for f in state.diff.files)
    return {
        "diff": replace(state.diff, files=files),
        "title": masked.title,
        "secrets": masked.findings,
    }


def to_rate(state: State, ctx: ReviewContext) -> list[FileDiff]:
    """The files a triage pass rates: those whose lines (or, deleted, whose name and size)
    will be sent."""
    assert state.diff is not None
    return [f for f in _sent(state.diff, ctx.settings) if f.hunks]


async def triage(state: State, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    """The triage model rates the risk of each file to be sent (routing.triage), and the
    router routes by its verdicts from now on. A dry run says what it would cost."""
    ctx = runtime.context
    router = ctx.router
    assert router is not None and router.triage is not None
    settings, files = router.triage, to_rate(state, ctx)
    title, repo = state.title or "(untitled)", state.source.repo or "(unknown)"
    # Files unchanged since an earlier review keep their rating: only the rest is asked about.
    held, files, problem = reuse.kept_ratings(ctx.cache, files, settings, count=not state.dry_run)
    kept = [problem] if problem else []
    if held:
        kept.append(
            f"triage: {len(held)} file(s) unchanged since an earlier review kept their rating"
        )
    router.rated({v.path: v.risk for v in held})
    work = risk_triage.batches(files, router, settings, title, repo)
    planned = risk_triage.outcome(
        work, router, settings, [*held, *risk_triage.heuristic(files)], kept, ran=False
    )
    why_not = risk_triage.unusable(router, settings, None if state.dry_run else ctx.client)
    if why_not is None and ctx.budget is not None and planned.cost_usd is not None:
        status, policy = ctx.budget.status, ctx.budget.budget.on_exceed
        if policy != "warn" and planned.cost_usd > status.remaining_usd:
            why_not = f"{status.team} has ${status.remaining_usd:,.2f} left of its budget"
    if why_not is not None and work:
        note = f"triage ({settings.model[0]}) not run: {why_not}; the path's risk stands"
        return {"triage": replace(planned, notes=(*kept, note))}
    if state.dry_run or not work:
        return {"triage": replace(planned, ran=bool(held) and not state.dry_run)}
    assert ctx.client is not None
    verdicts, notes, answered = await risk_triage.rate(
        work, ctx.client, settings, ctx.settings.concurrency
    )
    router.rated({v.path: v.risk for v in verdicts})
    if problem := reuse.keep_ratings(ctx.cache, verdicts, files, settings):
        notes.append(problem)
    outcome = risk_triage.outcome(
        work, router, settings, [*held, *verdicts], [*kept, *notes], ran=bool(answered or held)
    )
    return {"triage": outcome}


async def plan(state: State, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert state.diff is not None
    # Fewer of git's context lines, when configured: after masking (which reads whole hunks, so
    # a key's surroundings are seen), before the cache keys and the plan (what is sent).
    whole = narrow(state.diff, ctx.settings.diff_context_lines)
    state = replace(state, diff=whole)
    hits = _cached(state, ctx)
    # Files whose review the cache holds are not planned: only the rest is sent.
    held = {id(h.file) for h in hits}
    diff = replace(whole, files=tuple(f for f in whole.files if id(f) not in held))
    model, facts, router = ctx.model, ctx.facts, ctx.router

    def planner(part: Diff) -> Plan:
        if router is not None:
            return make_routed_plan(part, router)
        return make_plan(part, facts, ctx.settings, model.name, model.litellm_model)

    made = planner(diff)
    refused = None
    notes = list(ctx.notes)
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
            replaced = model.name
            made, model, facts = decision.plan, decision.switch_to, decision.facts
            router = None  # the budget's model reviews everything, whatever the rules say
            if ctx.client is not None:
                ctx.client.lead_with(Endpoint(decision.switch_to, decision.facts))
            if ctx.recorder is not None:
                ctx.recorder.update_run(model_name=decision.switch_to.name)
            made = _switched(made, model.name, f"budget: switched from {replaced}", ctx)
    spent = _triage_spent(state, ctx)
    if refused is None:
        made, refused, narrowed = _within_max_cost(made, diff, ctx, planner, notes, spent)
        if narrowed is not diff:  # git's context cut to fit: what is sent is this diff
            whole, diff = _narrowed(whole, diff, narrowed), narrowed
            state = replace(state, diff=whole)
    if (root := state.source.repo_root) is not None and refused is None:
        made = _with_context(made, facts, root, state, ctx, router, spent)
    if router is not None and refused is None and not state.dry_run:
        router.check(Counter(c.route for c in made.chunks if c.route is not None))
    if state.triage is not None:
        planned = {p for c in made.chunks for p in c.paths}
        rated = [f for f in diff.files if f.path in planned]
        moves = risk_triage.moved(state.triage, rated, router) if router is not None else ()
        made = replace(made, triage=replace(state.triage, moved=moves))
        notes.extend(state.triage.notes)
    reused = reuse.results(hits, whole, first_key=len(made.chunks) + 1)
    if hits:
        notes.append(_reuse_note(reused, state.dry_run))
    if ctx.cache is not None and ctx.cache.problem:
        notes.append(ctx.cache.problem)
    made = replace(
        made,
        files_total=len(whole.files),
        hunks_total=sum(len(f.hunks) for f in whole.files),
        notes=(*notes, *made.notes),
    )
    if not state.dry_run:
        ctx.progress.planned(0 if refused else len(made.chunks))
        if ctx.recorder is not None:
            for result, hit in reused:
                _record_hit(ctx.recorder, result, hit)
    return {
        "diff": whole,
        "plan": made,
        "refused": refused,
        "results": [r for r, _ in reused],
    }


def _triage_spent(state: State, ctx: ReviewContext) -> float:
    """What the triage pass cost (the ledger's rows; in a dry run, its estimate): spent before
    the plan, it comes out of what --max-cost leaves the chunks."""
    if state.triage is None:
        return 0.0
    if state.dry_run or ctx.recorder is None:
        return state.triage.cost_usd or 0.0
    return sum(r.cost_usd or 0.0 for r in ctx.recorder.rows if r.purpose.startswith("triage"))


def _within_max_cost(
    made: Plan,
    diff: Diff,
    ctx: ReviewContext,
    planner: Callable[[Diff], Plan],
    notes: list[str],
    spent: float = 0.0,
) -> tuple[Plan, str | None, Diff]:
    """The plan as --max-cost allows it (less what was ``spent`` before it: the triage), why
    nothing is sent when nothing is, and the diff planned. Over the limit, git's context goes
    first (one line kept around each change, then none): every changed line reviewed with less
    around it beats files left out. Only then does the policy leave files out or refuse."""
    limit, cost = ctx.settings.max_cost_usd, made.cost_usd
    if limit is not None:
        limit = max(0.0, limit - spent)
    if limit is None or cost is None or cost <= limit or not made.chunks:
        return made, None, diff
    kept, least = ctx.settings.diff_context_lines, (made, diff)
    for lines in (n for n in (1, 0) if kept is None or n < kept):
        narrowed = narrow(diff, lines)
        if narrowed is least[1]:
            continue
        least = (planner(narrowed), narrowed)
        estimate = least[0].cost_usd
        if estimate is not None and estimate <= limit:
            notes.append(
                f"the estimate ${cost:.4f} is over the limit ${limit:.4f} (--max-cost): git's "
                f"context is cut to {lines} line(s) around each change, every changed line "
                f"still reviewed, estimated at ${estimate:.4f}"
            )
            return least[0], None, least[1]
    if ctx.settings.over_max_cost == "riskiest_first":
        # The most changed lines within the limit: the riskiest files, with no context.
        partial = riskiest.riskiest_within(least[1], least[0], limit, planner)
        if partial is not None:
            notes.append(partial[1])
            if least[1] is not diff:
                notes.append("git's context is cut to 0 lines around each change, to fit more")
            return partial[0], None, least[1]
    after = f", ${spent:.4f} of it spent on triage" if spent else ""
    return (
        made,
        f"not sent: the estimated cost ${cost:.4f} is over the limit ${limit:.4f} "
        f"(review.max_cost_usd, --max-cost{after})",
        diff,
    )


def _narrowed(whole: Diff, planned: Diff, narrowed: Diff) -> Diff:
    """``whole`` with the files of ``planned`` (it less the cache's files) as ``narrowed``."""
    by_id = {id(a): b for a, b in zip(planned.files, narrowed.files, strict=True)}
    return replace(whole, files=tuple(by_id.get(id(f), f) for f in whole.files))


def _switched(made: Plan, model: str, why: str, ctx: ReviewContext) -> Plan:
    """The plan with every chunk on ``model`` (and the client's chain after it), saying why."""
    chain = [e.name for e in ctx.client.endpoints] if ctx.client is not None else [model]
    route = Route(tuple(chain), why)
    return replace(made, chunks=tuple(replace(c, route=route) for c in made.chunks))


def _with_context(
    made: Plan,
    facts: ModelFacts,
    root: Path,
    state: State,
    ctx: ReviewContext,
    router: Router | None,
    spent: float,
) -> Plan:
    """The plan with surrounding lines in the room its chunks have left, unless that would
    take it over --max-cost (less what the triage ``spent``)."""
    shown = with_context(
        made,
        facts,
        worktree_reader(root),
        max_lines=ctx.settings.context_lines,
        check=masking.is_clean if state.mask else lambda path, lines: True,
        router=router,
    )
    limit = ctx.settings.max_cost_usd
    if limit is not None and shown.cost_usd is not None and shown.cost_usd > limit - spent:
        return made
    return shown


def _cached(state: State, ctx: ReviewContext) -> list[reuse.Hit]:
    """The files to be sent whose review the content cache already holds."""
    assert state.diff is not None
    if ctx.cache is None:
        return []
    sent = [f for f in _sent(state.diff, ctx.settings) if f.hunks]
    return ctx.cache.lookup(sent, count=not state.dry_run)


def _sent(diff: Diff, settings: ReviewSettings) -> list[FileDiff]:
    """The files whose lines may go to the model (not binary, excluded, sensitive...)."""
    return [f for f in diff.files if not skip_reason(f, settings)]


def _reuse_note(reused: list[tuple[ChunkResult, reuse.Hit]], dry_run: bool) -> str:
    files = sum(len(r.chunk.files) for r, _ in reused)
    saved = [h.saved_usd for _, h in reused]
    worth = (
        f", which cost ${sum(s or 0.0 for s in saved):.4f} to produce"
        if all(s is not None for s in saved)
        else ""
    )
    verb = "would be" if dry_run else "was"
    return (
        f"{files} file(s) unchanged since an earlier review: their review {verb} taken from the "
        f"content cache{worth} (--no-cache reviews them afresh)"
    )


def _record_hit(recorder: Recorder, result: ChunkResult, hit: reuse.Hit) -> None:
    """A cache hit in the ledger: no tokens, no cost, and the cost it saved."""
    about = hit.entry.result
    record = recorder.begin(
        purpose=f"cached-{result.chunk.id}",
        model_name=str(about.get("model_name") or result.model_name or ""),
        model=hit.entry.model,
        provider=str(about.get("provider") or ""),
        estimated_prompt_tokens=0,
    )
    recorder.update(record, outcome="cached", cost_usd=0.0, cache_savings_usd=hit.saved_usd)


async def explain(task: ExplainTask, runtime: Runtime[ReviewContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert ctx.client is not None
    results = await _explain(task, task.chunk, ctx.client)
    if (cache := ctx.cache) is not None and ctx.recorder is not None:
        rows = ctx.recorder.rows
        # Its commit waits on the ledger's writer thread, not on the event loop.
        await ctx.recorder.in_writer(lambda: cache.keep(results, rows))
    ctx.progress.chunk_done(task.chunk.label, ok=all(r.ok for r in results))
    return {"results": results}


def _messages(
    task: ExplainTask, chunk: Chunk | None, diff: str | None = None
) -> list[dict[str, str]]:
    text = chunk.render() if chunk is not None else ""
    return prompts.load("chunk").render(
        schema=schema_text(ChunkReview),
        nonce=prompts.fence_nonce(text),
        diff=text if diff is None else diff,
        title=task.title,
        repo=task.repo,
        part=chunk.id if chunk is not None else "1",
        parts=str(task.parts),
    )


def _prompt_tokens(task: ExplainTask, chunk: Chunk) -> int:
    """Our count of a chunk's prompt: the prompt around the diff, counted, and the diff's own
    tokens as the planner counted them (``Chunk.tokens``), not counted again (tokenizing a
    full chunk is most of what the event loop does per call)."""
    return count_messages(_messages(task, chunk, diff="")) + chunk.tokens


async def _explain(
    task: ExplainTask, chunk: Chunk, client: ModelClient, *, to_fallback: bool = False
) -> list[ChunkResult]:
    """One chunk's review. A chunk too large for the model's window is split in two and each
    half reviewed, recursively; one that cannot be made small enough for it (a single line, or
    a window the prompt alone fills) goes to the fallback models whose window it fits."""
    route = chunk.route
    models = route.models if route is not None else None
    try:
        answer = await client.structured(
            _messages(task, chunk),
            ChunkReview,
            purpose=f"chunk-{chunk.id}",
            check=lambda reply: replies.problem(reply, chunk),
            overflow_to_fallback=to_fallback,
            models=models,
            route=route.why if route is not None else None,
            prompt_tokens=_prompt_tokens(task, chunk),
        )
    except ContextOverflowError as exc:
        halves = split_chunk(chunk)
        # Splitting helps only while the prompt without any diff still fits the model.
        if halves is not None and (to_fallback or client.fits(_messages(task, None), models)):
            return [
                *await _explain(task, halves[0], client, to_fallback=to_fallback),
                *await _explain(task, halves[1], client, to_fallback=to_fallback),
            ]
        if not to_fallback and len(client.chain(models)) > 1:
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
                concurrency=ctx.settings.concurrency,
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
    if ctx.cache is not None and ctx.cache.problem:
        notes.append(ctx.cache.problem)
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
