"""Reviewing through an organisation's LiteLLM gateway (proxy).

The gateway is the stand-in server on loopback, live in-process rather than a cassette: the
metadata carries the run's random id, and what is under test is what reaches the wire. Its
``/usage/gateway`` switch answers as a LiteLLM proxy does, with the call's cost in the
``x-litellm-response-cost`` header (``srv.charged``), at rates no vendor charges, so the
gateway's figure can be told from one ownit computed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent import gateway
from agent.cli import app
from agent.config import ModelEntry
from agent.ledger import LedgerStore, RunInfo
from agent.llm import price_map_source
from agent.providers import resolve
from tests.conftest import ROOT, SECRET
from tests.llm_server import LLMServer, serve

EXAMPLE = ROOT / "examples" / "retry-charges.patch"
runner = CliRunner()


@pytest.fixture
def srv() -> Iterator[LLMServer]:
    with serve() as server:
        yield server


def review(tmp_path: Path, entry: dict[str, Any], *args: str) -> list[Any]:
    """``ownit review`` of the example as team payments, acme/pay PR 42; the ledger's calls."""
    config = tmp_path / "providers.yaml"
    config.write_text(json.dumps({"default": "m", "models": {"m": entry}}))
    who = ["--team", "payments", "--repo", "acme/pay", "--pr", "42"]
    result = runner.invoke(
        app,
        ["review", "--diff", str(EXAMPLE), "--config", str(config), *who, *args],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    calls = LedgerStore(os.environ["OWNIT_LEDGER_URL"]).calls()
    assert calls and all(c.outcome == "ok" for c in calls)
    return calls


def proxy(
    srv: LLMServer, switches: str, model: str = "litellm_proxy/review-team"
) -> dict[str, Any]:
    return {
        "model": model,
        "api_base": f"{srv}/usage/{switches}/v1",
        "api_key": "${GATEWAY_KEY}",  # the team's virtual key
        "context_window": 32000,
    }


def test_the_gateway_receives_the_runs_attribution_and_its_cost_is_recorded(
    srv: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An alias only the gateway knows, and it hides the vendor's usage: only its header prices.
    monkeypatch.setenv("GATEWAY_KEY", SECRET)
    calls = review(tmp_path, proxy(srv, "gateway-nousage"))
    run = calls[0].run_id
    assert len(srv.requests) == len(calls)
    for request in srv.requests:
        assert request.body["model"] == "review-team"  # litellm_proxy/ is LiteLLM's, not sent
        assert request.body["metadata"] == {
            "tags": ["ownit", "team:payments", "repo:acme/pay", "pr:42", f"run:{run}"],
            "spend_logs_metadata": {
                "ownit_team": "payments",
                "ownit_repo": "acme/pay",
                "ownit_pr": "42",
                "ownit_run_id": run,
            },
        }
        assert request.headers["authorization"] == f"Bearer {SECRET}"  # the key, only here
    assert [c.cost_usd for c in calls] == pytest.approx(srv.charged)
    for call in calls:
        assert call.price_source == "gateway: x-litellm-response-cost"
        assert call.usage_estimated  # the tokens are ours; the cost is the gateway's
        assert call.input_cost_per_token is None  # no unit price was applied
    ledger = Path(os.environ["OWNIT_LEDGER_URL"].removeprefix("sqlite:///")).read_bytes()
    assert SECRET.encode() not in ledger


def test_an_unpriced_alias_with_usage_takes_the_gateways_cost_with_the_real_tokens(
    srv: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_KEY", SECRET)
    calls = review(tmp_path, proxy(srv, "gateway"))
    assert [(c.prompt_tokens, c.completion_tokens) for c in calls] == [
        (p, c) for _, p, c in srv.billed
    ]
    assert not any(c.usage_estimated for c in calls)
    assert [c.cost_usd for c in calls] == pytest.approx(srv.charged)
    assert {c.price_source for c in calls} == {gateway.PRICE_SOURCE}


def test_a_model_ownit_can_price_keeps_its_own_price_through_a_gateway(
    srv: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An OpenAI-compatible base URL with a virtual key, marked as a gateway; a model LiteLLM
    # prices. The gateway's header is there, and not taken: ownit's price says its rates.
    monkeypatch.setenv("GATEWAY_KEY", SECRET)
    entry = proxy(srv, "gateway", model="openai/gpt-4.1-mini") | {"gateway": "litellm"}
    (call,) = review(tmp_path, entry)
    assert srv.requests[0].body["metadata"]["tags"][:2] == ["ownit", "team:payments"]
    (_, prompt, completion) = srv.billed[0]
    assert call.price_source == price_map_source()
    assert call.cost_usd == pytest.approx(prompt * 0.4e-6 + completion * 1.6e-6)
    assert not math.isclose(call.cost_usd, srv.charged[0])


def test_without_usage_the_gateways_cost_beats_ownits_estimate(
    srv: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_KEY", SECRET)
    entry = proxy(srv, "gateway-nousage", model="openai/gpt-4.1-mini") | {"gateway": "litellm"}
    (call,) = review(tmp_path, entry)
    assert call.usage_estimated
    assert (call.cost_usd, call.price_source) == (
        pytest.approx(srv.charged[0]),
        gateway.PRICE_SOURCE,
    )


def test_a_vendor_is_sent_no_attribution_and_its_cost_header_is_not_a_price(
    srv: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_KEY", SECRET)
    calls = review(tmp_path, proxy(srv, "gateway", model="openai/gpt-local"))
    assert all("metadata" not in r.body for r in srv.requests)
    assert {c.cost_usd for c in calls} == {None}  # unpriced, as without the header


# --- the pieces -----------------------------------------------------------------------------


def run_info(**fields: Any) -> RunInfo:
    return RunInfo(id="r1", started_at=datetime(2026, 12, 1, tzinfo=UTC), **fields)


def test_attribution_leaves_out_what_the_run_does_not_know_and_never_names_the_author() -> None:
    bare = gateway.Attribution.of(run_info(author="Ada Lovelace"))
    assert bare.body() == {
        "metadata": {"tags": ["ownit", "run:r1"], "spend_logs_metadata": {"ownit_run_id": "r1"}}
    }
    full = gateway.Attribution.of(run_info(team="t", pr_number=7, head_sha="abc", author="Ada"))
    assert full.tags == ("ownit", "team:t", "pr:7", "run:r1")
    assert dict(full.details)["ownit_head_sha"] == "abc"
    assert "Ada" not in json.dumps(full.body())


@pytest.mark.parametrize(
    ("header", "usd"),
    [("0.0042", 0.0042), (0.5, 0.5), ("0", 0.0), ("nan", None), ("-1", None), ("x", None)],
)
def test_the_cost_header_is_read_only_when_it_is_a_cost(header: Any, usd: float | None) -> None:
    hidden = {"additional_headers": {"llm_provider-x-litellm-response-cost": header}}
    assert gateway.reported_cost(hidden) == usd
    assert gateway.reported_cost({"additional_headers": {}}) is None
    assert gateway.reported_cost(None) is None


def test_litellm_proxy_models_are_gateways_and_others_only_when_marked() -> None:
    def kind(**entry: Any) -> str | None:
        return resolve("m", ModelEntry(**entry), {}).gateway

    assert kind(model="litellm_proxy/team-model") == "litellm"
    assert kind(model="openai/gpt-4.1-mini", gateway="litellm") == "litellm"
    assert kind(model="openai/gpt-4.1-mini") is None
