"""Command start-up: wall time of ``ownit`` subprocesses, and which heavy modules they import.

    python benchmarks/bench_startup.py [--runs 15]

Runs the ``ownit`` console script of the venv that runs this script (next to sys.executable)
with HOME and the XDG directories in a temporary directory and no vendor API keys:

* ``ownit --help``
* ``ownit ledger report`` on a fresh temporary SQLite ledger each run (OWNIT_LEDGER_URL), so it
  includes creating and migrating the database
* ``ownit review --diff examples/retry-charges.patch --dry-run`` from the repository root

and a bare ``python -c pass`` as the interpreter's floor. Then, in one subprocess per command,
it runs the command in-process and reports whether ``litellm`` / ``langgraph`` were imported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import EXAMPLE, OWNIT, ROOT, isolated_env, median, ms, p90, table

HEAVY = ("litellm", "langgraph", "tiktoken", "sqlalchemy", "pydantic", "rich")
# `python -c _PROBE HEAVY,NAMES ARGS...` runs ownit ARGS in-process, then reports (on stderr,
# after the command's own output) how many modules are loaded and which of HEAVY.
_PROBE = """
import json, sys
from agent.cli import app
try:
    app(args=sys.argv[2:], prog_name="ownit")
except SystemExit:
    pass
heavy = sys.argv[1].split(",")
print(json.dumps({"modules": len(sys.modules), **{m: m in sys.modules for m in heavy}}),
      file=sys.stderr)
"""


def commands() -> dict[str, list[str]]:
    return {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "ownit --help": [str(OWNIT), "--help"],
        "ownit ledger report": [str(OWNIT), "ledger", "report"],
        "ownit review --dry-run": [str(OWNIT), "review", "--diff", str(EXAMPLE), "--dry-run"],
    }


def run_once(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if not OWNIT.exists():
        sys.exit(f"no console script at {OWNIT}: install ownit into this venv (pip install -e .)")

    with tempfile.TemporaryDirectory(prefix="ownit-bench-startup-") as tmpdir:
        tmp = Path(tmpdir)
        env = isolated_env(tmp / "home")
        cmds = commands()
        times: dict[str, list[float]] = {name: [] for name in cmds}
        # One untimed round first (page cache, .pyc files), then the commands interleaved so
        # that drift on the machine affects all of them alike.
        for i in range(args.runs + 1):
            for name, argv in cmds.items():
                run_env = dict(env, OWNIT_LEDGER_URL=f"sqlite:///{tmp / f'ledger-{i}.db'}")
                elapsed = run_once(argv, run_env)
                if i > 0:
                    times[name].append(elapsed)

        probes = {}
        for name, argv in cmds.items():
            if not name.startswith("ownit"):
                continue
            run_env = dict(env, OWNIT_LEDGER_URL=f"sqlite:///{tmp / 'probe.db'}")
            child = subprocess.run(
                [sys.executable, "-c", _PROBE, ",".join(HEAVY), *argv[1:]],
                cwd=ROOT,
                env=run_env,
                check=True,
                capture_output=True,
                text=True,
            )
            probes[name] = json.loads(child.stderr.strip().splitlines()[-1])

    floor = median(times["python -c pass (floor)"])
    help_median = median(times["ownit --help"])
    print(f"\nStart-up wall time over {args.runs} runs, ms (subprocess, 2-core machine)\n")
    rows = []
    for name, values in times.items():
        m = median(values)
        rows.append(
            [
                name,
                ms(m),
                ms(min(values)),
                ms(p90(values)),
                ms(max(values)),
                f"{m / floor:.1f}x",
                f"{m / help_median:.1f}x",
            ]
        )
    print(table(["command", "median", "min", "p90", "max", "vs python", "vs --help"], rows))

    print("\nImported after running the command in-process (one subprocess each)\n")
    rows = []
    for name, probe in probes.items():
        rows.append([name, probe["modules"], *("yes" if probe[m] else "no" for m in HEAVY)])
    print(table(["command", "modules", *HEAVY], rows))
    bad = [m for m in ("litellm", "langgraph") if probes["ownit --help"][m]]
    verdict = f"FAIL: {', '.join(bad)} imported" if bad else "ok (neither is imported)"
    print(f"\nownit --help imports litellm/langgraph: {verdict}")


if __name__ == "__main__":
    main()
