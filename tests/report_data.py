"""Hand-built reports for the renderer tests and the render benchmark: the data contract of
``agent/ledger/reports.py`` filled in by hand, no database. Numbers are chosen to be told apart
on the page (no two cells alike), not to add up."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from agent.ledger.reports import (
    BudgetStatus,
    Dimension,
    Driver,
    Overview,
    Period,
    Report,
    ReportQuery,
    Row,
)

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(2)>'
GENERATED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
MONTHS = ("2026-09", "2026-10", "2026-11")


def row(key: tuple[str | None, ...], period: str | None, cost: float, **kw: Any) -> Row:
    """A row whose other numbers follow from ``cost``, so each is distinct and plausible."""
    base: dict[str, Any] = {
        "calls": max(1, round(cost * 3)),
        "errors": 0,
        "prs": max(1, round(cost / 7)),
        "prompt_tokens": round(cost * 90_000),
        "completion_tokens": round(cost * 9_000),
        "cached_tokens": round(cost * 20_000),
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": cost,
        "pr_cost_usd": cost,
        "unpriced_calls": 0,
        "unknown_calls": 0,
        "estimated_calls": 0,
        "cache_savings_usd": round(cost * 0.05, 2),
    }
    base.update(kw)
    return Row(key=key, period=period, **base)


def total(period: str | None, cost: float, **kw: Any) -> Row:
    return row((), period, cost, **kw)


def budget(team: str, amount: float, spent: float, state: str, **kw: Any) -> BudgetStatus:
    values: dict[str, Any] = {
        "team": team,
        "period": "2026-11",
        "amount_usd": amount,
        "spent_usd": spent,
        "forecast_usd": spent * 1.3,
        "warn_at": 0.8,
        "on_exceed": "refuse",
        "state": state,
    }
    values.update(kw)
    return BudgetStatus(**values)


def team_month(team_names: tuple[str, ...] = ("payments", "search", XSS_SCRIPT)) -> Report:
    """Three teams over three months, the third team named like an attack. November is the
    current month (forecasts), payments rises with drivers and is over budget; search has a
    lower-bound cost; one row has estimated usage; one team is not recorded; a rest row."""
    pay, search, evil = team_names
    rows = (
        row((pay,), "2026-09", 120.5),
        row((search,), "2026-09", 80.25),
        row((None,), "2026-09", 3.5),
        row((pay,), "2026-10", 250.75, previous_cost_usd=120.5, change_pct=108.1),
        row(
            (search,),
            "2026-10",
            60.4,
            previous_cost_usd=80.25,
            change_pct=-24.7,
            unpriced_calls=4,
        ),
        row((evil,), "2026-10", 15.2, estimated_calls=2),
        row(
            (pay,),
            "2026-11",
            612.3,
            previous_cost_usd=250.75,
            change_pct=144.2,
            forecast_usd=700.1,
            budget_usd=500.0,
            burn_pct=122.5,
            rising=True,
            drivers=(Driver("more PRs", 1.4), Driver("bigger PRs", 1.12)),
        ),
        row(
            (evil,),
            "2026-11",
            42.9,
            previous_cost_usd=15.2,
            change_pct=182.2,
            forecast_usd=55.6,
            budget_usd=100.0,
            burn_pct=42.9,
            rising=True,
            drivers=(Driver("pricier models", 2.5),),
        ),
        row((None,), "2026-11", 9.75, rest_of=37, forecast_usd=12.0),
    )
    totals = (
        total("2026-09", 204.25),
        total("2026-10", 326.35, unpriced_calls=4, estimated_calls=2),
        total("2026-11", 664.95, forecast_usd=767.7),
    )
    budgets = (
        budget(pay, 500.0, 612.3, "over"),
        budget(evil, 100.0, 42.9, "ok"),
        budget(search, 100.0, 85.0, "warning", on_exceed="downgrade"),
    )
    return Report(
        query=ReportQuery(by=("team",), period="month", since=date(2026, 9, 1), top=2),
        rows=rows,
        totals=totals,
        total=total(None, 1195.55, unpriced_calls=4, estimated_calls=2),
        generated_at=GENERATED,
        since=date(2026, 9, 1),
        until=date(2026, 11, 27),
        periods=MONTHS,
        current_period="2026-11",
        budgets=budgets,
    )


def ranked(by: Dimension, names: list[str], rest: int = 0) -> Report:
    """The whole range by one dimension, costliest first, with a rest row when ``rest``."""
    rows = [row((n,), None, 300.0 - 25 * i) for i, n in enumerate(names)]
    if rest:
        rows.append(row((None,), None, 41.0, rest_of=rest))
    cost = sum(r.cost_usd for r in rows)
    return Report(
        query=ReportQuery(by=(by,), period=None, top=len(names) if rest else None),
        rows=tuple(rows),
        totals=(total(None, cost),),
        total=total(None, cost),
        generated_at=GENERATED,
        since=date(2026, 9, 1),
        until=date(2026, 11, 27),
    )


def overview(report: Report | None = None) -> Overview:
    by_team = team_month()
    return Overview(
        report=report or by_team,
        by_team=by_team,
        top_repos=ranked("repo", ["acme/api", "acme/web", XSS_IMG], rest=12),
        top_prs=ranked("pr", ["acme/api#101", "acme/web#7"]),
        budgets=by_team.budgets,
    )


def big(rows: int = 16_000, by: tuple[Dimension, ...] = ("team", "repo")) -> Report:
    """``rows`` groups over 16 months, as the issue measured (40 teams x 400 repos)."""
    periods = [f"2025-{m:02d}" for m in range(1, 13)] + [f"2026-{m:02d}" for m in range(1, 5)]
    per = rows // len(periods)
    out = []
    for p in periods:
        for i in range(per):
            out.append(
                row(
                    (f"team-{i % 40:02d}", f"org-{i % 40:02d}/service-{i:03d}"),
                    p,
                    1000.0 - i * 0.05,
                    previous_cost_usd=900.0,
                    change_pct=11.1,
                    unpriced_calls=i % 50 == 0,
                    rising=i % 97 == 0,
                    drivers=(Driver("more PRs", 1.3),) if i % 97 == 0 else (),
                )
            )
    totals = tuple(total(p, 1e6) for p in periods)
    period: Period = "month"
    return Report(
        query=ReportQuery(by=by, period=period),
        rows=tuple(out),
        totals=totals,
        total=total(None, 1.6e7),
        generated_at=GENERATED,
        since=date(2025, 1, 1),
        until=date(2026, 4, 30),
        periods=tuple(periods),
    )


def without_rows(report: Report) -> Report:
    return replace(report, rows=(), totals=(), periods=())
