"""What leaves the machine: planted credentials, echoed keys, hostile escape sequences.

Runs the ``ownit`` console script as a user would, against the loopback stand-in vendor
(``tests/llm_server.py``), and counts leaks in everything the run leaves: what the vendor
received, stdout, stderr, the artifacts, the ledger file and spool files.

1. A diff with credentials of 11 kinds planted in 7 file types (``tests/planted.py``), a removed
   line and a .env file: planted values found anywhere, and how many of the planted places the
   review names. (The PR title is covered by tests/test_secrets.py.)
2. A key-echoing OpenAI-compatible server on every error status ownit meets (401, 403, 404,
   429, 400 policy, 400, 500, 503), with the key in ``OPENAI_API_KEY``: places the key appears.
3. A file path carrying ``ESC[2J`` and ``ESC]0;…BEL``, with rich forced into terminal mode:
   hostile sequences that reach stdout or stderr raw.
4. Masking time (``agent.masking.mask``) on diffs of 10,000 to 60,000 lines, median of
   ``--runs``; with ``--reference REV``, also the masking module as it was at git revision REV
   (run alternately, in the same process) and whether both give the same diff, title and
   findings.

    .venv/bin/python benchmarks/bench_secrets.py
    .venv/bin/python benchmarks/bench_secrets.py --masking-only --reference 0347f69
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from _common import apply_isolated_env, synthetic_diff, table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.llm_server import LLMServer, serve  # noqa: E402
from tests.planted import planted_diff  # noqa: E402
from tests.secret_corpus import bench_diff, random_files  # noqa: E402

OWNIT = str(Path(sys.executable).with_name("ownit"))
KEY = "sk-bench-4f3e2d1c0b9a8877-do-not-print"


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([OWNIT, *args], cwd=cwd, env=env, capture_output=True, timeout=300)


def kept(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def planted(tmp: Path, srv: LLMServer, env: dict[str, str]) -> list[str]:
    data, _, places = planted_diff()
    patch = tmp / "planted.patch"
    patch.write_bytes(data)
    config = tmp / "planted.json"
    config.write_text(json.dumps(_local(srv.url, priced=True)))
    out = tmp / "out"
    before = len(srv.requests)
    done = run(["review", str(patch), "--config", str(config), "--out", str(out)], tmp, env)
    received = b"".join(json.dumps(r.body).encode() for r in srv.requests[before:])
    review = json.loads((out / "ownit-review.json").read_text())
    files = kept(tmp / "home") + kept(out) + kept(tmp / "ledger")
    leaks = {"vendor": 0, "stdout": 0, "stderr": 0, "files": 0}
    for p in places:
        value = p.value.encode()
        leaks["vendor"] += value in received
        leaks["stdout"] += value in done.stdout
        leaks["stderr"] += value in done.stderr
        leaks["files"] += value in files
    named = {(f["kind"], f["path"], f["line"]) for f in review["secrets"]}
    sent = [p for p in places if p.kind != "(not sent)"]
    # A private-key block is named once, at its BEGIN line.
    found = sum((p.kind, p.path, 2 if p.kind == "private-key" else p.line) in named for p in sent)
    return [
        str(done.returncode),
        f"{len(places)} values, {len({p.kind for p in sent})} kinds",
        *(str(leaks[k]) for k in ("vendor", "stdout", "stderr", "files")),
        f"{found}/{len(sent)}",
    ]


def _local(url: str, *, priced: bool) -> dict[str, object]:
    entry: dict[str, object] = {"model": "openai/gpt-local", "api_base": f"{url}/v1"}
    if priced:
        entry |= {
            "context_window": 32000,
            "input_cost_per_token": 1e-6,
            "output_cost_per_token": 2e-6,
        }
    return {"default": "local", "models": {"local": entry}}


def echoed(tmp: Path, url: str, env: dict[str, str]) -> list[list[str]]:
    rows = []
    diff = tmp / "small.patch"
    diff.write_text("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n")
    config = tmp / "fast.json"
    config.write_text(json.dumps({"review": {"retries": 0}}))
    for status in (
        "unauthorized",
        "forbidden",
        "notfound",
        "ratelimit",
        "policy",
        "badrequest",
        "error500",
        "overloaded",
    ):
        out = tmp / f"out-{status}"
        case_env = {**env, "OPENAI_API_BASE": f"{url}/v1", "OPENAI_API_KEY": KEY}
        args = ["review", str(diff), "--config", str(config), "--out", str(out)]
        done = run([*args, "--model", f"openai/echokey-{status}-model"], tmp, case_env)
        places = {
            "stdout": done.stdout,
            "stderr": done.stderr,
            "artifacts": kept(out),
            "ledger and spool": kept(tmp / "home") + kept(tmp / "ledger"),
        }
        leaked = [name for name, content in places.items() if KEY.encode() in content]
        rows.append([status, str(done.returncode), ", ".join(leaked) or "none"])
    return rows


def hostile(tmp: Path, srv: LLMServer, env: dict[str, str]) -> list[list[str]]:
    name = "evil\\033[2J\\033]0;pwned\\007.py"  # as git C-quotes it
    diff = tmp / "evil.patch"
    diff.write_text(
        f'diff --git "a/{name}" "b/{name}"\n--- "a/{name}"\n+++ "b/{name}"\n'
        '@@ -1 +1 @@\n-a = 1\n+TOKEN = "ghp_' + "Zz9Yy8Xx7Ww6" * 3 + '"\n'
    )
    config = tmp / "evil.json"
    config.write_text(json.dumps(_local(srv.url, priced=False)))
    rows = []
    terminal = {"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"}
    for mode, extra in (("piped", {}), ("forced terminal", terminal)):
        out = tmp / f"evil-{len(rows)}"
        done = run(
            ["review", str(diff), "--config", str(config), "--out", str(out)],
            tmp,
            {**env, **extra},
        )
        raw = done.stdout + done.stderr + kept(out)
        rows.append(
            [
                mode,
                str(done.returncode),
                str(raw.count(b"\x1b[2J")),
                str(raw.count(b"\x1b]0;")),
                str(raw.count(b"\x07")),
            ]
        )
    return rows


def masking_diffs() -> list[tuple[str, str, str | None]]:
    """(name, diff, title) of the diffs masking is timed on."""
    data, title, _ = planted_diff()
    dense: list[str] = []
    seed = 0
    while len(dense) < 10_000:  # random files, a secret on most lines (tests/secret_corpus.py)
        for path, lines in random_files(seed, files=20, lines=60):
            dense += [f"--- a/{path}", f"+++ b/{path}", f"@@ -0,0 +1,{len(lines)} @@"]
            dense += ["+" + line for line in lines]
        seed += 1
    return [
        ("planted (tests/planted.py)", data.decode(), title),
        ("synthetic_diff(150)", synthetic_diff(150), None),
        ("synthetic_diff(725)", synthetic_diff(725), None),
        ("bench_diff (1000 files)", bench_diff(1000), None),
        ("secret-dense random files", "\n".join(dense) + "\n", None),
    ]


def reference_module(rev: str) -> ModuleType:
    """``agent/masking.py`` as it was at ``rev``, imported as its own module."""
    source = subprocess.run(
        ["git", "show", f"{rev}:agent/masking.py"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="ownit-masking-ref-")) / "masking_reference.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("masking_reference", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["masking_reference"] = module
    spec.loader.exec_module(module)
    return module


def _result(masked: Any) -> tuple[Any, ...]:
    return masked.diff, masked.title, [f.model_dump() for f in masked.findings]


def masking_table(runs: int, rev: str | None) -> str:
    from agent import masking
    from agent.diff import parse_diff

    reference = reference_module(rev) if rev else None
    rows = []
    for name, text, title in masking_diffs():
        diff = parse_diff(text)
        lines = sum(len(h.lines) for f in diff.files for h in f.hunks)
        masked = masking.mask(diff, title)  # warm-up: imports, compiled patterns
        same = "-"
        if reference is not None:
            same = "yes" if _result(reference.mask(diff, title)) == _result(masked) else "NO"
        times: dict[str, list[float]] = {"new": [], "ref": []}
        for _ in range(runs):  # alternately, so drift hits both alike
            for key, module in (("new", masking), ("ref", reference)):
                if module is None:
                    continue
                t0 = time.perf_counter()
                module.mask(diff, title)
                times[key].append(time.perf_counter() - t0)
        row = [name, f"{lines:,}", str(len(masked.findings)), _ms(times["new"])]
        if reference is not None:
            new, ref = statistics.median(times["new"]), statistics.median(times["ref"])
            row += [_ms(times["ref"]), f"{ref / new:.1f}x", same]
        rows.append(row)
    header = ["diff", "lines", "findings", "mask ms median (min-max)"]
    if reference is not None:
        header += [f"at {rev} ms", "speed-up", "same output"]
    return f"Masking, {runs} runs each:\n\n" + table(header, rows)


def _ms(values: list[float]) -> str:
    m = statistics.median(values) * 1000
    return f"{m:,.1f} ({min(values) * 1000:,.1f}-{max(values) * 1000:,.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each masking case")
    parser.add_argument("--reference", metavar="REV", help="also time agent/masking.py at REV")
    parser.add_argument("--masking-only", action="store_true", help="only the masking times")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ownit-bench-secrets-"))
    apply_isolated_env(tmp / "home")
    if not args.masking_only:
        env = {**os.environ, "OWNIT_LEDGER_URL": f"sqlite:///{tmp / 'ledger' / 'ledger.db'}"}
        with serve() as srv:
            print("## Planted credentials (7 file types, a removed line, a .env file)\n")
            header = ["exit", "planted", "to vendor", "stdout", "stderr", "files kept", "named"]
            print(table(header, [planted(tmp, srv, env)]))
            print("\n## A server that echoes the key in every error body\n")
            print(table(["status", "exit", "key appears in"], echoed(tmp, srv.url, env)))
            print("\n## Escape sequences in a path (and a credential in the file)\n")
            header = ["output", "exit", "ESC[2J raw", "ESC]0; raw", "BEL raw"]
            print(table(header, hostile(tmp, srv, env)))
        print()
    print(masking_table(args.runs, args.reference))


if __name__ == "__main__":
    main()
