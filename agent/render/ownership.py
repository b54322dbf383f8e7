"""An ownership check as text: the verdicts (PR comment, job summary, ``ownit-check.md``, the
terminal), the commit status line, and the answer form ``ownit questions`` prints.

Verdicts and one line of feedback per question; never an expected answer (ownit has none).
"""

from __future__ import annotations

from agent.ownership import Check, required, shown
from agent.render.safe import md_code, md_inline, one_line
from agent.result import Question

_LABEL = {
    "understood": "✅ understood",
    "partly": "🟡 partly",
    "not_shown": "❌ not shown",
    "unanswered": "⬜ unanswered",
    "stale": "🔄 answer again (code changed)",
    "ungraded": "⚠️ not graded",
}
_RULE = {
    "report": "reported only; the job does not fail",
    "high": "every high-priority question",
    "all": "every question",
}


def verdict_line(check: Check) -> str:
    """One line: the gate and the counts. Also the commit status's description."""
    wanted = [g for g in check.graded if required(g.question, check.require)]
    met = [g for g in wanted if shown(g.status, check.pass_on)]
    if check.override is not None:
        head = f"Ownership gate overridden by @{check.override.by}: {check.override.reason}"
    elif check.passed:
        head = "Ownership shown"
    else:
        head = "Ownership not shown yet"
    return one_line(
        f"{head} ({len(met)}/{len(wanted)} required question(s) "
        f"{'understood' if check.pass_on == 'understood' else 'at least partly understood'}; "
        f"{check.shown}/{len(check.graded)} in all)"
    )


def render_markdown(check: Check) -> str:
    out = ["## Ownership\n", f"**{md_inline(verdict_line(check))}**  "]
    out.append(f"_Required: {_RULE[check.require]} (`ownership.require`)._\n")
    out.append("| # | Question | Priority | Verdict | Feedback |")
    out.append("|---|---|---|---|---|")
    for g in check.graded:
        q = g.question
        mark = (
            " (required)"
            if check.require != "report" and required(g.question, check.require)
            else ""
        )
        out.append(
            f"| {q.rank} | {md_inline(_short(q.question))} {md_code(str(q.anchor))} | "
            f"{q.priority}{mark} | {_LABEL[g.status]} | {md_inline(g.feedback) or '—'} |"
        )
    out.append("")
    if not check.passed or any(g.status in ("unanswered", "stale") for g in check.graded):
        out.append(
            "_Answer in a reply to this pull request, one `Q<n>:` per question, in your own "
            "words; only the author's answers count. Each new answer is graded when the check "
            "runs again._\n"
        )
    out += [f"- {md_inline(line)}" for line in [*check.ignored, *check.problems, *check.notes]]
    if check.cost_usd:
        out.append(f"\n_Grading cost ${check.cost_usd:.4f} ({check.model_name})._")
    return "\n".join(out).rstrip() + "\n"


def _short(text: str, limit: int = 140) -> str:
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_text(check: Check) -> str:
    """For the terminal and logs: no Markdown."""
    lines = [verdict_line(check), f"required: {_RULE[check.require]}", ""]
    for g in check.graded:
        q = g.question
        need = "*" if check.require != "report" and required(g.question, check.require) else " "
        lines.append(f"{need}Q{q.rank} [{q.id[:8]}] {_LABEL[g.status]}  ({q.priority}) {q.anchor}")
        lines.append(f"    {_short(q.question, 100)}")
        if g.feedback:
            lines.append(f"    → {one_line(g.feedback)}")
    lines += [f"note: {one_line(n)}" for n in [*check.ignored, *check.problems, *check.notes]]
    return "\n".join(lines) + "\n"


def answer_form(questions: list[Question]) -> str:
    """What ``ownit questions`` prints: each question to answer in place, as a file
    (``ownit check --answers``) or pasted into a PR comment."""
    out = [
        "<!-- Answer each question under its heading, in your own words: what the code does,",
        "     why, and what happens when it fails. Lines starting with > are ignored. -->",
        "",
    ]
    for q in questions:
        out += [
            f"### Q{q.rank} [{q.id[:8]}] ({q.priority}, {q.category.replace('_', ' ')}) "
            f"{one_line(str(q.anchor))}",
            f"> {one_line(q.question)}",
            "",
            "",
        ]
    return "\n".join(out)
