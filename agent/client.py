"""Asking models for structured answers: sizing, retries, repairs, fallbacks, recording.

The wire is behind ``Transport`` (one ``complete`` call that returns a ``Completion``, the reply
and the usage the provider reported, or raises a ``ProviderError``): ``llm.LiteLLMTransport`` in
real runs, a fake in tests, as httpx's ``MockTransport`` stands in for the network. Everything
that decides what happens when a provider or a model misbehaves lives here, in-process testable:

- every prompt is sized against the model's window before it is sent, with a margin that learns
  from the ``prompt_tokens`` the provider reports; a refusal for size is ``ContextOverflowError``
  for the caller to split, never a failure;
- transient errors are retried (honouring Retry-After), every attempt its own ledger row;
- a reply that is not the schema (or that the caller's ``check`` rejects) is sent back for repair;
- a model that cannot answer hands the call to the next in its fallback chain;
- each call is written to the ledger before it is sent and again the moment it is answered,
  priced from the reported usage (``pricing.cost``), or from our own counts when the provider
  reported none.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from agent.config import ReviewSettings
from agent.errors import (
    ContextOverflowError,
    ModelCallError,
    ModelOutputError,
    NoModelError,
    ProviderError,
    RequestRejectedError,
    TransientError,
)
from agent.ledger import CallRecord, Recorder
from agent.pricing import Cost, Price, TokenUsage, cost
from agent.providers import ModelFacts, ResolvedModel
from agent.tokens import count_messages, count_tokens
from agent.validation import describe

T = TypeVar("T", bound=BaseModel)
Messages = list[dict[str, str]]

# Before the first reply, our count (o200k) is assumed to undercount the model's by this much.
INITIAL_MARGIN = 0.10
# Once a model's own count is known, keep this much on top of the largest ratio seen.
LEARNED_MARGIN = 0.05
# A reply needs room; a prompt that leaves less than this for it is split instead.
MIN_REPLY_TOKENS = 1024
RETRY_AFTER_CAP = 60.0


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)  # looked up at call time, so tests can patch it


@dataclass(frozen=True)
class ModelRequest:
    model: ResolvedModel
    messages: Messages
    schema: type[BaseModel] | None  # sent as response_format when set
    max_tokens: int
    temperature: float
    timeout: float


# The transport reports the provider's usage; the client prices it (``pricing.cost``).
Usage = TokenUsage


@dataclass(frozen=True)
class ReportedCost:
    """What the endpoint itself said a call cost (a gateway's header), and who said it."""

    usd: float
    source: str  # recorded as the row's price_source


@dataclass(frozen=True)
class Completion:
    content: str
    truncated: bool  # the model stopped at max_tokens
    usage: Usage  # as the provider reported it: all zeros when it sent none
    reported_cost: ReportedCost | None = None


class Transport(Protocol):
    async def complete(self, request: ModelRequest) -> Completion: ...


@dataclass
class Endpoint:
    """One model as this run uses it, with what the run has learnt about it.

    ``facts`` may be given as a function that looks them up: it is called when they are first
    needed (the first request, or sizing one), so a run does not wait for LiteLLM's price map
    before it has to."""

    model: ResolvedModel
    lookup: ModelFacts | Callable[[], ModelFacts]
    ratio: float | None = None  # the provider's prompt_tokens / our count, the largest seen
    unusable: ProviderError | None = None  # credentials rejected, model not found
    notes: list[str] = field(default_factory=list)
    # The largest request (estimated prompt + reply limit) the provider has answered: a refusal
    # for size below it is not about the window (a pool of servers with different windows, a
    # flaky proxy) and teaches nothing.
    largest_ok: int = 0
    doubted_overflow: bool = False  # the first refusal for size before any answer was retried
    _facts: ModelFacts | None = field(default=None, init=False, repr=False)
    _window: int | None = field(default=None, init=False, repr=False)
    _send_schema: bool | None = field(default=None, init=False, repr=False)

    @property
    def facts(self) -> ModelFacts:
        if self._facts is None:
            self._facts = self.lookup if isinstance(self.lookup, ModelFacts) else self.lookup()
        return self._facts

    @property
    def window(self) -> int:
        """The window the provider is believed to have (learnt from its refusals)."""
        return self.facts.context_window if self._window is None else self._window

    @window.setter
    def window(self, value: int) -> None:
        self._window = value

    @property
    def send_schema(self) -> bool:
        return self.facts.send_schema if self._send_schema is None else self._send_schema

    @send_schema.setter
    def send_schema(self, value: bool) -> None:
        self._send_schema = value

    @property
    def name(self) -> str:
        return self.model.name

    def estimate(self, our_count: int) -> int:
        """The provider's likely count of a prompt we count as ``our_count``."""
        factor = self.ratio * (1 + LEARNED_MARGIN) if self.ratio else 1 + INITIAL_MARGIN
        return math.ceil(our_count * max(factor, 1.0))

    def learn_usage(self, our_count: int, provider_count: int) -> None:
        if our_count >= 200 and provider_count > 0:  # tiny prompts say little about the ratio
            self.ratio = max(self.ratio or 0.0, provider_count / our_count)

    def learn_overflow(self, exc: ContextOverflowError, our_count: int, max_tokens: int) -> None:
        """The provider refused a prompt for size: believe what it said about its window, but
        never below what it has already answered."""
        if exc.window:
            self.window = min(self.window, exc.window)
        if exc.prompt_tokens and our_count:
            self.ratio = max(self.ratio or 0.0, exc.prompt_tokens / our_count)
        if not exc.window and not exc.prompt_tokens:
            # It did not say: the window is smaller than what we sent, by an unknown amount.
            self.window = min(self.window, int((self.estimate(our_count) + max_tokens) * 0.8))
        self.window = max(self.window, self.largest_ok)


@dataclass(frozen=True)
class Answer(Generic[T]):
    value: T
    model_name: str  # the model that answered (a fallback, when the first could not)
    record: CallRecord


class ModelClient:
    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        transport: Transport,
        recorder: Recorder,
        settings: ReviewSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        routed: Sequence[Endpoint] = (),
    ) -> None:
        """``endpoints``: the run's model first, then its fallback chain; ``routed``: the other
        models routing rules may name (a call asks for its chain by names)."""
        if not endpoints:
            raise ValueError("a model client needs at least one model")
        self.endpoints = list(endpoints)
        # One endpoint per model, shared by every chain it is in: what a call learns about a
        # model (its window, a rejected key) holds for all of them.
        self.known = {e.name: e for e in [*routed, *endpoints]}
        self.transport = transport
        self.recorder = recorder
        self.settings = settings
        self.sleep = sleep or _sleep

    @property
    def primary(self) -> Endpoint:
        return self.endpoints[0]

    def lead_with(self, endpoint: Endpoint) -> None:
        """Review with ``endpoint`` from now on (a budget chose a cheaper model): the model it
        replaces leaves the chain, its fallbacks stay."""
        replaced = self.primary.name
        rest = [e for e in self.endpoints if e.name not in (replaced, endpoint.name)]
        self.endpoints = [endpoint, *rest]

    def notes(self) -> list[str]:
        return [note for e in self.known.values() for note in e.notes]

    def chain(self, models: Sequence[str] | None = None) -> list[Endpoint]:
        """The endpoints of a routed chain (names this run cannot use are left out), or the
        run's own chain."""
        if models is None:
            return self.endpoints
        return [self.known[n] for n in models if n in self.known] or self.endpoints

    def _first_usable(self, models: Sequence[str] | None = None) -> Endpoint:
        chain = self.chain(models)
        return next((e for e in chain if e.unusable is None), chain[0])

    def count(self, messages: Messages) -> int:
        """Our own count of a prompt (the provider's is ``Endpoint.estimate`` of it)."""
        return count_messages(messages)

    def prompt_budget(self) -> int:
        """The largest prompt, in our count, the first usable model takes with room to reply."""
        endpoint = self._first_usable()
        factor = endpoint.estimate(10_000) / 10_000
        return max(0, int((endpoint.window - self._min_reply()) / factor))

    def fits(self, messages: Messages, models: Sequence[str] | None = None) -> bool:
        """Whether the first usable model could take this prompt with room to reply."""
        endpoint = self._first_usable(models)
        return self._room(endpoint, count_messages(messages)) >= self._min_reply()

    async def structured(
        self,
        messages: Messages,
        schema: type[T],
        purpose: str,
        *,
        check: Callable[[T], str | None] | None = None,
        overflow_to_fallback: bool = False,
        models: Sequence[str] | None = None,
        route: str | None = None,
        prompt_tokens: int | None = None,
    ) -> Answer[T]:
        """A reply that validates as ``schema`` (and passes ``check``, which returns why a
        valid reply is still unusable, or None).

        Raises ``ContextOverflowError`` when the prompt does not fit (the caller splits it;
        with ``overflow_to_fallback``, for a prompt that cannot be split, the fallbacks are
        tried first), ``NoModelError`` when no model in the chain can be used at all, and
        another ``ModelCallError`` when every model in the chain failed this call.

        ``models`` names the chain (a routing rule's; default: the run's model and its
        fallbacks); ``route`` says why it was chosen, for the ledger. ``prompt_tokens``: our
        count of ``messages`` when the caller has it already (the planner counted the chunk).
        """
        failures: list[str] = []
        last: ModelCallError | None = None
        overflows: list[ContextOverflowError] = []
        chain = self.chain(models)
        for endpoint in chain:
            if endpoint.unusable is not None:
                failures.append(f"{endpoint.name}: {endpoint.unusable.message}")
                continue
            fallback_from = None if endpoint is chain[0] else chain[0].name
            try:
                return await self._ask(
                    endpoint, messages, schema, purpose, check, fallback_from, route, prompt_tokens
                )
            except ContextOverflowError as exc:
                if not overflow_to_fallback:
                    raise
                overflows.append(exc)
                failures.append(f"{endpoint.name}: {exc.message}")
                continue
            except ProviderError as exc:
                if exc.model_unusable:
                    endpoint.unusable = exc
                last = exc
            except ModelOutputError as exc:
                last = exc
            failures.append(f"{endpoint.name}: {last.message}")
        if last is None and overflows:
            raise ContextOverflowError("too large for every model: " + "; ".join(failures))
        if all(e.unusable is not None for e in chain):
            first = chain[0].unusable
            hint = first.hint if first else None
            raise NoModelError("no configured model can be used: " + "; ".join(failures), hint=hint)
        assert last is not None
        if len(failures) == 1:
            raise last
        raise ModelCallError(
            "every model in the fallback chain failed: " + "; ".join(failures), hint=last.hint
        ) from last

    async def _ask(
        self,
        endpoint: Endpoint,
        messages: Messages,
        schema: type[T],
        purpose: str,
        check: Callable[[T], str | None] | None,
        fallback_from: str | None,
        route: str | None,
        prompt_tokens: int | None = None,
    ) -> Answer[T]:
        history = list(messages)
        repairs_left = self.settings.repair_attempts
        known = prompt_tokens  # our count of ``history``, while it is the caller's messages
        while True:
            record, reply = await self._complete(
                endpoint, history, schema, purpose, fallback_from, route, known
            )
            value, problem = _parse(reply.content, schema)
            if value is not None and check is not None:
                problem = check(value)
            if value is not None and problem is None:
                record = await self.recorder.update_async(record, outcome="ok")
                return Answer(value, endpoint.name, record)
            assert problem is not None
            if reply.truncated:
                problem = f"the reply was cut off at its token limit; {problem}"
            # The unusable reply was still billed: it stays in the ledger, with why.
            await self.recorder.update_async(
                record, outcome="invalid_output", error=f"{schema.__name__}: {problem}"
            )
            if repairs_left <= 0:
                raise ModelOutputError(
                    f"{endpoint.name} did not return a usable {schema.__name__}: {problem}",
                    hint="try a stronger model with --model, or add a fallback for it in "
                    "providers.yaml",
                )
            repairs_left -= 1
            history = self._repair_messages(endpoint, messages, reply, problem)
            known = None

    def _repair_messages(
        self, endpoint: Endpoint, messages: Messages, reply: Completion, problem: str
    ) -> Messages:
        """The conversation that asks for a corrected reply, sized to the window: with the
        rejected reply when it fits (and was not cut off), else with only the reason."""
        ask = (
            f"Your reply could not be used: {problem}. Reply again with only the corrected "
            "JSON object, following the schema exactly."
        )
        if reply.truncated:
            ask += " Keep it shorter: it must end within the token limit."
        else:
            with_reply = [
                *messages,
                {"role": "assistant", "content": reply.content},
                {"role": "user", "content": ask},
            ]
            if self._room(endpoint, count_messages(with_reply)) >= self._min_reply():
                return with_reply
        return [*messages, {"role": "user", "content": ask}]

    def _min_reply(self) -> int:
        return min(self.settings.max_output_tokens, MIN_REPLY_TOKENS)

    def _room(self, endpoint: Endpoint, our_count: int) -> int:
        return endpoint.window - endpoint.estimate(our_count)

    def _max_tokens(self, endpoint: Endpoint, our_count: int) -> int:
        """The reply's token limit, or ``ContextOverflowError`` (no call made) when the prompt
        leaves too little room for a reply."""
        room = self._room(endpoint, our_count)
        if room < self._min_reply():
            raise ContextOverflowError(
                f"the prompt (~{endpoint.estimate(our_count):,} tokens) does not fit "
                f"{endpoint.name}'s {endpoint.window:,}-token window with room for a reply"
            )
        limit = min(self.settings.max_output_tokens, endpoint.facts.max_output_tokens or 10**9)
        return min(limit, room)

    async def _complete(
        self,
        endpoint: Endpoint,
        messages: Messages,
        schema: type[BaseModel],
        purpose: str,
        fallback_from: str | None,
        route: str | None = None,
        our_count: int | None = None,
    ) -> tuple[CallRecord, Completion]:
        model = endpoint.model
        if our_count is None:
            our_count = count_messages(messages)
        tries = 0
        while True:
            max_tokens = self._max_tokens(endpoint, our_count)
            tries += 1
            record = await self.recorder.begin_async(
                purpose=purpose,
                model_name=model.name,
                model=model.litellm_model,
                provider=model.provider,
                estimated_prompt_tokens=endpoint.estimate(our_count),
                fallback_from=fallback_from,
                route=route,
            )
            request = ModelRequest(
                model=model,
                messages=messages,
                schema=schema if endpoint.send_schema else None,
                max_tokens=max_tokens,
                temperature=self.settings.temperature,
                timeout=self.settings.timeout_seconds,
            )
            t0 = time.perf_counter()
            try:
                completion = await self.transport.complete(request)
            except ProviderError as exc:
                await self._record_error(record, exc, endpoint.facts.price, t0)
                size = endpoint.estimate(our_count) + max_tokens
                first_refusal = not endpoint.largest_ok and not endpoint.doubted_overflow
                if isinstance(exc, ContextOverflowError) and first_refusal:
                    # Nothing answered yet to compare with: ask once more before believing a
                    # window that would change the whole run.
                    endpoint.doubted_overflow = True
                    tries -= 1
                    continue
                if isinstance(exc, ContextOverflowError) and size > endpoint.largest_ok:
                    endpoint.learn_overflow(exc, our_count, max_tokens)
                    raise
                if isinstance(exc, ContextOverflowError):
                    # It answered larger requests than this one: not the window. Retry.
                    exc = TransientError(
                        f"{model.name} refused for size a request smaller than ones it has "
                        f"answered: {exc.message}",
                        status=exc.status,
                    )
                if endpoint.send_schema and _refuses_schema(exc):
                    # Some servers do not take response_format: ask through the prompt only.
                    endpoint.send_schema = False
                    endpoint.notes.append(
                        f"{model.name} refused response_format; the schema was sent in the "
                        "prompt only (set structured_output: prompt for it in providers.yaml)"
                    )
                    tries -= 1
                    continue
                if not exc.retryable or tries > self.settings.retries:
                    raise _after_tries(exc, model.name, tries) from exc
                backoff = self.settings.retry_backoff_seconds * 2 ** (tries - 1)
                await self.sleep(max(backoff, min(exc.retry_after, RETRY_AFTER_CAP)))
                continue
            latency = round((time.perf_counter() - t0) * 1000)
            usage = completion.usage
            if not usage.reported:
                # No usage block (some streams, some local servers): our own counts, the
                # prompt's as written before sending, priced and marked as an estimate. An
                # empty reply still cost its prompt.
                usage = usage.estimate(
                    record.estimated_prompt_tokens, count_tokens(completion.content)
                )
            priced = _priced(usage, endpoint.facts.price, completion.reported_cost)
            record = await self.recorder.update_async(
                record,
                outcome="answered",
                latency_ms=latency,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                raw_usage=usage.raw,
                usage_estimated=usage.estimated,
                **priced,
            )
            if not usage.estimated:  # our own estimate says nothing of the model's tokenizer
                endpoint.learn_usage(our_count, usage.prompt_tokens)
            endpoint.largest_ok = max(
                endpoint.largest_ok, endpoint.estimate(our_count) + max_tokens
            )
            return record, completion

    async def _record_error(
        self, record: CallRecord, exc: ProviderError, price: Price | None, t0: float
    ) -> None:
        # A provider that answered with an error status billed nothing; one that never answered
        # in full (a timeout, a dropped connection, a cut-off body) may have: unknown, not zero.
        fields: dict[str, Any] = {"cost_usd": None}
        if not exc.billing_unknown:  # $0, at whatever price, or none
            fields = _cost_fields(cost(TokenUsage(), price)) if price else {"cost_usd": 0.0}
        await self.recorder.update_async(
            record,
            outcome="error",
            latency_ms=round((time.perf_counter() - t0) * 1000),
            error=exc.message,  # the recorder redacts what it writes
            **fields,
        )


def _priced(usage: Usage, price: Price | None, reported: ReportedCost | None) -> dict[str, Any]:
    """The cost fields of an answered call. Our own price when the model has one and the
    provider reported the usage: it keeps the unit prices, so the row can be recomputed, and it
    is the price every other route to the model is charged at (a gateway's figure may hold its
    own discounts or margins). The cost the endpoint reported only when we would otherwise have
    none, or only an estimate from our own token counts."""
    if reported is not None and (price is None or usage.estimated):
        return {"cost_usd": reported.usd, "price_source": reported.source}
    return _cost_fields(cost(usage, price) if price is not None else None)


def _cost_fields(priced: Cost | None) -> dict[str, Any]:
    """The cost and the unit prices it was computed with, for the ledger; none of them for
    an unpriced model or a call whose billing is unknown (None, never $0)."""
    if priced is None:
        return {"cost_usd": None}
    price = priced.price
    return {
        "cost_usd": priced.usd,
        "cache_savings_usd": priced.cache_savings_usd,
        "input_cost_per_token": price.input_cost_per_token,
        "output_cost_per_token": price.output_cost_per_token,
        "cache_read_input_token_cost": price.cache_read_input_token_cost,
        "cache_creation_input_token_cost": price.cache_creation_input_token_cost,
        "price_source": price.source,
    }


_SCHEMA_PARAM = re.compile(r"response_format|json_schema|structured output|output_format", re.I)


def _refuses_schema(exc: ProviderError) -> bool:
    return isinstance(exc, RequestRejectedError) and bool(_SCHEMA_PARAM.search(exc.message))


def _after_tries(exc: ProviderError, model: str, tries: int) -> ProviderError:
    """The same error, saying how many attempts were made when there was more than one."""
    if tries <= 1:
        return exc
    again = type(exc)(
        f"{model} failed after {tries} attempts: {exc.message}",
        hint=exc.hint,
        status=exc.status,
    )
    return again


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


def _parse(content: str, schema: type[T]) -> tuple[T | None, str | None]:
    if not content.strip():
        return None, "the reply was empty"
    try:
        return schema.model_validate_json(extract_json(content)), None
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return None, "the reply is not a JSON object"
        return None, describe(exc)
