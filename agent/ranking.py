"""Merging chunk results into the review: questions deduplicated and ranked, coverage, spend."""

from __future__ import annotations

from agent import prompts
from agent.context import ReviewContext
from agent.result import (
    Anchor,
    Coverage,
    FileNote,
    NotReviewed,
    Question,
    Review,
    Usage,
)
from agent.schema import Synthesis
from agent.state import AnchoredQuestion, ChunkResult, State

_PRIORITY = {"high": 0, "medium": 1, "low": 2}
# Failure modes and security first: they are what an owner most needs to be able to answer.
_CATEGORY = {
    "security": 0,
    "failure_mode": 1,
    "edge_case": 2,
    "mechanism": 3,
    "tests": 4,
    "intent": 5,
}
_RISK = {"low": 0, "medium": 1, "high": 2}


def _default_key(q: AnchoredQuestion) -> tuple[int, int, int, int]:
    return (_PRIORITY.get(q.priority, 1), _CATEGORY.get(q.category, 9), q.chunk_id, q.order)


def rank(candidates: list[AnchoredQuestion], order: list[int] | None) -> list[AnchoredQuestion]:
    """The synthesis order when there is one (invalid numbers ignored, omissions appended in
    default order), else priority, then category, then position in the diff."""
    unique: list[AnchoredQuestion] = []
    seen: set[tuple[str, str, int, int, str]] = set()
    for q in candidates:
        key = (q.path, q.side, q.start_line, q.end_line, " ".join(q.question.lower().split()))
        if key not in seen:
            seen.add(key)
            unique.append(q)
    by_default = sorted(unique, key=_default_key)
    if not order:
        return by_default
    picked: list[AnchoredQuestion] = []
    for n in dict.fromkeys(order):
        if (
            1 <= n <= len(candidates)
            and candidates[n - 1] in unique
            and candidates[n - 1] not in picked
        ):
            picked.append(candidates[n - 1])
    return picked + [q for q in by_default if q not in picked]


def build_review(
    *,
    state: State,
    results: list[ChunkResult],
    synthesis: Synthesis | None,
    synthesis_problem: str | None,
    ctx: ReviewContext,
) -> Review:
    assert state.diff is not None and state.plan is not None
    plan = state.plan
    reviewed = [r for r in results if r.ok]
    problems: list[str] = []

    not_reviewed = [NotReviewed(path=s.path, hunks=s.hunks, reason=s.reason) for s in plan.skipped]
    for r in results:
        if not r.ok:
            for part in r.chunk.files:
                not_reviewed.append(
                    NotReviewed(
                        path=part.file.path, hunks=len(part.hunks), reason="model call failed"
                    )
                )
            problems.append(f"part {r.chunk.id} ({r.chunk.label}) was not reviewed: {r.error}")
    failed_paths = {p.file.path for r in results if not r.ok for p in r.chunk.files}
    reviewed_paths = {p.file.path for r in reviewed for p in r.chunk.files}
    hunks_reviewed = sum(p.hunks_covered for r in reviewed for p in r.chunk.files)

    candidates = [q for r in reviewed for q in r.questions]
    ranked = rank(candidates, synthesis.question_order if synthesis else None)
    # The author is asked the most important ones; a list of fifty is a list nobody answers.
    limit = ctx.settings.max_questions
    questions = [
        Question(
            rank=i,
            question=q.question,
            category=q.category,
            priority=q.priority,
            why_it_matters=q.why_it_matters,
            anchor=Anchor(path=q.path, side=q.side, start_line=q.start_line, end_line=q.end_line),
            anchor_repaired=q.repaired,
        )
        for i, q in enumerate(ranked[:limit], 1)
    ]
    rejected = sum(len(r.rejected) for r in reviewed)

    statuses = {f.path: f.status.value for f in state.diff.files}
    notes: dict[str, FileNote] = {}
    for r in reviewed:
        assert r.review is not None
        for w in r.review.files:
            path = (
                w.path
                if w.path in statuses
                else next((p for p in statuses if p.endswith("/" + w.path)), w.path)
            )
            if path in notes:  # a file split over chunks: join its walkthroughs in order
                notes[path] = notes[path].model_copy(
                    update={"walkthrough": notes[path].walkthrough + "\n\n" + w.walkthrough}
                )
            elif path in statuses:
                notes[path] = FileNote(path=path, status=statuses[path], walkthrough=w.walkthrough)

    if synthesis is not None:
        summary, risk, reasons = synthesis.summary, synthesis.risk, synthesis.risk_reasons
    elif reviewed:
        summary = "\n\n".join(r.review.summary for r in reviewed if r.review)
        risk = max((r.review.risk for r in reviewed if r.review), key=lambda x: _RISK[x])
        reasons = [reason for r in reviewed if r.review for reason in r.review.risk_reasons]
    else:
        summary, risk, reasons = "", None, []
    if synthesis_problem:
        problems.append(synthesis_problem)

    if not state.diff.files:
        summary = "The diff is empty: there is nothing to review."

    rows = ctx.recorder.rows
    costs = [row.cost_usd for row in rows]
    usage = Usage(
        models=sorted({row.model for row in rows}) or [ctx.model.litellm_model],
        calls=len(rows),
        failed_calls=sum(1 for row in rows if row.outcome != "ok"),
        prompt_tokens=sum(row.prompt_tokens for row in rows),
        completion_tokens=sum(row.completion_tokens for row in rows),
        cost_usd=round(sum(c for c in costs if c is not None), 6),
        cost_complete=all(c is not None for c in costs),
    )
    src = state.source
    return Review(
        run_id=state.meta.run_id,
        created_at=state.meta.started_at,
        team=state.meta.team,
        repo=src.repo,
        pr_number=state.meta.pr_number,
        head_sha=src.head_sha,
        base=src.base,
        summary=summary,
        risk=risk,
        risk_reasons=reasons,
        files=[notes[p] for p in statuses if p in notes],
        questions=questions,
        rejected_questions=rejected,
        questions_omitted=max(0, len(ranked) - limit),
        coverage=Coverage(
            files_total=plan.files_total,
            files_reviewed=len(reviewed_paths - failed_paths),
            hunks_total=plan.hunks_total,
            hunks_reviewed=hunks_reviewed,
            not_reviewed=not_reviewed,
        ),
        usage=usage,
        complete=not problems,
        problems=problems,
        notes=[*src.notes, *plan.notes],
        prompt_version=prompts.version(),
        ownit_version=ctx.ownit_version,
    )
