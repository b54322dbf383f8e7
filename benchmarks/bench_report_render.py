"""Rendering a large ledger report: every format of ``agent.ledger.formats`` on a hand-built
16,000-row report (team x repo x month, as the issue measured), no database.

    .venv/bin/python benchmarks/bench_report_render.py [--runs 7] [--rows 16000]

Prints the median, min and max wall time of each renderer, its median CPU time, and the
output's size. The rich
Table the CLI used before is timed once on the same rows (``--no-rich`` skips it: it takes
seconds).
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from typing import Any

from _common import median, ms, table

from agent.ledger.formats import render, render_html
from agent.ledger.reports import Overview, Report
from tests.report_data import big, overview


def _time(fn: Callable[[], str], runs: int) -> tuple[list[float], list[float], int]:
    """Wall and CPU seconds of each run (CPU time is what a busy machine does not inflate)."""
    fn()  # warm-up: imports, caches
    wall, cpu = [], []
    size = 0
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        size = len(fn())
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return wall, cpu, size


def _rich(report: Report) -> str:
    from rich.console import Console
    from rich.table import Table

    t = Table()
    for d in report.query.by:
        t.add_column(d)
    for col in ("calls", "prompt tokens", "completion tokens", "USD"):
        t.add_column(col, justify="right")
    for r in report.rows:
        t.add_row(*(k or "-" for k in r.key), str(r.calls), f"{r.prompt_tokens:,}",
                  f"{r.completion_tokens:,}", f"{r.cost_usd:.4f}")  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=100).print(t)
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rows", type=int, default=16_000)
    ap.add_argument("--no-rich", action="store_true")
    args = ap.parse_args()

    report = big(args.rows)
    page: Overview = overview(report)
    cases: list[tuple[str, Callable[[], str], int]] = [
        *((fmt, (lambda f=fmt: render(report, f)), args.runs) for fmt in ("table", "csv")),
        *((fmt, (lambda f=fmt: render(report, f)), args.runs) for fmt in ("json", "markdown")),
        ("html (overview)", lambda: render_html(page), args.runs),
    ]
    if not args.no_rich:
        cases.append(("rich.Table (before)", lambda: _rich(report), 1))
    rows: list[list[Any]] = []
    for name, fn, runs in cases:
        wall, cpu, size = _time(fn, runs)
        rows.append(
            [name, ms(median(wall)), ms(min(wall)), ms(max(wall)), ms(median(cpu)), f"{size:,}"]
        )
    by = " x ".join(report.query.by)
    print(f"{len(report.rows):,} rows, {len(report.periods)} periods, by {by}")
    print(table(["format", "median ms", "min ms", "max ms", "cpu median ms", "chars"], rows))


if __name__ == "__main__":
    main()
