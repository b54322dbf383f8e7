"""A synthetic ledger written straight into the tables (bulk INSERTs, then the rollup rebuilt
from the calls by ``rollup.rebuild``): for tests that need many calls and for the benchmarks.
Same arguments, same rows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.ledger.records import Call, Run
from agent.ledger.rollup import rebuild
from agent.ledger.store import LedgerStore

_calls = Call.__table__  # type: ignore[attr-defined]
_runs = Run.__table__  # type: ignore[attr-defined]

START = datetime(2024, 6, 1, tzinfo=UTC)
# name, LiteLLM model, provider, $ per input token, $ per output token (None: unpriced)
MODELS: tuple[tuple[str, str, str, float | None, float | None], ...] = (
    ("gpt", "openai/gpt-4.1-mini", "openai", 4e-7, 1.6e-6),
    ("claude-sonnet", "anthropic/claude-sonnet-4-5", "anthropic", 3e-6, 1.5e-5),
    (
        "claude-bedrock",
        "bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "bedrock",
        8e-7,
        4e-6,
    ),
    ("gemini", "vertex_ai/gemini-2.5-flash", "vertex_ai", 3e-7, 2.5e-6),
    ("gpt-azure", "azure/gpt-4o", "azure", 2.5e-6, 1e-5),
    ("local", "openai/llama-3.1-8b-local", "openai", None, None),
)
BATCH = 10_000


def fill(
    store: LedgerStore,
    calls: int,
    *,
    days: int = 548,
    teams: int = 40,
    repos: int = 400,
    seed: int = 0,
    calls_per_run: int = 10,
) -> None:
    """``calls`` calls in runs of ``calls_per_run``, spread over ``days`` days from ``START``:
    mostly answered, some unpriced (the local model), in errors (not billed) or with an unknown
    outcome; costs whole nano-dollars, so sums are exact."""
    rng = random.Random(seed)
    with store.engine.begin() as conn:
        for first in range(0, calls, BATCH):
            runs: list[dict[str, Any]] = []
            rows: list[dict[str, Any]] = []
            for n in range(first, min(calls, first + BATCH)):
                if n % calls_per_run == 0:
                    repo, model = rng.randrange(repos), rng.randrange(len(MODELS))
                    run = {
                        "id": f"run-{n // calls_per_run:07d}",
                        "started_at": START + timedelta(seconds=rng.randrange(days * 86_400)),
                        "team": f"team-{repo % teams:02d}",
                        "repo": f"org/repo-{repo:03d}",
                        "pr_number": rng.randint(1, 5_000),
                        "head_sha": f"{rng.getrandbits(40):010x}",
                        "author": f"dev-{rng.randrange(2_000):04d}",
                        "model_name": MODELS[model][0],
                        "status": "complete",
                        "masking": True,
                    }
                    runs.append(run)
                rows.append(_call(rng, run, model, n % calls_per_run))
            if runs:
                conn.execute(_runs.insert(), runs)
            conn.execute(_calls.insert(), rows)
        rebuild(conn)


def _call(rng: random.Random, run: dict[str, Any], model: int, index: int) -> dict[str, Any]:
    # The run's model, but for the odd fallback to another.
    chosen = model if rng.random() < 0.95 else rng.randrange(len(MODELS))
    name, model, provider, input_price, output_price = MODELS[chosen]
    roll = rng.random()
    outcome = "error" if roll < 0.03 else "unknown" if roll < 0.04 else "ok"
    answered = outcome == "ok"
    prompt = rng.randint(500, 12_000) if answered else 0
    completion = rng.randint(100, 2_000) if answered else 0
    cached = rng.randint(0, prompt // 2) if answered and rng.random() < 0.3 else 0
    cost: float | None = None
    if outcome == "error":
        cost = 0.0
    elif answered and input_price is not None and output_price is not None:
        nano = round((prompt - cached / 2) * input_price * 1e9 + completion * output_price * 1e9)
        cost = nano / 1e9
    return {
        "idempotency_key": f"{run['id']}:chunk-{index}:1",
        "run_id": run["id"],
        "created_at": run["started_at"] + timedelta(seconds=index * 7),
        "team": run["team"],
        "repo": run["repo"],
        "pr_number": run["pr_number"],
        "head_sha": run["head_sha"],
        "author": run["author"],
        "purpose": f"chunk-{index}",
        "attempt": 1,
        "model_name": name,
        "model": model,
        "provider": provider,
        "outcome": outcome,
        "estimated_prompt_tokens": prompt or rng.randint(500, 12_000),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": cached,
        "cache_write_tokens": 0,
        "reasoning_tokens": completion // 4 if name == "gpt" else 0,
        "cost_usd": cost,
        "input_cost_per_token": input_price,
        "output_cost_per_token": output_price,
        "price_source": "litellm" if input_price is not None else None,
        "usage_estimated": answered and rng.random() < 0.01,
        "latency_ms": rng.randint(300, 20_000) if answered else 0,
        "error": "rate limited" if outcome == "error" else None,
        "raw_usage": {"prompt_tokens": prompt, "completion_tokens": completion}
        if answered
        else None,
    }
