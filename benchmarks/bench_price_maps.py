"""LiteLLM's pinned price map against genai-prices (pydantic's curated price list), for the
bundled catalogue and for the places ownit's prices were measured wrong: Bedrock in-region
rates, Claude on Vertex regional endpoints, Mistral ``-latest`` aliases, Azure data zones.
Also what genai-prices would cost ownit to carry: size, import and first-price time, network.

Needs genai-prices installed (``pip install genai-prices==0.2.3``; the test extra has it).
Reads LiteLLM's map from its JSON file, so it does not pay for importing litellm.

    .venv/bin/python benchmarks/bench_price_maps.py    # ~5 s
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import ROOT, median, table

CHECKED = datetime(2026, 11, 26, tzinfo=UTC)
# LiteLLM provider -> genai-prices provider, for the vendors ownit's users configure.
PROVIDERS = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "vertex_ai-anthropic_models": "google",
    "vertex_ai-language-models": "google",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "mistral": "mistral",
}
RATES = (
    ("input_cost_per_token", "input_mtok"),
    ("output_cost_per_token", "output_mtok"),
    ("cache_read_input_token_cost", "cache_read_mtok"),
    ("cache_creation_input_token_cost", "cache_write_mtok"),
)


def litellm_map() -> dict[str, dict[str, Any]]:
    spec = importlib.util.find_spec("litellm")
    assert spec and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations)))
    return dict(json.loads((path / "model_prices_and_context_window_backup.json").read_text()))


def genai(model: str) -> tuple[str, Any] | None:
    """(genai-prices model id, its prices on CHECKED) for a LiteLLM model string, or None."""
    from genai_prices.data_snapshot import get_snapshot

    try:
        _, found = get_snapshot().find_provider_model(model, None, "litellm", None)
    except LookupError:
        return None
    return found.id, found.get_prices(CHECKED)


def per_m(value: Any) -> float | None:
    """A rate per million tokens from either list (genai-prices tiers: the base rate)."""
    if value is None:
        return None
    return round(float(getattr(value, "base", value)), 6)


def compare(key: str, entry: dict[str, Any]) -> str:
    """'agree', 'differ' (any of the four rates) or 'missing' (genai-prices does not list it)."""
    ref = key if "/" in key else f"{entry['litellm_provider'].split('-')[0]}/{key}"
    found = genai(ref)
    if found is None:
        return "missing"
    _, prices = found
    for ours, theirs in RATES:
        a = entry.get(ours)
        a = None if a is None else round(a * 1e6, 6)
        b = per_m(getattr(prices, theirs, None))
        if a != b and not (a is None and ours.startswith("cache_creation")):
            return "differ"
    return "agree"


def section(title: str) -> None:
    print(f"\n## {title}\n")


def bundled() -> None:
    section("The bundled catalogue: providers.yaml, LiteLLM 1.106.2's map, genai-prices (per M)")
    sys.path.insert(0, str(ROOT))
    from agent.config import load_config

    lmap = litellm_map()
    rows = []
    for name, entry in load_config().models.items():
        if not entry.input_cost_per_token and name == "ollama":
            continue
        model = entry.model.split("/", 1)[1]
        mapped = lmap.get(entry.model) or lmap.get(model, {})
        found = genai(entry.model)
        for ours, theirs in RATES:
            yaml_rate = getattr(entry, ours)
            rows.append(
                (
                    f"{name} {theirs.removesuffix('_mtok')}",
                    None if yaml_rate is None else round(yaml_rate * 1e6, 6),
                    None if mapped.get(ours) is None else round(mapped[ours] * 1e6, 6),
                    per_m(getattr(found[1], theirs, None)) if found else "not listed",
                )
            )
    print(table(("model rate", "providers.yaml", "litellm map", "genai-prices"), rows))


def six_providers() -> None:
    section("Every LiteLLM chat entry of six vendors, looked up in genai-prices")
    counts: Counter[tuple[str, str]] = Counter()
    classes: Counter[str] = Counter()
    for key, entry in litellm_map().items():
        provider = PROVIDERS.get(str(entry.get("litellm_provider")))
        if provider is None or entry.get("mode") != "chat" or "input_cost_per_token" not in entry:
            continue
        verdict = compare(key, entry)
        counts[provider, verdict] += 1
        if verdict == "differ":
            classes[difference_class(key, entry)] += 1
    providers = sorted({p for p, _ in counts})
    rows = [(p, counts[p, "agree"], counts[p, "differ"], counts[p, "missing"]) for p in providers]
    rows.append(
        ("all", *(sum(counts[p, v] for p in providers) for v in ("agree", "differ", "missing")))
    )
    print(table(("vendor", "same rates", "differ", "not in genai-prices"), rows))
    print()
    print(table(("what differs", "entries"), sorted(classes.items(), key=lambda kv: -kv[1])))


def difference_class(key: str, entry: dict[str, Any]) -> str:
    provider = str(entry.get("litellm_provider"))
    if provider.startswith("bedrock"):
        name = key.removeprefix("bedrock/").removeprefix("converse/")
        if name.count("/") or name.startswith(("us-gov", "eu.", "apac.", "jp.", "au.")):
            return "bedrock: a region's own price (LiteLLM has it, genai-prices one price)"
        found = genai(key if "/" in key else f"bedrock/{key}")
        if found and "regional" in found[0]:
            return "bedrock: in-region rate (genai-prices +10%, LiteLLM the global rate)"
        return "bedrock: other"
    if key.startswith(("azure/eu/", "azure/us/")):
        return "azure: data zone (LiteLLM +10%, genai-prices the global rate)"
    if provider == "mistral":
        return "mistral: alias or model price"
    return f"{provider}: other"


def measured_cases() -> None:
    section("The cases measured wrong on real usage")
    lmap = litellm_map()
    rows = []
    for key in (
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-haiku-4-5-20251001-v1:0",
    ):
        found = genai(f"bedrock/{key}")
        rows.append(
            (
                f"bedrock/{key}",
                round(lmap[key]["input_cost_per_token"] * 1e6, 4),
                per_m(found[1].input_mtok) if found else None,
            )
        )
    vertex = sum("regional_endpoint_uplift_multiplier" in v for v in lmap.values())
    rows.append(("vertex_ai Claude/Gemini entries with a regional uplift", vertex, 0))
    zones = sum(
        k.startswith(("azure/eu/", "azure/us/")) and v.get("mode") == "chat"
        for k, v in lmap.items()
    )
    rows.append(("azure data-zone chat entries (eu/, us/)", zones, 0))
    print(table(("input $/M (or count)", "litellm map", "genai-prices"), rows))
    print()
    from genai_prices.data_snapshot import get_snapshot

    rows = []
    for alias in ("mistral-medium-latest", "mistral-large-latest", "mistral-small-latest"):
        _, model = get_snapshot().find_provider_model(f"mistral/{alias}", None, "litellm", None)
        history = (
            " -> ".join(
                f"{c.constraint.start_date if c.constraint else 'first'}: "
                f"{per_m(c.prices.input_mtok)}/{per_m(c.prices.output_mtok)}"
                for c in model.prices
            )
            if isinstance(model.prices, list)
            else f"{per_m(model.prices.input_mtok)}/{per_m(model.prices.output_mtok)}"
        )
        entry = lmap.get(f"mistral/{alias}", {})
        now = "/".join(
            str(per_m(entry[k] * 1e6)) for k in ("input_cost_per_token", "output_cost_per_token")
        )
        rows.append((f"mistral/{alias}", now, history))
    print(table(("alias", "litellm map in/out", "genai-prices in/out over time"), rows))


def footprint() -> None:
    section("What genai-prices would cost ownit to carry")
    spec = importlib.util.find_spec("genai_prices")
    assert spec and spec.origin
    package = Path(spec.origin).parent
    size = sum(f.stat().st_size for f in package.rglob("*.py"))
    code = (
        "import time, sys; t=time.perf_counter(); import genai_prices; t1=time.perf_counter();"
        "from genai_prices import Usage, calc_price;"
        "calc_price(Usage(input_tokens=1000, output_tokens=100), 'openai/gpt-4.1-mini',"
        " provider_id='litellm'); t2=time.perf_counter();"
        "print(t1-t, t2-t1, len(sys.modules))"
    )
    runs = [
        [float(x) for x in subprocess.check_output([sys.executable, "-c", code], text=True).split()]
        for _ in range(5)
    ]

    # Nothing may be fetched at run time: any connection attempt during a price lookup fails.
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("genai-prices opened a network connection")

    original = socket.socket.connect
    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        from genai_prices import Usage, calc_price

        calc_price(
            Usage(input_tokens=10, output_tokens=1),
            "gemini/gemini-2.5-flash",
            provider_id="litellm",
        )
        offline = "yes (bundled snapshot; it fetches only if UpdatePrices is started)"
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]
    print(
        table(
            ("measure", "value"),
            [
                ("python source, MB", f"{size / 1e6:.1f}"),
                (
                    "import genai_prices, ms (median of 5 processes)",
                    f"{median([r[0] for r in runs]) * 1000:.0f}",
                ),
                ("first price (loads the data), ms", f"{median([r[1] for r in runs]) * 1000:.0f}"),
                ("modules loaded after both", int(median([r[2] for r in runs]))),
                ("works offline", offline),
            ],
        )
    )


def main() -> None:
    warnings.simplefilter("ignore")  # genai-prices warns about usage keys it does not price
    t = time.perf_counter()
    bundled()
    six_providers()
    measured_cases()
    footprint()
    print(f"\n({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
