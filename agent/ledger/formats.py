"""A ``Report`` as text: a terminal table, CSV, JSON or Markdown (``render``); an ``Overview`` as
one self-contained HTML page (``render_html``, in ``htmlpage.py``).

Standard library only (and ``agent.render.safe``), so ``ownit ledger report`` stays quick to
start; the table is aligned by hand because rich's Table took seconds for 16,000 rows.

Team, repo, PR and author names come from artifacts anyone can import: every renderer escapes
them for its medium, and CSV defuses cells a spreadsheet would run as a formula.

CSV: one header, one line per row. Columns, in order: ``period`` (empty for the whole range),
one per dimension of ``query.by`` named after it (empty: not recorded, or a rest row), ``kind``
(``row``, ``rest``: the ``rest_of`` groups ``--top`` left out, ``total``: a period's total, or
the whole range's when ``period`` is empty), then ``NUMBERS`` below. Numbers are plain (no
``$``, no separators), costs in dollars to the nano-dollar, booleans ``true``/``false``,
``drivers`` as ``name=factor`` joined by ``;``, an empty cell for no value.

JSON (``JSON_SCHEMA`` names the version)::

    {"schema": "ownit.ledger.report/1", "generated_at": "2026-11-27T12:00:00+00:00",
     "query": {"by": ["team"], "period": "month", "since": null, "until": null, "top": null,
               "rising_threshold": 0.25},
     "range": {"since": "2026-09-01" | null, "until": "2026-11-30"},
     "periods": ["2026-09", ...], "current_period": "2026-11" | null,
     "rows": [ROW, ...], "totals": [ROW, ...], "total": ROW, "budgets": [BUDGET, ...]}

ROW is ``{"period", "key": {dimension: value | null}, "kind", <NUMBERS>}`` (``key`` is empty on
totals and rest rows, ``drivers`` a list of ``{"name", "factor"}``); BUDGET holds
``BudgetStatus``'s fields and its ``burn_pct`` and ``remaining_usd``. Dates are ISO 8601; a value
that is not a finite number is null; one row per line, non-ASCII escaped (``\\u202e``), so
printing it cannot drive a terminal.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, Literal

from agent.ledger import cells
from agent.ledger.cells import NONE, Column
from agent.ledger.htmlpage import render_html
from agent.ledger.reports import BudgetStatus, Dimension, Report, Row
from agent.ledger.values import text
from agent.render.safe import md_inline, one_line

__all__ = ["FORMATS", "JSON_SCHEMA", "NUMBERS", "Format", "render", "render_html", "render_table"]

Format = Literal["table", "csv", "json", "markdown"]
JSON_SCHEMA = "ownit.ledger.report/1"
# The numeric columns of CSV and JSON rows, in order. Append only: scripts read them by name.
NUMBERS = (
    "rest_of",
    "calls",
    "errors",
    "prs",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "tokens",
    "cost_usd",
    "cost_lower_bound",
    "unpriced_calls",
    "unknown_calls",
    "estimated_calls",
    "pr_cost_usd",
    "cost_per_pr_usd",
    "cache_savings_usd",
    "previous_cost_usd",
    "change_pct",
    "forecast_usd",
    "budget_usd",
    "burn_pct",
    "rising",
    "drivers",
)


def _kind(row: Row) -> str:
    return "rest" if row.rest_of else ("total" if not row.key else "row")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _numbers(row: Row) -> dict[str, Any]:
    return {
        "rest_of": row.rest_of,
        "calls": row.calls,
        "errors": row.errors,
        "prs": row.prs,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cached_tokens": row.cached_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "tokens": row.tokens,
        "cost_usd": _finite(row.cost_usd),
        "cost_lower_bound": row.lower_bound,
        "unpriced_calls": row.unpriced_calls,
        "unknown_calls": row.unknown_calls,
        "estimated_calls": row.estimated_calls,
        "pr_cost_usd": _finite(row.pr_cost_usd),
        "cost_per_pr_usd": _finite(row.cost_per_pr),
        "cache_savings_usd": _finite(row.cache_savings_usd),
        "previous_cost_usd": _finite(row.previous_cost_usd),
        "change_pct": _finite(row.change_pct),
        "forecast_usd": _finite(row.forecast_usd),
        "budget_usd": _finite(row.budget_usd),
        "burn_pct": _finite(row.burn_pct),
        "rising": row.rising,
        "drivers": [{"name": d.name, "factor": d.factor} for d in row.drivers],
    }


def _lines(report: Report) -> list[Row]:
    """Every row to print, in order: each period's rows then its total, then the whole range
    (once, when the report has no periods)."""
    out: list[Row] = []
    for _, rows, total in cells.by_period(report):
        out += rows
        if total is not None and cells.periodic(report):
            out.append(total)
    out.append(report.total)
    return out


# ---- CSV --------------------------------------------------------------------------------------


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        # Costs are sums of nano-dollars: nine decimals keep them exact, never "1e-05".
        return f"{v:.9f}".rstrip("0").rstrip(".") or "0"
    if isinstance(v, list):
        return ";".join(f"{d['name']}={d['factor']:g}" for d in v)
    return str(v)


def render_csv(report: Report) -> str:
    by = report.query.by
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["period", *by, "kind", *NUMBERS])
    for row in _lines(report):
        key = ["" if k is None else text(k) for k in row.key] or [""] * len(by)
        if row.rest_of:
            key = [""] * len(by)
        nums = _numbers(row)
        w.writerow([row.period or "", *key, _kind(row), *(_csv_value(nums[n]) for n in NUMBERS)])
    return out.getvalue()


# ---- JSON -------------------------------------------------------------------------------------


def _json_row(row: Row, by: Sequence[Dimension]) -> dict[str, Any]:
    key = {} if row.rest_of or not row.key else dict(zip(by, row.key, strict=True))
    return {"period": row.period, "key": key, "kind": _kind(row), **_numbers(row)}


def _json_budget(b: BudgetStatus) -> dict[str, Any]:
    return {
        "team": b.team,
        "period": b.period,
        "amount_usd": b.amount_usd,
        "spent_usd": b.spent_usd,
        "forecast_usd": b.forecast_usd,
        "warn_at": b.warn_at,
        "on_exceed": b.on_exceed,
        "state": b.state,
        "burn_pct": _finite(b.burn_pct),
        "remaining_usd": b.remaining_usd,
    }


def render_json(report: Report) -> str:
    q, by = report.query, report.query.by
    doc = {
        "schema": JSON_SCHEMA,
        "generated_at": report.generated_at.isoformat(),
        "query": {
            "by": list(by),
            "period": q.period,
            "since": q.since.isoformat() if q.since else None,
            "until": q.until.isoformat() if q.until else None,
            "top": q.top,
            "rising_threshold": q.rising_threshold,
        },
        "range": {
            "since": report.since.isoformat() if report.since else None,
            "until": report.until.isoformat(),
        },
        "periods": list(report.periods),
        "current_period": report.current_period,
        "rows": [_json_row(r, by) for r in report.rows],
        "totals": [_json_row(r, by) for r in report.totals],
        "total": _json_row(report.total, by),
        "budgets": [_json_budget(b) for b in report.budgets],
    }

    # One row per line: readable, diffable, and dumped by json's C encoder (indent= is not).
    def dump(value: Any) -> str:
        return json.dumps(value, allow_nan=False)

    out = []
    for name, value in doc.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = "[\n    " + ",\n    ".join(map(dump, value)) + "\n  ]"
        else:
            value = dump(value)
        out.append(f"  {dump(name)}: {value}")
    return "{\n" + ",\n".join(out) + "\n}\n"


# ---- the terminal -----------------------------------------------------------------------------

_MARKS = (cells.LOWER, cells.RISING_MARK)
_MIN_KEY = 16  # a key column is cut (with "…") no narrower than this to fit the width


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(report: Report, width: int = 100) -> str:
    """Plain text aligned by hand: a section per period, its total under it. Columns a report
    does not need are left out; on a narrow terminal long names are cut, then the least useful
    columns go (the CSV has everything). Built column by column: 16,000 rows take ~0.1 s."""
    by = report.query.by
    cols = cells.columns(report)
    lines = _lines(report)
    safe: dict[str, str] = {}  # names repeat across periods: escape each once

    def key_cells(row: Row) -> list[str]:
        if not row.key or row.rest_of:
            label = cells.keys(row, by)[0] if row.rest_of else "total"
            return [label] + [""] * (len(by) - 1)
        out = []
        for k in cells.keys(row, by):
            if k not in safe:
                safe[k] = one_line(k)
            out.append(safe[k])
        return out

    keys = [list(c) for c in zip(*map(key_cells, lines), strict=True)]
    if cells.periodic(report):
        keys[0][-1] = "grand total"
    nums = [[c.cell(row) for row in lines] for c in cols]
    for i, col in enumerate(nums):
        # A column with marks ("12.30+", "+52%▲") pads the unmarked cells so digits line up.
        if any(cell.endswith(_MARKS) for cell in col):
            nums[i] = [cell if cell.endswith(_MARKS) else cell + " " for cell in col]
    key_w = [max(len(cells.LABEL[d]), *map(len, col)) for d, col in zip(by, keys, strict=True)]
    num_w = [max(len(c.header), *map(len, col)) for c, col in zip(cols, nums, strict=True)]

    keep, dropped = _fit(key_w, num_w, cols, width)
    justified = [[_cut(k, w).ljust(w) for k in col] for col, w in zip(keys, key_w, strict=True)] + [
        [cell.rjust(num_w[i]) for cell in nums[i]] for i in keep
    ]
    body = ["  ".join(row_cells).rstrip() for row_cells in zip(*justified, strict=True)]
    header = "  ".join(
        [cells.LABEL[d].ljust(w) for d, w in zip(by, key_w, strict=True)]
        + [cols[i].header.rjust(num_w[i]) for i in keep]
    ).rstrip()
    rule = "─" * len(header)
    out = [cells.title(report), cells.subtitle(report), "", header, rule]
    if not cells.periodic(report):
        out += body
    else:
        section = None
        for row, text in zip(lines, body, strict=True):
            if row.period is not None and row.period != section:
                section = row.period
                out.append(f"── {section} " + "─" * max(0, len(header) - len(section) - 4))
            if row is report.total:
                out.append(rule)
            out.append(text)
    out += _table_notes(report, dropped, width)
    return "\n".join(out) + "\n"


def _fit(
    key_w: list[int], num_w: list[int], cols: Sequence[Column], width: int
) -> tuple[list[int], list[Column]]:
    """Make the table fit ``width``: drop the least useful columns (saved $, tokens) before
    cutting names, cut names (widest first, to ``_MIN_KEY`` at least) before dropping the
    others. Narrows ``key_w`` in place; returns the columns kept and those dropped."""
    keep = list(range(len(cols)))
    dropped: list[Column] = []

    def room() -> int:  # what the key columns may take
        return width - sum(num_w[i] for i in keep) - 2 * (len(key_w) + len(keep) - 1)

    for column in sorted((c for c in cols if c.drop), key=lambda c: -c.drop):
        cut = column.drop < cells.DROP_BEFORE_CUTTING
        if sum(min(w, _MIN_KEY) if cut else w for w in key_w) <= room():
            break
        keep.remove(cols.index(column))
        dropped.append(column)
    while sum(key_w) > room() and max(key_w) > _MIN_KEY:
        widest = key_w.index(max(key_w))
        key_w[widest] = max(_MIN_KEY, key_w[widest] - (sum(key_w) - room()))
    return keep, dropped


def _table_notes(report: Report, dropped: Sequence[Column], width: int) -> list[str]:
    """Rising groups and their drivers, budgets, and what the marks mean, wrapped to ``width``."""
    out: list[str] = []
    rising = report.rising
    if rising:
        out += ["", f"Rising ({len(rising):,}):"]
        for r in rising:
            line = one_line(cells.rising_line(r, report.query.by))
            out.append(textwrap.fill(line, width, initial_indent="  ", subsequent_indent="    "))
    if report.budgets:
        rows = [[one_line(c) for c in cells.budget_cells(b)] for b in report.budgets]
        heads = list(cells.BUDGET_HEADERS)
        widths = [max(len(x) for x in col) for col in zip(heads, *rows, strict=True)]
        out += ["", "Budgets:"]
        for cols in [heads, *rows]:
            just = [
                c.rjust(w) if i in cells.BUDGET_NUMBERS else c.ljust(w)
                for i, (c, w) in enumerate(zip(cols, widths, strict=True))
            ]
            out.append("  " + "  ".join(just).rstrip())
    notes = cells.footnotes(report)
    if dropped:
        names = ", ".join(c.header for c in dropped)
        notes.append(f"left out to fit the width: {names} (--format csv has every column).")
    if notes:
        out += ["", *(textwrap.fill(n, width, subsequent_indent="  ") for n in notes)]
    return out


# ---- Markdown ---------------------------------------------------------------------------------


def _md_number(cell: str) -> str:
    """A cell ownit wrote (digits and marks): only "<0.01" and "~" (strikethrough) need care."""
    return cell.replace("<", "&lt;").replace("~", "\\~")


def _md_row(cols: Sequence[str]) -> str:
    return "| " + " | ".join(cols) + " |"


def render_markdown(report: Report) -> str:
    """A GitHub-flavoured table for a PR comment or a wiki page; names escaped."""
    by = report.query.by
    periodic = cells.periodic(report)
    cols = cells.columns(report)
    head = (["period"] if periodic else []) + [cells.LABEL[d] for d in by]
    out = [f"### {cells.title(report)}", "", f"_{cells.subtitle(report)}_", ""]
    out.append(_md_row(head + [c.header for c in cols]))
    out.append(_md_row(["---"] * len(head) + ["--:"] * len(cols)))
    safe: dict[str, str] = {}  # names repeat across periods: escape each once
    for row in _lines(report):
        nums = [_md_number(c.cell(row)) for c in cols]
        if row.key and not row.rest_of:
            ks = []
            for k in cells.keys(row, by):
                if k not in safe:
                    safe[k] = md_inline(k)
                ks.append(safe[k])
        else:
            if row.rest_of:
                label = f"_{cells.rest_label(by, row.rest_of)}_"
            else:
                label = "**total**" if row.period or not periodic else "**grand total**"
            ks = [label] + [""] * (len(by) - 1)
            if not row.rest_of:
                nums = [f"**{n}**" if n != NONE else n for n in nums]
        out.append(_md_row(([row.period or ""] if periodic else []) + ks + nums))
    if report.rising:
        out += ["", "**Rising**", ""]
        out += [f"- {md_inline(cells.rising_line(r, by))}" for r in report.rising]
    if report.budgets:
        heads = cells.BUDGET_HEADERS
        out += ["", "**Budgets**", "", _md_row(list(heads))]
        align = ["--:" if i in cells.BUDGET_NUMBERS else "---" for i in range(len(heads))]
        out.append(_md_row(align))
        out += [_md_row([md_inline(c) for c in cells.budget_cells(b)]) for b in report.budgets]
    notes = cells.footnotes(report)
    if notes:
        out += ["", *(f"- {md_inline(n)}" for n in notes)]
    return "\n".join(out) + "\n"


# ---- the registry -----------------------------------------------------------------------------

FORMATS: dict[str, Callable[[Report], str]] = {
    "table": render_table,
    "csv": render_csv,
    "json": render_json,
    "markdown": render_markdown,
}


def render(report: Report, fmt: Format | str) -> str:
    """``report`` in ``fmt``; the HTML page needs an ``Overview``: ``render_html``."""
    try:
        renderer = FORMATS[fmt]
    except KeyError:
        hint = "; html takes an Overview: render_html" if fmt == "html" else ""
        raise ValueError(f"unknown report format {fmt!r}: {', '.join(FORMATS)}{hint}") from None
    return renderer(report)
