"""Spend reports on a ledger small enough to check by hand: sums per team, repo, PR, author and
model per period, PRs counted (never summed), change against the previous period, run-rate
forecasts, budgets and burn, rising groups and their drivers, --top with its rest row; and, on a
random history of writes, every number reconciling exactly with the recorded calls.

Runs on SQLite, and on PostgreSQL when ``OWNIT_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from agent.ledger import CallRecord, LedgerStore, RunInfo, rollup
from agent.ledger.budgets import history, in_force, set_budget, statuses
from agent.ledger.records import Call
from agent.ledger.reports import Driver, Report, ReportQuery, Row
from agent.ledger.rollup import NANO, drift, rebuild
from agent.ledger.spend import Sums, build, drivers, overview
from tests.ledger_db import sa_url
from tests.test_ledger import create_m001_ledger

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)  # November: 15 of 30 days gone, run rate x2
BIG = ("big", "anthropic/claude-sonnet-4-5", "anthropic")
SMALL = ("small", "openai/gpt-4.1-mini", "openai")


def call(
    n: int,
    day: str,
    team: str | None,
    repo: str | None,
    pr: int | None,
    author: str | None,
    model: tuple[str, str, str],
    cost: float | None,
    *,
    tokens: tuple[int, int] = (1000, 100),
    outcome: str = "ok",
    **extra: Any,
) -> CallRecord:
    return CallRecord(
        run_id=f"run-{n}",
        created_at=datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC),
        team=team,
        repo=repo,
        pr_number=pr,
        author=author,
        purpose=f"chunk-{n}",
        model_name=model[0],
        model=model[1],
        provider=model[2],
        outcome=outcome,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        cost_usd=cost,
        **extra,
    )


PAY, SEARCH = "acme/pay", "acme/search"
CALLS = [
    # September
    call(1, "2026-09-03", "payments", PAY, 1, "alice", BIG, 1.00),
    call(2, "2026-09-04", "payments", PAY, 1, "alice", BIG, 1.00),
    call(3, "2026-09-05", "search", SEARCH, 5, "bob", SMALL, 0.50),
    # October: PR 2 reviewed by both models; PR 1 by two authors
    call(4, "2026-10-02", "payments", PAY, 1, "alice", BIG, 1.00),
    call(5, "2026-10-03", "payments", PAY, 2, "carol", BIG, 2.00),
    call(6, "2026-10-03", "payments", PAY, 2, "carol", SMALL, 2.00),
    call(16, "2026-10-04", "payments", PAY, 1, "dave", SMALL, 0.10),
    call(7, "2026-10-10", "search", SEARCH, 6, "bob", SMALL, 0.25),
    call(8, "2026-10-11", "search", SEARCH, None, "bob", SMALL, 0.25),  # a laptop review
    call(9, "2026-10-12", "search", SEARCH, 6, "bob", SMALL, None, tokens=(500, 50)),  # unpriced
    # Refused (a 400): billed nothing.
    call(10, "2026-10-12", "search", SEARCH, 6, "bob", SMALL, 0.0, tokens=(0, 0), outcome="error"),
    # Timed out: it may have been billed.
    call(17, "2026-10-13", "search", SEARCH, 6, "bob", SMALL, None, tokens=(0, 0), outcome="error"),
    # November (to the 15th)
    call(11, "2026-11-03", "payments", PAY, 3, "alice", BIG, 2.00),
    call(12, "2026-11-04", "payments", PAY, 3, "alice", BIG, 2.00),
    call(13, "2026-11-05", "payments", PAY, 3, "alice", BIG, 2.00),
    call(15, "2026-11-14", "payments", PAY, 3, "alice", BIG, None, tokens=(0, 0), outcome="pending"),  # noqa: E501
    call(
        14, "2026-11-06", "search", SEARCH, 7, "bob", SMALL, 0.10,
        tokens=(1000, 100), cached_tokens=800, cache_savings_usd=0.30,
    ),
]  # fmt: skip


@pytest.fixture
def ledger(store: LedgerStore) -> LedgerStore:
    store.import_records(CALLS)
    set_budget(store, "payments", 10.0, starts=date(2026, 10, 1), now=NOW)
    set_budget(store, "search", 1.0, starts=date(2026, 11, 1), now=NOW)
    return store


def by_team_month(store: LedgerStore, **query: Any) -> Report:
    return build(store, ReportQuery(("team",), "month", date(2026, 9, 1), **query), now=NOW)


def rows(report: Report) -> dict[tuple[str | None, tuple[str | None, ...]], Row]:
    return {(r.period, r.key): r for r in report.rows}


def test_spend_per_team_and_month_adds_up_by_hand(ledger: LedgerStore) -> None:
    report = by_team_month(ledger)
    got = rows(report)
    assert report.periods == ("2026-09", "2026-10", "2026-11")
    assert report.current_period == "2026-11"
    assert list(got) == [  # per period, costliest first
        ("2026-09", ("payments",)),
        ("2026-09", ("search",)),
        ("2026-10", ("payments",)),
        ("2026-10", ("search",)),
        ("2026-11", ("payments",)),
        ("2026-11", ("search",)),
    ]

    def summary(r: Row) -> tuple[int, int, int, float, int, int]:
        return (r.calls, r.errors, r.prs, round(r.cost_usd, 9), r.unpriced_calls, r.unknown_calls)

    assert summary(got["2026-09", ("payments",)]) == (2, 0, 1, 2.00, 0, 0)
    assert summary(got["2026-09", ("search",)]) == (1, 0, 1, 0.50, 0, 0)
    # PR 1 and PR 2 (reviewed by two models, counted once).
    assert summary(got["2026-10", ("payments",)]) == (4, 0, 2, 5.10, 0, 0)
    # Errors are not billed calls; the unpriced call and the timeout (it may have been billed)
    # make the cost a lower bound.
    search_oct = got["2026-10", ("search",)]
    assert summary(search_oct) == (3, 2, 1, 0.50, 1, 1)
    assert search_oct.lower_bound
    assert search_oct.pr_cost_usd == pytest.approx(0.25)  # the laptop review is no PR's
    assert search_oct.cost_per_pr == pytest.approx(0.25)
    # The call in flight counts, with its outcome unknown.
    assert summary(got["2026-11", ("payments",)]) == (4, 0, 1, 6.00, 0, 1)
    search_nov = got["2026-11", ("search",)]
    assert (search_nov.cached_tokens, search_nov.cache_savings_usd) == (800, pytest.approx(0.30))
    assert got["2026-10", ("payments",)].prompt_tokens == 4000
    assert got["2026-10", ("payments",)].tokens == 4400


def test_change_forecast_budget_and_burn(ledger: LedgerStore) -> None:
    got = rows(by_team_month(ledger))
    oct_pay, nov_pay = got["2026-10", ("payments",)], got["2026-11", ("payments",)]
    # September is the first period shown; its previous (August) had nothing.
    assert got["2026-09", ("payments",)].previous_cost_usd == 0.0
    assert got["2026-09", ("payments",)].change_pct is None
    assert oct_pay.previous_cost_usd == pytest.approx(2.00)
    assert oct_pay.change_pct == pytest.approx((5.10 - 2.00) / 2.00 * 100)
    assert oct_pay.forecast_usd is None  # October is over
    assert (oct_pay.budget_usd, oct_pay.burn_pct) == (10.0, pytest.approx(51.0))
    # November: 6.00 in 15 of 30 days runs at 12.00; change compares where it is heading.
    assert nov_pay.forecast_usd == pytest.approx(12.00)
    assert nov_pay.change_pct == pytest.approx((12.00 - 5.10) / 5.10 * 100)
    assert (nov_pay.budget_usd, nov_pay.burn_pct) == (10.0, pytest.approx(60.0))
    # September had no budget for payments; search has one from November only.
    assert got["2026-09", ("payments",)].budget_usd is None
    assert got["2026-10", ("search",)].budget_usd is None
    assert got["2026-11", ("search",)].budget_usd == 1.0
    nov_search = got["2026-11", ("search",)]
    assert nov_search.change_pct == pytest.approx((0.20 - 0.50) / 0.50 * 100)


def test_rising_groups_name_their_drivers(ledger: LedgerStore) -> None:
    got = rows(by_team_month(ledger))
    oct_pay, nov_pay = got["2026-10", ("payments",)], got["2026-11", ("payments",)]
    assert oct_pay.rising and nov_pay.rising
    assert not got["2026-10", ("search",)].rising  # flat
    assert not got["2026-11", ("search",)].rising  # falling
    # October against September: twice the PRs, each the same size, at pricier tokens.
    assert oct_pay.drivers == (
        Driver("more PRs", pytest.approx(2.0)),  # type: ignore[arg-type]
        Driver("pricier models", pytest.approx((5.10 / 4400) / (2.00 / 2200))),  # type: ignore[arg-type]
    )
    # November (run rate x2) against October: as many PRs, a bigger one, pricier tokens.
    assert nov_pay.drivers == (
        Driver("pricier models", pytest.approx((6.00 / 3300) / (5.10 / 4400))),  # type: ignore[arg-type]
        Driver("bigger PRs", pytest.approx(3300 / 2200)),  # type: ignore[arg-type]
    )
    assert [r.key for r in by_team_month(ledger).rising] == [("payments",), ("payments",)]
    # A higher threshold flags only the larger growth.
    strict = rows(by_team_month(ledger, rising_threshold=1.5))
    assert strict["2026-10", ("payments",)].rising  # +155 %
    assert not strict["2026-11", ("payments",)].rising  # +135 %


def test_totals_per_period_and_for_the_range(ledger: LedgerStore) -> None:
    report = by_team_month(ledger)
    totals = {t.period: t for t in report.totals}
    assert [t.period for t in report.totals] == ["2026-09", "2026-10", "2026-11"]
    assert totals["2026-09"].cost_usd == pytest.approx(2.50)
    assert totals["2026-10"].cost_usd == pytest.approx(5.60)
    assert totals["2026-10"].prs == 3  # PR 1, PR 2, PR 6
    assert totals["2026-11"].forecast_usd == pytest.approx(12.20)
    assert report.total.cost_usd == pytest.approx(14.20)
    assert report.total.prs == 6  # PRs 1, 2, 3, 5, 6 and 7
    assert report.total.calls == 15 and report.total.errors == 2


def test_every_dimension_groups(ledger: LedgerStore) -> None:
    def one(by: str) -> dict[tuple[str | None, ...], float]:
        q = ReportQuery((by,), None, date(2026, 10, 1), date(2026, 10, 31))  # type: ignore[arg-type]
        return {r.key: round(r.cost_usd, 9) for r in build(ledger, q, now=NOW).rows}

    assert one("repo") == {(PAY,): 5.10, (SEARCH,): 0.50}
    assert one("pr") == {
        (f"{PAY}#2",): 4.00,
        (f"{PAY}#1",): 1.10,
        (f"{SEARCH}#6",): 0.25,
        (None,): 0.25,  # no pull request
    }
    assert one("author") == {("carol",): 4.00, ("alice",): 1.00, ("bob",): 0.50, ("dave",): 0.10}
    assert one("model_name") == {("small",): 2.60, ("big",): 3.00}
    assert one("model") == {(BIG[1],): 3.00, (SMALL[1],): 2.60}
    assert one("provider") == {("anthropic",): 3.00, ("openai",): 2.60}
    two = ReportQuery(("team", "model_name"), None, date(2026, 10, 1), date(2026, 10, 31))
    assert {r.key: r.prs for r in build(ledger, two, now=NOW).rows} == {
        ("payments", "big"): 2,
        ("payments", "small"): 2,  # PR 2 and PR 1 (dave)
        ("search", "small"): 1,
    }


def test_top_keeps_the_costliest_and_counts_the_rest_s_prs(ledger: LedgerStore) -> None:
    q = ReportQuery(("author",), "month", date(2026, 10, 1), date(2026, 10, 31), top=1)
    report = build(ledger, q, now=NOW)
    top, rest = report.rows
    assert (top.key, top.cost_usd, top.rest_of) == (("carol",), pytest.approx(4.00), 0)
    assert rest.rest_of == 3 and rest.key == (None,)
    assert rest.cost_usd == pytest.approx(1.60)  # alice 1.00, bob 0.50, dave 0.10
    assert rest.calls == 5 and rest.unpriced_calls == 1
    # alice and dave both reviewed PR 1: the rest holds two PRs (1 and 6), not three.
    assert rest.prs == 2
    # The rest's previous period is everything the top groups did not spend then.
    assert rest.previous_cost_usd == pytest.approx(2.50)
    assert report.totals[0].cost_usd == pytest.approx(top.cost_usd + rest.cost_usd)


def test_a_bare_range_compares_with_the_same_number_of_days_before(ledger: LedgerStore) -> None:
    q = ReportQuery(("team",), None, date(2026, 10, 1), date(2026, 10, 31))
    got = {r.key: r for r in build(ledger, q, now=NOW).rows}
    # 31 days before October 1: August 31 to September 30.
    assert got["payments",].previous_cost_usd == pytest.approx(2.00)
    assert got["payments",].period is None
    assert got["payments",].forecast_usd is None and got["payments",].budget_usd is None
    # With no --since there is no earlier period to compare with.
    everything = build(ledger, ReportQuery(("team",), None), now=NOW)
    assert all(r.previous_cost_usd is None for r in everything.rows)
    assert everything.total.cost_usd == pytest.approx(14.20)


@pytest.mark.parametrize(
    ("period", "labels", "previous"),
    [
        # Every period of the range, those with no spend too (a chart's time axis).
        ("day", tuple(f"2026-11-0{d}" for d in range(3, 10)), 0.0),
        # November 3 is a Tuesday: the range starts inside a week and inside a quarter.
        ("week", ("2026-W45", "2026-W46"), None),
        ("quarter", ("2026-Q4",), None),
    ],
)
def test_periods_are_utc_calendar_periods(
    ledger: LedgerStore, period: str, labels: tuple[str, ...], previous: float | None
) -> None:
    q = ReportQuery(("team",), period, date(2026, 11, 3), date(2026, 11, 9))  # type: ignore[arg-type]
    report = build(ledger, q, now=NOW)
    assert report.periods == labels
    # Only the days asked for, even where a period reaches further (October, in Q4).
    assert sum(t.cost_usd for t in report.totals) == pytest.approx(6.10)
    # A period cut by --since has no earlier one to be compared with.
    assert report.totals[0].previous_cost_usd == previous


def test_a_quarter_s_budget_is_its_three_months(ledger: LedgerStore) -> None:
    q = ReportQuery(("team",), "quarter", date(2026, 10, 1), date(2026, 12, 31))
    got = {r.key: r for r in build(ledger, q, now=NOW).rows}
    assert got["payments",].budget_usd == 30.0  # October, November, December
    assert got["search",].budget_usd == 2.0  # November and December


def test_an_empty_ledger_reports_nothing(store: LedgerStore) -> None:
    report = build(store, ReportQuery(("team",), "month"), now=NOW)
    assert report.rows == () and report.total.calls == 0 and report.total.cost_usd == 0
    assert report.periods == ("2026-11",)


def test_the_overview_charts_the_range_and_the_latest_period_s_top(ledger: LedgerStore) -> None:
    view = overview(ledger, ReportQuery(("repo",), "month", date(2026, 9, 1)), now=NOW)
    assert view.by_team.periods == ("2026-09", "2026-10", "2026-11")
    assert [r.key for r in view.by_team.rows][:2] == [("payments",), ("search",)]
    # The top repos and PRs are November's: what drives spend now.
    assert (view.top_repos.since, view.top_repos.until) == (date(2026, 11, 1), NOW.date())
    assert [(r.key, round(r.cost_usd, 2)) for r in view.top_repos.rows] == [
        ((PAY,), 6.00),
        ((SEARCH,), 0.10),
    ]
    assert [r.key for r in view.top_prs.rows] == [(f"{PAY}#3",), (f"{SEARCH}#7",)]
    assert [b.team for b in view.budgets] == ["payments", "search"]
    # Asked by team and month, the chart is the report itself.
    same = overview(ledger, ReportQuery(("team",), "month", date(2026, 9, 1)), now=NOW)
    assert same.by_team is same.report


def test_top_by_pr_leaves_the_rest_the_period_s_other_prs(ledger: LedgerStore) -> None:
    q = ReportQuery(("pr",), "month", date(2026, 10, 1), date(2026, 10, 31), top=1)
    top, rest = build(ledger, q, now=NOW).rows
    assert top.key == (f"{PAY}#2",) and top.prs == 1
    # PR 1, PR 6 and the laptop review (no PR): two PRs.
    assert (rest.rest_of, rest.prs, round(rest.cost_usd, 2)) == (3, 2, 1.60)


def test_reports_ask_for_what_exists() -> None:
    with pytest.raises(ValueError, match="group by"):
        build(None, ReportQuery(("colour",)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="after"):
        build(None, ReportQuery(("team",), since=date(2026, 2, 1), until=date(2026, 1, 1)))  # type: ignore[arg-type]


# --- drivers --------------------------------------------------------------------------------


def sums(prs: int, tokens: int, cost: float, savings: float = 0.0, calls: int = 10) -> Sums:
    return Sums(
        calls=calls,
        prs=prs,
        prompt_tokens=tokens,
        cost_nusd=round(cost * NANO),
        cache_savings_nusd=round(savings * NANO),
    )


@pytest.mark.parametrize(
    ("now", "named"),
    [
        (sums(20, 20_000, 20.0), "more PRs"),  # twice the PRs, same size and price
        (sums(10, 20_000, 20.0), "bigger PRs"),  # same PRs, twice the tokens each
        (sums(10, 10_000, 20.0), "pricier models"),  # same tokens at twice the price
        (sums(10, 10_000, 20.0, savings=0.0), "pricier models"),
    ],
)
def test_each_driver_alone_explains_doubling(now: Sums, named: str) -> None:
    before = sums(10, 10_000, 10.0)
    (driver,) = drivers(now, before)
    assert driver == Driver(named, pytest.approx(2.0))  # type: ignore[arg-type]


def test_fewer_cache_hits_is_a_driver_and_factors_multiply_to_the_growth() -> None:
    # Before: $10 paid of $20 at list price (the cache saved half); now $16 of $20.
    before, now = sums(10, 10_000, 10.0, savings=10.0), sums(10, 10_000, 16.0, savings=4.0)
    assert drivers(now, before) == (Driver("fewer cache hits", pytest.approx(1.6)),)  # type: ignore[arg-type]
    grown = sums(15, 30_000, 48.0, savings=12.0)  # 1.5 x PRs, 2 x size, 1.5 x cache share
    found = drivers(grown, before)
    product = 1.0
    for d in found:
        product *= d.factor
    assert product == pytest.approx(4.8)  # cost 48 / 10: nothing unexplained
    assert [d.name for d in found] == ["bigger PRs", "fewer cache hits", "more PRs"]


def test_without_prs_calls_are_the_unit() -> None:
    found = drivers(sums(0, 20_000, 20.0, calls=20), sums(0, 10_000, 10.0, calls=10))
    assert found == (Driver("more calls", pytest.approx(2.0)),)  # type: ignore[arg-type]


# --- budgets --------------------------------------------------------------------------------


def test_a_budget_applies_from_its_month_until_replaced(store: LedgerStore) -> None:
    set_budget(store, "payments", 10.0, starts=date(2026, 10, 17), now=NOW)  # from October
    set_budget(store, "payments", 15.0, starts=date(2026, 12, 1), now=NOW)
    set_budget(store, "payments", 20.0, starts=date(2026, 12, 1), now=NOW)  # the last one wins
    set_budget(store, "payments", None, starts=date(2027, 2, 1), now=NOW)  # cleared
    with store.reading("test") as conn:
        budgets = history(conn)
    assert len(budgets) == 3

    def amount(day: date) -> float | None:
        found = in_force(budgets, day).get("payments")
        return found.monthly_usd if found else None

    assert amount(date(2026, 9, 30)) is None
    assert amount(date(2026, 10, 1)) == amount(date(2026, 11, 30)) == 10.0
    assert amount(date(2026, 12, 1)) == amount(date(2027, 1, 31)) == 20.0
    assert amount(date(2027, 2, 1)) is None


@pytest.mark.parametrize(
    ("spent", "state"),
    [
        (3.0, "ok"),  # 30 % spent, heading for 60 %
        (8.0, "warning"),  # at the 80 % line
        (5.5, "warning"),  # 55 %, but heading for 110 % by the end of the month
        (10.0, "over"),
        (12.0, "over"),
    ],
)
def test_budget_states(store: LedgerStore, spent: float, state: str) -> None:
    store.import_records([call(1, "2026-11-02", "payments", PAY, 1, "alice", BIG, spent)])
    set_budget(store, "payments", 10.0, warn_at=0.8, now=NOW)
    (status,) = statuses(store, NOW.date())
    assert (status.state, status.spent_usd, status.amount_usd) == (state, spent, 10.0)
    assert status.forecast_usd == pytest.approx(spent * 2)
    assert status.remaining_usd == max(0.0, 10.0 - spent)


# --- reconciling with the calls ---------------------------------------------------------------


def _calls_table_sums(store: LedgerStore) -> tuple[int, int, int]:
    """Straight from ``calls``: the number of calls, tokens and nano-dollars."""
    table = Call.__table__  # type: ignore[attr-defined]
    with store.reading("test") as conn:
        costs = conn.execute(sa.select(table.c.cost_usd, table.c.prompt_tokens)).all()
    return (len(costs), sum(t for _, t in costs), sum(round((c or 0) * NANO) for c, _ in costs))


def _calls_table_prs(store: LedgerStore, by: str) -> tuple[dict[tuple[str, str | None], int], int]:
    """Straight from ``calls``: the PRs, (repository, number) pairs, per month and ``by``, and
    in all."""
    table = Call.__table__  # type: ignore[attr-defined]
    columns = (table.c.created_at, table.c[by], table.c.repo, table.c.pr_number)
    with store.reading("test") as conn:
        found = conn.execute(sa.select(*columns).where(table.c.pr_number > 0)).all()
    prs: dict[tuple[str, str | None], set[tuple[str, int]]] = {}
    for created, group, repo, number in found:
        month = created.astimezone(UTC).strftime("%Y-%m")
        prs.setdefault((month, group or None), set()).add((repo or "", number))
    every = {(repo or "", number) for _, _, repo, number in found}
    return {slot: len(pairs) for slot, pairs in prs.items()}, len(every)


def test_every_number_reconciles_with_the_calls_after_any_history_of_writes(
    store: LedgerStore,
) -> None:
    """Live calls (pending → answered → ok), imports that complete or repeat them, repairs of
    crashed runs, in random order: the rollup always equals a rebuild from the calls."""
    rng = random.Random(14)
    teams, repos = ["payments", "search", None], [PAY, SEARCH, None]
    known: list[CallRecord] = []
    for n in range(300):
        action = rng.random()
        if action < 0.5 or not known:
            record = call(
                n, f"2026-{rng.randint(9, 11):02d}-{rng.randint(1, 28):02d}", rng.choice(teams),
                rng.choice(repos), rng.choice([None, 1, 2, 3]), rng.choice(["a", "b"]),
                rng.choice([BIG, SMALL]), None, tokens=(0, 0), outcome="pending",
            )  # fmt: skip
            store.start_run(RunInfo(id=record.run_id, started_at=record.created_at, host="ci-7"))
            store.insert_call(record)
            known.append(record)
        elif action < 0.8:
            record = rng.choice(known)
            cost = rng.choice([None, rng.uniform(0, 3)])
            later = record.model_copy(
                update={
                    "outcome": rng.choice(["answered", "ok", "invalid_output", "error"]),
                    "prompt_tokens": rng.randint(0, 5000),
                    "completion_tokens": rng.randint(0, 500),
                    "cost_usd": cost,
                    "cache_savings_usd": rng.choice([0.0, 0.01, -0.002]),
                }
            )
            store.update_call(later)
        elif action < 0.95:
            picked = rng.sample(known, min(len(known), 5))
            store.import_records(
                [r.model_copy(update={"outcome": "ok", "cost_usd": 0.5}) for r in picked]
            )
        else:
            store.repair(now=datetime(2030, 1, 1, tzinfo=UTC))
    with store.reading("test") as conn:
        assert drift(conn) == []
    count, tokens, nusd = _calls_table_sums(store)
    everything = ReportQuery(("team",), None, until=date(2026, 12, 31))
    total = build(store, everything, now=NOW).total
    assert total.calls + total.errors == count
    assert total.prompt_tokens == tokens
    assert round(total.cost_usd * NANO) == nusd  # exact to the nano-dollar
    monthly = build(
        store, ReportQuery(("team", "repo"), "month", date(2026, 9, 1), date(2026, 12, 31)), now=NOW
    )
    assert sum(round(r.cost_usd * NANO) for r in monthly.rows) == nusd
    # PRs are counted, not summed: each repository numbers its own (both have a PR 1, 2, 3).
    for by in ("team", "model_name", "author"):
        report = build(store, ReportQuery((by,), "month", date(2026, 9, 1), date(2026, 12, 31)))
        counted = {(r.period, r.key[0]): r.prs for r in report.rows if r.prs}
        expected, in_all = _calls_table_prs(store, by)
        assert counted == expected, by
    assert total.prs == in_all > 3


def test_drift_is_found_and_a_rebuild_repairs_it(ledger: LedgerStore) -> None:
    spend = sa.table("spend_daily", sa.column("cost_nusd"), sa.column("team"))
    with ledger.writing("test") as conn:
        conn.execute(spend.update().where(spend.c.team == "search").values(cost_nusd=1))
    with ledger.reading("test") as conn:
        assert {tuple(d) for _, d in [(k, tuple(v)) for k, v in drift(conn)]} == {("cost_nusd",)}
    with ledger.writing("test") as conn:
        assert rebuild(conn) == len(CALLS)
    with ledger.reading("test") as conn:
        assert drift(conn) == []
    assert by_team_month(ledger).total.cost_usd == pytest.approx(14.20)


def test_a_wrong_pr_id_is_drift_and_a_rebuild_repairs_it(ledger: LedgerStore) -> None:
    """Every sum right, one row's PR id another PR's: the PR counts are wrong, so it is drift."""
    spend = sa.table("spend_daily", sa.column("pr_id"), sa.column("repo"), sa.column("pr_number"))
    with ledger.reading("test") as conn:
        other = conn.execute(
            sa.select(spend.c.pr_id).where(spend.c.repo == SEARCH, spend.c.pr_number > 0)
        ).first()
    assert other is not None
    right = by_team_month(ledger)
    with ledger.writing("test") as conn:
        conn.execute(spend.update().where(spend.c.repo == PAY).values(pr_id=other[0]))
    with ledger.reading("test") as conn:
        found = drift(conn)
    assert found and all(set(delta) == {"pr_id", "pr_id_expected"} for _, delta in found)
    assert by_team_month(ledger).total.prs < right.total.prs  # what the drift would cost
    with ledger.writing("test") as conn:
        rebuild(conn)
    with ledger.reading("test") as conn:
        assert drift(conn) == []
    assert by_team_month(ledger) == right


def test_a_rebuild_finds_many_prs_by_reading_them_all(
    ledger: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``_LOOKUP`` pairs (a rebuild of a large ledger) the ids are read in one pass over
    ``pull_requests``: every row still gets its own PR's id."""
    right = by_team_month(ledger)
    monkeypatch.setattr(rollup, "_LOOKUP", 1)
    with ledger.writing("test") as conn:
        conn.execute(sa.text("DELETE FROM pull_requests"))  # numbered again, in bulk
        rebuild(conn)
    with ledger.reading("test") as conn:
        assert drift(conn) == []
    assert by_team_month(ledger) == right


def test_a_rollup_from_before_pull_request_ids_is_numbered_on_upgrade(
    ledger: LedgerStore, open_store: Any
) -> None:
    """A ledger whose rollup was kept by m004-m006 (no PR ids): m007 numbers its PRs in place,
    and every report counts them as before."""
    before = {
        by: build(ledger, ReportQuery((by,), "month", until=date(2026, 12, 31)), now=NOW)
        for by in ("team", "repo", "model_name")
    }
    with ledger.writing("test") as conn:
        conn.execute(sa.text("DROP TABLE pull_requests"))
        conn.execute(sa.text("ALTER TABLE spend_daily DROP COLUMN pr_id"))
        conn.execute(sa.text("DELETE FROM ownit_migrations WHERE name = 'm007_pull_request_ids'"))
    upgraded = open_store()
    with upgraded.reading("test") as conn:
        assert drift(conn) == []
        numbered = conn.execute(sa.text("SELECT count(*) FROM pull_requests")).scalar()
    assert numbered == len({(c.repo, c.pr_number) for c in CALLS if c.pr_number})
    if upgraded.engine.dialect.name == "postgresql":
        # Every rollup row was rewritten: its old copies are vacuumed away, not left to scan.
        with upgraded.reading("test") as conn:
            vacuumed = conn.execute(
                sa.text("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'spend_daily'")
            ).scalar()
        assert vacuumed is not None
    for by, report in before.items():
        after = build(upgraded, ReportQuery((by,), "month", until=date(2026, 12, 31)), now=NOW)
        assert after == report, by


def test_the_rollup_is_filled_when_a_first_release_ledger_is_upgraded(ledger_url: str) -> None:
    create_m001_ledger(ledger_url, ["run:chunk-1:1", "run:chunk-2:1", "run:synthesis:1"])
    store = LedgerStore(ledger_url)
    try:
        report = build(store, ReportQuery(("team", "repo"), None), now=NOW)
        (row,) = report.rows
        assert row.key == ("core", "acme/app") and row.calls == 3 and row.prs == 1
        assert row.cost_usd == pytest.approx(0.03)
        with store.reading("test") as conn:
            assert drift(conn) == []
    finally:
        store.close()
    engine = sa.create_engine(sa_url(ledger_url))
    engine.dispose()


def test_a_postgres_report_reads_one_snapshot_on_every_connection(ledger: LedgerStore) -> None:
    """The report's queries run at once on sibling connections: each must read the snapshot
    the report began with, not what a review committed since, or its numbers would not add up."""
    from agent.ledger.spend import _sibling

    if not ledger.url.startswith("postgresql"):
        pytest.skip("SQLite runs the report's queries on one connection")
    spend = sa.text("SELECT count(*), sum(cost_nusd) FROM spend_daily")
    with ledger.reading("test") as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        snapshot = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar())
        before = conn.execute(spend).one()
        ledger.import_records(
            [call(99, "2026-11-10", "payments", PAY, 4, "erin", BIG, 5.0)]  # committed now
        )
        with _sibling(ledger, snapshot) as sibling:
            assert sibling.execute(spend).one() == before
    with ledger.reading("test") as fresh:
        assert fresh.execute(spend).one() != before
    # And the report itself, over the new call, still adds up to its rows.
    report = by_team_month(ledger)
    assert report.total.cost_usd == pytest.approx(sum(r.cost_usd for r in report.totals))


def _sqlite_path(store: LedgerStore) -> str:
    assert store.url.startswith("sqlite:///")
    return store.url.removeprefix("sqlite:///")


def _new_pr_call() -> CallRecord:
    # A new PR of payments in November: it changes November's and the range's PR counts.
    return call(99, "2026-11-10", "payments", PAY, 4, "erin", BIG, 5.0)


def _assert_same_report(got: Report, expected: Report) -> None:
    assert got.rows == expected.rows
    assert got.totals == expected.totals
    assert got.total == expected.total


def test_in_wal_mode_a_write_between_the_reports_reads_is_read_again_on_one_connection(
    ledger: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In WAL mode each SQLite connection reads its own snapshot: a review that commits after
    the report's first read but before its sibling connections read must not make the
    report's PR counts disagree with its sums. The siblings' sums differ from the groups',
    and the report reads those parts again on its own connection."""
    from agent.ledger import spend

    if not ledger.url.startswith("sqlite"):
        pytest.skip("PostgreSQL's connections share one snapshot")
    with sqlite3.connect(_sqlite_path(ledger)) as raw:
        assert raw.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    ledger.engine.dispose()
    expected = by_team_month(ledger)
    real = spend._sqlite_sibling
    opened = itertools.count()

    @contextmanager
    def after_a_write(store: Any) -> Iterator[Any]:
        if next(opened) == 0:  # the report's own connection has read: a review commits now
            ledger.import_records([_new_pr_call()])
        with real(store) as conn:
            yield conn

    monkeypatch.setattr(spend, "_sqlite_sibling", after_a_write)
    read_again = []
    periods = spend._Queries.periods

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        read_again.append(kwargs.get("sums"))
        return periods(self, *args, **kwargs)

    monkeypatch.setattr(spend._Queries, "periods", counted)
    during = by_team_month(ledger)
    _assert_same_report(during, expected)  # what the report's own snapshot held
    assert next(opened) == 2  # both siblings opened (the periods' PRs, the range's)
    assert read_again == [True, False]  # on a sibling, then again on the report's connection
    after = by_team_month(ledger)
    assert after.total.prs == expected.total.prs + 1  # the write is there for the next report


def test_a_review_committing_during_a_report_waits_for_it_not_for_the_busy_timeout(
    ledger: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's default journal: the report's connection holds a shared lock from its first
    read on, so a review's commit waits (holding the pending lock, which keeps new readers
    out) until the report is done. A sibling connection that waited for that lock would wait
    out the busy timeout together with the review; instead it gives way, the report reads on
    its own connection, and then the review commits. The report shows the ledger as it was
    when it began."""
    from agent.ledger import database, spend

    if not ledger.url.startswith("sqlite"):
        pytest.skip("PostgreSQL readers never block writers")
    path = _sqlite_path(ledger)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    expected = by_team_month(ledger)
    # The review gives up after 3 s (not 30): a sibling that waits for it fails the test soon.
    monkeypatch.setattr(database, "BUSY_TIMEOUT_S", 3)
    review = LedgerStore(ledger.url)
    failed: list[BaseException] = []

    def commit() -> None:
        try:
            review.import_records([_new_pr_call()])
        except BaseException as exc:  # reported by the test below
            failed.append(exc)

    writer = threading.Thread(target=commit)
    real = spend._sqlite_sibling
    opened = itertools.count()

    @contextmanager
    def while_a_review_commits(store: Any) -> Iterator[Any]:
        if next(opened) == 0:
            writer.start()
            _wait_for_pending_lock(path)
        with real(store) as conn:
            yield conn

    monkeypatch.setattr(spend, "_sqlite_sibling", while_a_review_commits)
    try:
        during = by_team_month(ledger)
        writer.join(timeout=30)
    finally:
        review.close()
    assert not writer.is_alive() and failed == []
    _assert_same_report(during, expected)
    assert by_team_month(ledger).total.prs == expected.total.prs + 1


def _wait_for_pending_lock(path: str) -> None:
    """Until a writer holds SQLite's pending lock: a new reader is refused at once."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        for _ in range(500):
            try:
                probe.execute("BEGIN")
                probe.execute("SELECT count(*) FROM budgets").fetchone()
            except sqlite3.OperationalError as exc:
                assert "locked" in str(exc)
                return
            finally:
                if probe.in_transaction:
                    probe.execute("ROLLBACK")
            time.sleep(0.01)
    finally:
        probe.close()
    raise AssertionError("the writer never began to commit: did the report hold no lock?")
