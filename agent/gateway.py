"""What ownit tells an organisation's LiteLLM gateway about a call, and what it reads back.

A LiteLLM proxy attributes spend by the request body's ``metadata``: its ``tags`` become the
spend log's request tags (the proxy's per-tag spend), its ``spend_logs_metadata`` is stored with
the spend log as given. LiteLLM's SDK never sends its own ``metadata=`` argument (that feeds its
logging callbacks), so these go in ``extra_body``; and only to gateways, since a vendor's own
``metadata`` (OpenAI's takes string values only) would refuse or keep them.

The proxy says what it charged in the ``x-litellm-response-cost`` response header; the SDK keeps
every response header in ``_hidden_params["additional_headers"]``, prefixed ``llm_provider-``.
No litellm import here: this is plain data, testable without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.ledger import RunInfo

COST_HEADER = "x-litellm-response-cost"
PRICE_SOURCE = f"gateway: {COST_HEADER}"


@dataclass(frozen=True)
class Attribution:
    """The run's identity as a gateway's spend tracking takes it. Built once per run."""

    tags: tuple[str, ...]
    details: tuple[tuple[str, str], ...]  # spend_logs_metadata, in order

    @classmethod
    def of(cls, run: RunInfo) -> Attribution:
        pr = str(run.pr_number) if run.pr_number is not None else None
        tagged = [("team", run.team), ("repo", run.repo), ("pr", pr), ("run", run.id)]
        # The author is left out on purpose: spend is attributed to teams, not to people.
        details = [("team", run.team), ("repo", run.repo), ("pr", pr), ("run_id", run.id)]
        return cls(
            tags=("ownit", *(f"{key}:{value}" for key, value in tagged if value)),
            details=tuple(
                (f"ownit_{key}", value)
                for key, value in [*details, ("head_sha", run.head_sha)]
                if value
            ),
        )

    def body(self) -> dict[str, Any]:
        """The request body fields to send (LiteLLM's ``extra_body``)."""
        return {"metadata": {"tags": list(self.tags), "spend_logs_metadata": dict(self.details)}}


def reported_cost(hidden_params: Mapping[str, Any] | None) -> float | None:
    """The USD cost the gateway reported for a call, or None when it sent no usable one."""
    headers = (hidden_params or {}).get("additional_headers") or {}
    value = headers.get(f"llm_provider-{COST_HEADER}")
    try:
        usd = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return usd if usd is not None and math.isfinite(usd) and usd >= 0 else None
