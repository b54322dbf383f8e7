"""Assembling the ``Review`` from chunk results: coverage counted per line, questions ranked,
what was dropped counted, spend summed from the run's calls."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from agent.anchored_code import fingerprint as code_fingerprint
from agent.diff import Diff
from agent.ledger import CallRecord, RunInfo
from agent.masking import Finding
from agent.plan import Plan
from agent.ranking import RISK_ORDER, rank
from agent.result import (
    Anchor,
    Coverage,
    DroppedCounts,
    FileNote,
    ModelUsage,
    NotReviewed,
    Question,
    Review,
    Summarized,
    TriagedFile,
    TriageMove,
    TriageReport,
    Usage,
)
from agent.risk_triage import PURPOSE as TRIAGE
from agent.riskiest import FOR_BUDGET
from agent.schema import Dropped, Synthesis
from agent.state import ChunkResult

EXAMPLES = 20


def build_review(
    *,
    run: RunInfo,
    diff: Diff,
    secrets: tuple[Finding, ...] = (),
    refused: str | None = None,
    plan: Plan,
    results: list[ChunkResult],
    synthesis: Synthesis | None,
    notes: Iterable[str],
    calls: list[CallRecord],
    max_questions: int,
    interrupted: str | None = None,
) -> Review:
    results = sorted(results, key=lambda r: r.chunk.key)
    reviewed = [r for r in results if r.ok]
    problems: list[str] = []
    for r in results:
        if not r.ok:
            problems.append(f"part {r.chunk.id} ({r.chunk.label}) was not reviewed: {r.error}")
        elif missing := [p for p in r.chunk.diff_paths if p not in r.explained]:
            problems.append(f"part {r.chunk.id}: the model did not explain {', '.join(missing)}")
    coverage = _coverage(plan, results, interrupted, refused)
    if refused:
        problems.append(refused)
    if plan.over_max_cost:
        for_budget = [s for s in plan.skipped if s.reason.startswith(FOR_BUDGET)]
        problems.append(
            f"{len(for_budget)} file(s) were not reviewed for budget: the diff was estimated over "
            "--max-cost and the riskiest files were reviewed first"
        )
    if interrupted:
        left = sum(n.hunks for n in coverage.not_reviewed if n.reason.startswith("interrupted"))
        problems.append(f"the run was interrupted ({interrupted}); {left} hunk(s) were not reached")

    candidates = [q for r in reviewed for q in r.questions]
    ranked = rank(candidates, synthesis.question_order if synthesis else None)
    # A credential in the change comes first; then the model's questions, the most important
    # ones: a list of fifty is a list nobody answers.
    asked = secret_questions(secrets)
    room = max(0, max_questions - len(asked))
    questions = [
        q.model_copy(update={"rank": i, "code_fingerprint": code_fingerprint(diff, q.anchor)})
        for i, q in enumerate(
            [
                *asked,
                *(
                    Question(
                        rank=0,
                        question=q.question,
                        category=q.category,
                        priority=q.priority,
                        why_it_matters=q.why_it_matters,
                        anchor=Anchor(
                            path=q.path, side=q.side, start_line=q.start_line, end_line=q.end_line
                        ),
                        anchor_repaired=q.repaired,
                    )
                    for q in ranked[:room]
                ),
            ],
            1,
        )
    ]

    statuses = {f.path: f.status.value for f in diff.files}
    walkthroughs = _walkthroughs(reviewed)

    if synthesis is not None:
        summary, risk, reasons = synthesis.summary, synthesis.risk, synthesis.risk_reasons
    elif reviewed:
        summary = "\n\n".join(r.review.summary for r in reviewed if r.review)
        risk = max((r.review.risk for r in reviewed if r.review), key=RISK_ORDER.__getitem__)
        reasons = [reason for r in reviewed if r.review for reason in r.review.risk_reasons]
    else:
        summary, risk, reasons = "", None, []
    if not diff.files:
        summary = "The diff is empty: there is nothing to review."

    failed = [r for r in results if not r.ok]
    return Review(
        run=run,
        summary=summary,
        risk=risk,
        risk_reasons=list(dict.fromkeys(reasons)),
        files=[
            FileNote(path=p, status=statuses[p], walkthrough="\n\n".join(walkthroughs[p]))
            for p in statuses
            if p in walkthroughs
        ],
        questions=questions,
        dropped=dropped_counts(r for res in results for r in res.dropped),
        questions_omitted=max(0, len(ranked) - room),
        secrets=list(secrets),
        coverage=coverage,
        usage=usage_of(calls, plan.model, sum(len(r.chunk.files) for r in results if r.cached)),
        complete=not problems,
        problems=problems,
        hints=list(dict.fromkeys(r.hint for r in failed if r.hint)),
        notes=list(dict.fromkeys([*_secret_notes(run, secrets), *notes])),
        interrupted=interrupted,
        no_usable_model=bool(failed) and all(r.failure == "no_model" for r in failed),
        over_budget=refused is not None or plan.over_max_cost,
        triage=_triage(plan, calls),
        calls=calls,
    )


def _triage(plan: Plan, calls: list[CallRecord]) -> TriageReport | None:
    done = plan.triage
    if done is None:
        return None
    mine = [c for c in calls if c.purpose.startswith(f"{TRIAGE}-")]
    unpriced = any(c.cost_usd is None for c in mine if c.billed)
    return TriageReport(
        model_name=done.models[0],
        ran=done.ran,
        calls=len(mine),
        cost_usd=None if unpriced else round(sum(c.cost_usd or 0.0 for c in mine), 6),
        files=[
            TriagedFile(
                path=v.path, risk=v.risk, path_risk=v.path_risk, rated=v.rated, reason=v.reason
            )
            for v in done.verdicts
        ],
        moved=[
            TriageMove(path=m.path, from_model=m.from_model, to_model=m.to_model)
            for m in done.moved
        ],
    )


def _walkthroughs(reviewed: list[ChunkResult]) -> dict[str, list[str]]:
    """Per file, its walkthroughs in the order of the parts they explain (a file split over
    chunks may have its parts in any chunk)."""
    found: dict[str, list[tuple[tuple[int, int], str]]] = defaultdict(list)
    for r in reviewed:
        assert r.review is not None
        where: dict[str, tuple[int, int]] = {}
        for part in r.chunk.files:
            if part.spans:
                where.setdefault(part.file.path, (part.spans[0].hunk, part.spans[0].start))
        for w in r.review.files:
            found[w.path].append((where.get(w.path, (-1, -1)), w.walkthrough))
    return {path: [w for _, w in sorted(ws, key=lambda e: e[0])] for path, ws in found.items()}


def _secret_notes(run: RunInfo, secrets: tuple[Finding, ...]) -> list[str]:
    if not run.masking:
        return ["masking was off (--no-mask): the diff was sent to the model as it is"]
    if not secrets:
        return []
    kinds = ", ".join(dict.fromkeys(f.kind for f in secrets))
    places = ", ".join(f.where for f in secrets[:10]) + (" …" if len(secrets) > 10 else "")
    return [
        f"{len(secrets)} credential(s) ({kinds}) were masked before anything was sent: {places}"
    ]


def secret_questions(secrets: Iterable[Finding]) -> list[Question]:
    """One high-priority security question per file that held a masked credential, anchored to
    its first one, never quoting it."""
    by_file: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f in secrets:
        if f.path != "(title)":
            by_file[(f.path, f.side)].append(f)
    questions = []
    for (path, side), found in by_file.items():
        kinds = ", ".join(dict.fromkeys(f.kind for f in found))
        lines = ", ".join(dict.fromkeys(f.lines for f in found))
        verb = "adds" if side == "new" else "removes"
        first = found[0]
        questions.append(
            Question(
                rank=0,
                question=f"{path} {verb} what looks like a credential ({kinds}; line {lines}). "
                "Is it real, has it been revoked and rotated, and where should the code read "
                "it from instead?",
                category="security",
                priority="high",
                why_it_matters="A credential in a commit can be read by everyone with access to "
                "the repository and stays in its history after it is deleted. It was masked "
                "before the diff was sent to the model.",
                anchor=Anchor(
                    path=path, side=first.side, start_line=first.line, end_line=first.end_line
                ),
            )
        )
    return questions


def _coverage(
    plan: Plan, results: list[ChunkResult], interrupted: str | None, refused: str | None
) -> Coverage:
    """A hunk is reviewed when every one of its lines was in a reviewed chunk that explained
    its file; a file when all its hunks are (or, with no hunks, when it was explained)."""
    seen: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    explained: set[str] = set()
    why: dict[str, list[str]] = defaultdict(list)
    told: set[str] = set()  # summarized files whose summary reached a reviewed chunk
    for r in results:
        for part in r.chunk.files:
            path = part.file.path
            if part.summary is not None:
                if r.ok:
                    told.add(path)
                else:
                    reason = "interrupted" if r.failure == "interrupted" else "model call failed"
                    why[path].append(f"{reason} (part {r.chunk.id}): {r.error}")
            elif r.ok and path in r.explained:
                explained.add(path)
                for span in part.spans:
                    seen[(path, span.hunk)].append((span.start, span.end))
            elif r.ok:
                why[path].append(f"not explained by the model (part {r.chunk.id})")
            else:
                reason = "interrupted" if r.failure == "interrupted" else "model call failed"
                why[path].append(f"{reason} (part {r.chunk.id}): {r.error}")
    chunks = [*plan.chunks, *(r.chunk for r in results if r.cached)]
    planned = {p.file.path: p.file for c in chunks for p in c.files if p.summary is None}
    files_reviewed = hunks_reviewed = 0
    not_reviewed = [
        NotReviewed(path=s.path, hunks=s.hunks, reason=s.reason)
        for s in plan.skipped
        if s.kind == "not_sent"
    ]
    summarized = []
    for s in plan.skipped:
        if s.kind != "summarized":
            continue
        if s.path in told:
            summarized.append(Summarized(path=s.path, hunks=s.hunks, reason=s.reason))
            continue
        reasons = _unreached(why.get(s.path, []), refused, interrupted)
        not_reviewed.append(NotReviewed(path=s.path, hunks=s.hunks, reason=reasons))
    for path, file in planned.items():
        missing = [
            i
            for i, hunk in enumerate(file.hunks)
            if not _covers(seen.get((path, i), []), len(hunk.lines))
        ]
        hunks_reviewed += len(file.hunks) - len(missing)
        if not missing and path in explained:
            files_reviewed += 1
            continue
        reason = _unreached(why.get(path, []), refused, interrupted)
        not_reviewed.append(NotReviewed(path=path, hunks=len(missing), reason=reason))
    return Coverage(
        files_total=plan.files_total,
        files_reviewed=files_reviewed,
        hunks_total=plan.hunks_total,
        hunks_reviewed=hunks_reviewed,
        not_reviewed=not_reviewed,
        summarized=summarized,
    )


def _unreached(why: list[str], refused: str | None, interrupted: str | None) -> str:
    reasons = list(dict.fromkeys(why))
    if not reasons:
        if refused:
            reasons = [refused]
        elif interrupted:
            reasons = ["interrupted: the run stopped before this part"]
        else:
            reasons = ["not reached"]
    return "; ".join(reasons)[:1000]


def _covers(spans: list[tuple[int, int]], total: int) -> bool:
    if total == 0:
        return bool(spans)
    reached = 0
    for start, end in sorted(spans):
        if start > reached:
            return False
        reached = max(reached, end)
    return reached >= total


def dropped_counts(items: Iterable[Dropped]) -> DroppedCounts:
    counts = DroppedCounts()
    examples: list[Dropped] = []
    for d in items:
        if d.kind == "question":
            counts.questions_invalid += 1
        elif d.kind == "anchor":
            counts.questions_outside_diff += 1
        elif d.kind == "walkthrough":
            counts.walkthroughs += 1
        else:
            counts.risk_reasons += 1
        if len(examples) < EXAMPLES:
            examples.append(d)
    counts.examples = examples
    return counts


def usage_of(calls: list[CallRecord], default_model: str, cached_files: int = 0) -> Usage:
    hits = [c for c in calls if c.outcome == "cached"]
    calls = [c for c in calls if c.outcome != "cached"]
    billed = [c for c in calls if c.billed]
    unknown = [
        c
        for c in calls
        if c.outcome in ("unknown", "pending") or (c.outcome == "error" and c.cost_usd is None)
    ]
    unpriced = sorted({c.model for c in billed if c.cost_usd is None})
    return Usage(
        models=sorted({c.model for c in billed})
        or sorted({c.model for c in calls})
        or [default_model],
        calls=len(calls),
        failed_calls=sum(1 for c in calls if c.outcome in ("error", "invalid_output")),
        unknown_calls=len(unknown),
        fallback_calls=sum(1 for c in calls if c.fallback_from),
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        completion_tokens=sum(c.completion_tokens for c in calls),
        cost_usd=round(sum(c.cost_usd or 0.0 for c in calls), 6),
        cost_complete=not unpriced and not unknown,
        unpriced_models=unpriced,
        cached_files=cached_files,
        cache_saved_usd=round(sum(c.cache_savings_usd or 0.0 for c in hits), 6),
        by_model=_by_model(calls),
    )


def _by_model(calls: list[CallRecord]) -> list[ModelUsage]:
    """Each model's calls, tokens, cost and why it was asked; empty when one model did it all
    by the run's own choice (the footer's single model says it)."""
    names = list(dict.fromkeys(c.model_name for c in calls))
    if len(names) < 2 and not any(c.route for c in calls):
        return []
    out = []
    for name in names:
        mine = [c for c in calls if c.model_name == name]
        why = [c.route or "" for c in mine]
        why += [f"fallback for {c.fallback_from}" for c in mine if c.fallback_from]
        out.append(
            ModelUsage(
                model_name=name,
                model=mine[0].model,
                calls=len(mine),
                prompt_tokens=sum(c.prompt_tokens for c in mine),
                completion_tokens=sum(c.completion_tokens for c in mine),
                cost_usd=round(sum(c.cost_usd or 0.0 for c in mine), 6),
                cost_complete=all(c.cost_usd is not None for c in mine if c.billed),
                routes=[w for w in dict.fromkeys(why) if w],
            )
        )
    return out
