"""The HTML report: one self-contained page a finance lead opens from disk, with no server and
no network. Spend over time per team, top repos and PRs, growth, budget burn, then the report's
table.

No scripts, fonts, images or stylesheets to fetch: the charts are inline SVG (``charts.py``),
the style is inline, and a Content-Security-Policy forbids every fetch and every script, so a
name that slipped past escaping still could neither run nor call out. Every user string goes
through ``charts.esc``.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.ledger import cells, charts
from agent.ledger.charts import Bar, esc
from agent.ledger.reports import BudgetStatus, Overview, Report, Row

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)

STYLE = """
:root { color-scheme: light; --ink: #1b1b1b; --muted: #5a5a5a; --line: #d0d0d0; }
* { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  max-width: 1100px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 1.5em; margin: 0.2em 0; } h2 { font-size: 1.2em; margin: 1.6em 0 0.4em; }
.sub, .note, caption { color: var(--muted); }
nav a { margin-right: 1em; }
section { break-inside: avoid-page; }
svg.chart { width: 100%; max-width: 900px; height: auto; display: block; }
svg text { font: 12px system-ui, sans-serif; fill: var(--ink); }
svg .tick { fill: var(--muted); font-size: 11px; }
svg .grid { stroke: #e6e6e6; }
svg .hbar { fill: #4477AA; }
svg.growth .hbar { fill: #CC6677; }
svg .row.lower .hbar { fill: #88A9CC; }
svg .track { fill: #f3f3f3; stroke: #9a9a9a; }
svg .warn { stroke: #333; stroke-dasharray: 3 2; stroke-width: 1.5; }
svg .full { stroke: #333; stroke-width: 1.5; }
svg .forecast { fill: none; stroke: #333; stroke-width: 2; }
svg .state-over .state { font-weight: 700; fill: #A3200A; }
svg .state-warning .state { font-weight: 700; }
ul.legend { list-style: none; padding: 0; margin: 6px 0; display: flex; flex-wrap: wrap;
  gap: 4px 16px; }
ul.legend svg { vertical-align: -1px; margin-right: 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--line); text-align: left; }
td.n, th.n { text-align: right; }
th, td { white-space: nowrap; }
tr.period th { background: #f0f0f0; font-weight: 600; }
tr.total td, tr.total th { font-weight: 700; border-bottom: 2px solid #999; }
tr.rest td, tr.rest th { font-style: italic; color: var(--muted); }
tr.state-over td, tr.state-over th { color: #A3200A; font-weight: 600; }
.rising { color: #A3200A; }
@media print {
  body { font-size: 10pt; max-width: none; padding: 0; }
  nav { display: none; }
  .scroll { overflow: visible; }
  h2 { break-after: avoid; }
  tr { break-inside: avoid; }
  table { font-size: 8pt; }
  th, td { white-space: normal; padding: 2px 4px; }
}
"""


def render_html(overview: Overview, ownership: str = "") -> str:
    """The page; ``ownership`` is a ready section (``ownership.html_section``) placed before
    the table."""
    report = overview.report
    budgets = overview.budgets or report.budgets
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(cells.title(report))}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>{esc(cells.title(report))}</h1>",
        f'<p class="sub">{esc(cells.subtitle(report))} · total '
        f"<strong>{esc(cells.cost(report.total, '$'))}</strong></p></header>",
        '<nav aria-label="Sections"><a href="#over-time">Over time</a><a href="#top">Top repos '
        'and PRs</a><a href="#growth">Growth</a><a href="#budgets">Budgets</a>'
        + ('<a href="#ownership">Ownership</a>' if ownership else "")
        + '<a href="#report">Table</a></nav>',
        _over_time(overview.by_team),
        _top(overview.top_repos, overview.top_prs),
        _growth(overview),
        _budgets(budgets),
        ownership,
        _report_table(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _table(
    caption: str, head: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]], nums: range
) -> str:
    """A table of ready-escaped cells; the columns in ``nums`` hold numbers."""
    th = "".join(
        f'<th scope="col"{" class=n" if i in nums else ""}>{h}</th>' for i, h in enumerate(head)
    )
    body = []
    for cls, cols in rows:
        tds = "".join(f"<td{' class=n' if i in nums else ''}>{c}</td>" for i, c in enumerate(cols))
        body.append(f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>")
    return (
        f'<div class="scroll"><table><caption>{caption}</caption><thead><tr>{th}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _swatch(colour: str) -> str:
    """A legend's colour sample: an SVG square, which prints (a CSS background may not)."""
    return (
        f'<svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" '
        f'fill="{colour}"/></svg>'
    )


def _over_time(by_team: Report) -> str:
    out = ['<section id="over-time"><h2>Spend over time, per team</h2>']
    if not by_team.rows:
        return out[0] + '<p class="note">No spend recorded in this range.</p></section>'
    svg, series = charts.stacked_bars(by_team)
    legend = "".join(
        f'<li data-series="{esc(s.name)}">{_swatch(s.colour)}{esc(s.name)} '
        f'<span class="note">${cells.money(s.total)}</span></li>'
        for s in series
    )
    out += [svg, f'<ul class="legend" aria-label="Teams">{legend}</ul>']
    # Every team and period in numbers, also the teams the chart groups as "other".
    groups = cells.by_period(by_team)
    periods = [p or "whole range" for p, _, _ in groups]
    spend: dict[str, dict[str, str]] = {}
    for row in by_team.rows:
        name = cells.name(row, by_team.query.by)
        spend.setdefault(name, {})[row.period or "whole range"] = esc(cells.cost(row))
    rows = [("", [esc(t), *(v.get(p, cells.NONE) for p in periods)]) for t, v in spend.items()]
    totals = [esc(cells.cost(t)) if t else cells.NONE for _, _, t in groups]
    rows.append(("total", ["total", *totals]))
    head = ["team", *(esc(p) for p in periods)]
    out += [_table("Spend per team and period, $", head, rows, range(1, len(head))), "</section>"]
    return "".join(out)


def _spend_bars(report: Report) -> tuple[str, str]:
    by = report.query.by
    top = [r for r in report.rows if not r.rest_of]
    bars = [
        Bar(
            cells.name(r, by),
            r.cost_usd,
            cells.cost(r, "$"),
            cells.name(r, by),
            "lower" if r.lower_bound else "",
        )
        for r in top
    ]
    rest = " ".join(
        f'<p class="note">{esc(cells.rest_label(by, r.rest_of))}: {esc(cells.cost(r, "$"))}</p>'
        for r in report.rows
        if r.rest_of
    )
    plural = cells.PLURAL[by[0]]
    return charts.hbars(bars, f"Top {plural} by spend", "top", f"{by[0]}-chart"), rest


def _top(repos: Report, prs: Report) -> str:
    since, until = repos.since, repos.until
    span = f"{since:%Y-%m-%d} to {until:%Y-%m-%d}" if since else f"to {until:%Y-%m-%d}"
    out = [f'<section id="top"><h2>Top repos and PRs, {esc(span)}</h2>']
    for title, report in (("Repos", repos), ("Pull requests", prs)):
        out.append(f"<h3>{title}</h3>")
        if not report.rows:
            out.append('<p class="note">None in this range.</p>')
            continue
        svg, rest = _spend_bars(report)
        out += [svg, rest]
    return "".join(out) + "</section>"


def _growth(overview: Overview) -> str:
    out = ['<section id="growth"><h2>Growth</h2>']
    # Per team first, then the report's own groups; a group in both appears once.
    items: dict[tuple[object, ...], tuple[Report, Row]] = {}
    for rep in (overview.by_team, overview.report):
        for r in rep.rising:
            items.setdefault((rep.query.by, r.key, r.period), (rep, r))
    if not items:
        pct = overview.report.query.rising_threshold * 100
        note = f"Nothing grew more than {pct:.0f}% against the previous period."
        return out[0] + f'<p class="note">{note}</p></section>'
    bars, rows = [], []
    for rep, r in items.values():
        name = cells.name(r, rep.query.by)
        change = cells.NONE if r.change_pct is None else cells.signed_pct(r.change_pct)
        before = cells.NONE if r.previous_cost_usd is None else cells.money(r.previous_cost_usd)
        bars.append(
            Bar(f"{name}, {r.period}" if r.period else name, r.change_pct or 0.0, change, name)
        )
        why = cells.drivers(r.drivers) or cells.NONE
        rows.append(
            ("", [esc(x) for x in (name, r.period or "", why, before, cells.cost(r), change)])
        )
    out.append(
        charts.hbars(bars, "Growth against the previous period, %", "growth", "growth-chart")
    )
    head = ["group", "period", "drivers", "before $", "now $", "change"]
    out.append(_table("Rising spend and why", head, rows, range(3, 6)))
    return "".join(out) + "</section>"


def _budgets(budgets: Sequence[BudgetStatus]) -> str:
    out = ['<section id="budgets"><h2>Budget burn</h2>']
    if not budgets:
        return out[0] + '<p class="note">No team has a budget.</p></section>'
    out.append(charts.budget_bars(budgets))
    key = [
        (charts.STATE_COLOUR["ok"], "spent, ok"),
        (charts.STATE_COLOUR["warning"], "spent, past the warning level"),
        (charts.STATE_COLOUR["over"], "spent, over budget (hatched)"),
    ]
    out.append(
        '<ul class="legend" aria-label="How to read the budget chart">'
        + "".join(f"<li>{_swatch(colour)}{text}</li>" for colour, text in key)
        + "<li>dashed line: warning level</li><li>solid line: 100% of the budget</li>"
        "<li>○ forecast at the current run-rate</li></ul>"
    )
    rows = [(f"state-{b.state}", [esc(c) for c in cells.budget_cells(b)]) for b in budgets]
    out.append(_table("Budgets", list(cells.BUDGET_HEADERS), rows, cells.BUDGET_NUMBERS))
    return "".join(out) + "</section>"


def _report_table(report: Report) -> str:
    by = report.query.by
    cols = cells.columns(report)
    periodic = cells.periodic(report)
    head = "".join(f'<th scope="col">{esc(cells.LABEL[d])}</th>' for d in by)
    head += "".join(f'<th scope="col" class="n">{esc(c.header)}</th>' for c in cols)
    width = len(by) + len(cols)
    body: list[str] = []
    for period, rows, total in cells.by_period(report):
        if periodic and period is not None:
            body.append(
                f'<tr class="period"><th colspan="{width}" scope="rowgroup">{esc(period)}</th></tr>'
            )
        for r in rows:
            body.append(_tr(r, cells.keys(r, by), cols, "rest" if r.rest_of else ""))
        if total is not None and periodic:
            body.append(
                _tr(total, [f"total {period or ''}".strip()] + [""] * (len(by) - 1), cols, "total")
            )
    label = "grand total" if periodic else "total"
    body.append(_tr(report.total, [label] + [""] * (len(by) - 1), cols, "total"))
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in cells.footnotes(report))
    return (
        f'<section id="report"><h2>{esc(cells.title(report))}</h2><div class="scroll"><table>'
        f"<caption>{esc(cells.subtitle(report))}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>{notes}</section>"
    )


def _tr(row: Row, keys: Sequence[str], cols: Sequence[cells.Column], cls: str) -> str:
    if row.rising:
        cls = (cls + " rising").strip()
    ks = "".join(f"<td>{esc(k)}</td>" for k in keys)
    ns = "".join(f'<td class="n">{esc(c.cell(row))}</td>' for c in cols)
    return f'<tr class="{cls}">{ks}{ns}</tr>' if cls else f"<tr>{ks}{ns}</tr>"
