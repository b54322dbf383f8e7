"""Shared helpers for the benchmark scripts: deterministic synthetic diffs, isolated
environments, statistics and plain-text tables. Not a benchmark itself.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the scripts run from benchmarks/; tests/ holds shared pieces

# Importing agent.llm does not import litellm or read the environment; only its use does.
from agent.llm import OFFLINE_ENV  # noqa: E402
from tests.environment import VENDOR_ENV  # noqa: E402

# The console script of the venv that runs the benchmark.
OWNIT = Path(sys.executable).parent / "ownit"
EXAMPLE = ROOT / "examples" / "retry-charges.patch"


def isolated_env(home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: os.environ) with HOME/XDG under ``home``, no vendor keys,
    and LiteLLM kept offline."""
    env = dict(os.environ if base is None else base)
    for name in VENDOR_ENV:
        env.pop(name, None)
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_DATA_HOME"] = str(home / ".local" / "share")
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env.update(OFFLINE_ENV)
    return env


def apply_isolated_env(home: Path) -> None:
    """``isolated_env`` applied to this process (before importing agent)."""
    env = isolated_env(home)
    for name in VENDOR_ENV:
        os.environ.pop(name, None)
    os.environ.update(env)


# --- statistics and tables ------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


# --- synthetic diffs --------------------------------------------------------------------------

_NAMES = (
    "charge",
    "refund",
    "invoice",
    "ledger",
    "account",
    "payment",
    "retry",
    "session",
    "token",
    "balance",
    "customer",
    "order",
    "webhook",
    "currency",
    "timeout",
    "limit",
)
_TYPES = ("int", "str", "bool", "float", "Decimal", "dict[str, Any]", "list[str]", "None")
_FUNCS = ("fetch", "load", "send", "parse", "validate", "lookup", "submit", "compute")
_COMMENTS = (
    "keep the old behaviour for callers that pass None",
    "the provider retries on 5xx; we must not double-charge",
    "amounts are in minor units (cents)",
    "see the incident review for why this is bounded",
    "TODO: move to settings once the rollout is done",
)


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_NAMES)}_{rng.choice(_NAMES)}"


def code_line(rng: random.Random) -> str:
    """One line of plausible Python (indentation included)."""
    a, b, n = _name(rng), _name(rng), rng.randint(1, 500)
    templates = (
        f"def {a}(self, {b}: {rng.choice(_TYPES)}, *, retries: int = {n % 7}) -> bool:",
        f"    {a} = self.client.{rng.choice(_FUNCS)}_{b}({b}, timeout={n / 10:.1f})",
        f"    if {a} is None or {a}.status != {n}:",
        f'        raise ValueError(f"{a}: unexpected {b} {{{a}!r}}")',
        f"        return {a}.{rng.choice(_FUNCS)}({b}, limit={n})",
        f"    # {rng.choice(_COMMENTS)}",
        f"    for {a} in self.{b}s:",
        f'        log.debug("%s retry %d of %d", {a}, attempt, {n})',
        f"    {a}: {rng.choice(_TYPES)} = field(default={n})",
        "",
        f"    await asyncio.sleep(min({n} * 2 ** attempt, self.max_backoff))",
        f"class {a.title().replace('_', '')}Error(RuntimeError):",
    )
    return rng.choice(templates)


def synthetic_diff(files: int, hunks: int = 5, seed: int = 0) -> str:
    """A ``git diff`` of ``files`` modified Python files, ``hunks`` hunks each, ~12 lines per
    hunk (3 context, 1-4 removed, 2-5 added, 3 context). Same arguments, same bytes."""
    out: list[str] = []
    for i in range(files):
        rng = random.Random(seed * 1_000_003 + i)
        path = f"src/pkg{i // 25:02d}/module_{i:04d}.py"
        out += [
            f"diff --git a/{path} b/{path}",
            f"index {rng.getrandbits(28):07x}..{rng.getrandbits(28):07x} 100644",
            f"--- a/{path}",
            f"+++ b/{path}",
        ]
        shift = 0
        for k in range(hunks):
            removed, added = rng.randint(1, 4), rng.randint(2, 5)
            old_start = 12 + k * 60 + rng.randint(0, 20)
            new_start = old_start + shift
            shift += added - removed
            section = f" def {_name(rng)}(self):" if rng.random() < 0.7 else ""
            out.append(f"@@ -{old_start},{6 + removed} +{new_start},{6 + added} @@{section}")
            out += [" " + code_line(rng) for _ in range(3)]
            out += ["-" + code_line(rng) for _ in range(removed)]
            out += ["+" + code_line(rng) for _ in range(added)]
            out += [" " + code_line(rng) for _ in range(3)]
    return "\n".join(out) + "\n"


def big_hunk_diff(lines: int = 20_000, seed: int = 0) -> str:
    """One file whose single hunk has ``lines`` lines (40% context, 20% removed, 40% added)."""
    rng = random.Random(seed)
    body: list[str] = []
    old = new = 0
    for _ in range(lines):
        r = rng.random()
        tag = " " if r < 0.4 else "-" if r < 0.6 else "+"
        old += tag != "+"
        new += tag != "-"
        body.append(tag + code_line(rng))
    path = "src/generated/big_table.py"
    head = [
        f"diff --git a/{path} b/{path}",
        "index 1a2b3c4..5d6e7f8 100644",
        f"--- a/{path}",
        f"+++ b/{path}",
        f"@@ -1,{old} +1,{new} @@",
    ]
    return "\n".join(head + body) + "\n"
