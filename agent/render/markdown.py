"""The review as Markdown: the artifact people read in CI and paste into a PR.

Every value from the diff or a model's reply goes through ``agent.render.safe``: a reply cannot
add headings, HTML, fences or escape sequences, nor end the construct it is placed in.
"""

from __future__ import annotations

from agent.render.safe import md_block, md_code, md_inline, one_line
from agent.result import Review


def _cost(review: Review) -> str:
    u = review.usage
    if not u.calls:
        return "no model calls"
    priced = f"${u.cost_usd:.4f}"
    if u.unpriced_models and not u.cost_usd:
        return (
            f"cost unknown: no price for {', '.join(map(one_line, u.unpriced_models))} "
            "(add input_cost_per_token and output_cost_per_token in providers.yaml)"
        )
    parts = [priced]
    if u.unpriced_models:
        parts.append(f"+ unpriced calls to {', '.join(map(one_line, u.unpriced_models))}")
    if u.unknown_calls:
        parts.append(f"+ {u.unknown_calls} call(s) whose outcome is unknown")
    return " ".join(parts) if len(parts) == 1 else "at least " + " ".join(parts)


def _models(review: Review) -> str:
    """The model, or with routing each model's calls, cost and why it was asked."""
    u = review.usage
    if not u.by_model:
        return f"model {', '.join(map(one_line, u.models))}"
    shares = []
    for m in u.by_model:
        cost = f"${m.cost_usd:.4f}" + ("" if m.cost_complete else "+")
        why = f" ({one_line('; '.join(m.routes))})" if m.routes else ""
        shares.append(f"{one_line(m.model_name)} {m.calls} call(s) {cost}{why}")
    return "models " + ", ".join(shares)


def _triage(review: Review) -> str | None:
    """What the triage pass did, when one is configured: its cost and the files it moved."""
    t = review.triage
    if t is None:
        return None
    name = one_line(t.model_name)
    cost = "" if t.cost_usd is None else f" ${t.cost_usd:.4f}"
    if not t.ran and t.calls:  # asked, and no answer could be used: the notes say why
        return f"triage {name} failed ({t.calls} call(s){cost}): routed by path risk"
    if not t.ran:
        return f"triage {name} not run: routed by path risk"
    if not t.moved:
        return f"triage {name}{cost}: no file moved"
    shown = ", ".join(f"{one_line(m.path)} to {one_line(m.to_model)}" for m in t.moved[:3])
    more = f" +{len(t.moved) - 3} more" if len(t.moved) > 3 else ""
    return f"triage {name}{cost} moved {len(t.moved)} file(s): {shown}{more}"


def footer(review: Review) -> str:
    """One line of coverage, model, calls, tokens and cost: plain text, safe on a terminal
    (``render_markdown`` escapes it for Markdown)."""
    c, u = review.coverage, review.usage
    calls = f"{u.calls} call{'s' if u.calls != 1 else ''}"
    extra = []
    if u.failed_calls:
        extra.append(f"{u.failed_calls} failed")
    if u.fallback_calls:
        extra.append(f"{u.fallback_calls} by a fallback")
    if extra:
        calls += f" ({', '.join(extra)})"
    parts = [
        f"files {c.files_reviewed}/{c.files_total}",
        f"hunks {c.hunks_reviewed}/{c.hunks_total}"
        + (f" ({len(c.summarized)} file(s) summarized)" if c.summarized else ""),
        _models(review),
        calls,
        f"{u.prompt_tokens:,} in / {u.completion_tokens:,} out tokens",
        _cost(review),
    ]
    if triaged := _triage(review):
        parts.append(triaged)
    if review.dropped.questions:
        parts.append(f"{review.dropped.questions} question(s) dropped")
    if review.secrets:
        parts.append(f"{len(review.secrets)} credential(s) masked")
    if review.run.team:
        parts.append(f"team {one_line(review.run.team)}")
    return " · ".join(parts)


def _dropped(review: Review) -> list[str]:
    d = review.dropped
    if not (d.questions or d.walkthroughs or d.risk_reasons):
        return []
    said = []
    if d.questions_invalid:
        said.append(f"{d.questions_invalid} question(s) were not valid")
    if d.questions_outside_diff:
        said.append(
            f"{d.questions_outside_diff} question(s) pointed at lines that are not in the diff"
        )
    if d.walkthroughs:
        said.append(f"{d.walkthroughs} walkthrough(s) were of files outside their part, or empty")
    if d.risk_reasons:
        said.append(f"{d.risk_reasons} risk reason(s) named files the diff does not change")
    out = ["_Dropped from the model's replies: " + "; ".join(said) + "._\n"]
    for e in d.examples[:5]:
        out.append(f"- {e.kind.replace('_', ' ')} “{md_inline(e.what)}”: {md_inline(e.reason)}")
    out.append("")
    return out


def render_markdown(review: Review) -> str:
    out: list[str] = []
    title = md_inline(review.run.repo) if review.run.repo else "change"
    if review.run.pr_number:
        title += f" #{review.run.pr_number}"
    out.append(f"# ownit review: {title}\n")
    if review.interrupted:
        out.append(
            f"> **Interrupted ({md_inline(review.interrupted)}).** This is what was reviewed "
            "before the run stopped.\n"
        )
    if not review.complete:
        out.append("> **Incomplete review.** Part of the change was not reviewed:")
        out.extend(f"> - {md_inline(problem)}" for problem in review.problems)
        out.append("")
    for note in review.notes:
        out.append(f"> Note: {md_inline(note)}\n")
    if review.risk:
        out.append(f"**Risk: {review.risk}**\n")
        out.extend(f"- {md_inline(reason)}" for reason in review.risk_reasons)
        out.append("")
    out.append("## Summary\n")
    out.append(
        (md_block(review.summary) or "_No summary: no part of the diff was reviewed._") + "\n"
    )

    out.append("## Questions for the author\n")
    if review.questions:
        out.append(
            "Be ready to answer each of these before you merge. To show you own the change, "
            "answer in a reply, one `Q<n>:` per question (`ownit questions` prints a form).\n"
        )
        for q in review.questions:
            out.append(
                f"{q.rank}. **{md_inline(q.question)}**  \n"
                f"   {md_code(str(q.anchor))} · {q.category.replace('_', ' ')} · "
                f"{q.priority} priority  \n"
                f"   _Why it matters:_ {md_inline(q.why_it_matters)}"
            )
        out.append("")
    else:
        out.append("_No questions._\n")
    if review.questions_omitted:
        out.append(
            f"_{review.questions_omitted} lower-ranked question(s) are not shown "
            "(review.max_questions in providers.yaml)._\n"
        )
    out.extend(_dropped(review))

    if review.files:
        out.append("## Walkthrough\n")
        for f in review.files:
            status = md_inline(f.status.replace("_", " "))
            out.append(f"### {md_code(f.path)} ({status})\n")
            out.append(md_block(f.walkthrough) + "\n")

    if review.secrets:
        out.append("## Credentials masked\n")
        out.append(
            "These looked like credentials and were replaced by placeholders before anything "
            "was sent to the model. Their values are not in this report.\n"
        )
        out.extend(
            f"- {md_inline(f.kind)} at {md_code(f.where)} (`{f.placeholder}`)"
            for f in review.secrets
        )
        out.append("")

    if review.coverage.summarized:
        out.append("## Summarized, not shown\n")
        out.append(
            "The model was told these files' names and sizes instead of their lines; their "
            "lines count neither as reviewed nor as failed.\n"
        )
        out.extend(
            f"- {md_code(n.path)}: {md_inline(n.reason)}" for n in review.coverage.summarized
        )
        out.append("")
    if review.coverage.not_reviewed:
        out.append("## Not reviewed\n")
        out.extend(
            f"- {md_code(n.path)} ({n.hunks} hunk{'s' if n.hunks != 1 else ''}): "
            f"{md_inline(n.reason)}"
            for n in review.coverage.not_reviewed
        )
        out.append("")
    if review.ledger_error:
        out.append(f"> Ledger: {md_inline(review.ledger_error)}\n")
    out.append("---")
    out.append(f"_{md_inline(footer(review))} · run {md_inline(review.run.id[:12])}_")
    return "\n".join(out) + "\n"
