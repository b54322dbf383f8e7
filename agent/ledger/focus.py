"""Ledger spend as FOCUS 1.2 rows (FinOps Open Cost and Usage Specification,
https://focus.finops.org/focus-specification/v1-2/), so finance loads it next to its cloud bills.

One row is one charge: a row of the ``spend_daily`` rollup (day x team x repo x PR x author x
model) or one call; both are built here from the rollup's own ``contribution``, so the two
granularities add up to the same totals by construction. How the ledger maps onto FOCUS:

- Cost. The ledger knows one price per call, the one it charged with (``price_source``), and no
  negotiated discount: BilledCost = EffectiveCost = ListCost = ContractedCost = the recorded
  cost, written as an exact decimal of the ledger's integer nano-dollars. BillingCurrency USD.
- Unpriced (billed, but the model has no known price) and unknown (in flight when the run died,
  or still pending: the provider may have billed it) calls: FOCUS wants a cost, so BilledCost is
  what was recorded (0 for these) and is a lower bound: ``x_Unpriced`` / ``x_OutcomeUnknown``
  say so, ``x_UnpricedCalls`` / ``x_UnknownCalls`` count them, ChargeDescription spells it out
  and the unit prices are left empty rather than claim a price of 0. The tokens stay, so the
  row can be priced later.
- Quantities: ConsumedQuantity = PricingQuantity = input + output tokens (unit "Tokens"). A
  call mixes meters (input, cached input, cache writes, output) at different rates, so
  ListUnitPrice = ContractedUnitPrice is the row's average price per token, cost / tokens; the
  per-kind counts are ``x_*Tokens`` and, per call, the per-kind prices ``x_*UnitPrice``.
- Who: ProviderName = InvoiceIssuerName = the vendor that bills the call's provider (openai →
  OpenAI, bedrock → AWS, vertex_ai → Google Cloud, azure → Microsoft); PublisherName = the maker
  of the model (Claude on Bedrock: Anthropic). BillingAccountId = the ledger's provider key
  (ownit never sees the vendor's account number); SubAccountId = SubAccountName = the team, the
  unit spend is charged back to; the rest of the attribution is in Tags and ``x_`` columns.
- What: ResourceId = SkuId = SkuPriceId = the model as called (``openai/gpt-4.1-mini``),
  ResourceName = its configured name; ServiceCategory "AI and Machine Learning", ServiceSubcategory
  "Generative AI"; RegionId only when the model names one (a Bedrock ARN).
- When: ChargePeriod = the UTC day (the rollup's unit, at both granularities, so a sum by
  ChargePeriodStart is the same in either file); BillingPeriod = its UTC calendar month. Call
  rows carry the call's own time in ``x_CallTime``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from agent.ledger.rollup import NANO, Key
from agent.ledger.values import flag, midnight_iso, text, usd, utc_iso

VERSION = "1.2"

# Every column FOCUS 1.2 makes mandatory in a cost and usage dataset.
MANDATORY = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)
# The FOCUS columns written, in the specification's (alphabetical) order: the mandatory ones, the
# recommended and conditional ones that apply to metered model calls. Left out as not applicable:
# commitment discounts, capacity reservations, availability zones, virtual currencies, invoice
# ids (ownit does not see the vendor's invoice).
COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)
# ownit's own columns (FOCUS requires the x_ prefix). The run, call, time, outcome and unit
# prices are per call: empty in day rows.
CUSTOM = (
    "x_Repo",
    "x_PullRequest",
    "x_Author",
    "x_RunId",
    "x_CallId",
    "x_CallTime",
    "x_Purpose",
    "x_Outcome",
    "x_InputTokens",  # all input tokens, cached ones included
    "x_CachedInputTokens",  # of the input, read from the provider's cache
    "x_CacheWriteTokens",
    "x_OutputTokens",  # all output tokens, reasoning included
    "x_ReasoningTokens",
    "x_Calls",  # attempts that reached, or may have reached, the provider
    "x_ErrorCalls",  # attempts the provider refused or failed: not billed
    "x_UnpricedCalls",
    "x_UnknownCalls",
    "x_EstimatedCalls",  # usage counted with the tokenizer: the provider reported none
    "x_Unpriced",
    "x_OutcomeUnknown",
    "x_UsageEstimated",
    "x_CacheSavings",  # USD the provider's cache saved against the full input price
    "x_InputUnitPrice",
    "x_CachedInputUnitPrice",
    "x_CacheWriteUnitPrice",
    "x_OutputUnitPrice",
    "x_PriceSource",
)
HEADER = COLUMNS + CUSTOM
# The columns of ``calls`` a call row needs besides the rollup's ``SOURCE``.
CALL_EXTRA = (
    "idempotency_key",
    "run_id",
    "purpose",
    "input_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_token",
    "price_source",
)


@dataclass(frozen=True)
class Vendor:
    name: str  # ProviderName and InvoiceIssuerName: who bills it
    service: str  # ServiceName


# LiteLLM's provider keys, by the vendor that invoices calls made through them.
VENDORS = {
    "openai": Vendor("OpenAI", "OpenAI API"),
    "text-completion-openai": Vendor("OpenAI", "OpenAI API"),
    "anthropic": Vendor("Anthropic", "Anthropic API"),
    "bedrock": Vendor("AWS", "Amazon Bedrock"),
    "bedrock_converse": Vendor("AWS", "Amazon Bedrock"),
    "sagemaker": Vendor("AWS", "Amazon SageMaker"),
    "vertex_ai": Vendor("Google Cloud", "Vertex AI"),
    "vertex_ai_beta": Vendor("Google Cloud", "Vertex AI"),
    "gemini": Vendor("Google Cloud", "Gemini API"),  # billed through a Cloud billing account
    "azure": Vendor("Microsoft", "Azure OpenAI"),
    "azure_ai": Vendor("Microsoft", "Azure AI Foundry"),
    "mistral": Vendor("Mistral AI", "Mistral AI API"),
    "codestral": Vendor("Mistral AI", "Mistral AI API"),
    "cohere": Vendor("Cohere", "Cohere API"),
    "cohere_chat": Vendor("Cohere", "Cohere API"),
    "groq": Vendor("Groq", "GroqCloud"),
    "deepseek": Vendor("DeepSeek", "DeepSeek API"),
    "xai": Vendor("xAI", "xAI API"),
    "together_ai": Vendor("Together AI", "Together AI API"),
    "fireworks_ai": Vendor("Fireworks AI", "Fireworks AI API"),
    "openrouter": Vendor("OpenRouter", "OpenRouter"),
    "perplexity": Vendor("Perplexity", "Perplexity API"),
    "huggingface": Vendor("Hugging Face", "Hugging Face Inference"),
    "ollama": Vendor("Ollama", "Ollama (self-hosted)"),
    "ollama_chat": Vendor("Ollama", "Ollama (self-hosted)"),
}

# The model's maker, from a part of its id (after the provider prefix) that starts with one of
# these: "bedrock/us.anthropic.claude-3-5-sonnet-v2:0" is Anthropic's, "azure/gpt-4o" OpenAI's.
_PUBLISHERS = (
    (("claude", "anthropic"), "Anthropic"),
    (("gpt", "chatgpt", "o1", "o3", "o4", "openai", "text-embedding"), "OpenAI"),
    (("gemini", "gemma", "google"), "Google"),
    (
        ("mistral", "mixtral", "codestral", "devstral", "magistral", "ministral", "pixtral"),
        "Mistral AI",
    ),
    (("llama", "meta"), "Meta"),
    (("command", "cohere"), "Cohere"),
    (("nova", "titan", "amazon"), "Amazon"),
    (("deepseek",), "DeepSeek"),
    (("grok", "xai"), "xAI"),
    (("qwen",), "Alibaba Cloud"),
    (("phi-",), "Microsoft"),
)
_SEGMENT = re.compile(r"[/.:]")
_BEDROCK_ARN_REGION = re.compile(r"arn:aws[\w-]*:bedrock:([a-z]{2}(?:-[a-z]+)+-\d+):")
_PRICE_STEP = Decimal("1e-18")  # a per-token price to 18 places: >= 9 significant digits


def vendor(provider: str) -> Vendor:
    return VENDORS.get(provider) or Vendor(provider, provider)


def publisher(model: str, provider: str) -> str:
    """The model's maker; the vendor when the model's name does not tell."""
    rest = model.split("/", 1)[1] if "/" in model else model
    for part in _SEGMENT.split(rest.lower()):
        for prefixes, name in _PUBLISHERS:
            if part.startswith(prefixes):
                return name
    return vendor(provider).name


def region(model: str) -> str | None:
    """The region, when the model id names one; the ledger records no endpoint."""
    found = _BEDROCK_ARN_REGION.search(model)
    return found.group(1) if found else None


@lru_cache(maxsize=4096)
def _what(provider: str, model: str, model_name: str) -> tuple[str, ...]:
    """The cells that depend only on the model: computed once per model, not per row."""
    seller = vendor(provider)
    where = region(model) or ""
    return (
        text(provider),  # BillingAccountId
        text(seller.name),  # BillingAccountName
        text(seller.name),  # InvoiceIssuerName
        text(seller.name),  # ProviderName
        text(publisher(model, provider)),  # PublisherName
        where,  # RegionId
        where,  # RegionName
        text(model),  # ResourceId
        text(model_name),  # ResourceName
        text(seller.service),  # ServiceName
        text(model),  # SkuId, SkuPriceId
        # ChargeDescription: begins with fixed words, so never a formula.
        f"AI code review by ownit: {model} ({model_name}) input and output tokens",
    )


@lru_cache(maxsize=4096)
def _when(day: date) -> tuple[str, str, str, str]:
    """BillingPeriodStart, BillingPeriodEnd, ChargePeriodStart, ChargePeriodEnd."""
    month = day.replace(day=1)
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return (
        midnight_iso(month),
        midnight_iso(following),
        midnight_iso(day),
        midnight_iso(date.fromordinal(day.toordinal() + 1)),
    )


def unit_price(nano: int, tokens: int) -> str:
    """The average price of one token: cost / tokens, to 18 decimal places."""
    if tokens <= 0:
        return ""
    price = (Decimal(nano) / (Decimal(tokens) * NANO)).quantize(_PRICE_STEP)
    return _decimal(price)


def _decimal(value: Decimal) -> str:
    digits = format(value, "f")
    return digits.rstrip("0").rstrip(".") if "." in digits else digits


@lru_cache(maxsize=4096)
def _price(value: float | None) -> str:
    """A unit price recorded on a call, without a float's exponent (4e-07 → 0.0000004)."""
    return "" if value is None else _decimal(Decimal(repr(value)))


def row(key: Key, sums: Mapping[str, int], call: Mapping[Any, Any] | None = None) -> list[str]:
    """The FOCUS row (``HEADER`` order) of one rollup key and its sums; ``call``, the call's
    columns, when the row is one call."""
    day, team, repo, pr, author, model_name, model, provider = key
    (account, account_name, issuer, seller, maker, where, where_name, resource, resource_name,
     service, sku, description) = _what(provider, model, model_name)  # fmt: skip
    billing_start, billing_end, charge_start, charge_end = _when(day)
    nano = sums["cost_nusd"]
    cost = usd(nano)
    tokens = sums["prompt_tokens"] + sums["completion_tokens"]
    unpriced, unknown = sums["unpriced_calls"], sums["unknown_calls"]
    # An unpriced call's tokens have no price: an average over them would understate it.
    price = "" if unpriced else unit_price(nano, tokens)
    if unpriced:
        description += f"; {unpriced} call(s) unpriced (no known price): cost is a lower bound"
    if unknown:
        description += f"; {unknown} call(s) with unknown outcome (may have been billed)"
    tags = _tags(team, repo, pr, author, call["run_id"] if call is not None else "")
    team_cell = text(team) if team else ""
    return [
        cost,  # BilledCost
        account,
        account_name,
        "USD",  # BillingCurrency
        billing_end,
        billing_start,
        "Usage",  # ChargeCategory
        "",  # ChargeClass: null, no row is a correction
        description,
        "Usage-Based",  # ChargeFrequency
        charge_end,
        charge_start,
        str(tokens),  # ConsumedQuantity
        "Tokens",  # ConsumedUnit
        cost,  # ContractedCost
        price,  # ContractedUnitPrice
        cost,  # EffectiveCost
        issuer,
        cost,  # ListCost
        price,  # ListUnitPrice
        "Standard",  # PricingCategory
        str(tokens),  # PricingQuantity
        "Tokens",  # PricingUnit
        seller,
        maker,
        where,
        where_name,
        resource,
        resource_name,
        "Model",  # ResourceType
        "AI and Machine Learning",  # ServiceCategory
        service,
        "Generative AI",  # ServiceSubcategory
        sku,  # SkuId
        "Tokens",  # SkuMeter
        sku,  # SkuPriceId
        team_cell,  # SubAccountId
        team_cell,  # SubAccountName
        tags,
        text(repo),
        str(pr) if pr else "",
        text(author),
        *_call_cells(call),
        str(sums["prompt_tokens"]),
        str(sums["cached_tokens"]),
        str(sums["cache_write_tokens"]),
        str(sums["completion_tokens"]),
        str(sums["reasoning_tokens"]),
        str(sums["calls"]),
        str(sums["errors"]),
        str(unpriced),
        str(unknown),
        str(sums["estimated_calls"]),
        flag(unpriced > 0),
        flag(unknown > 0),
        flag(sums["estimated_calls"] > 0),
        usd(sums["cache_savings_nusd"]),
        *_price_cells(call),
    ]


def _tags(team: str, repo: str, pr: int, author: str, run: str) -> str:
    """The attribution recorded, and none that was not. A JSON object starts with "{", never a
    formula, so the values inside stay exactly as recorded."""
    tags = {
        "team": team,
        "repo": repo,
        "pr": str(pr) if pr else "",
        "author": author,
        "ownit-run": run,
    }
    return json.dumps(
        {k: v for k, v in tags.items() if v}, ensure_ascii=False, separators=(",", ":")
    )


def _call_cells(call: Mapping[Any, Any] | None) -> tuple[str, ...]:
    """x_RunId, x_CallId, x_CallTime, x_Purpose, x_Outcome."""
    if call is None:
        return ("",) * 5
    return (
        text(call["run_id"]),
        text(call["idempotency_key"]),
        utc_iso(call["created_at"]),
        text(call["purpose"]),
        text(call["outcome"]),
    )


def _price_cells(call: Mapping[Any, Any] | None) -> tuple[str, ...]:
    """x_InputUnitPrice, x_CachedInputUnitPrice, x_CacheWriteUnitPrice, x_OutputUnitPrice,
    x_PriceSource."""
    if call is None:
        return ("",) * 5
    source = call["price_source"]
    return (
        _price(call["input_cost_per_token"]),
        _price(call["cache_read_input_token_cost"]),
        _price(call["cache_creation_input_token_cost"]),
        _price(call["output_cost_per_token"]),
        text(source) if source else "",
    )
