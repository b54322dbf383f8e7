"""End-to-end review fan-out: wall time against a local model server at 1, 4 and 8 concurrency.

    python benchmarks/bench_fanout.py [--runs 3] [--latency 200] [--concurrency 1,4,8]
                                      [--files 20] [--hunks 2] [--backlog 64]

Runs ``agent.review.run_review`` (the function ``ownit review`` calls: parse, plan, the LangGraph
fan-out through LiteLLM, synthesis, ledger, ranking) in this process against
``tests/llm_server.serve()`` on an ephemeral loopback port. The model is ``openai/latency<N>-model``
(the server sleeps N ms per request) with ``max_chunk_tokens: 600`` so the synthetic diff
splits into many chunks; the same runs with ``latency0`` give ownit's own overhead per call.
Everything is isolated: temporary HOME/XDG dirs, a temporary SQLite ledger, no vendor keys.

The ideal wall time at concurrency c is (ceil(chunks / c) + 1) x latency (chunk calls in waves
of c, then one synthesis call); "efficiency" is ideal / measured. The fake server runs on a
thread of this process, so its CPU work shares the GIL and the cores with ownit; its share is
measured separately by replaying the recorded requests through its handler code. Its listen
backlog is raised from socketserver's 5 to 64 (``--backlog``), see ``bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import apply_isolated_env, median, ms, synthetic_diff, table


@dataclass
class Cell:
    latency_ms: int
    concurrency: int
    walls: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)


def write_config(tmp: Path, server_url: str, latency_ms: int) -> Path:
    config = {
        "models": {
            "bench": {
                "model": f"openai/latency{latency_ms}-model",
                "api_base": f"{server_url}/v1",
                "context_window": 32000,
                "input_cost_per_token": 0.000001,
                "output_cost_per_token": 0.000002,
            }
        },
        "default": "bench",
        "review": {"max_chunk_tokens": 600, "retry_backoff_seconds": 0, "retries": 0},
    }
    path = tmp / f"providers-latency{latency_ms}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


async def bench(args: argparse.Namespace, tmp: Path) -> None:
    from agent.review import ReviewRequest, run_review
    from tests import llm_server
    from tests.llm_server import route, serve

    # socketserver's listen backlog is 5. The fake server speaks HTTP/1.0, so every call opens a
    # new connection; with more than ~6 connecting at once the kernel drops SYNs and those calls
    # wait ~1 s for the retransmit. Real model servers listen with deep backlogs: so does this
    # one here (--backlog 5 shows the stall).
    llm_server._Server.request_queue_size = args.backlog

    diff_path = tmp / "change.patch"
    diff_path.write_text(synthetic_diff(args.files, args.hunks, seed=7))
    latencies = [args.latency, 0]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    ledger_url = os.environ["OWNIT_LEDGER_URL"]

    with serve() as srv:
        configs = {lat: write_config(tmp, srv.url, lat) for lat in latencies}

        async def review_once(latency_ms: int, concurrency: int) -> tuple[float, int, Any]:
            request = ReviewRequest(
                cwd=tmp,
                diff_path=diff_path,
                config_path=configs[latency_ms],
                ledger_url=ledger_url,
                concurrency=concurrency,
            )
            before = len(srv.requests)
            t0 = time.perf_counter()
            review = await run_review(request)
            wall = time.perf_counter() - t0
            if not review.complete:
                raise SystemExit(f"review incomplete: {review.problems}")
            calls = len(srv.requests) - before
            if calls != review.usage.calls:
                raise SystemExit(f"server saw {calls} calls, review reports {review.usage.calls}")
            return wall, calls, review

        # Warm-up: imports litellm, loads the tokenizer, builds the HTTP client.
        t0 = time.perf_counter()
        _, _, review = await review_once(0, max(concurrencies))
        first = time.perf_counter() - t0
        chunks = sum(1 for c in review.calls if c.purpose.startswith("chunk-"))

        cells = {(lat, c): Cell(lat, c) for lat in latencies for c in concurrencies}
        sample: list[Any] = []
        for rep in range(args.runs):
            print(f"round {rep + 1}/{args.runs} ...", file=sys.stderr, flush=True)
            for (lat, c), cell in cells.items():
                before = len(srv.requests)
                wall, calls, _ = await review_once(lat, c)
                cell.walls.append(wall)
                cell.calls.append(calls)
                if not sample and lat == 0 and c == 1:
                    sample = list(srv.requests[before:])

    # The fake server's own CPU per call (JSON in, regexes over the prompt, JSON out).
    server_times = []
    for request in sample:
        raw = json.dumps(request.body).encode()
        t0 = time.perf_counter()
        json.dumps(route(request.path, raw, json.loads(raw))[1])
        server_times.append(time.perf_counter() - t0)
    server_per_call = median(server_times) if server_times else 0.0

    calls = cells[latencies[0], concurrencies[0]].calls[0]
    print(
        f"\nDiff: {args.files} files x {args.hunks} hunks -> {chunks} chunks "
        f"+ 1 synthesis = {calls} calls per review; median of {args.runs} runs; "
        f"first review in the process (warm-up, not counted): {first:.2f} s\n"
    )
    rows = []
    for lat in latencies:
        base = median(cells[lat, concurrencies[0]].walls)
        for c in concurrencies:
            cell = cells[lat, c]
            wall = median(cell.walls)
            ideal = (math.ceil(chunks / c) + 1) * lat / 1000
            rows.append(
                [
                    f"latency{lat}",
                    c,
                    f"{wall:.3f}",
                    f"{min(cell.walls):.3f}-{max(cell.walls):.3f}",
                    median(cell.calls),
                    f"{ideal:.2f}" if lat else "-",
                    f"{ideal / wall:.0%}" if lat else "-",
                    f"{base / wall:.2f}x",
                    ms(wall / median(cell.calls)),
                ]
            )
    print(
        table(
            [
                "model",
                "concurrency",
                "wall s",
                "min-max s",
                "calls",
                "ideal s",
                "efficiency",
                f"speed-up vs c={concurrencies[0]}",
                "wall/call ms",
            ],
            rows,
        )
    )
    overhead = {c: median(cells[0, c].walls) / median(cells[0, c].calls) for c in concurrencies}
    print(
        "\nownit overhead per call (latency0 wall / calls): "
        + ", ".join(f"c={c}: {ms(v)} ms" for c, v in overhead.items())
        + f"\nof which the in-process fake server's handler CPU: ~{ms(server_per_call)} ms per call"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=int, default=200, help="ms per model call")
    parser.add_argument("--concurrency", default="1,4,8", help="comma-separated; first = base")
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--hunks", type=int, default=2)
    parser.add_argument("--backlog", type=int, default=64, help="fake server's listen backlog")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ownit-bench-fanout-") as tmpdir:
        tmp = Path(tmpdir)
        # Before agent is imported: no keys, offline LiteLLM, a throwaway ledger and home.
        apply_isolated_env(tmp / "home")
        os.environ["OWNIT_LEDGER_URL"] = f"sqlite:///{tmp / 'ledger.db'}"
        asyncio.run(bench(args, tmp))


if __name__ == "__main__":
    main()
