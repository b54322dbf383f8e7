"""Routing by path and risk against sending everything to the strong model (issue 16).

    python benchmarks/bench_routing.py [--lines 10000] [--sensitive 0.1] [--seed 0]

A generated diff of about --lines changed lines over files of 40 to 160 lines: a tenth of them
(--sensitive) on security-sensitive paths (auth, crypto, payments), the rest split between
tests, docs and plain code. Both runs are ``agent.review.run_review`` in this process, through
LiteLLM, against the loopback stand-in server (``tests/llm_server.serve``), with a 32k window
(as issue 15's benchmark):

    all strong   every file to ``strong`` (Claude Sonnet 4.5's list price, $3 / $15 per M)
    routed       rules: security paths and high-risk paths to ``strong``, everything else to
                 ``cheap`` (GPT-4.1 mini's, $0.40 / $1.60 per M); the rule-only risk heuristic
                 (``agent.kinds.risk_level``) stands where a triage model would

For each: calls, input and output tokens and cost from the ledger, coverage, and whether every
chunk holding a security-sensitive file was answered by ``strong``. Floor: routed at least 50%
cheaper, at the same coverage, every sensitive chunk on the strong model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from _common import apply_isolated_env, table

WINDOW = 32_768
STRONG = (0.000003, 0.000015)
CHEAP = (0.0000004, 0.0000016)
SENSITIVE_DIRS = ("src/auth", "src/crypto", "src/payments")
OTHER = (
    ("tests", "tests/test_{n}.py"),
    ("docs", "docs/page_{n}.md"),
    ("code", "src/app/mod_{n}.py"),
)


def generate(lines: int, sensitive_share: float, seed: int) -> tuple[bytes, set[str]]:
    """The diff and its security-sensitive paths."""
    rng = random.Random(seed)
    out, sensitive, total, n = [], set(), 0, 0
    while total < lines:
        size = rng.randint(40, 160)
        if rng.random() < sensitive_share:
            path = f"{rng.choice(SENSITIVE_DIRS)}/handler_{n}.py"
            sensitive.add(path)
        else:
            path = rng.choice(OTHER)[1].format(n=n)
        body = "".join(
            f"+    value_{n}_{i} = compute_{rng.randint(0, 999)}(item, limit={i})  # id{n}x{i}\n"
            for i in range(size)
        )
        out.append(
            f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,1 +1,{size + 1} @@\n def run(item):\n{body}"
        )
        total, n = total + size, n + 1
    return "".join(out).encode(), sensitive


def config(tmp: Path, url: str, routed: bool) -> Path:
    def model(name: str, price: tuple[float, float]) -> dict[str, Any]:
        return {
            "model": f"openai/{name}-model",
            "api_base": f"{url}/v1",
            "context_window": WINDOW,
            "input_cost_per_token": price[0],
            "output_cost_per_token": price[1],
        }

    data: dict[str, Any] = {
        "models": {"strong": model("strong", STRONG), "cheap": model("cheap", CHEAP)},
        "default": "cheap" if routed else "strong",
    }
    if routed:
        data["routing"] = {
            "rules": [
                {
                    "name": "security",
                    "paths": ["*/auth/*", "*/crypto/*", "*/payments/*"],
                    "model": "strong",
                },
                {"name": "high-risk", "risk": "high", "model": "strong"},
            ]
        }
    path = tmp / f"providers-{'routed' if routed else 'strong'}.yaml"
    path.write_text(json.dumps(data))
    return path


async def review(tmp: Path, diff: Path, cfg: Path, name: str) -> Any:
    from agent.review import ReviewRequest, run_review

    request = ReviewRequest(
        cwd=tmp,
        diff_path=diff,
        config_path=cfg,
        ledger_url=f"sqlite:///{tmp / f'ledger-{name}.db'}",
        concurrency=8,
        cache=False,
    )
    return await run_review(request)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--sensitive", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ownit-bench-routing-") as name:
        tmp = Path(name)
        apply_isolated_env(tmp / "home")
        from agent.review import ReviewRequest, dry_run
        from tests.llm_server import serve

        data, sensitive = generate(args.lines, args.sensitive, args.seed)
        diff = tmp / "change.patch"
        diff.write_bytes(data)
        rows, checks = [], []
        with serve() as srv:
            for routed in (False, True):
                cfg = config(tmp, srv.url, routed)
                label = "routed" if routed else "all strong"
                plan = (await dry_run(ReviewRequest(cwd=tmp, diff_path=diff, config_path=cfg))).plan
                files_of = {f"chunk-{c.id}": {p.file.path for p in c.files} for c in plan.chunks}
                result = await review(tmp, diff, cfg, label.replace(" ", "-"))
                ok = {c.purpose: c.model_name for c in result.calls if c.outcome == "ok"}
                held = [p for p, files in files_of.items() if files & sensitive]
                strong = sum(1 for p in held if ok.get(p) == "strong")
                u = result.usage
                rows.append(
                    [
                        label,
                        u.calls,
                        f"{u.prompt_tokens:,}",
                        f"{u.completion_tokens:,}",
                        f"${u.cost_usd:.4f}",
                        f"{result.coverage.hunks_reviewed}/{result.coverage.hunks_total}",
                        f"{strong}/{len(held)}",
                    ]
                )
                checks.append((u.cost_usd, result.coverage.hunks_reviewed, strong == len(held)))
        changed = sum(
            1
            for ln in data.decode().splitlines()
            if ln.startswith("+") and not ln.startswith("+++")
        )
        files = data.count(b"diff --git")
        print(
            f"Diff: {changed:,} changed lines in {files} files, {len(sensitive)} "
            f"security-sensitive; window {WINDOW:,}; loopback stand-in server\n"
        )
        print(
            table(
                [
                    "run",
                    "calls",
                    "input tokens",
                    "output tokens",
                    "cost",
                    "hunks",
                    "sensitive on strong",
                ],
                rows,
            )
        )
        (all_cost, all_cov, _), (routed_cost, routed_cov, all_strong) = checks
        saving = 1 - routed_cost / all_cost if all_cost else 0.0
        print(
            f"\nrouted / all strong: {routed_cost / all_cost:.3f} of the cost "
            f"({saving:.0%} cheaper; floor 50%); same coverage: {routed_cov == all_cov}; "
            f"every sensitive chunk on strong: {all_strong}"
        )


if __name__ == "__main__":
    asyncio.run(main())
