"""``ownit ledger ...`` as a lead or a scheduled job runs it: reports in every format, exports,
budgets, ``check`` and ``verify`` with their exit codes, clear errors for bad options, and no
model library loaded by any of them."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from agent.cli import app
from agent.ledger import CallRecord, LedgerStore

runner = CliRunner()
TODAY = datetime.now(UTC).date()
THIS_MONTH = TODAY.replace(day=1)
LAST_MONTH = (THIS_MONTH - timedelta(days=1)).replace(day=1)


def ledger() -> LedgerStore:
    return LedgerStore(os.environ["OWNIT_LEDGER_URL"])


def spend(team: str, usd: float, day: date, n: int, repo: str = "acme/app") -> CallRecord:
    return CallRecord(
        run_id=f"run-{team}-{n}",
        created_at=datetime(day.year, day.month, day.day, 8, tzinfo=UTC),
        team=team,
        repo=repo,
        pr_number=n,
        purpose="chunk-1",
        model_name="gpt",
        model="openai/gpt-4.1-mini",
        provider="openai",
        outcome="ok",
        prompt_tokens=1000,
        completion_tokens=100,
        cost_usd=usd,
    )


@pytest.fixture
def history() -> None:
    """Two teams, last month and this one; payments spends more this month."""
    ledger().import_records(
        [
            spend("payments", 10.0, LAST_MONTH, 1),
            spend("payments", 30.0, THIS_MONTH, 2),
            spend("search", 4.0, LAST_MONTH, 3, repo="acme/search"),
            spend("search", 1.0, THIS_MONTH, 4, repo="acme/search"),
        ]
    )


def ownit(*args: str) -> tuple[int, str, str]:
    done = runner.invoke(app, list(args))
    return done.exit_code, done.stdout, done.stderr


def test_the_default_report_is_spend_per_team_and_month(history: None) -> None:
    code, out, _ = ownit("ledger", "report")
    assert code == 0
    assert "AI review spend by team × month" in out
    for month in (LAST_MONTH, THIS_MONTH):
        assert f"{month:%Y-%m}" in out
    assert "payments" in out and "search" in out and "40.00" not in out.split("grand total")[0]
    assert "grand total" in out and "45.00" in out


def test_csv_json_and_markdown_carry_the_same_numbers(history: None) -> None:
    since = ["--since", f"{LAST_MONTH:%Y-%m}"]
    code, out, _ = ownit("ledger", "report", "--by", "team", *since, "--format", "csv")
    assert code == 0
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r["kind"] == "row"]
    costs = {(r["period"], r["team"]): float(r["cost_usd"]) for r in rows}
    assert costs[f"{THIS_MONTH:%Y-%m}", "payments"] == 30.0
    assert costs[f"{LAST_MONTH:%Y-%m}", "search"] == 4.0
    code, out, _ = ownit("ledger", "report", *since, "--format", "json")
    doc = json.loads(out)
    assert doc["total"]["cost_usd"] == 45.0 and len(doc["rows"]) == 4
    code, out, _ = ownit("ledger", "report", *since, "--format", "markdown")
    assert code == 0 and out.startswith("#") and "| payments |" in out


def test_html_goes_to_a_file_with_its_charts(history: None, tmp_path: Path) -> None:
    page = tmp_path / "reports" / "spend.html"
    code, out, err = ownit("ledger", "report", "--format", "html", "--out", str(page))
    assert code == 0 and out == "" and f"wrote {page}" in err
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "payments" in html
    assert not page.with_name("spend.html.tmp").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--by", "colour"], "--by 'colour'"),
        (["--by", "team,team"], "each once"),
        (["--period", "fortnight"], "--period 'fortnight'"),
        (["--since", "yesterday"], "--since 'yesterday' is not a date"),
        (["--since", "2026-05", "--until", "2026-04"], "is after --until"),
        (["--format", "pdf"], "--format 'pdf'"),
        (["--rising", "a lot"], "--rising 'a lot' is not a percentage"),
    ],
)
def test_bad_report_options_say_what_to_write(args: list[str], said: str) -> None:
    code, _, err = ownit("ledger", "report", *args)
    assert code == 2 and said in err


def test_an_unreachable_ledger_is_exit_4_without_a_traceback() -> None:
    url = "postgresql://ownit:hunter2@127.0.0.1:9/ownit"
    code, _, err = ownit("ledger", "report", "--ledger", url)
    assert code == 4 and "Traceback" not in err and "hunter2" not in err


def test_export_writes_focus_and_says_how_many_rows(history: None, tmp_path: Path) -> None:
    out_file = tmp_path / "focus.csv"
    code, _, err = ownit("ledger", "export", "--out", str(out_file))
    assert code == 0 and f"wrote 4 row(s) to {out_file}" in err
    rows = list(csv.DictReader(out_file.open()))
    assert sum(float(r["BilledCost"]) for r in rows) == 45.0
    assert {r["SubAccountId"] for r in rows} == {"payments", "search"}
    code, out, _ = ownit("ledger", "export", "--format", "json", "--team", "search")
    assert code == 0 and [json.loads(line)["team"] for line in out.splitlines()] == ["search"] * 2
    code, _, err = ownit("ledger", "export", "--format", "csv", "--granularity", "day")
    assert code == 2 and "granularity" in err


def test_budgets_set_list_check_and_clear(history: None) -> None:
    code, out, _ = ownit("ledger", "budget", "set", "--team", "payments", "--monthly", "100")
    assert code == 0 and f"$100.00 a month from {THIS_MONTH:%Y-%m}" in out
    assert "warning at 80%" in out and "send nothing" in out
    code, out, _ = ownit(
        "ledger", "budget", "set", "--team", "search", "--monthly", "1", "--warn-at", "50%",
        "--on-exceed", "downgrade", "--downgrade-to", "small",
    )  # fmt: skip
    assert code == 0 and "switch to small" in out
    code, out, _ = ownit("ledger", "budget", "list")
    lines = out.splitlines()
    assert lines[0].startswith("OVER") and "search" in lines[0]  # $1.00 of $1.00
    assert "payments" in lines[1] and "$30.00 of $100.00" in lines[1]
    # A scheduled job: exit 5 while a team is over budget.
    assert ownit("ledger", "check")[0] == 5
    assert ownit("ledger", "check", "--team", "payments")[0] in (0, 5)  # 5 if heading over
    ownit("ledger", "budget", "set", "--team", "search", "--monthly", "50")
    code, out, _ = ownit("ledger", "check", "--team", "search")
    assert code == 0 and out.startswith("OK")
    code, out, _ = ownit("ledger", "budget", "clear", "--team", "search")
    assert code == 0 and "no budget from" in out
    assert "search" not in ownit("ledger", "budget", "list")[1]


def test_check_fails_on_warning_when_asked(history: None) -> None:
    ownit("ledger", "budget", "set", "--team", "payments", "--monthly", "35", "--warn-at", "50%")
    assert ownit("ledger", "check")[0] == 0  # $30 of $35: a warning, not over
    assert ownit("ledger", "check", "--fail-on", "warning")[0] == 5


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--monthly", "-5"], "--monthly"),
        (["--monthly", "5", "--warn-at", "120%"], "at most 100%"),
        (["--monthly", "5", "--on-exceed", "panic"], "--on-exceed 'panic'"),
        (["--monthly", "5", "--downgrade-to", "small"], "needs --on-exceed downgrade"),
        (["--monthly", "5", "--from", "soon"], "--from 'soon' is not a date"),
        (["--monthly", "inf"], "must be a finite amount of USD, not inf"),
        (["--monthly", "1e999"], "must be a finite amount of USD, not inf"),
    ],
)
def test_bad_budgets_are_refused(args: list[str], said: str) -> None:
    code, _, err = ownit("ledger", "budget", "set", "--team", "payments", *args)
    assert code == 2 and said in err
    # Nothing was stored: an infinite budget would break every later read of the budgets.
    assert ownit("ledger", "budget", "list") == (0, "no budgets set\n", "")


def test_verify_finds_a_rollup_that_drifted_and_fix_rebuilds_it(history: None) -> None:
    assert ownit("ledger", "verify") == (0, "the rollup matches the calls\n", "")
    store = ledger()
    with store.writing("test") as conn:
        conn.execute(sa.text("UPDATE spend_daily SET cost_nusd = cost_nusd + 1"))
    code, out, err = ownit("ledger", "verify")
    assert code == 1 and "differ from the calls" in err and "cost_nusd" in out
    code, out, _ = ownit("ledger", "verify", "--fix")
    assert code == 0 and "rebuilt the rollup from 4 call(s)" in out
    assert ownit("ledger", "verify")[0] == 0


def test_the_report_imports_neither_the_models_nor_rich(tmp_path: Path) -> None:
    """``ownit ledger report`` reads the rollup through Core tables: SQLModel, the ORM and the
    call models are a third of its start-up; rich draws nothing in a report; typer 0.29 would
    bring pydantic to parse options (pyproject.toml)."""
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom agent.cli import app\n"
        "for fmt in ('table', 'csv', 'json', 'markdown', 'html'):\n"
        "    r = CliRunner().invoke(app, ['ledger', 'report', '--by', 'team,pr', '--format', fmt,"
        " '--top', '3'])\n"
        "    assert r.exit_code == 0, (fmt, r.output)\n"
        "heavy = [m for m in ('sqlmodel', 'sqlalchemy.orm', 'agent.ledger.records',"
        " 'agent.ledger.store', 'agent.ledger.rollup', 'rich', 'psycopg', 'pydantic')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = LedgerStore(url)
    store.import_records(
        [
            CallRecord(
                run_id="r1",
                created_at=datetime.now(UTC),
                team="payments",
                repo="acme/pay",
                pr_number=7,
                purpose="chunk-1",
                model_name="big",
                model="openai/gpt-4.1",
                provider="openai",
                outcome="ok",
                prompt_tokens=100,
                completion_tokens=10,
                cost_usd=0.5,
            )
        ]
    )
    store.close()
    env = {**os.environ, "OWNIT_LEDGER_URL": url}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


def test_no_ledger_command_imports_a_model_library(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom agent.cli import app\n"
        "for args in (['ledger', 'report'], ['ledger', 'report', '--format', 'html'],"
        " ['ledger', 'export'], ['ledger', 'budget', 'list'], ['ledger', 'check'],"
        " ['ledger', 'verify'], ['ledger', 'budget', 'set', '--team', 't', '--monthly', '1']):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    assert r.exit_code in (0, 5), (args, r.output)\n"
        "heavy = [m for m in ('litellm', 'langgraph', 'tiktoken') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "OWNIT_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["ledger", "budget", "list"],
        ["ledger", "report", "--format", "csv"],
        ["ledger", "export", "--format", "csv"],
        ["ledger", "verify"],
    ],
)
def test_a_ledger_command_runs_with_the_garbage_collector_on(
    tmp_path: Path, args: list[str]
) -> None:
    """The console script pauses the collector while a ledger command starts; every command
    must turn it back on before it works (an import of a large artifact, a long export)."""
    code = (
        "import gc, sys\n"
        f"sys.argv = ['ownit', *{args!r}]\n"
        "from agent.__main__ import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('collector on' if gc.isenabled() else 'collector off', file=sys.stderr)\n"
    )
    env = {**os.environ, "OWNIT_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stderr.strip().endswith("collector on"), done.stderr
