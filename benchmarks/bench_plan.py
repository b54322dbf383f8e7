"""Parse + plan throughput, plan shape and memory on synthetic diffs.

    python benchmarks/bench_plan.py [--runs 5]

Each case runs in a fresh child process (so its maxrss is its own): the diff is generated
in-process (deterministic), then ``agent.diff.parse_diff`` and ``agent.plan.make_plan`` are timed
``--runs`` times each, against a hand-built model (a 128k or 32k window) and default review
settings. The "mixed" cases are PR-shaped: files of very different sizes (one-hunk edits, long
edits, new files with one large hunk, deleted files, renames), so packing leaves tails.
Plan shape: chunks, the lower bound ceil(diff tokens / budget), chunks under half full, and the
fixed prompt overhead each call pays (``plan.chunk_overhead``).
"Tokenize" is one ``count_tokens`` pass over every file as the model would see it: the floor
for a planner that tokenizes each line once. Memory: tracemalloc peak of one parse+plan (a
separate, untimed run) and the child's maxrss after its imports, after the first plan (tokenizer
loaded) and at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from _common import big_hunk_diff, code_line, median, ms, synthetic_diff, table

# name: (the diff, the model's context window)
CASES: dict[str, tuple[Callable[[], str], int]] = {
    "10 files x 5 hunks": (lambda: synthetic_diff(10), 128_000),
    "100 files x 5 hunks": (lambda: synthetic_diff(100), 128_000),
    "1000 files x 5 hunks": (lambda: synthetic_diff(1000), 128_000),
    "1 file, 20k-line hunk": (lambda: big_hunk_diff(20_000), 128_000),
    "50 files x 80 hunks, 32k window": (lambda: synthetic_diff(50, 80), 32_768),
    "mixed 10k lines, 32k window": (lambda: mixed_diff(10_000), 32_768),
    "mixed 50k lines, 32k window": (lambda: mixed_diff(50_000), 32_768),
    "mixed 50k lines, 128k window": (lambda: mixed_diff(50_000), 128_000),
}


def mixed_diff(lines: int, seed: int = 7) -> str:
    """A PR-shaped ``git diff`` of about ``lines`` lines: mostly modified files of 1-40 hunks,
    ~10 % new files (one hunk of 20-1,500 lines), ~5 % deleted files (20-800 lines), ~5 %
    renames with an edit. Same arguments, same bytes."""
    rng = random.Random(seed)
    out: list[str] = []
    i = 0
    while len(out) < lines:
        kind = rng.random()
        path = f"src/pkg{i // 20:02d}/mod_{i:04d}.py"
        i += 1
        if kind < 0.10:
            n = int(min(1500, 20 * rng.paretovariate(1.0)))
            out += [
                f"diff --git a/{path} b/{path}",
                "new file mode 100644",
                "index 0000000..1111111",
            ]
            out += ["--- /dev/null", f"+++ b/{path}", f"@@ -0,0 +1,{n} @@"]
            out += ["+" + code_line(rng) for _ in range(n)]
        elif kind < 0.15:
            n = int(min(800, 20 * rng.paretovariate(1.2)))
            out += [
                f"diff --git a/{path} b/{path}",
                "deleted file mode 100644",
                "index 1111111..0000000",
            ]
            out += [f"--- a/{path}", "+++ /dev/null", f"@@ -1,{n} +0,0 @@"]
            out += ["-" + code_line(rng) for _ in range(n)]
        else:
            old = path
            if kind < 0.20:
                old = path.replace("mod_", "old_")
                out += [f"diff --git a/{old} b/{path}", "similarity index 90%"]
                out += [f"rename from {old}", f"rename to {path}", "index 1111111..2222222 100644"]
            else:
                out += [f"diff --git a/{path} b/{path}", "index 1111111..2222222 100644"]
            out += [f"--- a/{old}", f"+++ b/{path}"]
            shift = 0
            for k in range(max(1, min(40, int(rng.paretovariate(0.9))))):
                removed, added = rng.randint(0, 12), rng.randint(1, 20)
                old_start = 10 + k * 120
                out.append(f"@@ -{old_start},{6 + removed} +{old_start + shift},{6 + added} @@")
                shift += added - removed
                out += [" " + code_line(rng) for _ in range(3)]
                out += ["-" + code_line(rng) for _ in range(removed)]
                out += ["+" + code_line(rng) for _ in range(added)]
                out += [" " + code_line(rng) for _ in range(3)]
    return "\n".join(out) + "\n"


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
    from agent.plan import chunk_overhead, make_plan
    from agent.pricing import Price
    from agent.providers import ModelFacts

    rss_imports = _maxrss_mb()
    make, window = CASES[name]
    facts = ModelFacts(
        context_window=window,
        window_known=True,
        max_output_tokens=8192,
        price=Price(3e-6, 15e-6, None, "bench"),
        send_schema=True,
    )
    settings = ReviewSettings()

    def plan(diff: Any) -> Any:
        return make_plan(diff, facts, settings, "bench", "openai/bench-model")

    # First use loads the tokenizer (o200k_base) and the prompt: a one-off cost, reported apart.
    t0 = time.perf_counter()
    plan(parse_diff(synthetic_diff(1)))
    warmup = time.perf_counter() - t0
    rss_warm = _maxrss_mb()

    data = make().encode()
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
        "budget": made.budget,
        "lower_bound": math.ceil(sum(c.tokens for c in made.chunks) / made.budget),
        "under_half": sum(1 for c in made.chunks if c.tokens < made.budget / 2),
        "overhead": chunk_overhead(),
        "overhead_schema": chunk_overhead(True) - chunk_overhead(),
        "not_sent": len(made.skipped),
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
    print("\nPlan shape (budget: the window's room, capped by review.max_chunk_tokens)\n")
    rows = [
        [
            r["name"],
            f"{r['budget']:,}",
            r["chunks"],
            r["lower_bound"],
            r["under_half"],
            r["not_sent"],
            f"{r['overhead']:,} + {r['overhead_schema']:,}",
            f"{r['prompt_tokens'] / max(1, r['diff_tokens']):.3f}",
        ]
        for r in results
    ]
    print(
        table(
            [
                "case",
                "budget",
                "chunks",
                "ceil(diff/budget)",
                "under half full",
                "files summarized or listed",
                "prompt/call + schema",
                "prompt/diff tokens",
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
