"""The one module that talks to LiteLLM: model facts, the transport, prices, provider errors.

Nodes and the model client never import litellm. Keys, api_base and options are passed per
call; no ``litellm.*`` global that changes a call is set and no secret is copied into
``os.environ``. LiteLLM's exceptions are not one tree (``BadRequestError``, ``NotFoundError``,
``ContextWindowExceededError``... derive from ``openai.APIError``, not ``litellm.APIError``), so
every exception from a call is mapped here, once, onto ownit's ``ProviderError`` tree, with the
provider's message redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import re
import threading
from dataclasses import replace
from importlib.metadata import version
from types import ModuleType
from typing import Any

from agent import gateway
from agent.client import Completion, ModelRequest, ReportedCost
from agent.config import env_refs
from agent.errors import (
    ContentPolicyError,
    ContextOverflowError,
    CredentialsError,
    ModelNotFoundError,
    ProviderError,
    RequestRejectedError,
    TransientError,
)
from agent.pricing import Price, TokenUsage, usage_from
from agent.providers import ModelFacts, ResolvedModel, entry_facts, entry_price
from agent.redact import guard_logger

# Without these litellm fetches its price map at import, loads a .env from the working
# directory, and llama-named models try to download a tokenizer. They are behaviour switches,
# not secrets.
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_MODE": "PRODUCTION",
    "HF_HUB_OFFLINE": "1",
}
DEFAULT_CONTEXT_WINDOW = 8192


_loaded: ModuleType | None = None
_loading = threading.Lock()  # held while litellm is imported, by whichever thread does it
_loader: threading.Thread | None = None


def litellm() -> ModuleType:
    """Import litellm on first use only: it costs ~1.5 s and 2,700 modules. When ``preload``
    started the import on its thread, this waits for it to finish."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _loading:
        if _loaded is None:
            _loaded = _import_litellm()
        return _loaded


def preload() -> None:
    """Start importing litellm on a background thread, so that the review reads, parses, masks
    and plans the diff meanwhile and its first request leaves as soon as both are done.

    The thread is not a daemon: a run that ends before it needs litellm (a bad config) waits
    for the import at exit rather than tearing the interpreter down under it. What else the
    main thread imports meanwhile must not be half of an import cycle with litellm's modules
    (two threads importing each other's modules deadlock); tiktoken is the one both import, so
    it is loaded here first. An import that fails on the thread fails again, and is reported,
    where litellm is first used."""
    global _loader
    if _loaded is not None or _loader is not None:
        return
    from agent.tokens import encoding

    encoding()
    _loader = threading.Thread(target=_load_quietly, name="ownit-import-litellm")
    _loader.start()


def _load_quietly() -> None:
    with contextlib.suppress(BaseException):
        litellm()


def _import_litellm() -> ModuleType:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    # Collecting during this import is wasted work: almost everything it allocates lives for
    # the rest of the process. Freezing keeps later collections from re-scanning it. (On the
    # preload thread this also pauses collection for the main thread's planning, and freezes
    # what it holds by then: the run's diff and plan, which live to its end anyway.)
    gc.disable()
    try:
        import litellm as module
    finally:
        gc.enable()
        gc.freeze()
    # LiteLLM logs warnings meant for its proxy operators (cost-map notes) on every call;
    # ownit reports what matters itself. What it still logs may quote a request: redacted.
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        guard_logger(name)
    # The one global ownit sets: LiteLLM otherwise prints a "Give Feedback" banner to stdout
    # on every failed call, into the middle of the review. It changes no call's behaviour.
    module.suppress_debug_info = True
    return module


def price_map_source() -> str:
    return f"litellm {version('litellm')} price map"


# --- what is known about a model ------------------------------------------------------------


def model_facts(model: ResolvedModel) -> ModelFacts:
    """What the run needs to know about ``model``: providers.yaml's figures, LiteLLM's map for
    the ones it does not give. A model providers.yaml describes in full is not looked up, so
    planning for it does not wait for LiteLLM to load (``preload``)."""
    if (configured := entry_facts(model.entry)) is not None:
        return configured
    lib = litellm()
    try:
        info = lib.get_model_info(model.litellm_model)
    except Exception:  # litellm raises a bare Exception for models it does not know
        info = {}
    entry = model.entry
    window = entry.context_window or info.get("max_input_tokens") or info.get("max_tokens")
    return ModelFacts(
        context_window=int(window or DEFAULT_CONTEXT_WINDOW),
        window_known=bool(window),
        max_output_tokens=entry.max_output_tokens or info.get("max_output_tokens"),
        price=_price(model, info),
        send_schema=entry.structured_output != "prompt",
    )


def _price(model: ResolvedModel, info: dict[str, Any]) -> Price | None:
    """providers.yaml's price when it gives one, else LiteLLM's map; None when neither knows.

    The call is priced by ``pricing.cost`` from these rates, not by LiteLLM's
    ``completion_cost``: its one float cannot say which rates it applied (so the ledger could
    not store them), it is 0.0 rather than unknown for models it cannot price, and it drops
    the Vertex regional uplift unless told the location."""
    if (configured := entry_price(model.entry)) is not None:
        return configured
    price = _map_price(info)
    return None if price is None else _uplifted(price, model, info)


_TIER = re.compile(r"^input_cost_per_token_above_(\d+)(k?)_tokens$")


def _map_price(info: dict[str, Any]) -> Price | None:
    prompt, completion = _rate(info, "input_cost_per_token"), _rate(info, "output_cost_per_token")
    # LiteLLM's map lists retired and router models at 0/0: that is "no price", not "free".
    if prompt is None or completion is None or not (prompt or completion):
        return None

    keys = (
        "input_cost_per_token",
        "output_cost_per_token",
        "cache_read_input_token_cost",
        "cache_creation_input_token_cost",
        "cache_creation_input_token_cost_above_1hr",
    )
    cache: dict[str, Any] = {k: _rate(info, k) for k in keys[2:]}
    base = replace(Price(prompt, completion, None, price_map_source()), **cache)
    tiers = []
    for key in info:
        if (found := _TIER.match(key)) and _rate(info, key) is not None:
            # Above the threshold every rate the map lists applies; the rest stay the base's.
            above = f"_above_{found[1]}{found[2]}_tokens"
            listed: dict[str, Any] = {
                k: r for k in keys if (r := _rate(info, k + above)) is not None
            }
            tiers.append((int(found[1]) * (1000 if found[2] else 1), replace(base, **listed)))
    return replace(base, tiers=tuple(sorted(tiers, key=lambda t: t[0])))


def _rate(info: dict[str, Any], key: str) -> float | None:
    value = info.get(key)
    try:
        rate = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return rate if rate is not None and math.isfinite(rate) and rate >= 0 else None


def _uplifted(price: Price, model: ResolvedModel, info: dict[str, Any]) -> Price:
    """The map's price with the uplift the endpoint adds, where the map says there is one:
    Vertex AI's regional (non-global) endpoints, OpenAI's regional data-residency hosts.
    Resolved as LiteLLM resolves them when it sends the call."""
    from litellm.litellm_core_utils.llm_cost_calc.utils import (
        get_regional_uplift_multiplier,
        get_vertex_regional_endpoint_uplift,
    )
    from litellm.llms.openai.data_residency import infer_openai_data_residency

    if model.provider.startswith("vertex_ai"):
        from litellm.llms.vertex_ai.vertex_llm_base import VertexBase

        name = model.litellm_model.split("/", 1)[-1]
        location = VertexBase.get_vertex_region(VertexBase.safe_get_vertex_ai_location({}), name)
        factor = get_vertex_regional_endpoint_uplift(info, location)  # type: ignore[arg-type]
        if factor != 1.0:
            return price.scaled(factor, f"Vertex AI regional endpoint {location}")
    residency = infer_openai_data_residency(model.provider, model.api_base)
    factor = get_regional_uplift_multiplier(info, residency)  # type: ignore[arg-type]
    if factor != 1.0:
        return price.scaled(factor, f"OpenAI {residency} data residency")
    return price


# --- the transport --------------------------------------------------------------------------


class LiteLLMTransport:
    """``client.Transport`` over ``litellm.acompletion``. ``attribution``: the run's identity,
    sent with every call to a model reached through a gateway (``ResolvedModel.gateway``)."""

    def __init__(
        self, redact: Any = lambda s: s, attribution: gateway.Attribution | None = None
    ) -> None:
        self.redact = redact
        self.attribution = attribution

    async def complete(self, request: ModelRequest) -> Completion:
        lib = litellm()
        model = request.model
        kwargs: dict[str, Any] = {
            "model": model.litellm_model,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "timeout": request.timeout,
            # Retries are the client's, so that every attempt is a ledger row.
            "max_retries": 0,
            "num_retries": 0,
            # Reasoning models reject temperature; drop what a model does not take.
            "drop_params": True,
        }
        if model.api_base:
            kwargs["api_base"] = model.api_base
        if model.api_key:
            kwargs["api_key"] = model.api_key.get_secret_value()
        elif model.entry.api_base:
            # A configured server with no key (llama.cpp, vLLM, LM Studio): the OpenAI client
            # refuses to send without one, and such servers ignore it.
            kwargs["api_key"] = "no-key"
        if model.api_version:
            kwargs["api_version"] = model.api_version
        if request.schema is not None:
            kwargs["response_format"] = request.schema
        if model.gateway and self.attribution is not None:
            kwargs["extra_body"] = self.attribution.body()
        try:
            response = await lib.acompletion(**kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every LiteLLM error is mapped; none escapes
            raise provider_error(exc, model, self.redact) from None
        try:
            choice = response.choices[0]
            content = str(choice.message.content or "")
            finish = getattr(choice, "finish_reason", None)
        except (AttributeError, IndexError, TypeError) as exc:
            raise TransientError(
                f"{model.name} sent a reply with no message in it ({type(exc).__name__})"
            ) from None
        return Completion(
            content=content,
            truncated=finish == "length",
            usage=_usage(response),
            reported_cost=_gateway_cost(response) if model.gateway else None,
        )


def _gateway_cost(response: Any) -> ReportedCost | None:
    # Read from the header itself, not LiteLLM's ``response_cost``: that one falls back to
    # LiteLLM's own price map when the header is missing, and cannot say which it was.
    usd = gateway.reported_cost(getattr(response, "_hidden_params", None))
    return None if usd is None else ReportedCost(usd, gateway.PRICE_SOURCE)


def _usage(response: Any) -> TokenUsage:
    """The usage block LiteLLM normalized from the provider's (see ``pricing``); all zeros
    when the provider sent none (some streams, some local servers)."""
    usage = getattr(response, "usage", None)
    try:
        raw: dict[str, Any] = usage.model_dump() if usage is not None else {}
    except (AttributeError, TypeError):
        raw = {}
    parsed = usage_from(json.loads(json.dumps(raw, default=str)) if raw else None)
    # LiteLLM fills in a block of zeros when the provider sent none: that is no usage.
    return parsed if parsed.reported else TokenUsage()


# --- provider errors ------------------------------------------------------------------------

_WINDOW = (
    re.compile(r"maximum context length is (\d+)"),
    re.compile(r"tokens? > (\d+) maximum"),
    re.compile(r"n_ctx\W+(\d+)"),
    re.compile(r"while limit is (\d+)"),
    re.compile(r"context (?:window|size|length) (?:of|is) (\d+)"),
)
_PROMPT = (
    re.compile(r"\((\d+) in the messages"),
    re.compile(r"prompt is too long: (\d+) tokens"),
    re.compile(r"n_prompt_tokens\W+(\d+)"),
    re.compile(r"current length is (\d+)"),
    re.compile(r"your messages resulted in (\d+) tokens"),
)


def _first_int(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        if found := pattern.search(text):
            return int(found.group(1))
    return None


def _message(exc: BaseException, redact: Any) -> str:
    """The provider's own words, one line, redacted, without LiteLLM's prefixes."""
    text = redact(str(exc)).strip()
    for prefix in ("litellm.", "OpenAIException - ", "AnthropicException - "):
        text = text.replace(prefix, "")
    lines = [line for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    return first[:500]


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first."""
    chain = [exc]
    while (nxt := exc.__cause__ or exc.__context__) is not None and nxt not in chain:
        chain.append(nxt)
        exc = nxt
    return chain


def _answered_status(chain: list[BaseException]) -> int | None:
    """The HTTP status the provider really answered with. LiteLLM reports a dropped connection
    or a body cut off after a 200 as a 500 of its own making; the status the SDK or the HTTP
    client saw is the one that says whether the provider answered."""
    import httpx
    import openai

    for exc in chain:
        # LiteLLM's own exceptions subclass the SDK's; only the SDK's saw a response.
        sdk = type(exc).__module__.startswith("openai")
        if sdk and isinstance(exc, openai.APIStatusError):
            return exc.status_code
        if isinstance(exc, httpx.HTTPStatusError):
            return exc.response.status_code
    return None


def _reached_provider_unanswered(chain: list[BaseException]) -> bool:
    """The request went out and no complete answer came back: the provider may have billed it.
    (A refused connection sent nothing.)"""
    import httpx
    import openai

    if isinstance(chain[-1], ConnectionRefusedError):
        return False
    transport = (openai.APIConnectionError, httpx.TransportError, OSError, TimeoutError, ValueError)
    return any(isinstance(exc, transport) for exc in chain[1:]) or type(
        chain[-1]
    ).__module__.startswith("aiohttp")


# Where the exceptions of the HTTP path come from: LiteLLM, the vendors' SDKs, the HTTP clients
# and the standard library (sockets, SSL, JSON). Anything else at the root of a failed call was
# raised by something in between (a proxy library, a test recording that does not match).
_HTTP_STACK = (
    "litellm", "openai", "anthropic", "httpx", "httpcore", "h11", "h2", "aiohttp", "anyio",
    "ssl", "socket", "asyncio", "concurrent", "json", "http", "builtins", "pydantic",
    "pydantic_core", "urllib3", "requests",
)  # fmt: skip


def _from_elsewhere(root: BaseException) -> bool:
    return type(root).__module__.split(".")[0] not in _HTTP_STACK


def _retry_after(exc: BaseException) -> float:
    """Seconds the provider asked us to wait (Retry-After); 0 when it did not say."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "litellm_response_headers", None)
    try:
        value = (headers or {}).get("retry-after", 0)
        return max(0.0, float(value))
    except (TypeError, ValueError, AttributeError):  # an HTTP date: use our own backoff
        return 0.0


def provider_error(exc: Exception, model: ResolvedModel, redact: Any) -> ProviderError:
    """Any exception from a LiteLLM call as the ``ProviderError`` that says what to do."""
    lib = litellm()
    message = _message(exc, redact)
    chain = _chain(exc)
    status = _answered_status(chain)
    unknown = status is None and _reached_provider_unanswered(chain)
    if status is None and not unknown:  # LiteLLM refused it itself, before sending
        said_status = getattr(exc, "status_code", None)
        status = said_status if isinstance(said_status, int) else None
    name = model.name
    said = f"{name}: {message}"
    key_var = next(iter(_key_vars(model)), None)

    root = chain[-1]
    if root is not exc and _from_elsewhere(root):
        return RequestRejectedError(
            f"{name}: the request failed before reaching the provider: "
            f"{type(root).__name__}: {_message(root, redact)}"
        )

    if isinstance(exc, lib.ContextWindowExceededError) or _looks_like_overflow(message):
        return ContextOverflowError(
            said,
            window=_first_int(_WINDOW, message),
            prompt_tokens=_first_int(_PROMPT, message),
            status=status,
        )
    if isinstance(exc, lib.ContentPolicyViolationError):
        return ContentPolicyError(
            said,
            hint="the provider's content filter refused this part of the diff; "
            "a fallback model may take it",
            status=status,
        )
    if isinstance(exc, lib.AuthenticationError) or status == 401:
        where = f"export {key_var}=..." if key_var else "check the model's api_key"
        return CredentialsError(
            f"{name} rejected the credentials: {message}",
            hint=f"{where} (the key for {name!r} in providers.yaml), or choose another "
            "model with --model",
            status=status,
        )
    if isinstance(exc, lib.PermissionDeniedError) or status == 403:
        return CredentialsError(
            f"{name} refused access: {message}",
            hint=f"the key works but may not use {model.litellm_model}; check the account's "
            "access, or choose another model with --model",
            status=status,
        )
    if isinstance(exc, lib.NotFoundError) or status == 404:
        return ModelNotFoundError(
            f"{name} was not found: {message}",
            hint=f"check the model string {model.litellm_model!r}"
            + (f" and api_base {model.api_base}" if model.api_base else "")
            + "; `ownit models` lists what is configured",
            status=status,
        )
    if isinstance(exc, lib.RateLimitError) or status == 429:
        return TransientError(
            f"{name} is rate limiting: {message}",
            hint="wait and run again, or lower review.concurrency",
            status=status,
            retry_after=_retry_after(exc),
        )
    if isinstance(exc, lib.Timeout):
        return TransientError(
            f"{name} timed out: {message}", hint=_TIMEOUT_HINT, billing_unknown=unknown
        )
    if unknown or isinstance(exc, lib.APIConnectionError):
        return TransientError(
            f"{name}: the connection failed before a complete answer: {message}",
            hint="check the network and the model's api_base; spend so far is recorded",
            billing_unknown=unknown,
        )
    if isinstance(exc, lib.BadRequestError | lib.UnprocessableEntityError) or status in (400, 422):
        return RequestRejectedError(
            f"{name} refused the request: {message}",
            hint="the provider will not take this request; a fallback model may",
            status=status,
        )
    if status is not None and status < 500 and status not in (408, 409, 425):
        return RequestRejectedError(f"{name} refused the request: {message}", status=status)
    # 5xx, a malformed or cut-off response, an exception LiteLLM did not classify.
    return TransientError(
        f"{name} failed: {message}",
        hint="the provider may be down; spend so far is recorded: run again later, or "
        "add a fallback model in providers.yaml",
        status=status,
        retry_after=_retry_after(exc),
    )


_TIMEOUT_HINT = "the provider is slow or down; raise review.timeout_seconds or run again later"
_OVERFLOW = re.compile(
    r"context length|context window|context size|maximum context|prompt is too long|"
    r"too many tokens|exceeds? the (?:maximum|model)",
    re.I,
)


def _looks_like_overflow(message: str) -> bool:
    return bool(_OVERFLOW.search(message))


def _key_vars(model: ResolvedModel) -> list[str]:
    if model.entry.api_key:
        return env_refs(model.entry.api_key)
    provider = model.provider.upper().replace("-", "_")
    return [f"{provider}_API_KEY"]
