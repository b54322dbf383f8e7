"""Large pull requests: ownit against pr-agent on the same diffs and the same loopback vendor.

    python benchmarks/bench_large_pr.py [--sizes 10,100,1000,10000,50000] [--runs 2]
        [--latency 250] [--failure-rate 0] [--concurrency 8] [--no-pr-agent]
        [--pr-agent-calls 200] [--latency-chunks 40] [--overhead-size 10000]
        [--shape mixed|new-files] [--parts sizes,rereview,latency,overhead]
        [--python312 PATH] [--seed 0] [--diff-context N]

Everything talks to the stand-in vendor ``tests/llm_server.py`` on a loopback port, in its own
process (``serve_apart``: its work does not compete with an in-process review for this
interpreter), which records every request body and times every request; the benchmark reads
them through its ``GET /_records`` and counts the tokens. Four parts
(issue 15; ``--parts`` chooses); benchmarks/README.md says how pr-agent is installed and run:

1. Sizes. Generated diffs (``_corpus.large_pr``) of about 10 ... 50,000 changed lines, reviewed by
   ``ownit review --diff X`` (the console script, a subprocess, concurrency 8, a 32,768-token
   window, default review settings, a fresh ledger, ``--no-cache`` when the CLI has it), by
   ``pr-agent --diff-file X review`` (its own venv; default mode) and by pr-agent's large-PR mode
   (``PR_REVIEWER__ENABLE_LARGE_PR_CHUNKING``). Per tool: wall time, time waiting for the model
   (the union of the server's request intervals: from a request's arrival to its reply, latency
   included), time not waiting (wall minus that), calls, input tokens (o200k over the messages the
   server received), output tokens (as the server billed them), coverage and input tokens per
   covered changed line, against the floor: the changed lines' own tokens.
2. Re-review: ownit on a 40-file diff, then on the same diff with one file changed, same ledger.
3. Latency: with 1 s per call, a diff that ownit plans into 40 chunks (searched by size), at
   concurrency 8, in-process (``agent.review.run_review``) and as the CLI, against the ideal.
4. Overhead: against a zero-latency server, the 10,000-line review (CLI and in-process) against
   ``python -c "import litellm"``, measured in the same run.

Coverage: a changed line (added or removed) of a reviewable file is covered when its text reached
the model in some request. Reviewable files are the modified, added and renamed-with-changes code
files; deleted files, binaries, the lockfile, the vendored minified file and generated code are
left out by design. Every generated line carries a unique identifier, so its text names it; lines
whose text is not unique in the diff (blank lines, a lone ``}``) are not checked, and the
coverage measured on the others stands for them in "per covered line".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

from _common import OWNIT, ROOT, apply_isolated_env, isolated_env, median, table
from _corpus import Corpus, by_shape, forty_files, large_pr

PR_AGENT_VENV = ROOT / "benchmarks" / ".data" / "pr-agent-venv"
PR_AGENT_SPEC = "pr-agent==0.49.0"
WINDOW = 32_768  # both tools' context window
TOOLS = ("ownit", "pr-agent", "pr-agent large")
# Files by kind in the corpus table: 587M = 587 modified files.
KIND_MARKS = {
    "added": "A",
    "binary": "B",
    "deleted": "D",
    "generated": "G",
    "lockfile": "L",
    "modified": "M",
    "renamed": "R",
    "renamed+changed": "RM",
    "vendored": "V",
}
# A diff line as either tool renders it: ownit "   12     14 + text", pr-agent "14 +text" in a
# __new hunk__ and "-text" in an __old hunk__. What is left is the line's own text.
RENDERED_PREFIX = re.compile(r"^(?:\d+\s+){0,2}[+\-]?\s*")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- what the server saw ------------------------------------------------------------------


@dataclass
class Capture:
    """The server's requests, intervals and billed usage during one tool run."""

    srv: Any
    marks: tuple[int, int, int]
    start: float
    wall: float = 0.0
    requests: list[Any] = field(default_factory=list)
    intervals: list[tuple[float, float]] = field(default_factory=list)
    billed: list[tuple[str, int, int]] = field(default_factory=list)

    def finish(self) -> None:
        self.wall = time.perf_counter() - self.start
        srv = self.srv
        # An interval is appended just after its reply is written: let the last ones land.
        deadline = time.perf_counter() + 2
        seen = srv.records(self.marks)
        while len(seen.intervals) < len(seen.requests) and time.perf_counter() < deadline:
            time.sleep(0.005)
            seen = srv.records(self.marks)
        self.requests = seen.requests
        self.intervals = seen.intervals
        self.billed = seen.billed


@contextmanager
def captured(srv: Any) -> Iterator[Capture]:
    cap = Capture(srv, srv.counts(), time.perf_counter())
    yield cap
    cap.finish()


def union_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """The length of the union of the intervals: time with at least one request in flight."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


# --- tokens and coverage ------------------------------------------------------------------


def count_tokens(text: str) -> int:
    from agent.tokens import count_tokens as o200k

    return o200k(text)


def request_text(body: Any) -> str:
    from tests.llm_server import _messages_text

    return _messages_text(body) if isinstance(body, dict) else ""


def param_text(body: Any) -> str:
    """What a request sends besides its messages that a vendor may bill: a JSON schema."""
    if not isinstance(body, dict):
        return ""
    extra = {k: body[k] for k in ("response_format", "tools") if k in body}
    return json.dumps(extra) if extra else ""


def sent_lines(texts: Sequence[str]) -> set[str]:
    """Every line of the requests, stripped, with and without a diff rendering's prefix."""
    out: set[str] = set()
    for text in texts:
        for line in text.splitlines():
            stripped = line.strip()
            if stripped:
                out.add(stripped)
                out.add(RENDERED_PREFIX.sub("", stripped, count=1))
    return out


# ownit's diff block, and its lines as ``agent.parts`` renders them.
DIFF_BLOCK = re.compile(r"^<<<DIFF-(\w+)\n(.*?)\nDIFF-\1>>>$", re.S | re.M)
CHANGED = re.compile(r"^\d+ [+-] ?(.*)$")
NEW_FILE_LINE = re.compile(r"^\d+ (.*)$")
GIT_CONTEXT = re.compile(r"^\d+   ")
# What ownit's input tokens are spent on, in the order they are printed.
SPENT_ON = (
    "changed lines' text",
    "their numbers and +/-",
    "git's context lines",
    "hunk headings",
    "file headers",
    "repository context",
    "instructions",
    "other calls",
)


def ownit_spend(texts: Sequence[str]) -> dict[str, int]:
    """ownit's requests' tokens by what they carry: each chunk request's diff block line by line
    (as ``agent.parts`` renders it), the rest of it as instructions, and the requests without a
    diff (the synthesis) as other calls. Each share is counted on its own lines joined, so the
    shares add up to about, not exactly, the requests' tokens. Empty for another tool."""
    lines: dict[str, list[str]] = {k: [] for k in SPENT_ON}
    rendered: list[str] = []  # the changed lines as shown, for the numbers' and marks' share
    for text in texts:
        block = DIFF_BLOCK.search(text)
        if block is None:
            lines["other calls"].append(text)
            continue
        lines["instructions"].append(text[: block.start()] + text[block.end() :])
        where, new = "file headers", False
        for line in block.group(2).splitlines():
            if line.startswith("=== FILE "):
                where, new = "file headers", "(new file: every line added" in line
                lines[where].append(line)
            elif line.startswith("=== CONTEXT "):
                where = "repository context"
                lines[where].append(line)
            elif where == "repository context":
                lines[where].append(line)
            elif line.startswith("@@"):
                lines["hunk headings"].append(line)
            elif (m := (NEW_FILE_LINE if new else CHANGED).match(line)) is not None:
                lines["changed lines' text"].append(m.group(1))
                rendered.append(line)
            elif GIT_CONTEXT.match(line):
                lines["git's context lines"].append(line)
            else:  # "(was old/path)", a deleted file's summary, the blank line between files
                lines["file headers"].append(line)
    if not any(lines[k] for k in SPENT_ON[:-1]):
        return {}
    out = {k: count_tokens("\n".join(v)) for k, v in lines.items()}
    out["their numbers and +/-"] = count_tokens("\n".join(rendered)) - out["changed lines' text"]
    return out


@dataclass(frozen=True)
class Floor:
    """What the corpus asks to be reviewed: reviewable changed lines and their own tokens."""

    added: int
    removed: int
    tokens: int  # the changed lines' own text
    hunk_lines: int  # changed and context lines of the reviewable files' hunks
    hunk_tokens: int  # their text: the diff itself, without headers or line numbers
    checkable_added: tuple[str, ...]
    checkable_removed: tuple[str, ...]
    unreviewable: tuple[str, ...]  # changed lines of deleted, generated, ... files (unique)

    @property
    def lines(self) -> int:
        return self.added + self.removed

    @property
    def per_line(self) -> float:
        return self.tokens / self.lines if self.lines else 0.0

    @property
    def hunks_per_line(self) -> float:
        """Hunk tokens per changed line: what sending the hunks as they are costs."""
        return self.hunk_tokens / self.lines if self.lines else 0.0


def floor_of(corpus: Corpus) -> Floor:
    changed = corpus.changed(reviewable=True)
    checkable = corpus.checkable()
    hunks = corpus.hunk_lines()
    return Floor(
        added=sum(1 for c in changed if c.tag == "+"),
        removed=sum(1 for c in changed if c.tag == "-"),
        tokens=count_tokens("\n".join(c.text for c in changed)),
        hunk_lines=len(hunks),
        hunk_tokens=count_tokens("\n".join(hunks)),
        checkable_added=tuple(c.text.strip() for c in checkable if c.tag == "+"),
        checkable_removed=tuple(c.text.strip() for c in checkable if c.tag == "-"),
        unreviewable=unreviewable_texts(corpus),
    )


def unreviewable_texts(corpus: Corpus) -> tuple[str, ...]:
    """The stripped texts of changed lines in files not reviewable by design, once each."""
    texts = [c.text.strip() for c in corpus.changed(reviewable=False)]
    counts: dict[str, int] = {}
    for text in texts:
        counts[text] = counts.get(text, 0) + 1
    return tuple(t for t in texts if t and counts[t] == 1)


def share(texts: Sequence[str], sent: set[str]) -> float:
    """The fraction of ``texts`` in ``sent``; NaN when there is nothing to check."""
    return sum(t in sent for t in texts) / len(texts) if texts else math.nan


# --- one measured run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    wall: float
    waiting: float  # the union of the server's request intervals
    first_request: float  # seconds from start to the first request's arrival
    calls: int
    in_tokens: int  # o200k over the messages' text
    param_tokens: int  # o200k over response_format / tools (a JSON schema), not in in_tokens
    out_tokens: int  # as the server billed them (ceil(chars / 4) of the reply)
    cov_added: float
    cov_removed: float
    unreviewable_sent: float  # share of the unreviewable files' changed lines sent anyway
    covered_lines: float  # coverage x reviewable changed lines
    ok: bool
    note: str = ""
    spend: dict[str, int] = field(default_factory=dict)  # ownit_spend of the requests

    @property
    def not_waiting(self) -> float:
        return self.wall - self.waiting

    @property
    def per_covered_line(self) -> float:
        return self.in_tokens / self.covered_lines if self.covered_lines else math.inf


def measure(cap: Capture, floor: Floor, ok: bool, note: str = "") -> Measure:
    texts = [request_text(r.body) for r in cap.requests]
    sent = sent_lines(texts)
    cov_added = share(floor.checkable_added, sent)
    cov_removed = share(floor.checkable_removed, sent)
    starts = [a for a, _ in cap.intervals]
    return Measure(
        wall=cap.wall,
        waiting=union_seconds(cap.intervals),
        first_request=(min(starts) - cap.start) if starts else math.nan,
        calls=len(cap.requests),
        in_tokens=sum(count_tokens(t) for t in texts),
        param_tokens=sum(count_tokens(param_text(r.body)) for r in cap.requests),
        out_tokens=sum(completion for _, _, completion in cap.billed),
        cov_added=cov_added,
        cov_removed=cov_removed,
        unreviewable_sent=share(floor.unreviewable, sent),
        covered_lines=covered(cov_added, floor.added) + covered(cov_removed, floor.removed),
        ok=ok,
        note=note,
        spend=ownit_spend(texts),
    )


def covered(coverage: float, lines: int) -> float:
    return 0.0 if math.isnan(coverage) else coverage * lines


def typical(runs: Sequence[Measure]) -> Measure:
    """Median wall, waiting and first request; counts from the median-wall run."""
    mid = sorted(runs, key=lambda m: m.wall)[(len(runs) - 1) // 2]
    return Measure(
        **{
            f.name: getattr(mid, f.name)
            for f in fields(Measure)
            if f.name not in ("wall", "waiting", "first_request")
        },
        wall=median([m.wall for m in runs]),
        waiting=median([m.waiting for m in runs]),
        first_request=median([m.first_request for m in runs]),
    )


# --- ownit --------------------------------------------------------------------------------


def ownit_config(
    tmp: Path, server_url: str, model: str, review: dict[str, Any] | None = None
) -> Path:
    """providers.yaml naming one model at the server; default review settings but ``review``."""
    config: dict[str, Any] = {
        "models": {
            "bench": {
                "model": f"openai/{model}",
                "api_base": f"{server_url}/v1",
                "context_window": WINDOW,
                "input_cost_per_token": 0.000001,
                "output_cost_per_token": 0.000002,
            }
        },
        "default": "bench",
    }
    if review:
        config["review"] = review
    path = tmp / f"providers-{model}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def ownit_has_flag(flag: str) -> bool:
    env = dict(os.environ, COLUMNS="200")
    out = subprocess.run(
        [str(OWNIT), "review", "--help"], env=env, capture_output=True, text=True, check=False
    )
    return flag in out.stdout


@dataclass
class Ownit:
    """How this run invokes ownit: its config per model, a fresh home and ledger per run."""

    tmp: Path
    server_url: str
    concurrency: int
    no_cache: bool
    runs: int = 0
    review: dict[str, Any] = field(default_factory=dict)  # review settings (--diff-context)

    def fresh_ledger(self) -> str:
        self.runs += 1
        return f"sqlite:///{self.tmp / f'ledger-{self.runs}.db'}"

    def cli(
        self, diff: Path, model: str, ledger: str | None = None, *, no_cache: bool = True
    ) -> tuple[bool, str, dict[str, Any]]:
        """``ownit review --diff`` as a subprocess, with ``--no-cache`` when asked and the CLI
        has it; (ok, note, the JSON artifact)."""
        ledger = ledger or self.fresh_ledger()
        out = self.tmp / f"ownit-out-{self.runs}-{time.monotonic_ns()}"
        command = [str(OWNIT), "review", "--diff", str(diff)]
        command += ["--config", str(ownit_config(self.tmp, self.server_url, model, self.review))]
        command += ["--format", "json", "--out", str(out), "--concurrency", str(self.concurrency)]
        if no_cache and self.no_cache:
            command.append("--no-cache")
        env = isolated_env(self.tmp / "home-cli", dict(os.environ))
        env["OWNIT_LEDGER_URL"] = ledger
        done = subprocess.run(command, env=env, cwd=self.tmp, capture_output=True, text=True)
        artifact = out / "ownit-review.json"
        data = json.loads(artifact.read_text()) if artifact.exists() else {}
        ok = done.returncode == 0 and bool(data.get("complete"))
        note = "" if ok else f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
        return ok, note, data

    async def in_process(self, diff: Path, model: str) -> tuple[bool, str, Any]:
        """``agent.review.run_review`` in this process; (ok, note, the Review)."""
        from agent.review import ReviewRequest, run_review

        request = ReviewRequest(
            cwd=self.tmp,
            diff_path=diff,
            config_path=ownit_config(self.tmp, self.server_url, model, self.review),
            ledger_url=self.fresh_ledger(),
            concurrency=self.concurrency,
        )
        review = await run_review(request)
        return review.complete, "; ".join(review.problems)[:300], review

    async def planned_chunks(self, diff: Path) -> int:
        from agent.review import ReviewRequest, dry_run

        request = ReviewRequest(
            cwd=self.tmp,
            diff_path=diff,
            config_path=ownit_config(self.tmp, self.server_url, "plan-model", self.review),
            ledger_url=self.fresh_ledger(),
            dry_run=True,
        )
        return len((await dry_run(request)).plan.chunks)


def call_purposes(artifact_or_review: Any) -> dict[str, int]:
    """Calls by kind ("chunk", "synthesis") from a JSON artifact or a Review."""
    calls = (
        artifact_or_review.get("calls", [])
        if isinstance(artifact_or_review, dict)
        else [c.model_dump() for c in artifact_or_review.calls]
    )
    kinds: dict[str, int] = {}
    for call in calls:
        kind = str(call.get("purpose", "")).split("-")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


# --- pr-agent -----------------------------------------------------------------------------


def python312(explicit: str | None) -> Path | None:
    """A Python 3.12 interpreter to build pr-agent's venv with (not pyenv's shim)."""
    if explicit:
        return Path(explicit)
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(root.glob("versions/3.12*/bin/python3.12"))
    return found[-1] if found else None


def ensure_pr_agent(python: Path | None) -> tuple[Path | None, str]:
    """pr-agent's console script, creating its venv if missing; (None, why) if it cannot."""
    exe = PR_AGENT_VENV / "bin" / "pr-agent"
    if exe.exists():
        return exe, ""
    how = (
        f"<python3.12> -m venv {PR_AGENT_VENV} && {PR_AGENT_VENV}/bin/pip install '{PR_AGENT_SPEC}'"
    )
    if python is None or not python.exists():
        return None, f"no Python 3.12 found (--python312); create the venv with: {how}"
    print(f"creating {PR_AGENT_VENV} ({PR_AGENT_SPEC}) ...", file=sys.stderr, flush=True)
    steps = [
        [str(python), "-m", "venv", str(PR_AGENT_VENV)],
        [str(PR_AGENT_VENV / "bin" / "pip"), "install", "-q", PR_AGENT_SPEC],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"{' '.join(step)} failed: {done.stderr.strip()[-300:]}; try: {how}"
    return (exe, "") if exe.exists() else (None, f"no {exe} after install; try: {how}")


def venv_versions(python: Path, *packages: str) -> dict[str, str]:
    code = "import importlib.metadata as m, sys; print(*(m.version(p) for p in sys.argv[1:]))"
    done = subprocess.run(
        [str(python), "-c", code, *packages], capture_output=True, text=True, check=False
    )
    return dict(zip(packages, done.stdout.split(), strict=False))


@dataclass
class PrAgent:
    exe: Path
    tmp: Path
    server_url: str
    max_calls: int
    runs: int = 0

    def env(self, model: str, large: bool) -> dict[str, str]:
        site = next(PR_AGENT_VENV.glob("lib/python3.*/site-packages"))
        env = isolated_env(self.tmp / "home-pr-agent", dict(os.environ))
        env.update(
            {
                "OPENAI__KEY": "sk-bench-dummy",
                "OPENAI__API_BASE": f"{self.server_url}/v1",
                "CONFIG__MODEL": f"openai/{model}",
                "CONFIG__FALLBACK_MODELS": "[]",
                "CONFIG__CUSTOM_MODEL_MAX_TOKENS": str(WINDOW),
                "CONFIG__MAX_MODEL_TOKENS": str(WINDOW),
                "CONFIG__PUBLISH_OUTPUT_PROGRESS": "false",
                "TIKTOKEN_CACHE_DIR": str(site / "litellm" / "litellm_core_utils" / "tokenizers"),
            }
        )
        if large:
            env["PR_REVIEWER__ENABLE_LARGE_PR_CHUNKING"] = "true"
            env["PR_REVIEWER__MAX_NUMBER_OF_CALLS"] = str(self.max_calls)
        return env

    def run(self, diff: Path, model: str, large: bool) -> tuple[bool, str]:
        """``pr-agent --diff-file X --output Y review`` from a directory with no git checkout
        (patch-only: it reads no working tree); (ok, note)."""
        self.runs += 1
        cwd = self.tmp / "pr-agent-cwd"
        cwd.mkdir(exist_ok=True)
        out = cwd / f"review-{self.runs}.md"
        command = [str(self.exe), "--diff-file", str(diff), "--output", str(out), "review"]
        done = subprocess.run(
            command, env=self.env(model, large), cwd=cwd, capture_output=True, text=True
        )
        failed = "Failed to review PR" in done.stdout or done.returncode != 0
        note = ""
        if failed:
            log = ANSI.sub("", done.stderr + "\n" + done.stdout).splitlines()
            errors = [ln for ln in log if "ERROR" in ln and "Failed" in ln]
            note = f"exit {done.returncode}: " + (errors[-1][-300:] if errors else "failed")
        return not failed, note


# --- part 1: sizes ------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    srv: Any
    ownit: Ownit
    pr_agent: PrAgent | None

    def write(self, corpus: Corpus, name: str) -> Path:
        path = self.tmp / f"{name}.patch"
        path.write_text(corpus.text)
        return path

    def model(self, latency_ms: int, failures: int = 0) -> str:
        flaky = f"-flaky{failures}" if failures else ""
        return f"latency{latency_ms}{flaky}-model"

    def one(self, tool: str, diff: Path, floor: Floor, model: str) -> Measure:
        with captured(self.srv) as cap:
            if tool == "ownit":
                ok, note, _ = self.ownit.cli(diff, model)
            else:
                assert self.pr_agent is not None
                ok, note = self.pr_agent.run(diff, model, large=tool == "pr-agent large")
        return measure(cap, floor, ok, note)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_sizes(
    bench: Bench, corpora: dict[int, Corpus], floors: dict[int, Floor]
) -> dict[int, dict[str, Measure]]:
    args = bench.args
    tools = [t for t in TOOLS if t == "ownit" or bench.pr_agent is not None]
    model = bench.model(args.latency, args.failure_rate)
    results: dict[int, dict[str, Measure]] = {}
    for size, corpus in corpora.items():
        diff, floor = bench.write(corpus, f"size-{size}"), floors[size]
        runs: dict[str, list[Measure]] = {t: [] for t in tools}
        for rep in range(args.runs):
            for tool in tools:  # interleaved, so drift hits all tools alike
                progress(f"size {size:,}: {tool}, run {rep + 1}/{args.runs} ...")
                runs[tool].append(bench.one(tool, diff, floor, model))
        results[size] = {t: typical(ms) for t, ms in runs.items()}
    return results


def corpus_table(corpora: dict[int, Corpus], floors: dict[int, Floor]) -> str:
    rows = []
    for size, corpus in corpora.items():
        floor, kinds = floors[size], corpus.kinds()
        rows.append(
            [
                f"{size:,}",
                len(corpus.files),
                sum(f.reviewable for f in corpus.files),
                f"{len(corpus.changed()):,}",
                f"{floor.added:,} / {floor.removed:,}",
                f"{len(floor.checkable_added) + len(floor.checkable_removed):,}",
                f"{floor.hunk_lines - floor.lines:,}",
                f"{floor.tokens:,}",
                f"{floor.per_line:.1f}",
                f"{floor.hunks_per_line:.1f}",
                " ".join(f"{n}{KIND_MARKS[k]}" for k, n in sorted(kinds.items())),
            ]
        )
    headers = ["size", "files", "reviewable", "changed lines", "reviewable + / -", "checked"]
    headers += ["context"]
    headers += ["floor tok", "floor tok/line", "hunks tok/line", "files by kind*"]
    return table(headers, rows)


def pct(x: float) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:.0%}" if x < 0.995 or x == 1 else f"{x:.1%}"


def sizes_table(results: dict[int, dict[str, Measure]]) -> str:
    rows = []
    for size, by_tool in results.items():
        for tool, m in by_tool.items():
            rows.append(
                [
                    f"{size:,}",
                    tool + ("" if m.ok else " (failed)"),
                    f"{m.wall:.2f}",
                    f"{m.first_request:.2f}",
                    f"{m.waiting:.2f}",
                    f"{m.not_waiting:.2f}",
                    m.calls,
                    f"{m.in_tokens:,}",
                    f"{m.out_tokens:,}",
                    pct(m.cov_added),
                    pct(m.cov_removed),
                    pct(m.unreviewable_sent),
                    f"{m.per_covered_line:.1f}",
                ]
            )
    headers = ["size", "tool", "wall s", "1st request s", "waiting s", "not waiting s"]
    headers += ["calls", "in tok"]
    headers += ["out tok", "cov +", "cov -", "unreviewable sent", "in tok/covered line"]
    return table(headers, rows)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and math.isfinite(a) and math.isfinite(b) else "-"


def ratios_table(results: dict[int, dict[str, Measure]], floors: dict[int, Floor]) -> str:
    rows = []
    for size, by_tool in results.items():
        own, floor = by_tool["ownit"], floors[size]
        row: list[object] = [f"{size:,}"]
        for peer in ("pr-agent", "pr-agent large"):
            other = by_tool.get(peer)
            row += [
                ratio(own.per_covered_line, other.per_covered_line) if other else "-",
                ratio(own.wall, other.wall) if other else "-",
                ratio(own.not_waiting, other.not_waiting) if other else "-",
            ]
        large = by_tool.get("pr-agent large")
        for per_line in (floor.per_line, floor.hunks_per_line):
            row += [
                ratio(own.per_covered_line, per_line),
                ratio(large.per_covered_line, per_line) if large else "-",
            ]
        rows.append(row)
    headers = ["size", "tok/cov line vs pr-agent", "wall", "not waiting"]
    headers += ["tok/cov line vs large", "wall", "not waiting"]
    headers += ["ownit vs floor", "large vs floor", "ownit vs hunks", "large vs hunks"]
    return table(headers, rows)


def spend_table(results: dict[int, dict[str, Measure]], floors: dict[int, Floor]) -> str:
    """Where ownit's input tokens go, each as a multiple of the floor (the changed lines' own
    tokens): what the 1.15x floor leaves room for, and what takes it."""
    rows = []
    for size, by_tool in results.items():
        own, floor = by_tool["ownit"], floors[size]
        if not own.spend or not floor.tokens:
            continue
        shares = [own.spend[k] / floor.tokens for k in SPENT_ON]
        rows.append(
            [f"{size:,}", f"{floor.tokens:,}", f"{own.in_tokens:,}"]
            + [f"{x:.3f}" for x in shares]
            + [f"{sum(shares):.2f}x", f"{own.in_tokens / floor.tokens:.2f}x"]
        )
    headers = ["size", "floor tok", "ownit in tok", *SPENT_ON, "sum", "in tok / floor"]
    return table(headers, rows)


def notes_lines(results: dict[int, dict[str, Measure]]) -> list[str]:
    out = []
    for size, by_tool in results.items():
        for tool, m in by_tool.items():
            if m.note:
                out.append(f"{size:,} {tool}: {m.note}")
            if m.param_tokens:
                out.append(
                    f"{size:,} {tool}: also sent {m.param_tokens:,} tokens of JSON schema as "
                    f"response_format ({m.param_tokens // max(m.calls, 1):,} per call), "
                    "not counted in 'in tok'"
                )
    return out


# --- part 2: re-review -------------------------------------------------------------------


def run_rereview(bench: Bench) -> str:
    """Two pairs of runs, each pair on one ledger: the same diff twice, then one file edited."""
    model = bench.model(0)
    first_diff = bench.write(forty_files(bench.args.seed), "forty")
    edited_diff = bench.write(forty_files(bench.args.seed, edited=17), "forty-edited")
    floor = floor_of(forty_files(bench.args.seed))
    rows = []
    for label, second_diff in (("same diff again", first_diff), ("one file edited", edited_diff)):
        progress(f"re-review: {label} ...")
        ledger = bench.ownit.fresh_ledger()
        pair = []
        for diff in (first_diff, second_diff):
            with captured(bench.srv) as cap:
                ok, note, data = bench.ownit.cli(diff, model, ledger, no_cache=False)
            pair.append((measure(cap, floor, ok, note), call_purposes(data).get("chunk", 0)))
        (one, chunks_one), (two, chunks_two) = pair
        rows.append(
            [
                label,
                f"{one.in_tokens:,}",
                f"{two.in_tokens:,}",
                f"{two.in_tokens / one.in_tokens:.2f}" if one.in_tokens else "-",
                f"{one.calls} / {two.calls}",
                f"{chunks_one} / {chunks_two}",
                f"{one.wall:.2f} / {two.wall:.2f}",
            ]
        )
    headers = ["40-file diff (2,366 changed lines)", "1st in tok", "2nd in tok", "2nd / 1st"]
    headers += ["calls 1st / 2nd", "chunk calls", "wall s"]
    return table(headers, rows)


# --- part 3: latency ---------------------------------------------------------------------


async def diff_with_chunks(bench: Bench, target: int) -> tuple[Path, int, int]:
    """A ``large_pr`` diff ownit plans into ``target`` chunks (searched by size), or the
    closest one found: the issue's case is 40 chunks, five full waves at concurrency 8. Chunks
    grow with size only roughly (packing is not monotonic), so once sizes below and above the
    target are known it bisects between them, 100 lines at a time."""
    found: dict[int, tuple[int, Path]] = {}
    size = target * 900
    for _ in range(24):
        path = bench.write(large_pr(size, bench.args.seed), f"latency-{size}")
        chunks = await bench.ownit.planned_chunks(path)
        found[size] = (chunks, path)
        progress(f"latency diff: {size:,} changed lines -> {chunks} chunks")
        if chunks == target:
            break
        below = [s for s, (c, _) in found.items() if c < target]
        above = [s for s, (c, _) in found.items() if c > target]
        if below and above:
            lo, hi = sorted((max(below), min(above)))
            gap = [s for s in range(lo + 100, hi, 100) if s not in found]
        else:  # no bracket yet: scale by the chunks seen
            gap = [round(size * target / max(chunks, 1) / 100) * 100]
        untried = [s for s in gap if s not in found and s > 0]
        if not untried:  # the bracket is closed: the nearest size not tried yet
            step = 100 if chunks < target else -100
            untried = [next(s for s in range(size, 10**7 * step, step) if s not in found and s > 0)]
        size = untried[len(untried) // 2]
    best = min(found, key=lambda s: (abs(found[s][0] - target), s))
    return found[best][1], best, found[best][0]


async def run_latency(bench: Bench) -> str:
    args, latency_ms = bench.args, 1000
    path, size, chunks = await diff_with_chunks(bench, args.latency_chunks)
    model, no_floor = bench.model(latency_ms), floor_of(Corpus("", ()))
    await bench.ownit.in_process(path, bench.model(0))  # warm-up: imports, tokenizer, client
    runs: dict[str, list[tuple[Measure, dict[str, int]]]] = {"in-process": [], "CLI": []}
    timelines: dict[str, str] = {}
    for rep in range(args.runs):
        progress(f"latency: run {rep + 1}/{args.runs} ...")
        with captured(bench.srv) as cap:
            ok, note, review = await bench.ownit.in_process(path, model)
        runs["in-process"].append((measure(cap, no_floor, ok, note), call_purposes(review)))
        timelines["in-process"] = timeline(cap, args.concurrency)
        with captured(bench.srv) as cap:
            ok, note, data = bench.ownit.cli(path, model)
        runs["CLI"].append((measure(cap, no_floor, ok, note), call_purposes(data)))
        timelines["CLI"] = timeline(cap, args.concurrency)
    waves = math.ceil(chunks / args.concurrency)
    ideal, with_synthesis = waves * latency_ms / 1000, (waves + 1) * latency_ms / 1000
    rows = [latency_row(mode, pairs, ideal, with_synthesis) for mode, pairs in runs.items()]
    head = (
        f"Diff: {size:,} changed lines -> {chunks} planned chunks; {latency_ms} ms per call; "
        f"concurrency {args.concurrency}; median of {args.runs}. Ideal = ceil({chunks}/"
        f"{args.concurrency}) x 1 s = {ideal:.0f} s of chunk waves (synthesis not counted); "
        f"{with_synthesis:.0f} s counting one synthesis call after them.\n\n"
    )
    headers = ["ownit", "wall s", "min-max s", "chunk calls", "synthesis calls"]
    headers += ["1st request s", "waiting s", "vs ideal", "vs ideal + synthesis"]
    when = "\n".join(f"{mode}: {line}" for mode, line in timelines.items())
    return head + table(headers, rows) + "\n\nRequests sent (last run), s from start:\n" + when


def timeline(cap: Capture, concurrency: int) -> str:
    """When each wave of ``concurrency`` requests left (its first and last), from the start,
    then the run's end: the gaps show what ownit spends between a wave's answers and the next
    wave."""
    starts = sorted(a - cap.start for a, _ in cap.intervals)
    waves = [starts[i : i + concurrency] for i in range(0, len(starts), concurrency)]
    shown = [f"{w[0]:.2f}-{w[-1]:.2f}" if len(w) > 1 else f"{w[0]:.2f}" for w in waves]
    return (
        ", ".join(shown)
        + f"; last answer {max(b for _, b in cap.intervals) - cap.start:.2f}, end {cap.wall:.2f}"
    )


def latency_row(
    mode: str, pairs: list[tuple[Measure, dict[str, int]]], ideal: float, with_synthesis: float
) -> list[object]:
    m = typical([measure for measure, _ in pairs])
    kinds = pairs[0][1]
    walls = [measure.wall for measure, _ in pairs]
    return [
        mode + ("" if m.ok else f" (incomplete: {m.note})"),
        f"{m.wall:.2f}",
        f"{min(walls):.2f}-{max(walls):.2f}",
        kinds.get("chunk", 0),
        kinds.get("synthesis", 0),
        f"{m.first_request:.2f}",
        f"{m.waiting:.2f}",
        f"{m.wall / ideal:.2f}x",
        f"{m.wall / with_synthesis:.2f}x",
    ]


# --- part 4: overhead --------------------------------------------------------------------


def time_import_litellm() -> float:
    env = isolated_env(Path(tempfile.gettempdir()) / "ownit-bench-import-home", dict(os.environ))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import litellm"], env=env, check=True)
    return time.perf_counter() - t0


async def run_overhead(bench: Bench, size: int) -> str:
    corpus = large_pr(size, bench.args.seed)
    path, model = bench.write(corpus, f"overhead-{size}"), "bench-model"
    await bench.ownit.in_process(path, model)  # warm-up
    runs: dict[str, list[float]] = {"import litellm": [], "CLI": [], "in-process": []}
    notes = []
    for rep in range(max(3, bench.args.runs)):
        progress(f"overhead: run {rep + 1} ...")
        runs["import litellm"].append(time_import_litellm())
        with captured(bench.srv) as cap:
            _, note, _ = bench.ownit.cli(path, model)
        runs["CLI"].append(cap.wall)
        notes += [note] if note else []
        with captured(bench.srv) as cap:
            _, note, _ = await bench.ownit.in_process(path, model)
        runs["in-process"].append(cap.wall)
        notes += [note] if note else []
    base = median(runs["import litellm"])
    rows = [
        [
            what,
            f"{median(walls):.2f}",
            f"{min(walls):.2f}-{max(walls):.2f}",
            f"{median(walls) / base:.2f}x",
        ]
        for what, walls in runs.items()
    ]
    head = f"{size:,}-line diff, zero-latency server, median of {len(runs['CLI'])}\n\n"
    tail = "".join(f"\nnote: {n}" for n in notes[:3])
    return head + table(["", "wall s", "min-max s", "vs import litellm"], rows) + tail


# --- main ---------------------------------------------------------------------------------


def versions(pr_agent: PrAgent | None) -> str:
    ours = venv_versions(Path(sys.executable), "ownit", "litellm", "langgraph", "tiktoken")
    python = sys.version.split()[0]
    line = f"ownit {ours.get('ownit')} (litellm {ours.get('litellm')}, Python {python})"
    if pr_agent is not None:
        theirs = venv_versions(PR_AGENT_VENV / "bin" / "python", "pr-agent", "litellm")
        line += f"; pr-agent {theirs.get('pr-agent')} (litellm {theirs.get('litellm')})"
    return line


async def bench_all(args: argparse.Namespace, tmp: Path, exe: Path | None, why: str) -> None:
    from tests.llm_server import serve_apart

    sizes = [int(s) for s in args.sizes.split(",") if s]
    with serve_apart() as srv:
        ownit = Ownit(tmp, srv.url, args.concurrency, ownit_has_flag("--no-cache"))
        if args.diff_context is not None:
            ownit.review["diff_context_lines"] = args.diff_context
        pr_agent = PrAgent(exe, tmp, srv.url, args.pr_agent_calls) if exe else None
        bench = Bench(args, tmp, srv, ownit, pr_agent)
        print(f"# Large PRs: ownit vs pr-agent, {date.today()}, {versions(pr_agent)}")
        print(
            f"window {WINDOW:,} tokens for both; server latency {args.latency} ms per call, "
            f"failure rate {args.failure_rate}%; ownit concurrency {args.concurrency}, "
            + (f"diff_context_lines {args.diff_context}, " if args.diff_context is not None else "")
            + ("--no-cache on first runs; " if ownit.no_cache else "no --no-cache flag; ")
            + f"a fresh ledger per run; median of {args.runs} run(s)"
        )
        if why:
            print(f"pr-agent skipped: {why}")
        parts = set(args.parts.split(","))
        if "sizes" in parts and sizes:
            corpora = {s: by_shape(args.shape, s, args.seed) for s in sizes}
            floors = {s: floor_of(c) for s, c in corpora.items()}
            print("\n## Corpus\n\n" + corpus_table(corpora, floors))
            print("* " + ", ".join(f"{m} {k}" for k, m in KIND_MARKS.items()), flush=True)
            results = run_sizes(bench, corpora, floors)
            print("\n## Per size\n\n" + sizes_table(results))
            print("\n## Ratios (ownit / peer; ownit / floor)\n\n" + ratios_table(results, floors))
            print(
                "\n## Where ownit's input tokens go (x the floor: the changed lines' own tokens)"
                "\n\n" + spend_table(results, floors)
            )
            for line in notes_lines(results):
                print(f"note: {line}")
        if "rereview" in parts:
            print("\n## Re-review (ownit)\n\n" + run_rereview(bench), flush=True)
        if "latency" in parts:
            print("\n## Latency (ownit)\n\n" + await run_latency(bench), flush=True)
        if "overhead" in parts:
            print("\n## Overhead (ownit)\n\n" + await run_overhead(bench, args.overhead_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000,50000")
    parser.add_argument("--runs", type=int, default=2, help="median of N per measurement")
    parser.add_argument("--latency", type=int, default=250, help="ms per call (sizes part)")
    parser.add_argument("--failure-rate", type=int, default=0, help="percent (sizes part)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-pr-agent", action="store_true")
    parser.add_argument("--pr-agent-calls", type=int, default=200, help="its MAX_NUMBER_OF_CALLS")
    parser.add_argument("--latency-chunks", type=int, default=40)
    parser.add_argument("--python312", help="interpreter for pr-agent's venv")
    parser.add_argument("--overhead-size", type=int, default=10_000, help="changed lines")
    parser.add_argument("--parts", default="sizes,rereview,latency,overhead")
    parser.add_argument(
        "--shape",
        choices=("mixed", "new-files"),
        default="mixed",
        help="sizes part: a mixed PR (default) or only new files of ~1,000 lines",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--diff-context",
        type=int,
        help="ownit's review.diff_context_lines (default: unset, git's context as it is)",
    )
    args = parser.parse_args()
    exe, why = (
        (None, "--no-pr-agent") if args.no_pr_agent else ensure_pr_agent(python312(args.python312))
    )
    with tempfile.TemporaryDirectory(prefix="ownit-bench-large-pr-") as tmpdir:
        tmp = Path(tmpdir)
        apply_isolated_env(tmp / "home")  # before agent is imported
        asyncio.run(bench_all(args, tmp, exe, why if not args.no_pr_agent else ""))


if __name__ == "__main__":
    main()
