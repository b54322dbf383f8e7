"""Choosing the model for a run and resolving its environment references.

No litellm here: choosing a model must be cheap, and ``--dry-run`` must work with no key.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from agent.config import Config, ModelEntry, env_refs, expand_env
from agent.errors import ConfigError, NoModelError
from agent.pricing import Price


@dataclass(frozen=True)
class ModelFacts:
    """What ownit knows about a model: plain data, looked up once (``llm.model_facts``)."""

    context_window: int
    # False when no one said (providers.yaml or LiteLLM): the window is a guess.
    window_known: bool
    max_output_tokens: int | None
    # None: unpriced. Calls are recorded with their tokens and no cost, never as $0.
    price: Price | None
    # Ask for the JSON schema through response_format (else only in the prompt).
    send_schema: bool


def entry_price(entry: ModelEntry) -> Price | None:
    """The price providers.yaml gives a model, or None when it gives none (both rates are
    needed: one alone does not replace LiteLLM's)."""
    if entry.input_cost_per_token is None or entry.output_cost_per_token is None:
        return None
    # Configured on purpose, zero included (a local server costs nothing per token).
    return Price(
        entry.input_cost_per_token,
        entry.output_cost_per_token,
        entry.cache_read_input_token_cost,
        f"providers.yaml ({entry.price_source})" if entry.price_source else "providers.yaml",
        entry.cache_creation_input_token_cost,
        entry.cache_creation_input_token_cost_above_1hr,
    )


def entry_facts(entry: ModelEntry) -> ModelFacts | None:
    """The model's facts from providers.yaml alone, when it gives every one LiteLLM's map
    could (window, reply limit, both prices): the map's would be overridden anyway, so the run
    need not wait for LiteLLM to load to plan. None when any is missing."""
    price = entry_price(entry)
    if entry.context_window is None or entry.max_output_tokens is None or price is None:
        return None
    return ModelFacts(
        context_window=entry.context_window,
        window_known=True,
        max_output_tokens=entry.max_output_tokens,
        price=price,
        send_schema=entry.structured_output != "prompt",
    )


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to call: environment references expanded, the key kept secret."""

    name: str
    entry: ModelEntry
    api_base: str | None
    api_key: SecretStr | None
    api_version: str | None
    missing_env: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.missing_env

    @property
    def litellm_model(self) -> str:
        return self.entry.model

    @property
    def provider(self) -> str:
        return self.entry.provider

    @property
    def gateway(self) -> str | None:
        """The kind of gateway the model is reached through, or None for a vendor or server."""
        return self.entry.gateway or ("litellm" if self.provider == "litellm_proxy" else None)


def resolve(name: str, entry: ModelEntry, environ: Mapping[str, str]) -> ResolvedModel:
    env = dict(environ)
    missing: list[str] = []
    values: dict[str, str | None] = {}
    for field in ("api_base", "api_key", "api_version"):
        raw = getattr(entry, field)
        if raw is None:
            values[field] = None
            continue
        expanded = expand_env(raw, env)
        if expanded is None:
            missing.extend(v for v in env_refs(raw) if not env.get(v))
        values[field] = expanded or None
    key = values["api_key"]
    return ResolvedModel(
        name=name,
        entry=entry,
        api_base=values["api_base"],
        api_key=SecretStr(key) if key else None,
        api_version=values["api_version"],
        missing_env=tuple(dict.fromkeys(missing)),
    )


# Providers whose default address is a server on this machine.
_LOCAL_SERVERS = ("ollama", "ollama_chat", "lm_studio", "llamafile")


def is_local(model: ResolvedModel) -> bool:
    """Whether the model runs where the diff may go under ``local_only``: as providers.yaml
    says (``local:``), else when its address is this machine (a loopback api_base, or a
    local-server provider with none). A gateway on the company network is not local: it
    forwards to vendors."""
    if model.entry.local is not None:
        return model.entry.local
    if model.api_base is None:
        return model.provider in _LOCAL_SERVERS
    host = urlsplit(model.api_base).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ad_hoc_entry(model: str) -> ModelEntry:
    """``--model openai/qwen2.5`` names a LiteLLM model string that is not in the catalogue.

    LiteLLM then reads the vendor's usual variables (OPENAI_API_KEY, OPENAI_API_BASE, ...).
    """
    if "/" not in model:
        raise ConfigError(
            f"--model {model!r} is neither a model name in providers.yaml nor a LiteLLM model "
            "string like 'openai/gpt-4.1-mini' or 'anthropic/claude-sonnet-4-5'",
            hint="run `ownit models` to list the configured names",
        )
    return ModelEntry(model=model)


def catalogue(config: Config, environ: Mapping[str, str] | None = None) -> list[ResolvedModel]:
    """Every configured model, in preference order first, then the rest."""
    env = os.environ if environ is None else environ
    order = list(dict.fromkeys([*(config.prefer or ()), *config.models]))
    return [resolve(n, config.models[n], env) for n in order]


def choose_model(
    config: Config,
    requested: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    require_usable: bool = True,
) -> ResolvedModel:
    """The model for this run: ``--model`` > ``default`` > first usable in ``prefer``.

    With ``require_usable=False`` (dry runs) an unusable model is returned rather than refused,
    so the plan can still be shown.
    """
    env = os.environ if environ is None else environ
    if requested:
        if requested in config.models:
            chosen = resolve(requested, config.models[requested], env)
        else:
            chosen = resolve(requested, ad_hoc_entry(requested), env)
    elif config.default:
        chosen = resolve(config.default, config.models[config.default], env)
    else:
        models = catalogue(config, env)
        usable = [m for m in models if m.usable and m.name in config.prefer]
        if usable:
            return usable[0]
        if not require_usable and models:
            return models[0]
        raise NoModelError(
            "no model is configured: none of the API keys or servers ownit looks for is set",
            hint=_how_to_configure(models),
        )
    if require_usable and not chosen.usable:
        raise NoModelError(
            f"model {chosen.name!r} needs {', '.join(chosen.missing_env)}, which is not set",
            hint=f"export {chosen.missing_env[0]}=... (or pick another with --model)",
        )
    return chosen


def _how_to_configure(models: list[ResolvedModel]) -> str:
    lines = ["Set one of these and run again:"]
    for m in models:
        if m.missing_env:
            lines.append(f"  export {m.missing_env[0]}=...    # {m.name}: {m.litellm_model}")
    lines.append(
        "Or point at any OpenAI-compatible server: export OPENAI_API_BASE=http://127.0.0.1:8080/v1"
        " OPENAI_API_KEY=unused, then run `ownit review --model openai/<model-name>`."
    )
    lines.append("Or preview without a model: `ownit review --dry-run`.")
    return "\n".join(lines)
