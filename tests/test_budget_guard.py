"""A review checks its team's remaining monthly budget against the planned cost before calling a
model, and refuses, switches to a cheaper configured model, or warns, per the team's policy,
saying which. Through the real pipeline with the fake transport (``tests/fakes.py``)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.ledger import CallRecord
from agent.ledger.budgets import set_budget
from agent.policy import failed
from agent.review import ReviewRequest, dry_run
from tests.fakes import FakeTransport
from tests.test_pipeline import EXAMPLE, ledger, run, write_config

TEAM = "payments"
# Per-token prices: primary is the team's default; the others are cheaper, by 5x and by 100x.
PRICES = {"primary": 1e-6, "mid": 2e-7, "cheap": 1e-8}


def config(tmp: Path) -> Path:
    others = {
        name: {
            "model": f"openai/{name}-model",
            "context_window": 32000,
            "input_cost_per_token": price,
            "output_cost_per_token": price * 2,
        }
        for name, price in PRICES.items()
        if name != "primary"
    }
    return write_config(tmp, **others)


def estimates(tmp: Path, cfg: Path) -> dict[str, float]:
    """What the plan of the example diff is estimated to cost on each model."""
    patch = tmp / "estimate.patch"
    patch.write_bytes(EXAMPLE.read_bytes())
    plan = asyncio.run(dry_run(ReviewRequest(cwd=tmp, diff_path=patch, config_path=cfg)))
    return {e.name: e.cost_usd for e in plan.estimates if e.cost_usd is not None}


def budget(monthly: float, **policy: Any) -> None:
    set_budget(ledger(), TEAM, monthly, **policy)


def spent_this_month(usd: float) -> None:
    """Spend already recorded for the team this month."""
    ledger().import_records(
        [
            CallRecord(
                run_id="earlier",
                created_at=datetime.now(UTC),
                team=TEAM,
                purpose="chunk-1",
                model_name="primary",
                model="openai/primary-model",
                provider="openai",
                outcome="ok",
                prompt_tokens=1000,
                cost_usd=usd,
            )
        ]
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    cfg = config(tmp_path)
    cost = estimates(tmp_path, cfg)
    assert cost["cheap"] < cost["mid"] < cost["primary"]
    return cfg, cost


def test_refuse_sends_nothing_and_says_what_is_left(
    tmp_path: Path, setup: tuple[Path, dict[str, float]]
) -> None:
    cfg, cost = setup
    budget(1.00)
    spent_this_month(1.00 - cost["primary"] / 2)  # half the plan is left
    transport = FakeTransport()
    review = run(tmp_path, transport, cfg, team=TEAM)
    assert transport.requests == []
    assert review.over_budget and not review.complete
    said = " ".join(review.problems)
    assert f"{TEAM} has $0.00 left of its $1.00 budget" in said
    assert "policy: refuse" in said and "ownit ledger budget set --team payments" in said
    assert failed(review, frozenset({"budget"}))
    assert [c.run_id for c in ledger().calls()] == ["earlier"]  # nothing new was spent


def test_downgrade_switches_to_the_best_model_that_fits_and_says_so(
    tmp_path: Path, setup: tuple[Path, dict[str, float]]
) -> None:
    cfg, cost = setup
    budget(10.0, on_exceed="downgrade")
    # What is left takes mid's plan but not primary's: mid, the costlier of the two that fit.
    spent_this_month(10.0 - (cost["mid"] + cost["primary"]) / 2)
    transport = FakeTransport()
    review = run(tmp_path, transport, cfg, team=TEAM)
    assert review.complete and not review.over_budget
    assert {r.model.name for r in transport.requests} == {"mid"}
    assert any("switched to mid (openai/mid-model" in n for n in review.notes)
    (row,) = [r for r in ledger().runs() if r.id == review.run.id]
    assert row.model_name == "mid"
    assert {c.model_name for c in ledger().calls(review.run.id)} == {"mid"}


def test_downgrade_to_a_named_model(tmp_path: Path, setup: tuple[Path, dict[str, float]]) -> None:
    cfg, cost = setup
    budget(10.0, on_exceed="downgrade", downgrade_to="cheap")
    spent_this_month(10.0 - (cost["mid"] + cost["primary"]) / 2)
    transport = FakeTransport()
    review = run(tmp_path, transport, cfg, team=TEAM)
    assert {r.model.name for r in transport.requests} == {"cheap"}
    assert review.complete


def test_downgrade_with_nothing_that_fits_refuses_naming_what_it_tried(
    tmp_path: Path, setup: tuple[Path, dict[str, float]]
) -> None:
    cfg, cost = setup
    budget(1.0, on_exceed="downgrade")
    spent_this_month(1.0 - cost["cheap"] / 2)
    transport = FakeTransport()
    review = run(tmp_path, transport, cfg, team=TEAM)
    assert transport.requests == [] and review.over_budget
    said = " ".join(review.problems)
    assert "no cheaper configured model fits" in said
    assert "mid ($" in said and "cheap ($" in said


def test_warn_goes_on_and_says_it_is_over(
    tmp_path: Path, setup: tuple[Path, dict[str, float]]
) -> None:
    cfg, _ = setup
    budget(1.0, on_exceed="warn")
    spent_this_month(1.0)
    transport = FakeTransport()
    review = run(tmp_path, transport, cfg, team=TEAM)
    assert review.complete and transport.requests
    assert any("over budget" in n and "policy: warn" in n for n in review.notes)


def test_within_budget_past_the_warning_line_notes_the_burn(
    tmp_path: Path, setup: tuple[Path, dict[str, float]]
) -> None:
    cfg, _ = setup
    budget(1.0, warn_at=0.5)
    spent_this_month(0.6)
    review = run(tmp_path, FakeTransport(), cfg, team=TEAM)
    assert review.complete
    assert any("payments has spent $0.60 of $1.00" in n and "(60%)" in n for n in review.notes)


def test_another_team_s_budget_is_not_this_one_s(
    tmp_path: Path, setup: tuple[Path, dict[str, float]]
) -> None:
    cfg, _ = setup
    budget(0.0)
    transport = FakeTransport()
    review = run(tmp_path, transport, cfg, team="search")
    assert review.complete and transport.requests
    assert not any(n.startswith("budget") for n in review.notes)


def test_a_dry_run_shows_what_the_budget_would_do(
    tmp_path: Path, setup: tuple[Path, dict[str, float]]
) -> None:
    cfg, _ = setup
    budget(0.0)
    patch = tmp_path / "change.patch"
    patch.write_bytes(EXAMPLE.read_bytes())
    request = ReviewRequest(cwd=tmp_path, diff_path=patch, config_path=cfg, team=TEAM)
    plan = asyncio.run(dry_run(request))
    assert plan.refused and "payments has $0.00 left of its $0.00 budget" in plan.refused


def test_a_model_without_a_price_cannot_be_checked_and_says_so(tmp_path: Path) -> None:
    cfg = tmp_path / "providers.yaml"
    write_config(tmp_path)
    data = json.loads(cfg.read_text())
    primary = data["models"]["primary"]
    del primary["input_cost_per_token"], primary["output_cost_per_token"]
    primary["model"] = "openai/unpriced-model"  # a name no other test gave a price to
    cfg.write_text(json.dumps(data))
    budget(1.0)
    review = run(tmp_path, FakeTransport(), cfg, team=TEAM)
    assert review.complete
    assert any("has no known price" in n and "cannot be checked" in n for n in review.notes)
