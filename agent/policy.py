"""Gating: whether a finished review should fail the job, decided apart from reporting it.

``--fail-on`` names the conditions; the exit code says which kind of condition held. Failures of
ownit itself (bad input 2, no model 3, ledger 4, a signal 130/143, publishing 6) are not gates:
they always set the code.

    incomplete     part of the diff was not reviewed                    exit 1 (the default)
    high-risk      the review rates the change high risk                exit 5
    secrets        credentials were found in the diff (and masked)       exit 5
    high-priority  the review asks at least one high-priority question  exit 5
    budget         nothing was sent: the plan's estimated cost was over --max-cost, or
                   over what the team's monthly budget has left (its policy: refuse)  exit 5
    none           report only, never fail on the review's content
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.errors import InputError

if TYPE_CHECKING:  # ``ownit ledger check`` shares the exit codes without the review's imports
    from agent.result import Review

GATES = ("incomplete", "high-risk", "secrets", "high-priority", "budget")
DEFAULT = ("incomplete",)
EXIT_INCOMPLETE = 1
EXIT_GATE = 5


def parse_fail_on(value: str) -> frozenset[str]:
    names = {n.strip().lower() for n in value.split(",") if n.strip()}
    if names == {"none"}:
        return frozenset()
    unknown = sorted(names - set(GATES))
    if unknown or not names:
        raise InputError(
            f"--fail-on: unknown condition {', '.join(unknown) or repr(value)}",
            hint=f"choose from {', '.join(GATES)} (comma-separated), or none",
        )
    return frozenset(names)


def failed(review: Review, fail_on: frozenset[str]) -> list[str]:
    """The conditions of ``fail_on`` the review meets, each in words."""
    held = []
    if "incomplete" in fail_on and not review.complete:
        held.append("incomplete: part of the diff was not reviewed")
    if "high-risk" in fail_on and review.risk == "high":
        held.append("high-risk: the review rates the change high risk")
    if "secrets" in fail_on and review.secrets:
        held.append(f"secrets: {len(review.secrets)} credential(s) found in the diff")
    if "high-priority" in fail_on and any(q.priority == "high" for q in review.questions):
        held.append("high-priority: the author has high-priority questions to answer")
    if "budget" in fail_on and review.over_budget:
        held.append("budget: the review's estimated cost is over its limit or budget")
    return held


def exit_code(held: list[str]) -> int:
    """5 when a condition other than incompleteness held (budget, risk, secrets, questions:
    the job's own policy), else 1 for an incomplete review, 0 for none."""
    if not held:
        return 0
    return EXIT_GATE if any(not h.startswith("incomplete") for h in held) else EXIT_INCOMPLETE
