"""What the ledger tells finance: spend per team, repo, model, author or PR, over periods, with
growth and its drivers, run-rate forecasts, budgets and burn. Plain data; ``ledger/formats.py``
renders it (table, CSV, JSON, Markdown, HTML) and ``ledger/focus.py`` exports calls as FOCUS.

Every number reconciles with the calls it sums: a report is a GROUP BY over the ``spend_daily``
rollup (kept in step with ``calls`` by the store, in the same transaction as each call write),
costs are summed as integer nano-dollars, and the rest row of ``--top`` holds exactly what the
top rows leave out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

Dimension = Literal["team", "repo", "pr", "author", "model_name", "model", "provider"]
DIMENSIONS: tuple[Dimension, ...] = (
    "team",
    "repo",
    "pr",
    "author",
    "model_name",
    "model",
    "provider",
)
Period = Literal["day", "week", "month", "quarter"]
PERIODS: tuple[Period, ...] = ("day", "week", "month", "quarter")
# What ``ownit review`` does when a review's planned cost does not fit the team's budget.
OnExceed = Literal["refuse", "downgrade", "warn"]
# A group whose spend grew more than this (a fraction) against the previous period is rising.
RISING = 0.25


@dataclass(frozen=True)
class ReportQuery:
    by: tuple[Dimension, ...] = ("team",)
    period: Period | None = "month"
    since: date | None = None  # first day included (UTC)
    until: date | None = None  # last day included (UTC); default today
    top: int | None = None  # per period: the N costliest groups, the rest summed in one row
    rising_threshold: float = RISING
    # Below this (this period or the last) growth is noise, not a trend worth a flag.
    rising_min_usd: float = 1.0
    # Compare with the previous period (change, rising, drivers); False reads only the range.
    compare: bool = True


@dataclass(frozen=True)
class Driver:
    """One factor of a group's growth: cost = PRs x tokens per PR x list price per token x
    the share left after cache discounts; ``factor`` is this period's value over the last's."""

    name: Literal["more PRs", "more calls", "bigger PRs", "pricier models", "fewer cache hits"]
    factor: float  # 1.4: this factor alone grew cost by 40 %


@dataclass(frozen=True)
class Row:
    """One group (in one period, when the report has periods)."""

    key: tuple[str | None, ...]  # the values of ``query.by``, in order; None: not recorded
    period: str | None  # "2026-11-26", "2026-W48", "2026-11", "2026-Q4"; None: whole range
    calls: int  # attempts that reached or may have reached the provider (not errors)
    errors: int  # attempts the provider refused or failed: not billed
    prs: int  # distinct pull requests reviewed
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens read from the provider's cache
    cache_write_tokens: int
    reasoning_tokens: int  # part of completion_tokens
    cost_usd: float  # priced calls; see unpriced_calls and unknown_calls
    pr_cost_usd: float  # the part of cost_usd spent on calls for a pull request
    unpriced_calls: int  # billed calls with no known price: cost_usd is a lower bound
    unknown_calls: int  # in flight, or interrupted with the outcome unknown
    estimated_calls: int  # usage not reported by the provider: counted with the tokenizer
    cache_savings_usd: float  # what cached input would have cost more at the full input price
    previous_cost_usd: float | None = None  # the same group, previous period
    change_pct: float | None = None  # (cost - previous) / previous * 100; None: no previous
    forecast_usd: float | None = None  # run-rate to the end of the period (the current one)
    budget_usd: float | None = None  # the team's budget for the period
    burn_pct: float | None = None  # cost / budget * 100
    rising: bool = False  # grew more than the threshold against the previous period
    drivers: tuple[Driver, ...] = ()  # why it grew, largest first
    rest_of: int = 0  # > 0: this row sums that many groups left out by --top

    @property
    def cost_per_pr(self) -> float | None:
        return self.pr_cost_usd / self.prs if self.prs else None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def lower_bound(self) -> bool:
        """Some calls could not be priced or have an unknown outcome: the cost is at least this."""
        return bool(self.unpriced_calls or self.unknown_calls)


@dataclass(frozen=True)
class BudgetStatus:
    team: str
    period: str  # the month, "2026-11"
    amount_usd: float
    spent_usd: float
    forecast_usd: float  # run-rate to the end of the month
    warn_at: float  # a fraction: 0.8 warns at 80 %
    on_exceed: OnExceed
    state: Literal["ok", "warning", "over"]

    @property
    def burn_pct(self) -> float:
        return self.spent_usd / self.amount_usd * 100 if self.amount_usd else 0.0

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.amount_usd - self.spent_usd)


@dataclass(frozen=True)
class Report:
    query: ReportQuery
    rows: tuple[Row, ...]  # by period (oldest first), then cost, highest first; rest rows last
    totals: tuple[Row, ...]  # one per period (key ()), oldest first; one when no period
    total: Row  # the whole range (key (), period None)
    generated_at: datetime
    since: date | None  # the range covered (None: from the first call)
    until: date
    periods: tuple[str, ...] = ()  # the period labels covered, oldest first
    current_period: str | None = None  # the period holding today, if covered (forecast)
    budgets: tuple[BudgetStatus, ...] = ()  # this month's, for every team with a budget

    @property
    def rising(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.rising)


@dataclass(frozen=True)
class Overview:
    """What the HTML page shows, besides the report asked for: spend over time per team, the top
    repos and PRs, growth and budget burn."""

    report: Report  # the report asked for (its table is on the page)
    by_team: Report  # team x period, over the same range: the spend-over-time chart
    top_repos: Report  # repo, whole range, --top 10
    top_prs: Report  # pr, whole range, --top 10
    budgets: tuple[BudgetStatus, ...] = field(default=())
