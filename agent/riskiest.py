"""Which files matter most when not all of them can be reviewed: a review over ``--max-cost``
with ``over_max_cost: riskiest_first`` sends the riskiest files that fit and lists the rest.

The order is a heuristic the author can read, not a model's opinion (no model has seen the
diff yet): paths that handle money, credentials, permissions or persisted data first, then
code over tests and docs, then the larger change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from agent.chunking import Skipped
from agent.diff import Diff
from agent.kinds import risk_score
from agent.plan import Plan

# The start of the reason every file left out for budget is listed with.
FOR_BUDGET = "not reviewed for budget"


def riskiest_within(
    diff: Diff, plan: Plan, limit: float, planner: Callable[[Diff], Plan]
) -> tuple[Plan, str] | None:
    """The plan of the riskiest of ``plan``'s files whose estimate is within ``limit``, the
    others listed as not reviewed for budget, and a note saying so; None when not even the
    riskiest file fits."""
    planned = {id(p.file) for c in plan.chunks for p in c.files}
    ranked = sorted(
        (f for f in diff.files if id(f) in planned), key=lambda f: -risk_score(f)
    )  # stable: equal risk keeps diff order

    def subset(k: int) -> Plan:
        keep = {id(f) for f in ranked[:k]}
        return planner(replace(diff, files=tuple(f for f in diff.files if id(f) in keep)))

    # The estimate grows with every file added: the largest prefix within the limit.
    lo, hi, best = 1, len(ranked) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = subset(mid)
        if candidate.cost_usd is not None and candidate.cost_usd <= limit:
            best, lo = (mid, candidate), mid + 1
        else:
            hi = mid - 1
    if best is None:
        return None
    k, chosen = best
    over = plan.cost_usd or 0.0
    left = tuple(
        Skipped(
            f.path,
            len(f.hunks),
            f"{FOR_BUDGET}: the whole diff was estimated at ${over:.4f}, over the "
            f"limit ${limit:.4f} (--max-cost); riskier files were reviewed first",
        )
        for f in ranked[k:]
    )
    note = (
        f"the whole diff was estimated at ${over:.4f}, over the limit ${limit:.4f} (--max-cost): "
        f"the {k} riskiest file(s) are reviewed, estimated at ${chosen.cost_usd or 0:.4f}; the "
        f"other {len(left)} are listed as not reviewed for budget"
    )
    return replace(
        chosen, skipped=(*plan.skipped, *chosen.skipped, *left), over_max_cost=True
    ), note
