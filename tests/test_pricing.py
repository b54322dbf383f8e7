"""What a model call costs, from usage shaped as each vendor reports it.

Every expected cost here is worked out by hand from the vendor's published prices per million
tokens (written out below), never taken from ownit's code or from LiteLLM. The end-to-end tests
run ``ownit review`` on the bundled catalogue against the stand-in server speaking each vendor's
wire format, with cached, cache-write and reasoning tokens in its usage blocks (the
``/usage/<switches>/`` path prefix, ``tests/llm_server.py``), replayed from
``cassettes/test_pricing/``.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent import pricing
from agent.cli import app
from agent.client import Completion, ModelRequest, Usage
from agent.config import ModelEntry, load_config
from agent.ledger import LedgerStore
from agent.llm import _usage, litellm, model_facts, price_map_source
from agent.pricing import Price, TokenUsage, usage_from
from agent.providers import resolve
from agent.review import ReviewRequest, run_review
from agent.tokens import count_tokens
from tests.conftest import ROOT, SECRET, SERVER_URL
from tests.fakes import FakeTransport, good

M = 1e-6  # per million tokens -> per token
EXAMPLE = ROOT / "examples" / "retry-charges.patch"
CHECKED = datetime(2026, 11, 26, tzinfo=UTC)  # when the bundled prices were checked

# The vendors' published list prices, USD per million tokens, standard tier, as of CHECKED.
# (input, output, cache read, 5-minute cache write, 1-hour cache write)
SONNET_45 = (3.00, 15.00, 0.30, 3.75, 6.00)  # Anthropic API, up to the 200k window
SONNET_45_BEDROCK_REGIONAL = (3.30, 16.50, 0.33, 4.125, 6.60)  # AWS: in-region, 10% over global
GPT_41_MINI = (0.40, 1.60, 0.10)  # OpenAI, and Azure global deployments
GPT_41_MINI_AZURE_EU = (0.44, 1.76, 0.11)  # Azure data zone EU: 10% over global
O4_MINI = (1.10, 4.40, 0.275)
GEMINI_25_FLASH = (0.30, 2.50, 0.03)  # text input; thinking billed as output
GEMINI_25_PRO = (1.25, 10.00, 0.125)  # prompts up to 200k tokens
GEMINI_25_PRO_LONG = (2.50, 15.00, 0.25)  # prompts over 200k: every token of the call
MISTRAL_MEDIUM_35 = (1.50, 7.50, 0.15)


def bundled(name: str) -> Price:
    """The price ownit applies to a model of the bundled catalogue."""
    config = load_config()
    price = model_facts(resolve(name, config.models[name], {})).price
    assert price is not None
    return price


def mapped(model: str, **entry: Any) -> Price:
    """The price ownit applies to a model priced from LiteLLM's map."""
    price = model_facts(resolve("m", ModelEntry(model=model, **entry), {})).price
    assert price is not None
    return price


def rates(price: Price, prompt_tokens: int = 0) -> tuple[float, ...]:
    """A price's rates per million tokens, as written in the tables above."""
    flat = price.at(prompt_tokens)
    values = (
        flat.input_cost_per_token,
        flat.output_cost_per_token,
        flat.cache_read_input_token_cost,
        flat.cache_creation_input_token_cost,
        flat.cache_creation_input_token_cost_above_1hr,
    )
    return tuple(round(v / M, 6) for v in values if v is not None)


def normalized(usage: Any) -> TokenUsage:
    """The usage as ownit receives it: LiteLLM's ``usage``, built by its own transformation."""
    lib = litellm()
    response = lib.ModelResponse(
        choices=[{"message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}],
        usage=usage,
    )
    return _usage(response)


# --- each vendor's usage, priced ------------------------------------------------------------

OPENAI_REASONING = {  # o4-mini, chat completions
    "prompt_tokens": 2006,
    "completion_tokens": 1300,
    "total_tokens": 3306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 1024,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def test_openai_cached_and_reasoning_tokens() -> None:
    price = mapped("openai/o4-mini")
    assert rates(price)[:3] == O4_MINI
    for usage in (usage_from(OPENAI_REASONING), normalized(litellm().Usage(**OPENAI_REASONING))):
        assert (usage.prompt_tokens, usage.cached_tokens) == (2006, 1920)
        # Reasoning is inside completion_tokens: counted, and billed once, as output.
        assert (usage.completion_tokens, usage.reasoning_tokens) == (1300, 1024)
        cost = pricing.cost(usage, price)
        assert cost.usd == pytest.approx((86 * 1.10 + 1920 * 0.275 + 1300 * 4.40) * M)
        assert cost.cache_savings_usd == pytest.approx(1920 * (1.10 - 0.275) * M)


def test_openai_responses_api_usage_is_the_same_call() -> None:
    responses = {
        "input_tokens": 2006,
        "input_tokens_details": {"cached_tokens": 1920},
        "output_tokens": 1300,
        "output_tokens_details": {"reasoning_tokens": 1024},
        "total_tokens": 3306,
    }
    assert replace(usage_from(responses), raw=None) == replace(
        usage_from(OPENAI_REASONING), raw=None
    )


def test_azure_global_and_data_zone_deployments() -> None:
    block = {
        "prompt_tokens": 1536,
        "completion_tokens": 420,
        "total_tokens": 1956,
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 1280},
        "completion_tokens_details": {
            "accepted_prediction_tokens": 0,
            "audio_tokens": 0,
            "reasoning_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    usage = normalized(litellm().Usage(**block))
    for model, (full, out, read) in (
        ("azure/gpt-4.1-mini", GPT_41_MINI),
        ("azure/eu/gpt-4.1-mini", GPT_41_MINI_AZURE_EU),
    ):
        price = mapped(model)
        assert rates(price)[:3] == (full, out, read)
        expected = (256 * full + 1280 * read + 420 * out) * M
        assert pricing.cost(usage, price).usd == pytest.approx(expected)


ANTHROPIC_CACHED = {  # Messages API: input_tokens is only the uncached part
    "input_tokens": 50,
    "cache_creation_input_tokens": 2048,
    "cache_read_input_tokens": 10240,
    "cache_creation": {"ephemeral_5m_input_tokens": 1024, "ephemeral_1h_input_tokens": 1024},
    "output_tokens": 503,
    "service_tier": "standard",
}


def test_anthropic_cache_reads_and_both_kinds_of_cache_write() -> None:
    from litellm.llms.anthropic.chat.transformation import AnthropicConfig

    price = bundled("claude-sonnet")
    assert rates(price) == SONNET_45
    via_litellm = normalized(AnthropicConfig().calculate_usage(ANTHROPIC_CACHED, None))
    for usage in (usage_from(ANTHROPIC_CACHED), via_litellm):
        assert (usage.prompt_tokens, usage.cached_tokens) == (50 + 2048 + 10240, 10240)
        assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (2048, 1024)
        cost = pricing.cost(usage, price)
        expected = 50 * 3 + 10240 * 0.30 + 1024 * 3.75 + 1024 * 6.00 + 503 * 15
        assert cost.usd == pytest.approx(expected * M)
        # Reads at a tenth of the price, less the premium of both writes.
        savings = 10240 * (3 - 0.30) - 1024 * (3.75 - 3) - 1024 * (6.00 - 3)
        assert cost.cache_savings_usd == pytest.approx(savings * M)


def test_writing_the_cache_without_reading_it_saves_less_than_nothing() -> None:
    usage = usage_from(
        {"input_tokens": 10, "cache_creation_input_tokens": 4096, "output_tokens": 100}
    )
    cost = pricing.cost(usage, bundled("claude-sonnet"))
    assert cost.cache_savings_usd == pytest.approx(-4096 * (3.75 - 3) * M)
    assert cost.usd == pytest.approx((10 * 3 + 4096 * 3.75 + 100 * 15) * M)


GEMINI_THINKING = {  # generateContent: thoughts are counted apart from the candidates
    "promptTokenCount": 11500,
    "candidatesTokenCount": 1000,
    "totalTokenCount": 22500,
    "cachedContentTokenCount": 10000,
    "thoughtsTokenCount": 10000,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11500}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 10000}],
}


def test_gemini_cached_content_and_thoughts() -> None:
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        VertexGeminiConfig,
    )

    price = bundled("gemini")
    assert rates(price)[:3] == GEMINI_25_FLASH
    response = {"usageMetadata": GEMINI_THINKING}
    via_litellm = normalized(VertexGeminiConfig._calculate_usage(response))
    for usage in (usage_from(response), via_litellm):
        # The 10,000 thinking tokens are billed once, as output, with the 1,000 of the answer.
        assert (usage.completion_tokens, usage.reasoning_tokens) == (11000, 10000)
        assert (usage.prompt_tokens, usage.cached_tokens) == (11500, 10000)
        cost = pricing.cost(usage, price)
        assert cost.usd == pytest.approx((1500 * 0.30 + 10000 * 0.03 + 11000 * 2.50) * M)
        assert cost.cache_savings_usd == pytest.approx(10000 * (0.30 - 0.03) * M)


def test_gemini_thoughts_already_inside_the_candidates_are_not_added_twice() -> None:
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        VertexGeminiConfig,
    )

    block = {
        "promptTokenCount": 100,
        "candidatesTokenCount": 50,
        "thoughtsTokenCount": 20,
        "totalTokenCount": 150,  # prompt + candidates: the thoughts are in the 50
    }
    via_litellm = normalized(VertexGeminiConfig._calculate_usage({"usageMetadata": block}))
    assert usage_from(block).completion_tokens == via_litellm.completion_tokens == 50


BEDROCK_CONVERSE = {  # inputTokens is only the uncached part
    "inputTokens": 24,
    "outputTokens": 412,
    "totalTokens": 7436,
    "cacheReadInputTokens": 5000,
    "cacheWriteInputTokens": 2000,
    "cacheDetails": [{"ttl": "5m", "inputTokens": 1500}, {"ttl": "1h", "inputTokens": 500}],
}


def test_bedrock_converse_cache_reads_and_writes() -> None:
    from litellm.llms.bedrock.chat.converse_transformation import AmazonConverseConfig

    # A geographic cross-region profile (us.) is priced as in-region: 10% over global.
    price = mapped("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert rates(price) == SONNET_45_BEDROCK_REGIONAL
    via_litellm = normalized(AmazonConverseConfig().transform_usage(BEDROCK_CONVERSE))
    for usage in (usage_from(BEDROCK_CONVERSE), via_litellm):
        assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (
            7024,
            5000,
            2000,
        )
        assert usage.cache_write_1h_tokens == 500
        expected = 24 * 3.30 + 5000 * 0.33 + 1500 * 4.125 + 500 * 6.60 + 412 * 16.50
        assert pricing.cost(usage, price).usd == pytest.approx(expected * M)


def test_mistral_usage() -> None:
    block = {
        "prompt_tokens": 3172,
        "total_tokens": 3512,
        "completion_tokens": 340,
        "prompt_tokens_details": {"cached_tokens": 2048},
    }
    price = bundled("mistral")
    assert rates(price)[:3] == MISTRAL_MEDIUM_35
    usage = normalized(litellm().Usage(**block))
    expected = (1124 * 1.50 + 2048 * 0.15 + 340 * 7.50) * M
    assert pricing.cost(usage, price).usd == pytest.approx(expected)


def test_long_prompts_pay_the_long_context_rate_on_every_token() -> None:
    price = mapped("gemini/gemini-2.5-pro")
    assert rates(price, 200_000)[:3] == GEMINI_25_PRO
    assert rates(price, 200_001)[:3] == GEMINI_25_PRO_LONG
    usage = usage_from({"prompt_tokens": 250_000, "completion_tokens": 2_000})
    cost = pricing.cost(usage, price)
    assert cost.usd == pytest.approx((250_000 * 2.50 + 2_000 * 15.00) * M)
    # The row records the rates applied, not the base ones.
    assert cost.price.input_cost_per_token == pytest.approx(2.50 * M)


def test_claude_on_a_regional_vertex_endpoint_pays_googles_regional_uplift(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VERTEXAI_LOCATION", "global")
    assert rates(mapped("vertex_ai/claude-sonnet-4-5")) == SONNET_45
    monkeypatch.setenv("VERTEXAI_LOCATION", "us-east5")
    price = mapped("vertex_ai/claude-sonnet-4-5")
    assert rates(price) == tuple(round(r * 1.1, 6) for r in SONNET_45)
    assert "regional endpoint us-east5" in price.source


def test_nothing_cached_saves_nothing_and_no_usage_is_not_reported() -> None:
    usage = usage_from({"prompt_tokens": 1000, "completion_tokens": 10})
    assert pricing.cost(usage, bundled("gpt")).cache_savings_usd == 0.0
    for empty in (None, {}, {"prompt_tokens": 0, "completion_tokens": 0}):
        assert not usage_from(empty).reported
    assert not normalized(None).reported


def test_counts_that_do_not_add_up_are_never_billed_twice() -> None:
    usage = usage_from(
        {
            "prompt_tokens": 100,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 500},
            "completion_tokens_details": {"reasoning_tokens": 99},
        }
    )
    assert (usage.cached_tokens, usage.reasoning_tokens) == (100, 10)
    _, out, read = GPT_41_MINI
    assert pricing.cost(usage, bundled("gpt")).usd == pytest.approx((100 * read + 10 * out) * M)


# --- the bundled catalogue ------------------------------------------------------------------

PUBLISHED = {
    "claude-sonnet": SONNET_45,
    "gpt": GPT_41_MINI,
    "gemini": GEMINI_25_FLASH,
    "mistral": MISTRAL_MEDIUM_35,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_bundled_prices_are_the_published_ones_and_both_price_lists_agree(name: str) -> None:
    """providers.yaml holds the vendors' prices; LiteLLM's map (which ownit falls back to) and
    genai-prices (a curated list with history) say the same on the day they were checked, so
    a bump of either that disagrees is noticed here."""
    from genai_prices.data_snapshot import get_snapshot

    entry = load_config().models[name]
    price = bundled(name)
    assert rates(price)[: len(PUBLISHED[name])] == PUBLISHED[name]
    assert price.source.startswith("providers.yaml (") and "2026-11-26" in price.source
    assert "-latest" not in entry.model  # a moving alias cannot be priced by name

    litellm_price = mapped(entry.model)
    assert rates(litellm_price)[:3] == rates(price)[:3]
    _, model = get_snapshot().find_provider_model(entry.model, None, "litellm", None)
    listed = model.get_prices(CHECKED)
    genai = [getattr(listed, k) for k in ("input_mtok", "output_mtok", "cache_read_mtok")]
    genai += [listed.cache_write_mtok] if len(PUBLISHED[name]) > 3 else []
    assert tuple(float(getattr(g, "base", g)) for g in genai) == rates(price)[: len(genai)]


def test_a_local_model_is_free_on_purpose() -> None:
    price = bundled("ollama")
    assert rates(price)[:2] == (0.0, 0.0)
    usage = usage_from({"prompt_tokens": 5000, "completion_tokens": 700})
    assert pricing.cost(usage, price).usd == 0.0


# --- a reply without usage ------------------------------------------------------------------


def _no_usage(request: ModelRequest) -> Completion:
    return Completion(content=json.dumps(good(request)), truncated=False, usage=Usage())


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ({"input_cost_per_token": 0, "output_cost_per_token": 0}, "free"),
        ({}, "unpriced"),
    ],
)
def test_usage_missing_from_a_free_or_unpriced_model(
    tmp_path: Path, prices: dict[str, float], expected: str
) -> None:
    """Counted with the tokenizer and marked; a free model stays $0, an unpriced one stays
    without a cost (never $0)."""
    config = tmp_path / "providers.yaml"
    entry = {"model": "openai/local-model", "api_base": "http://127.0.0.1:9/v1", **prices}
    config.write_text(json.dumps({"default": "m", "models": {"m": entry}}))
    patch = tmp_path / "change.patch"
    patch.write_bytes(EXAMPLE.read_bytes())
    request = ReviewRequest(cwd=tmp_path, diff_path=patch, config_path=config)
    asyncio.run(run_review(request, transport=FakeTransport(handler=_no_usage)))
    (call,) = LedgerStore(os.environ["OWNIT_LEDGER_URL"]).calls()
    assert call.usage_estimated and call.outcome == "ok"
    assert call.prompt_tokens == call.estimated_prompt_tokens > 0
    assert call.completion_tokens > 0
    assert call.cost_usd == (0.0 if expected == "free" else None)


def test_an_estimate_teaches_nothing_and_an_empty_reply_still_costs_its_prompt() -> None:
    from pydantic import BaseModel

    from agent.client import Endpoint, ModelClient
    from agent.config import ReviewSettings
    from agent.errors import ModelOutputError
    from agent.ledger import Recorder, RunInfo
    from agent.providers import ModelFacts

    class Answer(BaseModel):
        x: int

    replies = iter(['{"x": 1}', ""])
    transport = FakeTransport(handler=lambda r: Completion(next(replies), False, Usage()))
    facts = ModelFacts(32000, True, 4096, Price(1e-6, 2e-6, None, "test"), True)
    endpoint = Endpoint(resolve("m", ModelEntry(model="openai/m"), {}), facts)
    store = LedgerStore(os.environ["OWNIT_LEDGER_URL"])
    recorder = Recorder(RunInfo(id="run-1", started_at=CHECKED), store)
    client = ModelClient([endpoint], transport, recorder, ReviewSettings(repair_attempts=0))
    prompt = [{"role": "user", "content": "word " * 400}]
    asyncio.run(client.structured(prompt, Answer, "one"))
    assert endpoint.ratio is None  # the margin stays the cautious default, not learnt from us
    with pytest.raises(ModelOutputError):
        asyncio.run(client.structured(prompt, Answer, "two"))
    ok, empty = sorted(store.calls(), key=lambda c: c.purpose)
    assert ok.usage_estimated and empty.usage_estimated
    assert (empty.outcome, empty.completion_tokens) == ("invalid_output", 0)
    assert empty.prompt_tokens == empty.estimated_prompt_tokens > 400
    assert empty.cost_usd == pytest.approx(empty.prompt_tokens * 1e-6)


# --- end to end: ownit review, LiteLLM, each vendor's wire ----------------------------------

runner = CliRunner()


def review(*args: str) -> Any:
    result = runner.invoke(app, ["review", "--diff", str(EXAMPLE), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def the_call() -> Any:
    (call,) = LedgerStore(os.environ["OWNIT_LEDGER_URL"]).calls()
    assert call.outcome == "ok"
    return call


def the_usage(cassette: Any) -> dict[str, Any]:
    """The usage block the server sent: the truth the row must match."""
    (response,) = cassette.responses
    body = json.loads(response["body"]["string"])
    usage: dict[str, Any] = body.get("usage") or body["usageMetadata"]
    return usage


def test_openai_end_to_end(cassette: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_BASE", f"{SERVER_URL}/usage/cached1024-think256/v1")
    review("--model", "gpt")
    call, usage = the_call(), the_usage(cassette)
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == call.cached_tokens == 1024
    assert usage["completion_tokens_details"]["reasoning_tokens"] == call.reasoning_tokens == 256
    assert (call.prompt_tokens, call.completion_tokens) == (prompt, completion)
    full, out, read = GPT_41_MINI
    assert call.cost_usd == pytest.approx(
        ((prompt - 1024) * full + 1024 * read + completion * out) * M
    )
    assert call.cache_savings_usd == pytest.approx(1024 * (full - read) * M)
    assert (call.input_cost_per_token, call.output_cost_per_token) == pytest.approx(
        (full * M, out * M)
    )
    assert call.cache_read_input_token_cost == pytest.approx(read * M)
    assert call.price_source == "providers.yaml (OpenAI list price, checked 2026-11-26)"
    assert not call.usage_estimated
    assert call.raw_usage["completion_tokens_details"]["reasoning_tokens"] == 256


def test_anthropic_end_to_end(cassette: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The prompt is ~1,400 tokens: 768 read from the cache, 384 written to it (128 of them for
    # an hour), the rest uncached.
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_BASE", f"{SERVER_URL}/usage/cached768-write384-hour128")
    review("--model", "claude-sonnet")
    call, usage = the_call(), the_usage(cassette)
    uncached, out_tokens = usage["input_tokens"], usage["output_tokens"]
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (768, 384)
    assert call.prompt_tokens == uncached + 768 + 384  # every input token, as billed
    assert (call.cached_tokens, call.cache_write_tokens) == (768, 384)
    full, out, read, write, write_1h = SONNET_45
    expected = uncached * full + 768 * read + 256 * write + 128 * write_1h + out_tokens * out
    assert call.cost_usd == pytest.approx(expected * M)
    savings = 768 * (full - read) - 256 * (write - full) - 128 * (write_1h - full)
    assert call.cache_savings_usd == pytest.approx(savings * M)
    assert call.cache_creation_input_token_cost == pytest.approx(write * M)
    assert call.price_source == "providers.yaml (Anthropic list price, checked 2026-11-26)"
    assert not call.usage_estimated


def test_gemini_end_to_end(cassette: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("GEMINI_API_BASE", f"{SERVER_URL}/usage/cached1024-think512/v1beta")
    review("--model", "gemini")
    call, meta = the_call(), the_usage(cassette)
    prompt, visible = meta["promptTokenCount"], meta["candidatesTokenCount"]
    assert (meta["cachedContentTokenCount"], meta["thoughtsTokenCount"]) == (1024, 512)
    assert (call.prompt_tokens, call.cached_tokens) == (prompt, 1024)
    assert (call.completion_tokens, call.reasoning_tokens) == (visible + 512, 512)
    full, out, read = GEMINI_25_FLASH
    expected = (prompt - 1024) * full + 1024 * read + (visible + 512) * out
    assert call.cost_usd == pytest.approx(expected * M)
    assert call.cache_savings_usd == pytest.approx(1024 * (full - read) * M)
    assert call.price_source == "providers.yaml (Gemini API list price, checked 2026-11-26)"
    assert not call.usage_estimated


def test_azure_end_to_end_priced_from_litellms_map(
    cassette: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_API_KEY", SECRET)
    entry = {
        "model": "azure/gpt-4.1-mini",
        "api_base": f"{SERVER_URL}/usage/cached1024",
        "api_version": "2024-10-21",
        "api_key": "${AZURE_API_KEY}",
    }
    config = tmp_path / "providers.yaml"
    config.write_text(json.dumps({"default": "azure", "models": {"azure": entry}}))
    review("--config", str(config))
    call, usage = the_call(), the_usage(cassette)
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    full, out, read = GPT_41_MINI
    assert call.cost_usd == pytest.approx(
        ((prompt - 1024) * full + 1024 * read + completion * out) * M
    )
    assert call.price_source == price_map_source()


def test_a_server_that_sends_no_usage_is_estimated_with_the_tokenizer(
    cassette: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_LLM_KEY", SECRET)
    entry = {
        "model": "openai/gpt-local",
        "api_base": f"{SERVER_URL}/usage/nousage/v1",
        "api_key": "${LOCAL_LLM_KEY}",
        "context_window": 32000,
        "input_cost_per_token": 0.000001,
        "output_cost_per_token": 0.000002,
        "structured_output": "json_schema",
    }
    config = tmp_path / "providers.yaml"
    config.write_text(json.dumps({"default": "local", "models": {"local": entry}}))
    out = tmp_path / "out"
    review("--config", str(config), "--format", "json", "--out", str(out))
    (response,) = cassette.responses
    body = json.loads(response["body"]["string"])
    assert "usage" not in body
    call = the_call()
    assert call.usage_estimated and call.raw_usage is None
    # The prompt as ownit counted it before sending; the reply counted now.
    assert call.prompt_tokens == call.estimated_prompt_tokens > 0
    assert call.completion_tokens == count_tokens(body["choices"][0]["message"]["content"])
    assert call.cost_usd == pytest.approx(call.prompt_tokens * 1e-6 + call.completion_tokens * 2e-6)
    data = json.loads((out / "ownit-review.json").read_text())
    assert data["usage"]["cost_usd"] == pytest.approx(call.cost_usd)
