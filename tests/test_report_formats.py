"""The report renderers on hand-built reports (``tests/report_data.py``): table, CSV, JSON,
Markdown, and the HTML page's markup (the page in a browser: ``test_report_html.py``).

No arithmetic here: the expected cells are written out. Each test reads every row back from
the output, so a renderer that drops a period, a team, a key column or a total fails.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import subprocess
import sys
from dataclasses import replace
from datetime import date

import pytest

from agent.ledger import cells
from agent.ledger.formats import JSON_SCHEMA, NUMBERS, render, render_html, render_table
from agent.ledger.reports import BudgetStatus, Driver, Report, ReportQuery, Row
from agent.render.safe import md_inline
from tests.report_data import (
    GENERATED,
    XSS_SCRIPT,
    budget,
    overview,
    ranked,
    row,
    team_month,
    total,
)

# What a reader sees of team_month(), in order: (period section, group, cost cell).
SHOWN = [
    ("2026-09", "payments", "120.50"),
    ("2026-09", "search", "80.25"),
    ("2026-09", "(not recorded)", "3.50"),
    ("2026-09", "total", "204.25"),
    ("2026-10", "payments", "250.75"),
    ("2026-10", "search", "60.40+"),
    ("2026-10", XSS_SCRIPT, "~15.20"),
    ("2026-10", "total", "~326.35+"),
    ("2026-11", "payments", "612.30"),
    ("2026-11", XSS_SCRIPT, "42.90"),
    ("2026-11", "(37 more teams)", "9.75"),
    ("2026-11", "total", "664.95"),
    (None, "grand total", "~1,195.55+"),
]
# The same rows as data: (period, team, kind, rest_of, cost_usd, cost_lower_bound).
DATA = [
    ("2026-09", "payments", "row", 0, 120.5, False),
    ("2026-09", "search", "row", 0, 80.25, False),
    ("2026-09", None, "row", 0, 3.5, False),
    ("2026-09", None, "total", 0, 204.25, False),
    ("2026-10", "payments", "row", 0, 250.75, False),
    ("2026-10", "search", "row", 0, 60.4, True),
    ("2026-10", XSS_SCRIPT, "row", 0, 15.2, False),
    ("2026-10", None, "total", 0, 326.35, True),
    ("2026-11", "payments", "row", 0, 612.3, False),
    ("2026-11", XSS_SCRIPT, "row", 0, 42.9, False),
    ("2026-11", None, "rest", 37, 9.75, False),
    ("2026-11", None, "total", 0, 664.95, False),
    (None, None, "total", 0, 1195.55, True),
]


def table_rows(text: str, keys: int = 1) -> list[tuple[str | None, list[str], list[str]]]:
    """(the period section, the key cells, the number cells) of each line of the table's
    body. Key columns are read at their header's position (names are left-aligned there, and
    a cell may be empty); numbers are right-aligned, apart by two spaces or more."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    header = lines[rule - 1]
    starts = [m.start() for m in re.finditer(r"\S+", header)][:keys]
    out: list[tuple[str | None, list[str], list[str]]] = []
    section = None
    for line in lines[rule + 1 :]:
        if not line:
            break
        if line.startswith("── "):
            section = line.split()[1]
        elif line.startswith("─"):
            section = None
        else:
            ks = [line[a:b].strip() for a, b in itertools.pairwise(starts)]
            last = re.split(r"\s{2,}", line[starts[-1] :])
            ks.append("" if line[starts[-1]] == " " else last[0])
            nums = re.split(r"\s{2,}", line[starts[-1] :].strip())[0 if ks[-1] == "" else 1 :]
            out.append((section, ks, nums))
    return out


def md_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first Markdown table; cells split on unescaped pipes."""
    table = [line for line in text.split("\n\n")[2].splitlines() if line.startswith("|")]

    def split(line: str) -> list[str]:
        return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]

    return split(table[0]), [split(line) for line in table[2:]]


def plain(md: str) -> str:
    """A Markdown cell as read: emphasis and the escapes of ``<`` undone."""
    return (
        re.sub(r"^\*\*(.*)\*\*$|^_(.*)_$", lambda m: m[1] or m[2], md)
        .replace("&lt;", "<")
        .replace("\\~", "~")
    )


def test_table_shows_every_row_under_its_period_and_every_total() -> None:
    shown = table_rows(render_table(team_month(), width=200))
    assert [(p, ks[0], nums[3]) for p, ks, nums in shown] == SHOWN


def test_markdown_shows_every_row_and_total() -> None:
    head, rows = md_rows(render(team_month(), "markdown"))
    assert head[:3] == ["period", "team", "calls"]
    cost = head.index("cost $")
    got = [(r[0] or None, plain(r[1]), plain(r[cost])) for r in rows]
    assert got == SHOWN


def test_csv_has_one_line_per_row_with_raw_numbers() -> None:
    text = render(team_month(), "csv")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["period", "team", "kind", *NUMBERS]
    got = [
        (d["period"] or None, d["team"] or None, d["kind"], int(d["rest_of"]), float(d["cost_usd"]))
        for d in csv.DictReader(io.StringIO(text))
    ]
    assert got == [d[:5] for d in DATA]
    assert [d["cost_lower_bound"] for d in csv.DictReader(io.StringIO(text))] == [
        "true" if d[5] else "false" for d in DATA
    ]
    first = next(csv.DictReader(io.StringIO(text)))
    assert first["prompt_tokens"] == "10845000" and first["cache_savings_usd"] == "6.03"
    assert first["previous_cost_usd"] == "" and first["drivers"] == ""
    rising = [d for d in csv.DictReader(io.StringIO(text)) if d["rising"] == "true"]
    assert [d["drivers"] for d in rising] == [
        "more PRs=1.4;bigger PRs=1.12",
        "pricier models=2.5",
    ]
    assert "$" not in text and "1,195" not in text


def _row_from_json(d: dict[str, object], by: tuple[str, ...]) -> Row:
    fields = {k: v for k, v in d.items() if k in Row.__dataclass_fields__}
    key = d["key"]
    assert isinstance(key, dict)
    fields["key"] = (None,) if d["kind"] == "rest" else tuple(key[b] for b in by) if key else ()
    fields["drivers"] = tuple(Driver(**x) for x in d["drivers"])  # type: ignore[attr-defined]
    return Row(**fields)  # type: ignore[arg-type]


def test_json_round_trips_to_the_report() -> None:
    report = team_month()
    doc = json.loads(render(report, "json"))
    assert set(doc) == {
        "schema",
        "generated_at",
        "query",
        "range",
        "periods",
        "current_period",
        "rows",
        "totals",
        "total",
        "budgets",
    }
    assert doc["schema"] == JSON_SCHEMA
    assert doc["generated_at"] == "2026-11-27T12:00:00+00:00"
    assert doc["query"] == {
        "by": ["team"],
        "period": "month",
        "since": "2026-09-01",
        "until": None,
        "top": 2,
        "rising_threshold": 0.25,
    }
    assert doc["range"] == {"since": "2026-09-01", "until": "2026-11-27"}
    assert doc["periods"] == ["2026-09", "2026-10", "2026-11"]
    assert doc["current_period"] == "2026-11"
    by = ("team",)
    assert tuple(_row_from_json(d, by) for d in doc["rows"]) == report.rows
    assert tuple(_row_from_json(d, by) for d in doc["totals"]) == report.totals
    assert _row_from_json(doc["total"], by) == report.total
    assert [d["kind"] for d in doc["rows"]] == ["row"] * 8 + ["rest"]
    assert doc["rows"][2]["key"] == {"team": None} and doc["rows"][8]["key"] == {}
    assert doc["total"]["cost_per_pr_usd"] == report.total.cost_per_pr
    budgets = [
        BudgetStatus(**{k: v for k, v in b.items() if k not in ("burn_pct", "remaining_usd")})
        for b in doc["budgets"]
    ]
    assert tuple(budgets) == report.budgets
    assert doc["budgets"][0]["burn_pct"] == report.budgets[0].burn_pct


def two_keys() -> Report:
    """team x repo over two weeks, a repo not recorded, a rest row of three groups."""
    rows = (
        row(("payments", "acme/api"), "2026-W47", 50.0),
        row(("payments", None), "2026-W47", 4.0),
        row(("search", "acme/web"), "2026-W48", 30.0),
        row(("search", "acme/api"), "2026-W48", 20.0),
        row((None, None), "2026-W48", 2.0, rest_of=3),
    )
    totals = (total("2026-W47", 54.0), total("2026-W48", 52.0))
    return Report(
        query=ReportQuery(by=("team", "repo"), period="week", top=2),
        rows=rows,
        totals=totals,
        total=total(None, 106.0),
        generated_at=GENERATED,
        since=date(2026, 11, 16),
        until=date(2026, 11, 29),
        periods=("2026-W47", "2026-W48"),
    )


def test_every_key_column_in_every_format() -> None:
    report = two_keys()
    expected = [
        ("2026-W47", "payments", "acme/api", "50.00"),
        ("2026-W47", "payments", "(not recorded)", "4.00"),
        ("2026-W47", "total", "", "54.00"),
        ("2026-W48", "search", "acme/web", "30.00"),
        ("2026-W48", "search", "acme/api", "20.00"),
        ("2026-W48", "(3 more groups)", "", "2.00"),
        ("2026-W48", "total", "", "52.00"),
        (None, "grand total", "", "106.00"),
    ]
    assert render(report, "table").splitlines()[3].split()[:3] == ["team", "repo", "calls"]
    shown = table_rows(render(report, "table"), keys=2)
    assert [(p, ks[0], ks[1], nums[3]) for p, ks, nums in shown] == expected

    head, rows = md_rows(render(report, "markdown"))
    cost = head.index("cost $")
    assert [(r[0] or None, plain(r[1]), plain(r[2]), plain(r[cost])) for r in rows] == expected

    data = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [(d["team"], d["repo"], d["kind"]) for d in data] == [
        ("payments", "acme/api", "row"),
        ("payments", "", "row"),
        ("", "", "total"),
        ("search", "acme/web", "row"),
        ("search", "acme/api", "row"),
        ("", "", "rest"),
        ("", "", "total"),
        ("", "", "total"),
    ]
    doc = json.loads(render(report, "json"))
    assert [d["key"] for d in doc["rows"]] == [
        {"team": "payments", "repo": "acme/api"},
        {"team": "payments", "repo": None},
        {"team": "search", "repo": "acme/web"},
        {"team": "search", "repo": "acme/api"},
        {},
    ]


def test_rest_rows_read_as_what_they_leave_out() -> None:
    assert cells.rest_label(("repo",), 37) == "(37 more repos)"
    assert cells.rest_label(("pr",), 1) == "(1 more PR)"
    assert cells.rest_label(("team", "repo"), 1200) == "(1,200 more groups)"
    repos = ranked("repo", ["acme/api", "acme/web"], rest=12)
    assert "(12 more repos)" in render(repos, "table")
    assert "| _(12 more repos)_ |" in render(repos, "markdown")


def test_lower_bounds_and_estimates_are_marked_and_explained() -> None:
    report = team_month()
    report = replace(report, total=replace(report.total, unknown_calls=3))
    table = render_table(report, width=200)
    rows = {(p, ks[0]): nums for p, ks, nums in table_rows(table)}
    assert rows[("2026-10", "search")][3:5] == ["60.40+", "6.71+"]
    assert rows[("2026-10", "payments")][3] == "250.75"
    assert rows[("2026-10", XSS_SCRIPT)][2] == "~1.50M"
    assert "+ at least this much: 4 call(s) have no known price" in table
    assert "3 call(s) have an unknown outcome" in table
    assert rows[("2026-10", XSS_SCRIPT)][3] == "~15.20"
    assert "~ estimated: tokens and cost include 2 call(s) whose usage the provider" in table
    md = render(report, "markdown")
    assert "| 60.40+ | 6.71+ |" in md and "| \\~1.50M |" in md
    assert "- \\+ at least this much: 4 call(s) have no known price" in md

    exact = ranked("repo", ["acme/api"])
    for fmt in ("table", "markdown"):
        out = render(exact, fmt)
        assert "at least" not in out and "+" not in out.split("acme/api")[1].split("\n")[0]


def test_markdown_escapes_names() -> None:
    names = [
        "a | b",
        "[click](https://evil.example)",
        '<img src=x onerror="alert(1)">',
        "# heading",
        "**bold** _it_",
    ]
    report = team_month(("payments", *names[:2]))
    report = replace(report, rows=(*report.rows, *(row((n,), "2026-11", 1.5) for n in names)))
    md = render(report, "markdown")
    head, rows = md_rows(md)
    assert {len(r) for r in rows} == {len(head)}  # no name added a column
    teams = [r[1] for r in rows]
    for n in names:
        assert md_inline(n) in teams
    assert "<img" not in md and not re.search(r"(?<!\\)\]\(", md)
    assert not re.search(r"^#(?!##)", md, re.M)
    assert "&lt;script>alert(1)&lt;/script>" in render(team_month(), "markdown")


def test_html_escapes_names_in_text_and_attributes() -> None:
    page = render_html(overview())
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert 'data-series="&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids)) and render_html(overview()) == page  # stable, diffable


@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ('=HYPERLINK("http://e.example","x")', '\'=HYPERLINK("http://e.example","x")'),
        ("+SUM(A1:A9)", "'+SUM(A1:A9)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=1", "'\t=1"),
        ("  =1", "'  =1"),
        ("payments", "payments"),
        ("team-a", "team-a"),
    ],
)
def test_csv_defuses_formulas_in_names(name: str, cell: str) -> None:
    report = team_month((name, "search", "x"))
    data = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert data[0]["team"] == cell
    assert data[4]["change_pct"] == "108.1" and data[5]["change_pct"] == "-24.7"


def test_table_fits_100_columns_and_says_what_it_left_out() -> None:
    long = [f"org-{i}/{'service-with-a-very-long-name-' * 3}{i}" for i in range(3)]
    report = replace(
        two_keys(),
        rows=tuple(row(("payments", r), "2026-W48", 10.0 + i) for i, r in enumerate(long)),
    )
    text = render(report, "table")
    body = text.split("\n\n")[1].splitlines()
    assert body and all(len(line) <= 100 for line in body)
    assert sum("…" in line for line in body) == 3
    # Cache savings go before a name is cut; names are cut before PRs or change go.
    text = render(team_month(), "table")
    body = text.split("\n\n")[1].splitlines()
    assert all(len(line) <= 100 for line in body)
    assert "saved $" not in body[0] and "PRs" in body[0] and "change" in body[0]
    assert f"{XSS_SCRIPT}  " in text and "…" not in text
    narrow = render_table(team_month(), width=72)
    body = narrow.split("\n\n")[1].splitlines()
    assert all(len(line) <= 72 for line in body)
    assert "cost $" in body[0] and "burn" in body[0] and "PRs" not in body[0]
    assert "left out to fit the width: saved $, tokens, calls, PRs" in narrow
    assert any(line.startswith("<script>alert(1") and "…" in line for line in body)


def test_control_characters_cannot_reach_the_terminal() -> None:
    names = ("pay\x1b[2Jments", "se\u202earch", "x")
    report = team_month(names)
    for fmt in ("table", "markdown", "json"):
        out = render(report, fmt)
        assert "\x1b" not in out and "\u202e" not in out
    for fmt in ("table", "markdown"):
        out = render(report, fmt)
        assert "pay\\x1b[2Jments" in out and "se\\u202earch" in out
    doc = json.loads(render(report, "json"))
    assert [r["key"]["team"] for r in doc["rows"][:2]] == list(names[:2])  # the data, intact


def test_columns_follow_what_the_report_holds() -> None:
    repos = ranked("repo", ["acme/api", "acme/web"])
    for fmt in ("table", "markdown"):
        out = render(repos, fmt)
        for absent in ("budget $", "forecast $", "change", "burn"):
            assert absent not in out, (fmt, absent)
        assert "cost $" in out and "$/PR" in out
    full = render_table(team_month(), width=200).splitlines()[3]
    for present in ("budget $", "forecast $", "change", "burn", "saved $", "tokens"):
        assert present in full


def test_budgets_and_rising_groups_are_listed() -> None:
    report = team_month()
    table = render(report, "table")
    budgets = table.split("Budgets:\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in budgets] == [
        "team",
        "payments",
        "<script>alert(1)</script>",
        "search",
    ]
    assert budgets[1].split()[-1] == "OVER" and budgets[3].split()[-1] == "warning"
    assert "payments, 2026-11: +144% (250.75 → 612.30): more PRs ×1.40, bigger PRs ×1.12" in table
    assert "pricier models ×2.50" in table
    md = render(report, "markdown")
    assert "| payments | 2026-11 | 500.00 | 612.30 | 122% | 795.99 | 80% | refuse | OVER |" in md
    assert "more PRs ×1.40, bigger PRs ×1.12" in md
    assert "search, 2026-10" not in md  # it fell


def test_a_report_without_periods() -> None:
    report = ranked("repo", ["acme/api", "acme/web"], rest=12)
    rows = table_rows(render(report, "table"))
    assert [(p, ks[0]) for p, ks, _ in rows] == [
        (None, "acme/api"),
        (None, "acme/web"),
        (None, "(12 more repos)"),
        (None, "total"),
    ]
    assert len(render(report, "csv").splitlines()) == 1 + 3 + 1
    head, _ = md_rows(render(report, "markdown"))
    assert head[0] == "repo"


def test_an_empty_report_renders() -> None:
    empty = Report(
        query=ReportQuery(),
        rows=(),
        totals=(),
        total=Row((), None, *([0] * 14)),  # type: ignore[arg-type]
        generated_at=GENERATED,
        since=None,
        until=date(2026, 11, 27),
    )
    for fmt in ("table", "csv", "json", "markdown"):
        assert render(empty, fmt)
    for fmt in ("table", "markdown"):
        assert "up to 2026-11-27 · generated 2026-11-27 12:00 UTC · no model calls" in render(
            empty, fmt
        )
    page = render_html(replace(overview(), report=empty, by_team=empty, budgets=()))
    assert "No spend recorded in this range." in page and "No team has a budget." in page


def test_unknown_formats_say_what_there_is() -> None:
    with pytest.raises(ValueError, match="render_html"):
        render(team_month(), "html")
    with pytest.raises(ValueError, match="table, csv, json, markdown"):
        render(team_month(), "xml")


def test_rendering_imports_nothing_slow() -> None:
    code = (
        "import sys, agent.ledger.formats; "
        "print(sorted(m for m in ('litellm', 'langgraph', 'tiktoken') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_budget_helper_matches_the_contract() -> None:
    # report_data builds BudgetStatus by keyword: a renamed field must fail here first.
    assert budget("t", 1.0, 2.0, "over").burn_pct == 200.0
