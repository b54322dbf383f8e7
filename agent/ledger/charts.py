"""Inline SVG charts for the HTML report, drawn in Python: nothing to load, readable with
scripts off, printable.

Every chart is an ``<svg role="img">`` with a ``<title>`` and ``<desc>`` (screen readers), its
numbers written on it (not only in tooltips), and ``data-*`` attributes on each bar (series,
period, dollars) so a test can check what the browser draws against the data. Every string
that reaches the markup goes through ``esc``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from agent.ledger import cells
from agent.ledger.reports import BudgetStatus, Report
from agent.render.safe import one_line

# Paul Tol's "muted" scheme (colour-blind safe), ordered so neighbours in a stack contrast;
# grey is kept for "other teams".
PALETTE = (
    "#332288",
    "#DDCC77",
    "#117733",
    "#CC6677",
    "#88CCEE",
    "#882255",
    "#44AA99",
    "#999933",
    "#AA4499",
)
OTHER_COLOUR = "#BBBBBB"
STATE_COLOUR = {"ok": "#4477AA", "warning": "#CCBB44", "over": "#CC3311"}
WIDTH = 800  # viewBox units; the SVG scales to the page


def esc(text: str) -> str:
    """User text for HTML or SVG, content or a double-quoted attribute: control and invisible
    characters shown as escapes (a name cannot reorder what the reader sees), markup escaped."""
    return html.escape(one_line(text), quote=True)


def usd_short(usd: float, lower: bool = False) -> str:
    """A label that fits over a bar: $0, $4.12, $412, $41.2k, $10k, $1.23M."""
    if usd == 0:
        s = "$0"
    elif usd < 10:
        s = f"${usd:.2f}"
    elif usd < 1000:
        s = f"${usd:.0f}"
    elif usd < 1_000_000:
        s = f"${usd / 1000:.1f}".removesuffix(".0") + "k"
    else:
        s = f"${usd / 1_000_000:.2f}".removesuffix("0").removesuffix(".0") + "M"
    return s + (cells.LOWER if lower else "")


def axis(value: float) -> tuple[float, int]:
    """Gridlines for values up to ``value``: a round step (1, 2, 2.5 or 5 x 10^n) and how
    many steps (at most 4) reach it."""
    if value <= 0:
        return 1.0, 1
    want = value / 4
    base = 10.0 ** math.floor(math.log10(want))
    step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= want * (1 - 1e-9))
    return step, max(1, math.ceil(value / step - 1e-9))


def _short(label: str, most: int) -> str:
    """A label that fits left of a bar; the whole of it is in the bar's <title>."""
    return label if len(label) <= most else label[: most - 1] + "…"


def _svg(height: float, label: str, desc: str, body: Sequence[str], cls: str, n: str) -> str:
    """The chart's frame; ``n`` makes its title's and description's ids unique on the page."""
    return (
        f'<svg class="chart {cls}" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-labelledby="{n}-title {n}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{n}-title">{esc(label)}</title><desc id="{n}-desc">{esc(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )


# ---- spend over time, per team ------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    usd: dict[str, float]  # period -> dollars
    total: float


def team_series(by_team: Report, most: int = len(PALETTE)) -> tuple[list[str], list[Series]]:
    """The periods, and one series per team, costliest first; past ``most`` colours the
    cheaper teams (and --top's rest) share one grey "other teams" series."""
    periods = [p or "whole range" for p, _, _ in cells.by_period(by_team)]
    spend: dict[str, dict[str, float]] = {}
    rest: dict[str, float] = {}
    for row in by_team.rows:
        period = row.period or "whole range"
        if row.rest_of:
            rest[period] = rest.get(period, 0.0) + row.cost_usd
            continue
        team = cells.keys(row, by_team.query.by)[0]
        spend.setdefault(team, {})
        spend[team][period] = spend[team].get(period, 0.0) + row.cost_usd
    ranked = sorted(spend.items(), key=lambda kv: -sum(kv[1].values()))
    if len(ranked) + bool(rest) > most:
        keep = most - 1
        for _, usd in ranked[keep:]:
            for p, v in usd.items():
                rest[p] = rest.get(p, 0.0) + v
        ranked = ranked[:keep]
    series = [
        Series(name, PALETTE[i % len(PALETTE)], usd, sum(usd.values()))
        for i, (name, usd) in enumerate(ranked)
    ]
    if rest:
        series.append(Series("other teams", OTHER_COLOUR, rest, sum(rest.values())))
    return periods, series


def stacked_bars(by_team: Report) -> tuple[str, list[Series]]:
    """Spend per period, one stacked bar each, a segment per team; the period's total above
    the bar (when the bars are wide enough for it) and on the axis."""
    periods, series = team_series(by_team)
    totals = {(t.period or "whole range"): t for t in by_team.totals}
    stack = {p: sum(s.usd.get(p, 0.0) for s in series) for p in periods}
    step, steps = axis(max(stack.values(), default=0.0))
    top = step * steps
    left, right, head, foot, plot_h = 64, 8, 22, 34, 260
    plot_w = WIDTH - left - right
    slot = plot_w / max(1, len(periods))
    bar_w = min(56.0, slot * 0.72)
    every = math.ceil(len(periods) / 16)  # period labels that fit under the bars
    body = []
    for i in range(steps + 1):  # gridlines and dollar ticks
        v = step * i
        y = head + plot_h - plot_h * i / steps
        body.append(
            f'<line class="grid" x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{usd_short(v)}</text>"
        )
    for i, p in enumerate(periods):
        x = left + slot * i + (slot - bar_w) / 2
        y = head + plot_h
        body.append(f'<g class="bar" data-period="{esc(p)}">')
        for s in series:
            usd = s.usd.get(p, 0.0)
            if usd <= 0:
                continue
            h = plot_h * usd / top
            y -= h
            body.append(
                f'<rect class="seg" x="{x:.2f}" y="{y:.3f}" width="{bar_w:.2f}" '
                f'height="{h:.3f}" fill="{s.colour}" data-series="{esc(s.name)}" '
                f'data-period="{esc(p)}" data-usd="{usd:.9f}">'
                f"<title>{esc(s.name)}, {esc(p)}: ${cells.money(usd)}</title></rect>"
            )
        total = totals.get(p)
        lower = total.lower_bound if total else False
        if len(periods) <= 24:
            body.append(
                f'<text class="value" x="{x + bar_w / 2:.1f}" y="{y - 5:.1f}" '
                f'text-anchor="middle">{usd_short(stack[p], lower)}</text>'
            )
        body.append("</g>")
        if i % every == 0:
            body.append(
                f'<text class="label" x="{x + bar_w / 2:.1f}" y="{head + plot_h + 18}" '
                f'text-anchor="middle">{esc(p)}</text>'
            )
    desc = "; ".join(f"{p}: ${cells.money(stack[p])}" for p in periods) or "no spend"
    label = "Spend per period, stacked by team"
    return _svg(head + plot_h + foot, label, desc, body, "stacked", "spend-chart"), series


# ---- horizontal bars: top repos, top PRs, growth --------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    value: float  # the bar's length, in the chart's unit
    text: str  # the number written after the bar
    key: str  # data-key: what the bar is of
    cls: str = ""


def hbars(bars: Sequence[Bar], label: str, cls: str, ident: str) -> str:
    """One bar per item, lengths proportional to ``value``, its label left, its number right."""
    left, right, row_h = 250, 110, 26
    plot_w = WIDTH - left - right
    top = max((b.value for b in bars), default=0.0) or 1.0
    body = []
    for i, b in enumerate(bars):
        y = 6 + i * row_h
        w = plot_w * max(0.0, b.value) / top
        name = _short(b.label, 36)
        body.append(
            f'<g class="row {b.cls}"><title>{esc(b.label)}: {esc(b.text)}</title>'
            f'<text class="label" x="{left - 8}" y="{y + 15}" text-anchor="end">{esc(name)}</text>'
            f'<rect class="hbar" x="{left}" y="{y}" width="{w:.3f}" height="{row_h - 8}" '
            f'data-key="{esc(b.key)}" data-value="{b.value:.9f}"/>'
            f'<text class="value" x="{left + w + 6:.1f}" y="{y + 15}">{esc(b.text)}</text></g>'
        )
    desc = "; ".join(f"{b.label}: {b.text}" for b in bars) or "nothing to show"
    return _svg(12 + len(bars) * row_h, label, desc, body, cls, ident)


# ---- budget burn ----------------------------------------------------------------------------


def budget_bars(budgets: Sequence[BudgetStatus]) -> str:
    """Spend against each team's budget, in percent so every 100 % line lines up; the warning
    level dashed, the forecast as a hollow marker, the state written out."""
    left, right, row_h = 170, 260, 34
    plot_w = WIDTH - left - right
    most = max([100.0, *(b.burn_pct for b in budgets), *(_pct(b.forecast_usd, b) for b in budgets)])
    scale = plot_w / (most * 1.05)
    full = left + 100 * scale
    body = [
        '<defs><pattern id="over-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#CC3311"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#fff" stroke-width="2"/></pattern></defs>'
    ]
    for i, b in enumerate(budgets):
        y = 8 + i * row_h
        fill = "url(#over-hatch)" if b.state == "over" else STATE_COLOUR[b.state]
        spent_w = min(b.burn_pct, most) * scale
        warn_x = left + b.warn_at * 100 * scale
        fore_x = left + min(_pct(b.forecast_usd, b), most) * scale
        text = f"${cells.money(b.spent_usd)} of ${cells.money(b.amount_usd)} · {b.burn_pct:.0f}%"
        state = {"ok": "ok", "warning": "warning", "over": "OVER"}[b.state]
        body.append(
            f'<g class="budget state-{b.state}" data-team="{esc(b.team)}" data-state="{b.state}" '
            f'data-burn="{b.burn_pct:.6f}"><title>{esc(b.team)}, {esc(b.period)}: {text}, '
            f"forecast ${cells.money(b.forecast_usd)}, {b.state}</title>"
            f'<text class="label" x="{left - 8}" y="{y + 16}" text-anchor="end">'
            f"{esc(_short(b.team, 24))}</text>"
            f'<rect class="track" x="{left}" y="{y}" width="{100 * scale:.2f}" height="20"/>'
            f'<rect class="spent" x="{left}" y="{y}" width="{spent_w:.2f}" height="20" '
            f'fill="{fill}"/>'
            f'<line class="warn" x1="{warn_x:.1f}" x2="{warn_x:.1f}" y1="{y - 3}" y2="{y + 23}"/>'
            f'<circle class="forecast" cx="{fore_x:.1f}" cy="{y + 10}" r="5"/>'
            f'<text class="value" x="{WIDTH - right + 8}" y="{y + 15}">{text} · '
            f'<tspan class="state">{state}</tspan></text></g>'
        )
    bottom = 8 + len(budgets) * row_h
    body.append(
        f'<line class="full" x1="{full:.1f}" x2="{full:.1f}" y1="2" y2="{bottom}"/>'
        f'<text class="tick" x="{full:.1f}" y="{bottom + 10}" '
        f'text-anchor="middle">100%</text>'
    )
    desc = "; ".join(
        f"{b.team}: {b.burn_pct:.0f}% of ${cells.money(b.amount_usd)}, {b.state}" for b in budgets
    )
    return _svg(
        26 + len(budgets) * row_h, "Budget burn this month", desc, body, "burn", "burn-chart"
    )


def _pct(usd: float, b: BudgetStatus) -> float:
    return usd / b.amount_usd * 100 if b.amount_usd else 0.0
