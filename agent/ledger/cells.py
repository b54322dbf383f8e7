"""The words and numbers of a report, shared by the table, Markdown and HTML renderers: column
headers and cells, key labels, rest rows, lower-bound and estimate marks, footnotes.

Plain, unescaped text: each renderer escapes it for where it goes (``one_line`` for the
terminal, ``md_inline`` for Markdown, ``html.escape`` for HTML). Machine formats (CSV, JSON) do
not use this module: they take the raw numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.ledger.reports import BudgetStatus, Dimension, Driver, Report, Row

NONE = "–"  # a cell with no value (no previous period, no budget)
NOT_RECORDED = "(not recorded)"
LOWER = "+"  # after a cost: at least this much
ESTIMATED = "~"  # before tokens: partly counted with the tokenizer
RISING_MARK = "▲"

LABEL: dict[Dimension, str] = {
    "team": "team",
    "repo": "repo",
    "pr": "PR",
    "author": "author",
    "model_name": "model name",
    "model": "model",
    "provider": "provider",
}
PLURAL: dict[Dimension, str] = {
    "team": "teams",
    "repo": "repos",
    "pr": "PRs",
    "author": "authors",
    "model_name": "model names",
    "model": "models",
    "provider": "providers",
}


# ---- numbers ----------------------------------------------------------------------------------


def money(usd: float) -> str:
    """Dollars with cents; a tiny non-zero amount is not shown as 0.00."""
    if 0 < abs(usd) < 0.005:
        return "<0.01" if usd > 0 else "-<0.01"
    return f"{usd:,.2f}"


def signed_pct(pct: float) -> str:
    return f"{pct:+,.0f}%" if abs(pct) >= 10 else f"{pct:+.1f}%"


def count(n: int) -> str:
    return f"{n:,}"


def compact(n: int) -> str:
    """Tokens, read at a glance: 980, 12.3k, 4.56M, 1.20B."""
    if n < 1000:
        return str(n)
    for size, unit in ((1_000_000_000, "B"), (1_000_000, "M"), (1000, "k")):
        if n >= size:
            value = n / size
            return f"{value:.2f}{unit}" if value < 10 else f"{value:,.1f}{unit}"
    raise AssertionError(n)  # unreachable: n >= 1000 matched "k"


def factor(f: float) -> str:
    return f"×{f:.2f}"


def drivers(ds: Sequence[Driver]) -> str:
    """ "more PRs ×1.40, bigger PRs ×1.12"."""
    return ", ".join(f"{d.name} {factor(d.factor)}" for d in ds)


# ---- keys -------------------------------------------------------------------------------------


def rest_label(by: Sequence[Dimension], n: int) -> str:
    """ "(37 more repos)", "(1 more team)", "(12 more groups)" when grouped by several."""
    if len(by) == 1:
        noun = PLURAL[by[0]] if n != 1 else LABEL[by[0]]
    else:
        noun = "groups" if n != 1 else "group"
    return f"({n:,} more {noun})"


def keys(row: Row, by: Sequence[Dimension]) -> list[str]:
    """One label per dimension; a rest row's label sits in the first column."""
    if row.rest_of:
        return [rest_label(by, row.rest_of)] + [""] * (len(by) - 1)
    return [NOT_RECORDED if k is None else k for k in row.key]


def name(row: Row, by: Sequence[Dimension]) -> str:
    """The group on one line: "payments / acme/api"."""
    return " / ".join(k for k in keys(row, by) if k)


# ---- columns ----------------------------------------------------------------------------------


def _lb(row: Row) -> str:
    return LOWER if row.lower_bound else ""


def _change(row: Row) -> str:
    if row.change_pct is None:
        return NONE
    return signed_pct(row.change_pct) + (RISING_MARK if row.rising else "")


def _per_pr(row: Row) -> str:
    per = row.cost_per_pr
    return NONE if per is None else money(per) + _lb(row)


def _est(row: Row) -> str:
    return ESTIMATED if row.estimated_calls else ""


def _tokens(row: Row) -> str:
    return _est(row) + compact(row.tokens)


def cost(row: Row, dollar: str = "") -> str:
    """ "~12.30+": partly estimated usage, and at least this much; ``dollar="$"``: "~$12.30+"."""
    return _est(row) + dollar + money(row.cost_usd) + _lb(row)


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Row], str]
    # Whether a report needs the column: one with no budgets has no budget column.
    needed: Callable[[Sequence[Row]], bool]
    # When a terminal is too narrow, columns with the highest value go first; 0 always stays;
    # from DROP_BEFORE_CUTTING up, they go before names are cut.
    drop: int = 0


DROP_BEFORE_CUTTING = 4


def _always(rows: Sequence[Row]) -> bool:
    return True


COLUMNS: tuple[Column, ...] = (
    Column("calls", lambda r: count(r.calls), _always, drop=3),
    Column("PRs", lambda r: count(r.prs), _always, drop=2),
    Column("tokens", _tokens, _always, drop=4),
    Column("cost $", cost, _always),
    Column("$/PR", _per_pr, lambda rows: any(r.prs for r in rows)),
    Column(
        "saved $",
        lambda r: money(r.cache_savings_usd),
        lambda rows: any(r.cache_savings_usd for r in rows),
        drop=5,
    ),
    Column("change", _change, lambda rows: any(r.change_pct is not None for r in rows), drop=1),
    Column(
        "forecast $",
        lambda r: NONE if r.forecast_usd is None else money(r.forecast_usd) + _lb(r),
        lambda rows: any(r.forecast_usd is not None for r in rows),
    ),
    Column(
        "budget $",
        lambda r: NONE if r.budget_usd is None else money(r.budget_usd),
        lambda rows: any(r.budget_usd is not None for r in rows),
    ),
    Column(
        "burn",
        lambda r: NONE if r.burn_pct is None else f"{r.burn_pct:,.0f}%" + _lb(r),
        lambda rows: any(r.burn_pct is not None for r in rows),
    ),
)


def all_rows(report: Report) -> tuple[Row, ...]:
    return (*report.rows, *report.totals, report.total)


def columns(report: Report) -> list[Column]:
    rows = all_rows(report)
    return [c for c in COLUMNS if c.needed(rows)]


def by_period(report: Report) -> list[tuple[str | None, list[Row], Row | None]]:
    """(period, its rows in report order, its total), oldest first. Every period found in the
    rows or totals appears, also one missing from ``report.periods``."""
    order: list[str | None] = list(report.periods)
    groups: dict[str | None, list[Row]] = {p: [] for p in order}
    for row in report.rows:
        if row.period not in groups:
            groups[row.period] = []
            order.append(row.period)
        groups[row.period].append(row)
    totals = {t.period: t for t in report.totals}
    order += [p for p in totals if p not in groups]
    return [(p, groups.get(p, []), totals.get(p)) for p in order]


def periodic(report: Report) -> bool:
    return report.query.period is not None


# ---- prose ------------------------------------------------------------------------------------


def title(report: Report) -> str:
    by = " × ".join(LABEL[d] for d in report.query.by)
    period = f" × {report.query.period}" if report.query.period else ""
    top = f", top {report.query.top}" if report.query.top else ""
    return f"AI review spend by {by}{period}{top}"


def subtitle(report: Report) -> str:
    until = report.until.isoformat()
    span = f"{report.since.isoformat()} to {until}" if report.since else f"up to {until}"
    when = report.generated_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    empty = "" if report.rows else " · no model calls in this range"
    return f"{span} · generated {when}{empty}"


def footnotes(report: Report) -> list[str]:
    """What the marks in the cells mean, for the marks this report uses."""
    t = report.total
    notes = []
    if t.lower_bound:
        why = []
        if t.unpriced_calls:
            why.append(
                f"{t.unpriced_calls:,} call(s) have no known price (add the model's "
                "input_cost_per_token and output_cost_per_token to providers.yaml)"
            )
        if t.unknown_calls:
            why.append(
                f"{t.unknown_calls:,} call(s) have an unknown outcome (in flight or "
                "interrupted; `ownit ledger repair` settles stale ones)"
            )
        notes.append(f"{LOWER} at least this much: {'; '.join(why)}.")
    if t.estimated_calls:
        notes.append(
            f"{ESTIMATED} estimated: tokens and cost include {t.estimated_calls:,} call(s) whose "
            "usage the provider did not report, counted with the tokenizer."
        )
    if any(r.rising for r in report.rows):
        notes.append(
            f"{RISING_MARK} rising: spend grew more than "
            f"{report.query.rising_threshold * 100:.0f}% against the previous period."
        )
    if report.current_period and any(r.forecast_usd is not None for r in all_rows(report)):
        notes.append(f"forecast: the run-rate to the end of {report.current_period}.")
    return notes


def rising_line(row: Row, by: Sequence[Dimension]) -> str:
    """ "payments, 2026-11: +52% (271.00 → 412.00): more PRs ×1.40, bigger PRs ×1.12"."""
    where = name(row, by) + (f", {row.period}" if row.period else "")
    change = NONE if row.change_pct is None else signed_pct(row.change_pct)
    was = "" if row.previous_cost_usd is None else f"{money(row.previous_cost_usd)} → "
    why = f": {drivers(row.drivers)}" if row.drivers else ""
    return f"{where}: {change} ({was}{cost(row)}){why}"


BUDGET_HEADERS = (
    "team",
    "month",
    "budget $",
    "spent $",
    "burn",
    "forecast $",
    "warns at",
    "when over",
    "state",
)
BUDGET_NUMBERS = range(2, 7)  # the columns of BUDGET_HEADERS that hold numbers


def budget_cells(b: BudgetStatus) -> list[str]:
    return [
        b.team,
        b.period,
        money(b.amount_usd),
        money(b.spent_usd),
        f"{b.burn_pct:,.0f}%",
        money(b.forecast_usd),
        f"{b.warn_at * 100:.0f}%",
        b.on_exceed,
        {"ok": "ok", "warning": "warning", "over": "OVER"}[b.state],
    ]
