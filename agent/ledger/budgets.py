"""Team budgets: setting them, the budget in force for a month, and where each team stands.

A budget applies from the month it was set for until a later one replaces it; rows are never
rewritten, so a past month's burn is measured against the budget it had then.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agent.ledger.periods import end_of, label, month_start
from agent.ledger.records import Budget, OnExceed, SpendDaily
from agent.ledger.reports import BudgetStatus
from agent.ledger.rollup import NANO
from agent.ledger.store import LedgerStore

_budgets = Budget.__table__  # type: ignore[attr-defined]
_spend = SpendDaily.__table__  # type: ignore[attr-defined]


def set_budget(
    store: LedgerStore,
    team: str,
    monthly_usd: float | None,
    *,
    warn_at: float = 0.8,
    on_exceed: OnExceed = "refuse",
    downgrade_to: str | None = None,
    starts: date | None = None,
    now: datetime | None = None,
) -> Budget:
    """Set (or, with ``monthly_usd`` None, clear) ``team``'s budget from the month of
    ``starts`` (default: this month) on. Setting it twice for one month keeps the last."""
    now = now or datetime.now(UTC)
    row = Budget(
        team=team,
        starts=month_start(starts or now.date()),
        monthly_usd=monthly_usd,
        warn_at=warn_at,
        on_exceed=on_exceed,
        downgrade_to=downgrade_to,
        set_at=now,
        set_by=_user(),
    )
    values = row.model_dump()
    key = (_budgets.c.team == team) & (_budgets.c.starts == row.starts)
    with store.writing("cannot set the budget") as conn:
        if conn.execute(_budgets.update().where(key).values(**values)).rowcount == 0:
            conn.execute(_budgets.insert().values(**values))
    return row


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in a bare container
        return None


def history(conn: Connection) -> list[Budget]:
    rows = conn.execute(sa.select(_budgets).order_by(_budgets.c.team, _budgets.c.starts))
    return [Budget.model_validate(dict(r._mapping)) for r in rows]


def in_force(budgets: list[Budget], month: date) -> dict[str, Budget]:
    """Each team's budget for the month holding ``month`` (teams whose budget was cleared, or
    starts later, have none)."""
    first = month_start(month)
    found: dict[str, Budget] = {}
    for b in budgets:  # ordered by team, then start: the last one not after ``first`` wins
        if b.starts <= first:
            found[b.team] = b
    return {team: b for team, b in found.items() if b.monthly_usd is not None}


def spent_by_team(conn: Connection, month: date) -> dict[str, float]:
    """Each team's priced spend in the month holding ``month``."""
    first = month_start(month)
    query = (
        sa.select(_spend.c.team, sa.func.sum(_spend.c.cost_nusd))
        .where(_spend.c.day.between(first, end_of(first, "month")))
        .group_by(_spend.c.team)
    )
    return {team: int(total or 0) / NANO for team, total in conn.execute(query)}


def statuses(store: LedgerStore, today: date) -> tuple[BudgetStatus, ...]:
    """Where every team with a budget this month stands, most burnt first."""
    with store.reading("cannot read budgets") as conn:
        return statuses_from(history(conn), conn, today)


def statuses_from(budgets: list[Budget], conn: Connection, today: date) -> tuple[BudgetStatus, ...]:
    current = in_force(budgets, today)
    if not current:
        return ()
    spent = spent_by_team(conn, today)
    found = [status(b, spent.get(team, 0.0), today) for team, b in current.items()]
    return tuple(sorted(found, key=lambda s: (-s.burn_pct, s.team)))


def status(budget: Budget, spent: float, today: date) -> BudgetStatus:
    assert budget.monthly_usd is not None
    amount = budget.monthly_usd
    first = month_start(today)
    days = (end_of(first, "month") - first).days + 1
    forecast = spent * days / ((today - first).days + 1)
    if spent >= amount:
        state = "over"
    elif spent >= amount * budget.warn_at or forecast > amount:
        # At the warning line, or on course to run out before the month ends.
        state = "warning"
    else:
        state = "ok"
    return BudgetStatus(
        team=budget.team,
        period=label(today, "month"),
        amount_usd=amount,
        spent_usd=spent,
        forecast_usd=forecast,
        warn_at=budget.warn_at,
        on_exceed=budget.on_exceed,
        state=state,  # type: ignore[arg-type]
    )


def team_status(store: LedgerStore, team: str, today: date) -> tuple[Budget, BudgetStatus] | None:
    """``team``'s budget this month and where it stands; None when it has none."""
    with store.reading("cannot read the budget") as conn:
        budget = in_force(_team_history(conn, team), today).get(team)
        if budget is None:
            return None
        spent = spent_by_team_one(conn, team, today)
    return budget, status(budget, spent, today)


def _team_history(conn: Connection, team: str) -> list[Budget]:
    rows = conn.execute(
        sa.select(_budgets).where(_budgets.c.team == team).order_by(_budgets.c.starts)
    )
    return [Budget.model_validate(dict(r._mapping)) for r in rows]


def spent_by_team_one(conn: Connection, team: str, today: date) -> float:
    first = month_start(today)
    query = sa.select(sa.func.sum(_spend.c.cost_nusd)).where(
        _spend.c.team == team, _spend.c.day.between(first, end_of(first, "month"))
    )
    return int(conn.execute(query).scalar() or 0) / NANO


def monthly_amounts(budgets: list[Budget], months: list[date]) -> Mapping[tuple[str, date], float]:
    """The budget in force per (team, month) for the given months' first days."""
    found: dict[tuple[str, date], float] = {}
    for month in months:
        for team, b in in_force(budgets, month).items():
            assert b.monthly_usd is not None
            found[(team, month)] = b.monthly_usd
    return found
