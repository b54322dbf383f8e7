"""A review's planned cost against its team's monthly budget, decided before any model is called.

The team's budget policy (``ownit ledger budget set --on-exceed``) says what happens when the
plan does not fit what is left this month: ``refuse`` sends nothing, ``downgrade`` switches to the
best configured model whose own plan fits (or the one the budget names), ``warn`` goes on and
says so. Every decision is written into the review's notes, naming the model it chose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.errors import ConfigError, LedgerError
from agent.ledger import LedgerStore
from agent.ledger.budgets import TeamBudget, team_status
from agent.ledger.reports import BudgetStatus
from agent.plan import Plan
from agent.providers import ModelFacts, ResolvedModel

Replan = Callable[[ResolvedModel, ModelFacts], Plan]
FactsOf = Callable[[ResolvedModel], ModelFacts]


@dataclass(frozen=True)
class Decision:
    note: str | None = None  # what the review's notes say about the budget
    refused: str | None = None  # nothing is sent, and this is why
    switch_to: ResolvedModel | None = None  # review with this model instead
    facts: ModelFacts | None = None
    plan: Plan | None = None  # the plan for ``switch_to``


@dataclass(frozen=True)
class BudgetGuard:
    budget: TeamBudget
    status: BudgetStatus
    # Configured, usable models the review may switch to, in preference order.
    candidates: tuple[ResolvedModel, ...] = ()
    facts_of: FactsOf | None = field(default=None, compare=False)

    def decide(self, plan: Plan, model: ResolvedModel, replan: Replan) -> Decision:
        s = self.status
        cost = plan.cost_usd
        team = s.team
        if cost is None:
            return Decision(
                note=f"budget: {model.name} has no known price, so this review's cost cannot be "
                f"checked against {team}'s budget (${s.remaining_usd:,.2f} left of "
                f"${s.amount_usd:,.2f} in {s.period})"
            )
        if cost <= s.remaining_usd:
            if s.state == "ok":
                return Decision()
            return Decision(
                note=f"budget: {team} has spent ${s.spent_usd:,.2f} of ${s.amount_usd:,.2f} in "
                f"{s.period} ({s.burn_pct:.0f}%); this review is estimated at ${cost:.4f}"
            )
        over = (
            f"{team} has ${s.remaining_usd:,.2f} left of its ${s.amount_usd:,.2f} budget for "
            f"{s.period} and this review is estimated at ${cost:.4f} on {model.name}"
        )
        if self.budget.on_exceed == "warn":
            return Decision(note=f"budget: over budget: {over} (the team's policy: warn)")
        raise_it = (
            f"raise it with `ownit ledger budget set --team {team} --monthly ...`, "
            "or review with a cheaper --model"
        )
        if self.budget.on_exceed == "refuse":
            return Decision(
                refused=f"not sent: {over} (the team's policy: refuse); {raise_it}",
            )
        return self._downgrade(model, cost, over, replan, raise_it)

    def _downgrade(
        self, model: ResolvedModel, cost: float, over: str, replan: Replan, raise_it: str
    ) -> Decision:
        wanted = self.budget.downgrade_to
        options = [m for m in self.candidates if m.name != model.name]
        if wanted:
            options = [m for m in options if m.name == wanted]
        fits: list[tuple[float, int, ResolvedModel, ModelFacts, Plan]] = []
        tried: list[str] = []
        for n, candidate in enumerate(options):
            if self.facts_of is None:
                break
            facts = self.facts_of(candidate)
            try:
                plan = replan(candidate, facts)
            except ConfigError:  # its window cannot take the diff's chunks
                tried.append(f"{candidate.name} (window too small)")
                continue
            if plan.cost_usd is None:
                tried.append(f"{candidate.name} (no known price)")
            elif plan.cost_usd > self.status.remaining_usd or plan.cost_usd >= cost:
                tried.append(f"{candidate.name} (${plan.cost_usd:.4f})")
            else:
                # The costliest that fits: the closest to what the team chose to pay for.
                fits.append((plan.cost_usd, -n, candidate, facts, plan))
        if not fits:
            which = f"; tried {', '.join(tried)}" if tried else ""
            missing = (
                f" ({wanted} is not a usable configured model)" if wanted and not options else ""
            )
            return Decision(
                refused=f"not sent: {over}, and no cheaper configured model fits{missing}"
                f"{which}; {raise_it}"
            )
        new_cost, _, chosen, facts, plan = max(fits, key=lambda f: (f[0], f[1]))
        return Decision(
            note=f"budget: {over}: switched to {chosen.name} ({chosen.litellm_model}, estimated "
            f"${new_cost:.4f}) per the team's policy",
            switch_to=chosen,
            facts=facts,
            plan=plan,
        )


def guard_for(
    store: LedgerStore | None,
    team: str | None,
    candidates: tuple[ResolvedModel, ...],
    facts_of: FactsOf,
    now: datetime | None = None,
) -> tuple[BudgetGuard | None, str | None]:
    """The team's budget guard for this run, or None when it has no budget; with a note when
    the budget could not be read."""
    if team is None:
        return None, None
    if store is None:
        return None, "budget: not checked: the ledger cannot be read"
    today = (now or datetime.now(UTC)).date()
    try:
        found = team_status(store, team, today)
    except LedgerError as exc:
        return None, f"budget: not checked: {exc.message}"
    if found is None:
        return None, None
    budget, status = found
    usable = tuple(m for m in candidates if m.usable)
    return BudgetGuard(budget, status, usable, facts_of), None
