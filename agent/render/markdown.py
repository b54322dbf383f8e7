"""The review as Markdown: the artifact people read in CI and paste into a PR."""

from __future__ import annotations

from agent.result import Review


def footer(review: Review) -> str:
    c, u = review.coverage, review.usage
    if u.cost_complete:
        cost = f"${u.cost_usd:.4f}"
    elif u.cost_usd:
        cost = f"${u.cost_usd:.4f} + calls with unknown prices"
    else:
        cost = "cost unknown (no price for this model: add one in providers.yaml)"
    parts = [
        f"files {c.files_reviewed}/{c.files_total}",
        f"hunks {c.hunks_reviewed}/{c.hunks_total}",
        f"model {', '.join(u.models)}",
        f"{u.calls} call{'s' if u.calls != 1 else ''}"
        + (f" ({u.failed_calls} failed)" if u.failed_calls else ""),
        f"{u.prompt_tokens:,} in / {u.completion_tokens:,} out tokens",
        cost,
    ]
    if review.team:
        parts.append(f"team {review.team}")
    return " · ".join(parts)


def render_markdown(review: Review) -> str:
    out: list[str] = []
    title = review.repo or "change"
    if review.pr_number:
        title += f" #{review.pr_number}"
    out.append(f"# ownit review: {title}\n")
    if not review.complete:
        out.append("> **Incomplete review.** " + " ".join(review.problems) + "\n")
    for note in review.notes:
        out.append(f"> Note: {note}\n")
    if review.risk:
        out.append(f"**Risk: {review.risk}**\n")
        out.extend(f"- {reason}" for reason in review.risk_reasons)
        out.append("")
    out.append("## Summary\n")
    out.append((review.summary or "_No summary: no part of the diff was reviewed._") + "\n")

    out.append("## Questions for the author\n")
    if review.questions:
        out.append("Be ready to answer each of these before you merge.\n")
        for q in review.questions:
            out.append(
                f"{q.rank}. **{q.question}**  \n"
                f"   `{q.anchor}` · {q.category.replace('_', ' ')} · {q.priority} priority  \n"
                f"   _Why it matters:_ {q.why_it_matters}"
            )
        out.append("")
    else:
        out.append("_No questions._\n")
    if review.questions_omitted:
        out.append(
            f"_{review.questions_omitted} lower-ranked question(s) are not shown "
            "(review.max_questions in providers.yaml)._\n"
        )
    if review.rejected_questions:
        out.append(
            f"_{review.rejected_questions} question(s) were dropped because their anchors point "
            "at lines that are not in the diff._\n"
        )

    if review.files:
        out.append("## Walkthrough\n")
        for f in review.files:
            out.append(f"### `{f.path}` ({f.status.replace('_', ' ')})\n")
            out.append(f.walkthrough + "\n")

    if review.coverage.not_reviewed:
        out.append("## Not reviewed\n")
        out.extend(
            f"- `{n.path}` ({n.hunks} hunk{'s' if n.hunks != 1 else ''}): {n.reason}"
            for n in review.coverage.not_reviewed
        )
        out.append("")
    if review.ledger_error:
        out.append(f"> Ledger: {review.ledger_error}\n")
    out.append("---")
    out.append(f"_{footer(review)} · run {review.run_id[:12]}_")
    return "\n".join(out) + "\n"
