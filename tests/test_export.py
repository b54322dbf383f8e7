"""Tests for ``ownit ledger export`` (agent.ledger.exports, agent.ledger.focus): FOCUS 1.2 rows
per day and per call, plain CSV and JSON Lines of calls, from calls written through the real
``LedgerStore``. On SQLite, and on PostgreSQL too when ``OWNIT_TEST_DATABASE_URL`` is set."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agent.errors import InputError
from agent.ledger import CallRecord, LedgerStore, exports, focus, read_records
from agent.ledger.exports import CALL_COLUMNS, export
from agent.ledger.records import Call
from tests.ledger_data import fill
from tests.test_ledger import make_record, make_run, postgres_url

# FOCUS 1.2's mandatory columns, written out here from the specification rather than read from
# the module under test, so dropping one there fails here.
FOCUS_1_2_MANDATORY = {
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
}
COSTS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
# The FOCUS 1.2 columns a day row and a call row share, and the metrics they sum.
KEY_COLUMNS = (
    "ChargePeriodStart",
    "SubAccountId",
    "x_Repo",
    "x_PullRequest",
    "x_Author",
    "ResourceName",
    "ResourceId",
    "BillingAccountId",
)
METRICS = (
    "BilledCost",
    "ConsumedQuantity",
    "x_InputTokens",
    "x_CachedInputTokens",
    "x_CacheWriteTokens",
    "x_OutputTokens",
    "x_ReasoningTokens",
    "x_Calls",
    "x_ErrorCalls",
    "x_UnpricedCalls",
    "x_UnknownCalls",
    "x_EstimatedCalls",
    "x_CacheSavings",
)
SINCE, UNTIL = date(2025, 3, 10), date(2025, 3, 12)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# One call per case, by purpose. In the range SINCE..UNTIL: all but "before" and "after".
CASES: dict[str, dict[str, Any]] = {
    "before": {"created_at": at("2025-03-09T23:59:59.999999+00:00"), "cost_usd": 0.5},
    "first": {"created_at": at("2025-03-10T00:00:00+00:00"), "cost_usd": 0.011},
    # The same day, team, repo, PR, author and model as "first": one day row for the two.
    "again": {"created_at": at("2025-03-10T06:00:00+00:00"), "cost_usd": 0.020700123},
    # 01:30 at +02:00 is 23:30 UTC the day before: the day is the UTC one.
    "offset": {
        "created_at": at("2025-03-11T01:30:00+02:00"),
        "model_name": "claude",
        "model": "anthropic/claude-sonnet-4-5",
        "provider": "anthropic",
        "cost_usd": 0.0205,
        "cached_tokens": 400,
        "cache_write_tokens": 100,
        "cache_savings_usd": 0.0011,
    },
    "unpriced": {
        "created_at": at("2025-03-11T09:00:00+00:00"),
        "model_name": "local",
        "model": "openai/llama-3.1-8b-local",
        "cost_usd": None,
    },
    "unknown": {
        "created_at": at("2025-03-11T10:00:00+00:00"),
        "outcome": "unknown",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": None,
        "error": "the run was interrupted during this call",
        "raw_usage": None,
    },
    "error": {
        "created_at": at("2025-03-12T12:00:00+00:00"),
        "outcome": "error",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "error": "=1+2",
        "raw_usage": None,
    },
    "azure": {
        "created_at": at("2025-03-12T08:00:00+00:00"),
        "model_name": "gpt-azure",
        "model": "azure/gpt-4o",
        "provider": "azure",
        "cost_usd": 0.125,
        "input_cost_per_token": 2.5e-6,
        "output_cost_per_token": 1e-5,
        "cache_read_input_token_cost": 1.25e-6,
        "cache_creation_input_token_cost": None,
        "price_source": "litellm",
        "cached_tokens": 100,
        "cache_savings_usd": -0.001,  # the cache write cost more than the reads saved
    },
    "last": {
        "created_at": at("2025-03-12T23:59:59.999999+00:00"),
        "team": "+ops",
        "repo": "-repo",
        "author": "@mallory",
        "model_name": "claude-bedrock",
        "model": "bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "provider": "bedrock",
        "cost_usd": 0.0333,
        "reasoning_tokens": 50,
        "usage_estimated": True,
    },
    "after": {"created_at": at("2025-03-13T00:00:00+00:00"), "cost_usd": 0.7},
}
# Written live: insert_call (pending) then update_call (ok), as a review does.
LIVE: dict[str, Any] = {
    "created_at": at("2025-03-11T15:00:00+00:00"),
    "team": None,
    "pr_number": None,
    "model_name": "gemini",
    "model": "vertex_ai/gemini-2.5-flash",
    "provider": "vertex_ai",
    "cost_usd": 0.0042,
}
IN_RANGE = {"first", "again", "offset", "unpriced", "unknown", "error", "azure", "last", "live"}


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'ledger.db'}"
    return postgres_url()


@pytest.fixture
def empty(ledger_url: str) -> Iterator[LedgerStore]:
    store = LedgerStore(ledger_url)
    yield store
    store.close()


@pytest.fixture
def store(empty: LedgerStore) -> LedgerStore:
    empty.start_run(make_run())
    empty.import_records(
        make_record(n, purpose=name, **values) for n, (name, values) in enumerate(CASES.items())
    )
    pending = make_record(99, purpose="live", outcome="pending", **{**LIVE, "cost_usd": None})
    empty.insert_call(pending)
    empty.update_call(make_record(99, purpose="live", **LIVE))
    return empty


def run_export(store: LedgerStore, fmt: str, **options: Any) -> tuple[str, int]:
    out = io.StringIO()
    written = export(store, fmt, out, **options)  # type: ignore[arg-type]
    return out.getvalue(), written


def focus_rows(store: LedgerStore, **options: Any) -> list[dict[str, str]]:
    text, written = run_export(store, "focus", **options)
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    assert reader.fieldnames == list(focus.HEADER)
    assert written == len(rows)
    return rows


def csv_rows(store: LedgerStore, **options: Any) -> list[dict[str, str]]:
    text, written = run_export(store, "csv", **options)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert written == len(rows)
    return rows


def recorded_cost(store: LedgerStore, purposes: set[str] | None = None) -> Decimal:
    """The sum of the recorded call costs, as exact decimals of the stored floats."""
    return sum(
        (
            Decimal(repr(c.cost_usd))
            for c in store.calls()
            if c.cost_usd is not None and (purposes is None or c.purpose in purposes)
        ),
        Decimal(0),
    )


def total(rows: list[dict[str, str]], column: str = "BilledCost") -> Decimal:
    return sum((Decimal(r[column] or "0") for r in rows), Decimal(0))


def by_purpose(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {r["x_Purpose"]: r for r in rows}


# --- FOCUS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["day", "call"])
def test_focus_has_every_mandatory_focus_1_2_column_filled(
    store: LedgerStore, granularity: str
) -> None:
    rows = focus_rows(store, granularity=granularity)
    header = list(focus.HEADER)
    assert focus.VERSION == "1.2"
    assert set(header) >= FOCUS_1_2_MANDATORY
    assert len(header) == len(set(header))
    # Anything not defined by FOCUS carries the x_ prefix the specification requires.
    assert all(c in focus.COLUMNS or c.startswith("x_") for c in header)
    assert not any(c.startswith("x_") for c in focus.COLUMNS)
    assert rows
    for r in rows:
        # ChargeClass is null for anything but a correction; the rest are never null.
        assert all(r[c] for c in FOCUS_1_2_MANDATORY - {"ChargeClass"}), r
        assert r["ChargeClass"] == ""
        assert (r["BillingCurrency"], r["ChargeCategory"], r["ChargeFrequency"]) == (
            "USD",
            "Usage",
            "Usage-Based",
        )
        assert (r["ServiceCategory"], r["ServiceSubcategory"]) == (
            "AI and Machine Learning",
            "Generative AI",
        )
        assert (r["ConsumedUnit"], r["PricingUnit"]) == ("Tokens", "Tokens")
        assert r["ConsumedQuantity"] == r["PricingQuantity"]
        start, end = (datetime.strptime(r[c], "%Y-%m-%dT%H:%M:%SZ") for c in KEY_PERIOD)
        assert end - start == timedelta(days=1) and start.time().hour == 0
        month_start, month_end = (
            datetime.strptime(r[c], "%Y-%m-%dT%H:%M:%SZ") for c in BILLING_PERIOD
        )
        assert month_start.day == 1 and month_start <= start < end <= month_end
        assert month_end.day == 1 and 28 <= (month_end - month_start).days <= 31
        assert isinstance(json.loads(r["Tags"]), dict)


KEY_PERIOD = ("ChargePeriodStart", "ChargePeriodEnd")
BILLING_PERIOD = ("BillingPeriodStart", "BillingPeriodEnd")


@pytest.mark.parametrize("granularity", ["day", "call"])
def test_billed_cost_is_the_sum_of_recorded_call_costs_exactly(
    store: LedgerStore, granularity: str
) -> None:
    rows = focus_rows(store, granularity=granularity)
    assert total(rows) == recorded_cost(store) == Decimal("1.414700123")
    for r in rows:
        # One price known per call, no negotiated discount: the four costs are one.
        assert len({r[c] for c in COSTS}) == 1, r


def test_day_and_call_rows_add_up_to_the_same_charges(store: LedgerStore) -> None:
    for options in ({}, {"since": SINCE, "until": UNTIL}, {"team": "core"}):
        days = focus_rows(store, granularity="day", **options)
        calls = focus_rows(store, granularity="call", **options)
        assert len(calls) > len(days)
        summed: dict[tuple[str, ...], dict[str, Decimal]] = defaultdict(
            lambda: dict.fromkeys(METRICS, Decimal(0))
        )
        for r in calls:
            into = summed[tuple(r[c] for c in KEY_COLUMNS)]
            for m in METRICS:
                into[m] += Decimal(r[m])
        by_day = {
            tuple(r[c] for c in KEY_COLUMNS): {m: Decimal(r[m]) for m in METRICS} for r in days
        }
        assert by_day == dict(summed)
        assert total(days) == total(calls)


def test_unit_price_times_quantity_is_the_cost(store: LedgerStore) -> None:
    for granularity in ("day", "call"):
        for r in focus_rows(store, granularity=granularity):
            if not r["ListUnitPrice"]:
                continue
            assert r["ListUnitPrice"] == r["ContractedUnitPrice"]
            product = Decimal(r["ListUnitPrice"]) * Decimal(r["PricingQuantity"])
            assert abs(product - Decimal(r["ListCost"])) <= Decimal(r["PricingQuantity"]) * (
                Decimal("1e-18")
            )


def test_since_and_until_are_inclusive_utc_days(store: LedgerStore) -> None:
    window = {"since": SINCE, "until": UNTIL}
    assert {r["purpose"] for r in csv_rows(store, **window)} == IN_RANGE
    calls = focus_rows(store, granularity="call", **window)
    assert set(by_purpose(calls)) == IN_RANGE
    days = focus_rows(store, **window)
    assert {r["ChargePeriodStart"][:10] for r in days} == {
        "2025-03-10",
        "2025-03-11",
        "2025-03-12",
    }
    assert total(days) == total(calls) == recorded_cost(store, IN_RANGE)
    # The call at 01:30+02:00 on the 11th is charged to the 10th, the UTC day.
    assert by_purpose(calls)["offset"]["ChargePeriodStart"] == "2025-03-10T00:00:00Z"
    # One bound at a time, and a single day.
    assert {r["purpose"] for r in csv_rows(store, since=UNTIL)} == {
        "error",
        "azure",
        "last",
        "after",
    }
    assert {r["purpose"] for r in csv_rows(store, until=SINCE)} == {
        "before",
        "first",
        "again",
        "offset",
    }
    one_day = focus_rows(store, since=SINCE, until=SINCE)
    assert total(one_day) == recorded_cost(store, {"first", "again", "offset"})


def test_team_and_repo_filters(store: LedgerStore) -> None:
    assert {r["purpose"] for r in csv_rows(store, team="+ops")} == {"last"}
    assert {r["purpose"] for r in csv_rows(store, repo="-repo")} == {"last"}
    core = recorded_cost(store) - recorded_cost(store, {"last", "live"})
    for granularity in ("day", "call"):
        rows = focus_rows(store, granularity=granularity, team="core", repo="acme/app")
        assert {r["SubAccountId"] for r in rows} == {"core"}
        assert total(rows) == core


@pytest.mark.parametrize("granularity", ["day", "call"])
def test_unpriced_and_unknown_calls_are_flagged_never_a_silent_zero(
    store: LedgerStore, granularity: str
) -> None:
    rows = focus_rows(store, granularity=granularity)
    unpriced = [r for r in rows if r["x_Unpriced"] == "true"]
    unknown = [r for r in rows if r["x_OutcomeUnknown"] == "true"]
    estimated = [r for r in rows if r["x_UsageEstimated"] == "true"]
    assert sum(int(r["x_UnpricedCalls"]) for r in rows) == 1
    assert sum(int(r["x_UnknownCalls"]) for r in rows) == 1
    assert sum(int(r["x_EstimatedCalls"]) for r in rows) == 1
    assert len(unpriced) == len(unknown) == len(estimated) == 1
    [u] = unpriced
    assert u["ResourceId"] == "openai/llama-3.1-8b-local"
    assert u["BilledCost"] == "0" and u["ConsumedQuantity"] == "1200"
    assert u["ListUnitPrice"] == u["ContractedUnitPrice"] == ""  # no price, not a price of 0
    assert "unpriced" in u["ChargeDescription"]
    [k] = unknown
    assert "unknown outcome" in k["ChargeDescription"]
    assert estimated[0]["ResourceId"].startswith("bedrock/")
    # Everything else carries no flag and, where it was billed for tokens, a price.
    for r in rows:
        if r not in unpriced and r not in unknown:
            assert "unpriced" not in r["ChargeDescription"]
            assert "unknown" not in r["ChargeDescription"]
    if granularity == "call":
        calls = by_purpose(rows)
        assert calls["unpriced"] is u and calls["unknown"] is k
        assert k["x_Outcome"] == "unknown"
        assert calls["first"]["ListUnitPrice"] == "0.000009166666666667"  # 0.011 / 1200


def test_who_and_what_are_mapped_from_the_provider_and_model(store: LedgerStore) -> None:
    calls = by_purpose(focus_rows(store, granularity="call"))
    expect = {
        "first": ("OpenAI", "OpenAI", "OpenAI API"),
        "offset": ("Anthropic", "Anthropic", "Anthropic API"),
        "last": ("AWS", "Anthropic", "Amazon Bedrock"),
        "live": ("Google Cloud", "Google", "Vertex AI"),
        "azure": ("Microsoft", "OpenAI", "Azure OpenAI"),
        "unpriced": ("OpenAI", "Meta", "OpenAI API"),
    }
    for purpose, (seller, maker, service) in expect.items():
        r = calls[purpose]
        assert (r["ProviderName"], r["InvoiceIssuerName"]) == (seller, seller)
        assert (r["PublisherName"], r["ServiceName"]) == (maker, service)
    first, live, azure = calls["first"], calls["live"], calls["azure"]
    assert first["SubAccountId"] == first["SubAccountName"] == "core"
    assert first["BillingAccountId"] == "openai" and first["BillingAccountName"] == "OpenAI"
    assert (first["ResourceId"], first["ResourceName"]) == ("openai/gpt-4.1-mini", "gpt")
    assert first["SkuId"] == first["SkuPriceId"] == "openai/gpt-4.1-mini"
    assert json.loads(first["Tags"]) == {
        "team": "core",
        "repo": "acme/app",
        "pr": "7",
        "author": "dev",
        "ownit-run": "run-1",
    }
    assert first["x_CallTime"] == "2025-03-10T00:00:00Z"
    assert first["x_CallId"] == "run-1:first:1"
    # No team, no PR: no sub-account and no such tags, rather than an invented value.
    assert live["SubAccountId"] == "" and live["x_PullRequest"] == ""
    assert json.loads(live["Tags"]) == {"repo": "acme/app", "author": "dev", "ownit-run": "run-1"}
    # Unit prices recorded with the call, written without a float's exponent.
    assert (azure["x_InputUnitPrice"], azure["x_OutputUnitPrice"]) == ("0.0000025", "0.00001")
    assert azure["x_CachedInputUnitPrice"] == "0.00000125"
    assert azure["x_CacheWriteUnitPrice"] == "" and azure["x_PriceSource"] == "litellm"
    assert azure["x_CachedInputTokens"] == "100"
    # Day rows have no call of their own.
    for r in focus_rows(store):
        assert r["x_RunId"] == r["x_CallId"] == r["x_CallTime"] == r["x_InputUnitPrice"] == ""
        assert "ownit-run" not in json.loads(r["Tags"])


@pytest.mark.parametrize(
    ("provider", "model", "seller", "maker", "where"),
    [
        ("openai", "openai/o3-mini", "OpenAI", "OpenAI", None),
        ("anthropic", "anthropic/claude-opus-4-1", "Anthropic", "Anthropic", None),
        ("bedrock", "bedrock/meta.llama3-1-70b-instruct-v1:0", "AWS", "Meta", None),
        (
            "bedrock",
            "bedrock/arn:aws:bedrock:eu-west-1:123456789012:inference-profile/x",
            "AWS",
            "AWS",
            "eu-west-1",
        ),
        ("vertex_ai", "vertex_ai/claude-sonnet-4-5@20250929", "Google Cloud", "Anthropic", None),
        ("gemini", "gemini/gemini-2.5-flash", "Google Cloud", "Google", None),
        ("azure", "azure/my-deployment", "Microsoft", "Microsoft", None),
        ("mistral", "mistral/mistral-medium-latest", "Mistral AI", "Mistral AI", None),
        ("ollama_chat", "ollama_chat/qwen2.5-coder:7b", "Ollama", "Alibaba Cloud", None),
        ("newvendor", "newvendor/some-model", "newvendor", "newvendor", None),
    ],
)
def test_vendor_publisher_and_region(
    provider: str, model: str, seller: str, maker: str, where: str | None
) -> None:
    assert focus.vendor(provider).name == seller
    assert focus.publisher(model, provider) == maker
    assert focus.region(model) == where


# --- plain CSV and JSON Lines -----------------------------------------------------------------


def test_csv_has_every_call_column_with_iso_utc_times(store: LedgerStore) -> None:
    text, written = run_export(store, "csv")
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    assert reader.fieldnames == list(CALL_COLUMNS)
    assert set(CALL_COLUMNS) == {c.name for c in Call.__table__.columns}  # type: ignore[attr-defined]
    stored = {c.purpose: c for c in store.calls()}
    assert written == len(rows) == len(stored)
    for r in rows:
        call = stored[r["purpose"]]
        assert r["created_at"].endswith("Z")
        assert datetime.fromisoformat(r["created_at"]) == call.created_at
        assert r["id"] == str(call.id)
        assert r["cost_usd"] == ("" if call.cost_usd is None else repr(call.cost_usd))
        assert r["usage_estimated"] == ("true" if call.usage_estimated else "false")
        assert json.loads(r["raw_usage"] or "null") == call.raw_usage
    # Ordered by time: the offset call (23:30 UTC on the 10th) before the 11th's.
    assert [r["purpose"] for r in rows][:4] == ["before", "first", "again", "offset"]


def test_csv_neutralizes_spreadsheet_formulas(store: LedgerStore) -> None:
    calls = {r["purpose"]: r for r in csv_rows(store)}
    last, error = calls["last"], calls["error"]
    assert (last["team"], last["repo"], last["author"]) == ("'+ops", "'-repo", "'@mallory")
    assert error["error"] == "'=1+2"
    focus_calls = by_purpose(focus_rows(store, granularity="call"))
    row = focus_calls["last"]
    assert (row["SubAccountId"], row["SubAccountName"]) == ("'+ops", "'+ops")
    assert (row["x_Repo"], row["x_Author"]) == ("'-repo", "'@mallory")
    day = next(r for r in focus_rows(store) if r["x_Author"] == "'@mallory")
    assert day["SubAccountId"] == "'+ops"
    # Tags is JSON (it starts with "{"): the values in it stay exactly as recorded.
    assert json.loads(row["Tags"])["team"] == "+ops"
    # Numbers are ours, never quoted: a negative saving stays a number.
    assert focus_calls["azure"]["x_CacheSavings"] == "-0.001"
    for r in [*calls.values(), *focus_calls.values()]:
        assert not [v for v in r.values() if v.startswith(("=", "+", "-", "@")) and not _number(v)]


def _number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


def test_json_lines_read_back_as_the_same_calls(store: LedgerStore, tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    with path.open("w", encoding="utf-8") as out:
        written = export(store, "json", out)
    lines = path.read_text(encoding="utf-8").splitlines()
    stored = sorted(store.calls(), key=lambda c: (c.created_at, c.id or 0))
    assert written == len(lines) == len(stored)
    for line, call in zip(lines, stored, strict=True):
        item = json.loads(line)
        assert list(item) == list(CALL_COLUMNS)
        assert item["created_at"].endswith("Z")
        # Every column, the ledger's id included.
        assert Call.model_validate(item).model_dump() == call.model_dump()
    # The shape of a spool file: a fresh ledger imports it back into the same calls.
    fresh = LedgerStore(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        fresh.import_records(read_records(path))
        assert _records(fresh.calls()) == _records(stored)
    finally:
        fresh.close()


def _records(calls: list[Call]) -> dict[str, CallRecord]:
    return {
        c.idempotency_key: CallRecord.model_validate(c.model_dump(exclude={"id"})) for c in calls
    }


# --- arguments, imports, streaming ------------------------------------------------------------


def test_bad_arguments_are_input_errors(empty: LedgerStore) -> None:
    with pytest.raises(InputError, match="after --until"):
        export(empty, "focus", io.StringIO(), since=UNTIL, until=SINCE)
    with pytest.raises(InputError, match="--granularity day applies to --format focus"):
        export(empty, "csv", io.StringIO(), granularity="day")
    with pytest.raises(InputError, match="unknown export format"):
        export(empty, "xlsx", io.StringIO())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown granularity"):
        export(empty, "focus", io.StringIO(), granularity="hour")  # type: ignore[arg-type]
    # An empty ledger: a header and no rows (the JSON Lines file is empty).
    assert run_export(empty, "focus") == (",".join(focus.HEADER) + "\r\n", 0)
    assert run_export(empty, "json") == ("", 0)


def test_export_imports_no_litellm() -> None:
    code = (
        "import sys, agent.ledger.exports; "
        "heavy = [m for m in ('litellm', 'langgraph', 'tiktoken') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("fmt", "granularity"), [("focus", "day"), ("focus", "call"), ("csv", None), ("json", None)]
)
def test_each_export_is_one_streamed_statement(
    store: LedgerStore, fmt: str, granularity: str | None
) -> None:
    seen: list[tuple[str, Any, dict[str, Any], Any]] = []

    def before(
        conn: Any, cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        seen.append((statement, context.execution_options, conn.get_execution_options(), cursor))

    sa.event.listen(store.engine, "before_cursor_execute", before)
    try:
        run_export(store, fmt, granularity=granularity)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", before)
    selects = [s for s in seen if "FROM calls" in s[0] or "FROM spend_daily" in s[0]]
    assert len(selects) == 1
    _statement, options, connection_options, cursor = selects[0]
    assert options.get("yield_per") == exports.BATCH
    # Set on the statement, not left on the connection for whatever runs next on it.
    assert "yield_per" not in connection_options
    if store.engine.dialect.name == "postgresql":
        assert getattr(cursor, "name", None), "not a server-side cursor"


class _Discard(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


@pytest.fixture(scope="module")
def big_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerStore]:
    store = LedgerStore(f"sqlite:///{tmp_path_factory.mktemp('big') / 'ledger.db'}")
    # One call per run: as many rollup rows as calls, so the day export is as long.
    fill(store, 5_000, days=60, calls_per_run=1)
    yield store
    store.close()


@pytest.mark.parametrize(
    ("fmt", "granularity"), [("focus", "day"), ("focus", "call"), ("csv", None), ("json", None)]
)
def test_a_large_export_streams_in_constant_memory(
    big_ledger: LedgerStore, fmt: str, granularity: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches make the gap plain and keep the test quick (tracemalloc slows it ~7x):
    # holding 5,000 rows takes 4 MB (day rows) to 20 MB (calls), 100 at a time under 1 MB.
    monkeypatch.setattr(exports, "BATCH", 100)
    sink = _Discard()
    # Once untraced: compiled statements and per-model caches are not per-row memory.
    export(big_ledger, fmt, sink, until=date(2024, 6, 2), granularity=granularity)  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        written = export(big_ledger, fmt, sink, granularity=granularity)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written >= 4_900
    assert peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MB for {written} rows"
