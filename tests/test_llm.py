"""Pricing and reply parsing in the one module that talks to LiteLLM."""

from __future__ import annotations

import pytest

from agent.config import ModelEntry
from agent.llm import _cost, extract_json, litellm, model_facts
from agent.providers import resolve


def response_for(model: str, prompt: int, completion: int) -> object:
    lib = litellm()
    return lib.ModelResponse(
        model=model,
        choices=[{"message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}],
        usage=lib.Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        ),
    )


def test_providers_yaml_prices_price_the_call() -> None:
    entry = ModelEntry(
        model="openai/priced-local-model",
        context_window=16000,
        input_cost_per_token=0.000002,
        output_cost_per_token=0.000008,
    )
    facts = model_facts(resolve("priced", entry, {}))
    assert facts.context_window == 16000
    cost = _cost(response_for("openai/priced-local-model", 1000, 500))
    assert cost == pytest.approx(1000 * 0.000002 + 500 * 0.000008)


def test_a_model_without_prices_has_unknown_cost_not_zero() -> None:
    entry = ModelEntry(model="openai/unpriced-local-model", context_window=16000)
    facts = model_facts(resolve("unpriced", entry, {}))
    assert facts.context_window == 16000
    assert facts.input_cost_per_token is None
    assert _cost(response_for("openai/unpriced-local-model", 1000, 500)) is None


def test_known_models_take_litellm_prices_and_window() -> None:
    facts = model_facts(resolve("gpt", ModelEntry(model="openai/gpt-4.1-mini"), {}))
    info = litellm().get_model_info("openai/gpt-4.1-mini")
    assert facts.context_window == info["max_input_tokens"]
    assert facts.input_cost_per_token == info["input_cost_per_token"]
    assert facts.supports_schema is True


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ('Here it is:\n```json\n{"a": 1}\n```\nThanks', '{"a": 1}'),
        ('Sure! {"a": {"b": 2}} hope that helps', '{"a": {"b": 2}}'),
        ("no json here", "no json here"),
    ],
)
def test_extract_json_makes_only_mechanical_repairs(reply: str, expected: str) -> None:
    assert extract_json(reply) == expected


def test_retry_after_is_honoured_within_a_cap() -> None:
    import httpx

    from agent.llm import _retry_after

    def limited(value: str) -> Exception:
        request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
        response = httpx.Response(429, headers={"retry-after": value}, request=request)
        return litellm().RateLimitError(
            message="slow down", llm_provider="openai", model="x", response=response
        )

    assert _retry_after(limited("7")) == 7.0
    assert _retry_after(limited("3600")) == 60.0
    assert _retry_after(limited("Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0
    assert _retry_after(ValueError("no response")) == 0.0
