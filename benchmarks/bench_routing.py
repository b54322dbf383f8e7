"""Routing by path and risk, and with a triage pass, against sending everything to the strong
model (issue 16).

    python benchmarks/bench_routing.py [--lines 10000] [--sensitive 0.1] [--risky 0.1] [--seed 0]

A generated diff of about --lines changed lines over files of 40 to 160 lines: a tenth of them
(--sensitive) on security-sensitive paths (auth, crypto, payments), the rest split between
tests, docs and plain code; of the plain code files, a tenth (--risky) also change a line that
runs a shell command (``subprocess.run(..., shell=True)``): risky by their lines, not by their
path. Every run is ``agent.review.run_review`` in this process, through LiteLLM, against the
loopback stand-in server (``tests/llm_server.serve``), with a 32k window (as issue 15's
benchmark):

    all strong   every file to ``strong`` (Claude Sonnet 4.5's list price, $3 / $15 per M)
    routed       rules: security paths and high-risk paths to ``strong``, everything else to
                 ``cheap`` (GPT-4.1 mini's, $0.40 / $1.60 per M); risk is the path heuristic's
                 (``agent.kinds.risk_level``)
    triage       the same rules, with ``routing.triage: cheap``: the cheap model rates each
                 file's risk from its first changed lines first (the stand-in rates a file high
                 when a changed line shown runs a shell, eval or unpickling), and the
                 ``risk: high`` rule matches on its rating (a path rated high stays high)

For each: calls, input and output tokens and cost from the ledger (the triage's calls and
cost apart too), coverage, and which model was sent each security-sensitive file and each
risky-by-its-lines file (read from the requests the stand-in server received). Floor: routed
and triage each at least 50% cheaper than all strong, at the same coverage, every sensitive
file on the strong model.
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


def generate(
    lines: int, sensitive_share: float, risky_share: float, seed: int
) -> tuple[bytes, set[str], set[str]]:
    """The diff, its security-sensitive paths, and its plain code files risky by their lines."""
    rng = random.Random(seed)
    out, sensitive, risky, total, n = [], set(), set(), 0, 0
    while total < lines:
        size = rng.randint(40, 160)
        shell = False
        if rng.random() < sensitive_share:
            path = f"{rng.choice(SENSITIVE_DIRS)}/handler_{n}.py"
            sensitive.add(path)
        else:
            kind, pattern = rng.choice(OTHER)
            path = pattern.format(n=n)
            shell = kind == "code" and rng.random() < risky_share
        body = "".join(
            f"+    value_{n}_{i} = compute_{rng.randint(0, 999)}(item, limit={i})  # id{n}x{i}\n"
            for i in range(size)
        )
        if shell:  # among the first changed lines, where a triage excerpt shows it
            body = f"+    subprocess.run(item.command_{n}, shell=True)\n" + body
            risky.add(path)
            size += 1
        out.append(
            f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,1 +1,{size + 1} @@\n def run(item):\n{body}"
        )
        total, n = total + size, n + 1
    return "".join(out).encode(), sensitive, risky


def config(tmp: Path, url: str, variant: str) -> Path:
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
        "default": "strong" if variant == "all strong" else "cheap",
    }
    if variant != "all strong":
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
    if variant == "triage":
        data["routing"]["triage"] = "cheap"
    path = tmp / f"providers-{variant.replace(' ', '-')}.yaml"
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


def sent_to(requests: list[Any]) -> dict[str, str]:
    """Each file shown in a chunk request, and the model it was sent to."""
    from tests.llm_server import _messages_text, parse_diff

    out = {}
    for request in requests:
        for f in parse_diff(_messages_text(request.body, roles=("user",))):
            out[f.path] = str(request.body["model"]).removesuffix("-model")
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--sensitive", type=float, default=0.1)
    parser.add_argument("--risky", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ownit-bench-routing-") as name:
        tmp = Path(name)
        apply_isolated_env(tmp / "home")
        from tests.llm_server import serve

        data, sensitive, risky = generate(args.lines, args.sensitive, args.risky, args.seed)
        diff = tmp / "change.patch"
        diff.write_bytes(data)
        rows, checks = [], {}
        with serve() as srv:
            for variant in ("all strong", "routed", "triage"):
                cfg = config(tmp, srv.url, variant)
                before = len(srv.requests)
                result = await review(tmp, diff, cfg, variant.replace(" ", "-"))
                models = sent_to(srv.requests[before:])
                on_strong = sum(1 for p in sensitive if models.get(p) == "strong")
                risky_strong = sum(1 for p in risky if models.get(p) == "strong")
                triage = [c for c in result.calls if c.purpose.startswith("triage")]
                u = result.usage
                rows.append(
                    [
                        variant,
                        u.calls,
                        f"{u.prompt_tokens:,}",
                        f"{u.completion_tokens:,}",
                        f"${u.cost_usd:.4f}",
                        f"{len(triage)} / {sum(c.prompt_tokens for c in triage):,} / "
                        f"${sum(c.cost_usd or 0.0 for c in triage):.4f}",
                        f"{result.coverage.hunks_reviewed}/{result.coverage.hunks_total}",
                        f"{on_strong}/{len(sensitive)}",
                        f"{risky_strong}/{len(risky)}",
                    ]
                )
                checks[variant] = (
                    u.cost_usd,
                    result.coverage.hunks_reviewed,
                    on_strong == len(sensitive),
                )
        changed = sum(
            1
            for ln in data.decode().splitlines()
            if ln.startswith("+") and not ln.startswith("+++")
        )
        files = data.count(b"diff --git")
        print(
            f"Diff: {changed:,} changed lines in {files} files, {len(sensitive)} on "
            f"security-sensitive paths, {len(risky)} plain code files risky by their lines; "
            f"window {WINDOW:,}; loopback stand-in server\n"
        )
        print(
            table(
                [
                    "run",
                    "calls",
                    "input tokens",
                    "output tokens",
                    "cost",
                    "triage calls / input / cost",
                    "hunks",
                    "sensitive on strong",
                    "risky lines on strong",
                ],
                rows,
            )
        )
        all_cost, all_cov, _ = checks["all strong"]
        print()
        for variant in ("routed", "triage"):
            cost, cov, strong = checks[variant]
            saving = 1 - cost / all_cost if all_cost else 0.0
            print(
                f"{variant} / all strong: {cost / all_cost:.3f} of the cost ({saving:.0%} "
                f"cheaper; floor 50%); same coverage: {cov == all_cov}; every sensitive file "
                f"on strong: {strong}"
            )


if __name__ == "__main__":
    asyncio.run(main())
