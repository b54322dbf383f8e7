"""The one module that talks to LiteLLM: model facts, prices, and the mapping of every provider
error onto ownit's error tree."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agent import pricing
from agent.config import ModelEntry
from agent.errors import (
    ContentPolicyError,
    ContextOverflowError,
    CredentialsError,
    ModelNotFoundError,
    RequestRejectedError,
    TransientError,
)
from agent.llm import _usage, litellm, model_facts, price_map_source, provider_error
from agent.pricing import Price
from agent.providers import resolve
from agent.redact import Redactor

KEY = "sk-test-0123456789abcdefghij"


def response_for(model: str, prompt: int, completion: int, cached: int = 0) -> Any:
    lib = litellm()
    return lib.ModelResponse(
        model=model,
        choices=[{"message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}],
        usage=lib.Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details={"cached_tokens": cached},
        ),
    )


def cost(price: Price | None, prompt: int, completion: int, cached: int = 0) -> float | None:
    """What the ledger records for a reply with this usage (the client prices it so)."""
    usage = _usage(response_for("m", prompt, completion, cached))
    return None if price is None else pricing.cost(usage, price).usd


# --- prices -------------------------------------------------------------------------------------


def test_providers_yaml_prices_price_the_call_and_say_so() -> None:
    entry = ModelEntry(
        model="openai/priced-local-model",
        context_window=16000,
        input_cost_per_token=0.000002,
        output_cost_per_token=0.000008,
        price_source="our contract, 2026-11",
    )
    facts = model_facts(resolve("priced", entry, {}))
    assert facts.context_window == 16000 and facts.window_known
    assert facts.price is not None
    assert facts.price.source == "providers.yaml (our contract, 2026-11)"
    assert cost(facts.price, 1000, 500) == pytest.approx(1000 * 2e-6 + 500 * 8e-6)


def test_a_model_without_prices_is_unpriced_not_free() -> None:
    facts = model_facts(resolve("u", ModelEntry(model="openai/unpriced-local-model"), {}))
    assert facts.price is None
    assert facts.context_window == 8192 and not facts.window_known


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-4-20250514",  # retired: LiteLLM's map lists it at 0/0
        "huggingface/meta-llama/Llama-3.1-8B-Instruct",  # router model: 0/0 in the map
    ],
)
def test_a_zero_price_in_litellms_map_is_no_price(model: str) -> None:
    facts = model_facts(resolve("z", ModelEntry(model=model), {}))
    assert facts.price is None


def test_a_price_of_zero_configured_on_purpose_is_free() -> None:
    entry = ModelEntry(
        model="ollama_chat/qwen2.5-coder:7b", input_cost_per_token=0, output_cost_per_token=0
    )
    facts = model_facts(resolve("ollama", entry, {}))
    assert facts.price is not None and facts.price.source == "providers.yaml"
    assert cost(facts.price, 1000, 500) == 0.0


def test_known_models_take_litellm_prices_window_and_source() -> None:
    facts = model_facts(resolve("gpt", ModelEntry(model="openai/gpt-4.1-mini"), {}))
    info = litellm().get_model_info("openai/gpt-4.1-mini")
    assert facts.context_window == info["max_input_tokens"]
    assert facts.price is not None
    assert facts.price.input_cost_per_token == info["input_cost_per_token"]
    assert facts.price.source == price_map_source() and "litellm" in facts.price.source
    # Cached input is billed at its own price.
    expected = 500 * 4e-7 + 500 * 1e-7 + 100 * 1.6e-6
    assert cost(facts.price, 1000, 100, cached=500) == pytest.approx(expected)


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-4-20250514",  # LiteLLM's map lists it at 0/0
        "openai/not-in-any-map",  # LiteLLM knows nothing of it
    ],
)
def test_a_configured_price_wins_over_litellms_zero_or_nothing(model: str) -> None:
    entry = ModelEntry(model=model, input_cost_per_token=3e-6, output_cost_per_token=15e-6)
    facts = model_facts(resolve("m", entry, {}))
    assert facts.price is not None and facts.price.source == "providers.yaml"
    assert cost(facts.price, 1000, 100) == pytest.approx(1000 * 3e-6 + 100 * 15e-6)


def test_every_model_gets_the_schema_unless_prompt_is_configured() -> None:
    unknown = model_facts(resolve("q", ModelEntry(model="openai/qwen2.5-coder"), {}))
    assert unknown.send_schema is True  # LiteLLM does not know it; it is still asked
    prompt = ModelEntry(model="openai/qwen2.5-coder", structured_output="prompt")
    assert model_facts(resolve("q", prompt, {})).send_schema is False


# --- provider errors ----------------------------------------------------------------------------


def _http(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return httpx.Response(status, headers=headers or {}, request=request)


def lite(name: str, message: str, **extra: Any) -> Exception:
    cls = getattr(litellm(), name)
    args: dict[str, Any] = {"message": message, "llm_provider": "openai", "model": "m"}
    if name not in ("Timeout", "APIConnectionError", "ContextWindowExceededError"):
        args["response"] = extra.pop("response", _http(extra.pop("status", 400)))
    args.update(extra)
    return cls(**args)  # type: ignore[no-any-return]


MODEL = resolve("gpt", ModelEntry(model="openai/gpt-x", api_key="${OPENAI_API_KEY}"), {})


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (lambda: lite("BadRequestError", "invalid_request_error: bad"), RequestRejectedError),
        (
            lambda: lite(
                "ContextWindowExceededError",
                "This model's maximum context length is 8192 tokens. However, you requested "
                "9000 tokens (5000 in the messages, 4000 in the completion).",
            ),
            ContextOverflowError,
        ),
        (lambda: lite("NotFoundError", "model not found", status=404), ModelNotFoundError),
        (lambda: lite("AuthenticationError", "bad key", status=401), CredentialsError),
        (lambda: lite("PermissionDeniedError", "no access", status=403), CredentialsError),
        (lambda: lite("UnprocessableEntityError", "nope", status=422), RequestRejectedError),
        (lambda: lite("ContentPolicyViolationError", "blocked"), ContentPolicyError),
        (lambda: lite("RateLimitError", "slow down", status=429), TransientError),
        (lambda: lite("InternalServerError", "boom", status=500), TransientError),
        (lambda: lite("ServiceUnavailableError", "busy", status=503), TransientError),
        (lambda: lite("Timeout", "timed out"), TransientError),
        (lambda: ValueError("something LiteLLM did not classify"), TransientError),
    ],
)
def test_every_litellm_error_maps_onto_owns_tree(exc: Any, kind: type) -> None:
    mapped = provider_error(exc(), MODEL, Redactor())
    assert type(mapped) is kind
    assert mapped.message.startswith("gpt")


def test_context_overflow_carries_the_real_window_and_prompt_size() -> None:
    mapped = provider_error(
        lite(
            "BadRequestError",
            "This model's maximum context length is 8192 tokens. However, you requested 9000 "
            "tokens (5000 in the messages, 4000 in the completion).",
        ),
        MODEL,
        Redactor(),
    )
    assert isinstance(mapped, ContextOverflowError)
    assert (mapped.window, mapped.prompt_tokens) == (8192, 5000)
    anthropic = provider_error(
        lite("BadRequestError", "prompt is too long: 210000 tokens > 200000 maximum"),
        MODEL,
        Redactor(),
    )
    assert isinstance(anthropic, ContextOverflowError)
    assert (anthropic.window, anthropic.prompt_tokens) == (200000, 210000)


def test_a_key_echoed_by_the_provider_is_redacted_from_the_message() -> None:
    exc = lite("NotFoundError", f"no such model (request had Authorization: Bearer {KEY})")
    mapped = provider_error(exc, MODEL, Redactor([KEY]))
    assert KEY not in mapped.message and "***" in mapped.message
    # Even a key ownit was not told about: bearer tokens and sk- keys are masked by shape.
    mapped = provider_error(exc, MODEL, Redactor())
    assert KEY not in mapped.message


def test_credentials_hint_names_the_variable_to_export() -> None:
    mapped = provider_error(lite("AuthenticationError", "bad key", status=401), MODEL, Redactor())
    assert mapped.hint and "export OPENAI_API_KEY=" in mapped.hint


def test_rate_limit_keeps_retry_after() -> None:
    exc = lite("RateLimitError", "slow down", response=_http(429, {"retry-after": "7"}))
    mapped = provider_error(exc, MODEL, Redactor())
    assert isinstance(mapped, TransientError) and mapped.retry_after == 7.0


def test_a_failure_before_the_network_is_not_retried_and_says_what_it_was() -> None:
    """A vcrpy recording that does not match (or a proxy library error) surfaces inside
    LiteLLM as a connection error; retrying it with back-off hides the real cause."""

    class CannotOverwriteExistingCassetteError(Exception):
        pass

    lib = litellm()
    try:
        try:
            raise CannotOverwriteExistingCassetteError("No match for the request body")
        except CannotOverwriteExistingCassetteError as inner:
            raise lib.APIConnectionError(
                message="Connection error.", llm_provider="openai", model="m"
            ) from inner
    except lib.APIConnectionError as exc:
        mapped = provider_error(exc, MODEL, Redactor())
    assert not mapped.retryable
    assert "No match for the request body" in mapped.message


def test_a_real_connection_failure_is_transient() -> None:
    lib = litellm()
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as inner:
            raise lib.APIConnectionError(
                message="Connection error.", llm_provider="openai", model="m"
            ) from inner
    except lib.APIConnectionError as exc:
        mapped = provider_error(exc, MODEL, Redactor())
    assert mapped.retryable


def _raised(outer: Exception, *causes: BaseException) -> Exception:
    """``outer`` raised from ``causes`` (innermost last), as LiteLLM chains them."""
    try:
        for cause in reversed(causes):
            try:
                raise cause
            except BaseException:
                continue
        raise outer from (causes[0] if causes else None)
    except Exception as exc:
        return exc


def test_a_body_cut_off_after_200_is_not_a_500_and_may_have_been_billed() -> None:
    """LiteLLM reports a response cut off mid-body as its own 500; the provider answered 200
    and billed the call. Its cost is unknown, not zero."""
    import httpx

    cut = httpx.ReadError("Response payload is not completed")
    exc = _raised(lite("InternalServerError", "Connection error.", status=500), cut)
    mapped = provider_error(exc, MODEL, Redactor())
    assert isinstance(mapped, TransientError)
    assert mapped.status is None and mapped.billing_unknown


def test_a_real_500_was_answered_and_billed_nothing() -> None:
    import httpx
    import openai

    response = _http(500)
    sdk = openai.InternalServerError("Error code: 500", response=response, body=None)
    http = httpx.HTTPStatusError("500", request=response.request, response=response)
    exc = _raised(lite("InternalServerError", "boom", status=500), sdk, http)
    mapped = provider_error(exc, MODEL, Redactor())
    assert mapped.status == 500 and not mapped.billing_unknown


def test_a_refused_connection_sent_nothing() -> None:
    lib = litellm()
    exc = _raised(
        lib.APIConnectionError(message="Connection error.", llm_provider="openai", model="m"),
        ConnectionRefusedError(111, "Connection refused"),
    )
    mapped = provider_error(exc, MODEL, Redactor())
    assert mapped.retryable and not mapped.billing_unknown
