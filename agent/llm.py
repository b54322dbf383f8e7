"""The one place that talks to models: builds each LiteLLM call, prices it, and reports it.

Nodes never import litellm. Keys, api_base and options are passed per call; no ``litellm.*``
global is set and no secret is copied into ``os.environ``. Every attempt, failed or not, is
handed to the ``on_call`` sink the moment it ends, so spend is recorded before anything else can
go wrong.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from types import ModuleType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent.config import ReviewSettings
from agent.errors import ModelCallError, ModelOutputError, NoModelError
from agent.providers import ResolvedModel

T = TypeVar("T", bound=BaseModel)

# Without these litellm fetches its price map at import, loads a .env from the working
# directory, and llama-named models try to download a tokenizer. They are behaviour switches,
# not secrets.
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_MODE": "PRODUCTION",
    "HF_HUB_OFFLINE": "1",
}
DEFAULT_CONTEXT_WINDOW = 8192


@cache
def litellm() -> ModuleType:
    """Import litellm on first use only: it costs ~1.5 s and 2,700 modules."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    # Collecting during this import is wasted work: almost everything it allocates lives for
    # the rest of the process. Freezing keeps later collections from re-scanning it.
    gc.disable()
    try:
        import litellm as module
    finally:
        gc.enable()
        gc.freeze()
    # LiteLLM logs warnings meant for its proxy operators (cost-map notes) on every call;
    # ownit reports what matters itself.
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    # The one global ownit sets: LiteLLM otherwise prints a "Give Feedback" banner to stdout
    # on every failed call, into the middle of the review. It changes no call's behaviour.
    module.suppress_debug_info = True
    return module


@dataclass(frozen=True)
class ModelFacts:
    context_window: int
    max_output_tokens: int | None
    input_cost_per_token: float | None
    output_cost_per_token: float | None
    supports_schema: bool


def _register(model: ResolvedModel) -> None:
    """Prices and window from providers.yaml go into LiteLLM so its cost functions apply them
    (including cache-read prices) exactly as for the models it knows."""
    entry = model.entry
    info: dict[str, Any] = {"litellm_provider": entry.provider, "mode": "chat"}
    for src, dst in (
        ("context_window", "max_input_tokens"),
        ("max_output_tokens", "max_output_tokens"),
        ("input_cost_per_token", "input_cost_per_token"),
        ("output_cost_per_token", "output_cost_per_token"),
        ("cache_read_input_token_cost", "cache_read_input_token_cost"),
    ):
        value = getattr(entry, src)
        if value is not None:
            info[dst] = value
    # Only with prices: a model registered without them would be priced at $0, not unknown.
    if entry.input_cost_per_token is not None:
        litellm().register_model({entry.model: info})


def model_facts(model: ResolvedModel) -> ModelFacts:
    lib = litellm()
    _register(model)
    try:
        info = lib.get_model_info(model.litellm_model)
    except Exception:  # litellm raises a bare Exception for models it does not know
        info = {}
    entry = model.entry
    window = entry.context_window or info.get("max_input_tokens") or info.get("max_tokens")
    try:
        schema_ok = bool(lib.supports_response_schema(model=model.litellm_model))
    except Exception:  # same: unknown model
        schema_ok = False
    if entry.structured_output == "json_schema":
        schema_ok = True
    elif entry.structured_output == "prompt":
        schema_ok = False
    return ModelFacts(
        context_window=int(window or DEFAULT_CONTEXT_WINDOW),
        max_output_tokens=entry.max_output_tokens or info.get("max_output_tokens"),
        input_cost_per_token=_first(entry.input_cost_per_token, info.get("input_cost_per_token")),
        output_cost_per_token=_first(
            entry.output_cost_per_token, info.get("output_cost_per_token")
        ),
        supports_schema=schema_ok,
    )


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


@dataclass(frozen=True)
class CallRecord:
    """One attempt at one model call: the unit a vendor bills and the ledger stores."""

    purpose: str
    attempt: int
    model_name: str
    model: str
    provider: str
    started_at: datetime
    latency_ms: int
    outcome: str  # ok | invalid_output | error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    error: str | None = None
    raw_usage: dict[str, Any] | None = None


CallSink = Callable[[CallRecord], None]

_FENCE = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.DOTALL)


def extract_json(text: str) -> str:
    """Safe, mechanical repairs only: a code fence, or prose around one JSON object."""
    text = text.strip()
    if text.startswith("{"):
        return text
    fenced = _FENCE.search(text)
    if fenced:
        return fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        return text[start : end + 1]
    return text


def _explain_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(reply)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class ModelClient:
    def __init__(self, model: ResolvedModel, settings: ReviewSettings, on_call: CallSink) -> None:
        self.model = model
        self.settings = settings
        self.on_call = on_call
        self.facts = model_facts(model)

    def _redact(self, text: str) -> str:
        key = self.model.api_key.get_secret_value() if self.model.api_key else None
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    async def structured(self, messages: list[dict[str, str]], schema: type[T], purpose: str) -> T:
        """Ask for ``schema``; retry transient failures, send invalid replies back for repair."""
        history = list(messages)
        attempt = 0
        repairs_left = self.settings.repair_attempts
        while True:
            attempt += 1
            reply = await self._complete_with_retries(history, schema, purpose, attempt)
            try:
                parsed = schema.model_validate_json(extract_json(reply.content))
            except ValidationError as exc:
                reason = _explain_validation(exc)
                if reply.truncated:
                    reason = (
                        f"the reply was cut off at {self._max_tokens()} tokens "
                        f"(review.max_output_tokens); {reason}"
                    )
                # The invalid reply was still billed: it is recorded, with why it was refused.
                error = f"not a valid {schema.__name__}: {reason}"
                self.on_call(replace(reply.record, outcome="invalid_output", error=error))
                if repairs_left <= 0:
                    raise ModelOutputError(
                        f"{self.model.name} returned a reply that is not a valid "
                        f"{schema.__name__}: {reason}",
                        hint="try a stronger model with --model, or set "
                        "structured_output: json_schema for it in providers.yaml",
                    ) from exc
                repairs_left -= 1
                history = [
                    *history,
                    {"role": "assistant", "content": reply.content},
                    {
                        "role": "user",
                        "content": "Your reply did not match the schema: "
                        f"{reason}. Reply again with only the corrected JSON object.",
                    },
                ]
                continue
            self.on_call(reply.record)
            return parsed

    async def _complete_with_retries(
        self, messages: list[dict[str, str]], schema: type[BaseModel], purpose: str, attempt: int
    ) -> _Reply:
        lib = litellm()
        transient = (
            lib.RateLimitError,
            lib.APIConnectionError,
            lib.Timeout,
            lib.InternalServerError,
            lib.ServiceUnavailableError,
            lib.BadGatewayError,
        )
        tries = 0
        while True:
            tries += 1
            # Each try has its own idempotency key: a retried call is billed separately.
            key_attempt = attempt if tries == 1 else attempt * 100 + tries
            try:
                return await self._complete(messages, schema, purpose, key_attempt)
            except transient as exc:
                if tries > self.settings.retries:
                    raise ModelCallError(
                        f"{self.model.name} failed after {tries} attempt(s): {self._short(exc)}",
                        hint="the provider may be down or rate limiting; spend so far is "
                        "recorded: run again later, or choose another model with --model",
                    ) from exc
                backoff = self.settings.retry_backoff_seconds * 2 ** (tries - 1)
                await asyncio.sleep(max(backoff, _retry_after(exc)))
            except lib.AuthenticationError as exc:
                raise NoModelError(
                    f"{self.model.name} rejected the credentials: {self._short(exc)}",
                    hint=f"check the key referenced by providers.yaml for {self.model.name!r}",
                ) from exc
            except lib.APIError as exc:
                raise ModelCallError(
                    f"{self.model.name} refused the request: {self._short(exc)}"
                ) from exc

    def _max_tokens(self) -> int:
        return min(self.settings.max_output_tokens, self.facts.max_output_tokens or 10**9)

    def _short(self, exc: BaseException) -> str:
        lines = self._redact(str(exc)).strip().splitlines()
        return (lines[0] if lines else type(exc).__name__)[:400]

    async def _complete(
        self, messages: list[dict[str, str]], schema: type[BaseModel], purpose: str, attempt: int
    ) -> _Reply:
        lib = litellm()
        kwargs: dict[str, Any] = {
            "model": self.model.litellm_model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": self._max_tokens(),
            "timeout": self.settings.timeout_seconds,
            # Retries are ours, so that every attempt is a ledger row.
            "max_retries": 0,
            "num_retries": 0,
            # Reasoning models reject temperature; drop what a model does not take.
            "drop_params": True,
        }
        if self.model.api_base:
            kwargs["api_base"] = self.model.api_base
        if self.model.api_key:
            kwargs["api_key"] = self.model.api_key.get_secret_value()
        elif self.model.entry.api_base:
            # A configured server with no key (llama.cpp, vLLM, LM Studio): the OpenAI client
            # refuses to send without one, and such servers ignore it.
            kwargs["api_key"] = "no-key"
        if self.model.api_version:
            kwargs["api_version"] = self.model.api_version
        if self.facts.supports_schema:
            kwargs["response_format"] = schema

        pending = CallRecord(
            purpose=purpose,
            attempt=attempt,
            model_name=self.model.name,
            model=self.model.litellm_model,
            provider=self.model.provider,
            started_at=datetime.now(UTC),
            latency_ms=0,
            outcome="pending",
        )
        t0 = time.perf_counter()
        try:
            response = await lib.acompletion(**kwargs)
        except Exception as exc:
            latency = round((time.perf_counter() - t0) * 1000)
            self.on_call(
                replace(pending, latency_ms=latency, outcome="error", error=self._short(exc))
            )
            raise
        latency = round((time.perf_counter() - t0) * 1000)
        choice = response.choices[0]
        return _Reply(
            content=str(choice.message.content or ""),
            truncated=getattr(choice, "finish_reason", None) == "length",
            record=replace(pending, latency_ms=latency, outcome="ok", **_usage(response)),
        )


def _retry_after(exc: BaseException) -> float:
    """Seconds the provider asked us to wait (Retry-After), capped; 0 when it did not say."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return min(float(headers.get("retry-after", 0)), 60.0)
    except (TypeError, ValueError):  # an HTTP date instead of seconds: use our own backoff
        return 0.0


@dataclass(frozen=True)
class _Reply:
    content: str
    truncated: bool  # the model stopped at max_tokens
    record: CallRecord


def _usage(response: Any) -> dict[str, Any]:
    usage = getattr(response, "usage", None)
    raw: dict[str, Any] = usage.model_dump() if usage is not None else {}
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return {
        "prompt_tokens": int(raw.get("prompt_tokens") or 0),
        "completion_tokens": int(raw.get("completion_tokens") or 0),
        "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
        "reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0),
        "cost_usd": _cost(response),
        "raw_usage": json.loads(json.dumps(raw, default=str)) if raw else None,
    }


def _cost(response: Any) -> float | None:
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if cost is not None:
        return float(cost)
    try:
        return float(litellm().completion_cost(completion_response=response))
    except Exception:  # litellm raises for a model with no known price: the cost is unknown
        return None
