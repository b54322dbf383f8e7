"""Parse + plan throughput and memory on synthetic diffs.

    python benchmarks/bench_plan.py [--runs 5]

Each case runs in a fresh child process (so its maxrss is its own): the diff is generated
in-process (deterministic), then ``agent.diff.parse_diff`` and ``agent.plan.make_plan`` are timed
``--runs`` times each, against a hand-built 128k-window model and default review settings.
"Tokenize" is one ``count_tokens`` pass over every file as the model would see it: the floor
for a planner that tokenizes each line once. Memory: tracemalloc peak of one parse+plan (a
separate, untimed run) and the child's maxrss after its imports, after the first plan (tokenizer
loaded) and at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from _common import big_hunk_diff, median, ms, synthetic_diff, table

CASES: dict[str, Callable[[], str]] = {
    "10 files x 5 hunks": lambda: synthetic_diff(10),
    "100 files x 5 hunks": lambda: synthetic_diff(100),
    "1000 files x 5 hunks": lambda: synthetic_diff(1000),
    "1 file, 20k-line hunk": lambda: big_hunk_diff(20_000),
}


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def run_case(name: str, runs: int) -> dict[str, Any]:
    from agent.chunking import count_tokens, render_file
    from agent.config import ReviewSettings
    from agent.diff import parse_diff
    from agent.llm import ModelFacts
    from agent.plan import make_plan

    rss_imports = _maxrss_mb()
    facts = ModelFacts(
        context_window=128000,
        max_output_tokens=8192,
        input_cost_per_token=3e-6,
        output_cost_per_token=15e-6,
        supports_schema=True,
    )
    settings = ReviewSettings()

    def plan(diff: Any) -> Any:
        return make_plan(diff, facts, settings, "bench", "openai/bench-model")

    # First use loads the tokenizer (o200k_base) and the prompt: a one-off cost, reported apart.
    t0 = time.perf_counter()
    plan(parse_diff(synthetic_diff(1)))
    warmup = time.perf_counter() - t0
    rss_warm = _maxrss_mb()

    data = CASES[name]().encode()
    parse_times, diff = _timed(lambda: parse_diff(data), runs)
    plan_times, made = _timed(lambda: plan(diff), runs)
    tok_times, _ = _timed(lambda: sum(count_tokens(render_file(f)) for f in diff.files), runs)

    del made
    gc.collect()
    tracemalloc.start()
    made = plan(parse_diff(data))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    return {
        "name": name,
        "lines": data.count(b"\n"),
        "bytes": len(data),
        "files": len(diff.files),
        "hunks": sum(len(f.hunks) for f in diff.files),
        "chunks": len(made.chunks),
        "diff_tokens": sum(c.tokens for c in made.chunks),
        "prompt_tokens": made.prompt_tokens,
        "parse": parse_times,
        "plan": plan_times,
        "tokenize": tok_times,
        "warmup": warmup,
        "tracemalloc_peak_mb": peak / 2**20,
        "rss_imports_mb": rss_imports,
        "rss_warm_mb": rss_warm,
        "rss_end_mb": _maxrss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.runs)))
        return

    results = []
    for name in CASES:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--case", name, "--runs", str(args.runs)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(child.stdout))

    print(f"\nParse + plan, median of {args.runs} runs (min-max); times in ms\n")
    rows = []
    for r in results:
        p, q = r["parse"], r["plan"]
        rows.append(
            [
                r["name"],
                f"{r['lines']:,}",
                f"{r['bytes'] / 1e6:.2f}",
                f"{ms(median(p))} ({ms(min(p))}-{ms(max(p))})",
                f"{ms(median(q))} ({ms(min(q))}-{ms(max(q))})",
                ms(median(r["tokenize"])),
                f"{median(q) / median(r['tokenize']):.1f}x",
            ]
        )
    print(
        table(
            ["case", "lines", "MB", "parse_diff", "make_plan", "tokenize", "plan/tokenize"],
            rows,
        )
    )

    print("\nThroughput, plan shape and memory\n")
    rows = []
    for r in results:
        parse_s, plan_s = median(r["parse"]), median(r["plan"])
        rows.append(
            [
                r["name"],
                f"{r['lines'] / parse_s:,.0f}",
                f"{r['lines'] / plan_s:,.0f}",
                f"{r['lines'] / (parse_s + plan_s):,.0f}",
                r["chunks"],
                f"{r['diff_tokens']:,}",
                f"{r['prompt_tokens']:,}",
                f"{r['tracemalloc_peak_mb']:.1f}",
                f"{r['rss_imports_mb']:.0f} / {r['rss_warm_mb']:.0f} / {r['rss_end_mb']:.0f}",
            ]
        )
    print(
        table(
            [
                "case",
                "parse lines/s",
                "plan lines/s",
                "both lines/s",
                "chunks",
                "diff tokens",
                "est. prompt tokens",
                "tracemalloc peak MB",
                "maxrss MB",
            ],
            rows,
        )
    )
    warm = [r["warmup"] for r in results]
    print(
        f"\nOne-off first plan (tokenizer + prompt load), per child: median {ms(median(warm))} ms."
        "\nmaxrss: after imports / after the first plan (tokenizer loaded) / at the end of the"
        " child\n(the end includes the generated diff text and the timed runs' garbage)."
    )


if __name__ == "__main__":
    main()
