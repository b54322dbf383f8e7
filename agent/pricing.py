"""What a model call costs: the provider's usage, normalized, at a known unit price.

Pure data and arithmetic, no litellm: ``llm.py`` builds a ``Price`` (from providers.yaml or
LiteLLM's price map) and reads the usage block; the model client prices each reply with
``cost`` and writes the cost, the unit prices it applied and their source into the ledger, so a
later price change never rewrites history.

Every vendor reports usage differently; ``TokenUsage`` is one shape for all of them, in which
the prompt counts every input token (cache reads and cache writes included) and the completion
counts every output token (reasoning included), so each token is billed exactly once:

=====================  ==========================  =============================================
shape                  prompt (all input)          cache reads / writes, reasoning
=====================  ==========================  =============================================
OpenAI chat, Azure,    ``prompt_tokens``           ``prompt_tokens_details.cached_tokens``;
Mistral, LiteLLM's                                 LiteLLM adds ``cache_creation_tokens`` (and
``usage`` for every                                the 5m/1h split) for Anthropic and Bedrock;
provider                                           ``completion_tokens_details.reasoning_tokens``
                                                   (inside ``completion_tokens``)
Anthropic Messages     ``input_tokens`` + reads +  ``cache_read_input_tokens``,
                       writes                      ``cache_creation_input_tokens``
                                                   (``cache_creation.ephemeral_1h_input_tokens``);
                                                   thinking is inside ``output_tokens``
Gemini                 ``promptTokenCount``        ``cachedContentTokenCount``;
``usageMetadata``                                  ``thoughtsTokenCount``, *outside*
                                                   ``candidatesTokenCount`` unless the total
                                                   says otherwise
Bedrock Converse       ``inputTokens`` + reads +   ``cacheReadInputTokens``,
                       writes                      ``cacheWriteInputTokens`` (``cacheDetails``
                                                   ttl 1h); thinking inside ``outputTokens``
OpenAI Responses       ``input_tokens``            ``input_tokens_details.cached_tokens``,
                                                   ``output_tokens_details.reasoning_tokens``
=====================  ==========================  =============================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

# --- usage -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenUsage:
    """A call's tokens as billed. Field names are the ledger's columns."""

    prompt_tokens: int = 0  # every input token: uncached, cache reads and cache writes
    completion_tokens: int = 0  # every output token, reasoning included
    cached_tokens: int = 0  # input read from the provider's cache
    cache_write_tokens: int = 0  # input written to the cache (all lifetimes)
    cache_write_1h_tokens: int = 0  # of which written for an hour (Anthropic, Bedrock)
    reasoning_tokens: int = 0  # of the completion, spent thinking
    raw: dict[str, Any] | None = None  # the usage block as received
    estimated: bool = False  # counted with the tokenizer: the provider reported none

    @property
    def reported(self) -> bool:
        return self.prompt_tokens > 0 or self.completion_tokens > 0

    def estimate(self, prompt_tokens: int, completion_tokens: int) -> TokenUsage:
        """This usage with our own counts in place of the ones the provider did not send."""
        return replace(
            self,
            prompt_tokens=max(0, prompt_tokens),
            completion_tokens=max(0, completion_tokens),
            estimated=True,
        )


def usage_from(block: Mapping[str, Any] | None) -> TokenUsage:
    """The usage a provider reported, in any shape ownit receives (see the module docstring).
    An absent or empty block is all zeros: ``reported`` is False."""
    if not block:
        return TokenUsage()
    raw = dict(block)
    if isinstance(meta := block.get("usageMetadata"), Mapping):
        block = meta
    if "promptTokenCount" in block or "candidatesTokenCount" in block:
        return _gemini(block, raw)
    if "inputTokens" in block or "outputTokens" in block:
        return _converse(block, raw)
    if "prompt_tokens" in block or "completion_tokens" in block:
        return _chat(block, raw)
    if "input_tokens" in block or "output_tokens" in block:
        if isinstance(block.get("input_tokens_details"), Mapping):
            return _responses(block, raw)
        return _anthropic(block, raw)
    return TokenUsage(raw=raw)


def _n(value: Any) -> int:
    """A token count; anything else (None, a string, a negative number) is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(0, int(value))


def _get(block: Mapping[str, Any], *path: str) -> int:
    value: Any = block
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return _n(value)


def _normalized(
    raw: dict[str, Any],
    prompt: int,
    completion: int,
    reads: int,
    writes: int,
    writes_1h: int,
    reasoning: int,
) -> TokenUsage:
    # Counts that do not add up (a proxy's rounding, a partial stream) are clamped, never
    # billed twice: reads and writes are part of the prompt, reasoning part of the completion.
    reads = min(reads, prompt)
    writes = min(writes, prompt - reads)
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=reads,
        cache_write_tokens=writes,
        cache_write_1h_tokens=min(writes_1h, writes),
        reasoning_tokens=min(reasoning, completion),
        raw=raw,
    )


def _chat(block: Mapping[str, Any], raw: dict[str, Any]) -> TokenUsage:
    details = block.get("prompt_tokens_details")
    details = details if isinstance(details, Mapping) else {}
    # LiteLLM keeps Anthropic's and Bedrock's cache counts both in the details and at the top
    # level; DeepSeek reports hits at the top level only.
    reads = _n(details.get("cached_tokens")) or _n(
        block.get("cache_read_input_tokens") or block.get("prompt_cache_hit_tokens")
    )
    writes = (
        _n(details.get("cache_creation_tokens"))
        or _n(details.get("cache_write_tokens"))
        or _n(block.get("cache_creation_input_tokens"))
    )
    return _normalized(
        raw,
        prompt=_n(block.get("prompt_tokens")),
        completion=_n(block.get("completion_tokens")),
        reads=reads,
        writes=writes,
        writes_1h=_get(details, "cache_creation_token_details", "ephemeral_1h_input_tokens"),
        reasoning=_get(block, "completion_tokens_details", "reasoning_tokens"),
    )


def _anthropic(block: Mapping[str, Any], raw: dict[str, Any]) -> TokenUsage:
    reads = _n(block.get("cache_read_input_tokens"))
    writes = _n(block.get("cache_creation_input_tokens"))
    return _normalized(
        raw,
        prompt=_n(block.get("input_tokens")) + reads + writes,
        completion=_n(block.get("output_tokens")),
        reads=reads,
        writes=writes,
        writes_1h=_get(block, "cache_creation", "ephemeral_1h_input_tokens"),
        reasoning=0,  # Claude bills thinking as output tokens and does not count it apart
    )


def _converse(block: Mapping[str, Any], raw: dict[str, Any]) -> TokenUsage:
    reads = _n(block.get("cacheReadInputTokens") or block.get("cacheReadInputTokenCount"))
    writes = _n(block.get("cacheWriteInputTokens") or block.get("cacheWriteInputTokenCount"))
    details = block.get("cacheDetails")
    hour = sum(
        _n(d.get("inputTokens"))
        for d in (details if isinstance(details, list) else [])
        if isinstance(d, Mapping) and d.get("ttl") == "1h"
    )
    return _normalized(
        raw,
        prompt=_n(block.get("inputTokens")) + reads + writes,
        completion=_n(block.get("outputTokens")),
        reads=reads,
        writes=writes,
        writes_1h=hour,
        reasoning=0,
    )


def _gemini(block: Mapping[str, Any], raw: dict[str, Any]) -> TokenUsage:
    prompt = _n(block.get("promptTokenCount")) + _n(block.get("toolUsePromptTokenCount"))
    candidates = _n(block.get("candidatesTokenCount"))
    thoughts = _n(block.get("thoughtsTokenCount"))
    # Gemini bills thoughts at the output price but counts them outside candidatesTokenCount;
    # a total that already adds up without them means they are inside it.
    inside = prompt + candidates == _n(block.get("totalTokenCount"))
    return _normalized(
        raw,
        prompt=prompt,
        completion=candidates if inside else candidates + thoughts,
        reads=_n(block.get("cachedContentTokenCount")),
        writes=0,  # explicit caches are created (and billed) apart from generateContent
        writes_1h=0,
        reasoning=thoughts,
    )


def _responses(block: Mapping[str, Any], raw: dict[str, Any]) -> TokenUsage:
    return _normalized(
        raw,
        prompt=_n(block.get("input_tokens")),
        completion=_n(block.get("output_tokens")),
        reads=_get(block, "input_tokens_details", "cached_tokens"),
        writes=0,
        writes_1h=0,
        reasoning=_get(block, "output_tokens_details", "reasoning_tokens"),
    )


# --- prices ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """Per-token USD prices of a model, and where they come from.

    A cache price left None is billed at the input price (what a vendor that publishes no
    cache price charges); a one-hour cache write left None at the cache-write price.
    """

    input_cost_per_token: float
    output_cost_per_token: float
    cache_read_input_token_cost: float | None
    source: str  # "providers.yaml (...)", or "litellm <version> price map"
    cache_creation_input_token_cost: float | None = None
    cache_creation_input_token_cost_above_1hr: float | None = None
    # Long-context rates: a call whose prompt is above the threshold pays the tier's rates
    # on every token (Gemini Pro, Claude's 1M window), not only on the tokens above it.
    tiers: tuple[tuple[int, Price], ...] = ()

    def at(self, prompt_tokens: int) -> Price:
        """The flat prices a call with this many prompt tokens pays, cache prices resolved."""
        flat = self
        for threshold, tier in sorted(self.tiers, key=lambda t: t[0]):
            if prompt_tokens > threshold:
                flat = tier
        cache_write = _or(flat.cache_creation_input_token_cost, flat.input_cost_per_token)
        return Price(
            input_cost_per_token=flat.input_cost_per_token,
            output_cost_per_token=flat.output_cost_per_token,
            cache_read_input_token_cost=_or(
                flat.cache_read_input_token_cost, flat.input_cost_per_token
            ),
            source=self.source,
            cache_creation_input_token_cost=cache_write,
            cache_creation_input_token_cost_above_1hr=_or(
                flat.cache_creation_input_token_cost_above_1hr, cache_write
            ),
        )

    def scaled(self, factor: float, why: str) -> Price:
        """Every rate times ``factor`` (a regional uplift), the reason added to the source."""

        def times(value: float | None) -> float | None:
            return None if value is None else value * factor

        return Price(
            input_cost_per_token=self.input_cost_per_token * factor,
            output_cost_per_token=self.output_cost_per_token * factor,
            cache_read_input_token_cost=times(self.cache_read_input_token_cost),
            source=f"{self.source}, x{factor:g} {why}",
            cache_creation_input_token_cost=times(self.cache_creation_input_token_cost),
            cache_creation_input_token_cost_above_1hr=times(
                self.cache_creation_input_token_cost_above_1hr
            ),
            tiers=tuple((t, p.scaled(factor, why)) for t, p in self.tiers),
        )

    def estimate(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Before the call: every prompt token at the full input price."""
        flat = self.at(prompt_tokens)
        return (
            prompt_tokens * flat.input_cost_per_token
            + completion_tokens * flat.output_cost_per_token
        )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


@dataclass(frozen=True)
class Cost:
    usd: float
    # What the cache saved against the full input price: reads at their discount, less the
    # premium paid for writes (negative when the writes cost more than the reads saved).
    cache_savings_usd: float
    price: Price  # the flat prices applied (the tier the prompt fell in), with their source


def cost(usage: TokenUsage, price: Price) -> Cost:
    flat = price.at(usage.prompt_tokens)
    full = flat.input_cost_per_token
    read = _or(flat.cache_read_input_token_cost, full)
    write = _or(flat.cache_creation_input_token_cost, full)
    write_1h = _or(flat.cache_creation_input_token_cost_above_1hr, write)
    writes_5m = usage.cache_write_tokens - usage.cache_write_1h_tokens
    uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    usd = (
        uncached * full
        + usage.cached_tokens * read
        + writes_5m * write
        + usage.cache_write_1h_tokens * write_1h
        + usage.completion_tokens * flat.output_cost_per_token
    )
    savings = (
        usage.cached_tokens * (full - read)
        - writes_5m * (write - full)
        - usage.cache_write_1h_tokens * (write_1h - full)
    )
    return Cost(usd=usd, cache_savings_usd=savings, price=flat)
