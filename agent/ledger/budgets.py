"""Team budgets: setting them, the budget in force for a month, and where each team stands.

A budget applies from the month it was set for until a later one replaces it; rows are never
rewritten, so a past month's burn is measured against the budget it had then.
"""

from __future__ import annotations

import getpass
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agent.errors import InputError
from agent.ledger.database import Database
from agent.ledger.periods import end_of, label, month_start, utc
from agent.ledger.reports import BudgetStatus, OnExceed
from agent.ledger.tables import NANO
from agent.ledger.tables import budgets as _budgets
from agent.ledger.tables import spend_daily as _spend


@dataclass(frozen=True)
class TeamBudget:
    """A ``budgets`` row as reports and the review's budget check read it (the ``Budget``
    model in ``records.py`` validates what is written)."""

    team: str
    starts: date  # the first day of the month it applies from
    monthly_usd: float | None  # None: no budget from this month on
    warn_at: float
    on_exceed: OnExceed
    downgrade_to: str | None = None
    set_at: datetime | None = None
    set_by: str | None = None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> TeamBudget:
        values = dict(row)
        if values.get("set_at") is not None:
            values["set_at"] = utc(values["set_at"])
        return cls(**values)


def set_budget(
    store: Database,
    team: str,
    monthly_usd: float | None,
    *,
    warn_at: float = 0.8,
    on_exceed: OnExceed = "refuse",
    downgrade_to: str | None = None,
    starts: date | None = None,
    now: datetime | None = None,
) -> TeamBudget:
    """Set (or, with ``monthly_usd`` None, clear) ``team``'s budget from the month of
    ``starts`` (default: this month) on. Setting it twice for one month keeps the last.
    An amount that is no finite number of USD, or a warning line outside (0, 1], is an
    ``InputError``: an infinite budget would be stored and then break every report."""
    from pydantic import ValidationError

    from agent.ledger.records import Budget
    from agent.validation import describe

    if monthly_usd is not None and not math.isfinite(monthly_usd):
        raise InputError(
            f"a monthly budget must be a finite amount of USD, not {monthly_usd}",
            hint=f"to remove {team}'s budget: ownit ledger budget clear --team {team}",
        )
    now = now or datetime.now(UTC)
    try:
        # Validated: a table model's constructor checks nothing.
        row = Budget.model_validate(
            {
                "team": team,
                "starts": month_start(starts or now.date()),
                "monthly_usd": monthly_usd,
                "warn_at": warn_at,
                "on_exceed": on_exceed,
                "downgrade_to": downgrade_to,
                "set_at": now,
                "set_by": _user(),
            }
        )
    except ValidationError as exc:
        raise InputError(f"budget for {team}: {describe(exc, limit=3)}") from None
    values = row.model_dump()
    key = (_budgets.c.team == team) & (_budgets.c.starts == row.starts)
    with store.writing("cannot set the budget") as conn:
        if conn.execute(_budgets.update().where(key).values(**values)).rowcount == 0:
            conn.execute(_budgets.insert().values(**values))
    return TeamBudget.of(values)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in a bare container
        return None


def history(conn: Connection) -> list[TeamBudget]:
    rows = conn.execute(sa.select(_budgets).order_by(_budgets.c.team, _budgets.c.starts))
    return [TeamBudget.of(r._mapping) for r in rows]


def in_force(budgets: list[TeamBudget], month: date) -> dict[str, TeamBudget]:
    """Each team's budget for the month holding ``month`` (teams whose budget was cleared, or
    starts later, have none)."""
    first = month_start(month)
    found: dict[str, TeamBudget] = {}
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


def statuses(store: Database, today: date) -> tuple[BudgetStatus, ...]:
    """Where every team with a budget this month stands, most burnt first."""
    with store.reading("cannot read budgets") as conn:
        return statuses_from(history(conn), conn, today)


def statuses_from(
    budgets: list[TeamBudget], conn: Connection, today: date
) -> tuple[BudgetStatus, ...]:
    current = in_force(budgets, today)
    if not current:
        return ()
    spent = spent_by_team(conn, today)
    found = [status(b, spent.get(team, 0.0), today) for team, b in current.items()]
    return tuple(sorted(found, key=lambda s: (-s.burn_pct, s.team)))


def status(budget: TeamBudget, spent: float, today: date) -> BudgetStatus:
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


def team_status(store: Database, team: str, today: date) -> tuple[TeamBudget, BudgetStatus] | None:
    """``team``'s budget this month and where it stands; None when it has none."""
    with store.reading("cannot read the budget") as conn:
        budget = in_force(_team_history(conn, team), today).get(team)
        if budget is None:
            return None
        spent = spent_by_team_one(conn, team, today)
    return budget, status(budget, spent, today)


def _team_history(conn: Connection, team: str) -> list[TeamBudget]:
    rows = conn.execute(
        sa.select(_budgets).where(_budgets.c.team == team).order_by(_budgets.c.starts)
    )
    return [TeamBudget.of(r._mapping) for r in rows]


def spent_by_team_one(conn: Connection, team: str, today: date) -> float:
    first = month_start(today)
    query = sa.select(sa.func.sum(_spend.c.cost_nusd)).where(
        _spend.c.team == team, _spend.c.day.between(first, end_of(first, "month"))
    )
    return int(conn.execute(query).scalar() or 0) / NANO


def monthly_amounts(
    budgets: list[TeamBudget], months: list[date]
) -> Mapping[tuple[str, date], float]:
    """The budget in force per (team, month) for the given months' first days."""
    found: dict[tuple[str, date], float] = {}
    for month in months:
        for team, b in in_force(budgets, month).items():
            assert b.monthly_usd is not None
            found[(team, month)] = b.monthly_usd
    return found
