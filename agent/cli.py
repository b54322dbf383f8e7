"""The ``ownit`` command. Each command parses options, calls one function, renders the result.

Only this module turns exceptions into messages and exit codes:

    0  complete          1  review incomplete (some of the diff was not reviewed)
    2  bad input/config  3  no usable model   4  ledger could not be written (review kept)
    5  a --fail-on condition held (high risk, secrets, high-priority questions, budget)
    6  the review could not be published (the PR comment, an artifact)
    130 / 143  stopped by SIGINT / SIGTERM (what was reviewed is still written)

Heavy imports (litellm, langgraph) happen inside the commands that need them, so
``ownit --help`` and ``ownit ledger ...`` stay fast.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from agent import cli_check
from agent.cli_ledger import ledger_app
from agent.errors import OwnitError
from agent.redact import RedactingFilter, redact
from agent.render.safe import visible
from agent.terminal import LedgerOpt, consoles, err, out, user_errors

if TYPE_CHECKING:
    from agent.forge import Forge
    from agent.result import Review
    from agent.sources.ci import CIRun

EXIT_NO_MODEL = 3
EXIT_LEDGER = 4
EXIT_PUBLISH = 6
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
T = TypeVar("T")

app = typer.Typer(
    help="Explain a change to its author and ask what they must answer to own it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(ledger_app, name="ledger")
app.command("questions")(cli_check.questions)
app.command("check")(cli_check.check)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` for a large result. On exit the runner asks for the SIGINT handler it
    installed, and Python 3.11 builds that answer from a repr of the task, its whole result
    included: half a second for a large diff's plan. The task here returns nothing."""
    import asyncio

    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    asyncio.run(main())
    return box[0]


def _run_interruptible(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; SIGINT or SIGTERM cancels it with the signal's name, so the review can
    finish what it has (partial artifacts, ledger closed). A second signal acts at once.

    Its handlers leave Python's default SIGINT handler in place, so the runner's exit does not
    repr the result (see ``_run``)."""
    import asyncio  # here: ``ownit ledger ...`` and ``--help`` do not pay for it

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        signals = (signal.SIGINT, signal.SIGTERM)

        def stop(name: str) -> None:
            for sig in signals:
                loop.remove_signal_handler(sig)
            task.cancel(name)

        for sig in signals:
            loop.add_signal_handler(sig, stop, sig.name)
        try:
            return await coro
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    return asyncio.run(main())


@app.command()
def review(
    source: Annotated[
        str | None, typer.Argument(help="A patch file, or '-' to read a diff from standard input.")
    ] = None,
    diff: Annotated[Path | None, typer.Option(help="A patch file to review.")] = None,
    base: Annotated[
        str | None, typer.Option(help="Base revision (default: the upstream main branch).")
    ] = None,
    head: Annotated[str | None, typer.Option(help="Head revision (default: HEAD).")] = None,
    team: Annotated[
        str | None,
        typer.Option(
            envvar="OWNIT_TEAM",
            help="Team to charge in the ledger (default: the CODEOWNERS owner of most changed "
            "lines, else `team:` in providers.yaml).",
        ),
    ] = None,
    repo: Annotated[
        str | None, typer.Option(help="Repository name (default: from git's origin).")
    ] = None,
    pr: Annotated[
        str | None,
        typer.Option(
            help="The pull request: its number (recorded in the ledger), or its GitHub or GitLab "
            "URL to review it as the host has it (token from GITHUB_TOKEN / GITLAB_TOKEN).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="A model name from providers.yaml, or a LiteLLM model string."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="A providers.yaml layered over the others.")
    ] = None,
    ledger: LedgerOpt = None,
    format: Annotated[
        str,
        typer.Option(
            "--format", help="Comma-separated: terminal, markdown, json, sarif, codequality."
        ),
    ] = "terminal",
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Directory for artifacts (markdown and json unless --format)."),
    ] = None,
    post: Annotated[
        bool,
        typer.Option(
            "--post",
            help="Keep one comment on the pull request up to date (in CI, or with --pr URL).",
        ),
    ] = False,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            help="Fail the job when: incomplete, high-risk, secrets, high-priority, budget "
            "(comma-separated), or none.",
        ),
    ] = "incomplete",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and estimate cost; call no model.")
    ] = False,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Parallel model calls.")
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            min=0,
            help="The most this review may cost, in USD: a plan estimated above it is not sent "
            "(or only its riskiest files are: --over-max-cost).",
        ),
    ] = None,
    over_max_cost: Annotated[
        str | None,
        typer.Option(
            "--over-max-cost",
            help="Over --max-cost: 'refuse' (send nothing) or 'riskiest-first' (the riskiest "
            "files that fit, the rest listed as not reviewed for budget).",
        ),
    ] = None,
    no_mask: Annotated[
        bool,
        typer.Option(
            "--no-mask",
            help="Send credentials found in the diff as they are, unmasked (recorded on the run).",
        ),
    ] = False,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Review every file afresh, even those unchanged since an earlier review.",
        ),
    ] = False,
) -> None:
    """Review a diff: the current branch against its base, a patch file, standard input, a pull
    request URL, or (in GitHub Actions and GitLab CI) the pull request the job runs for."""
    from agent.policy import parse_fail_on
    from agent.render.artifacts import parse_formats
    from agent.render.markdown import footer
    from agent.render.terminal import TerminalProgress, print_dry_run
    from agent.reporters import Selection, choose
    from agent.review import ReviewRequest, run_review
    from agent.review import dry_run as plan_only
    from agent.sources.ci import detect

    with user_errors():
        if source and diff:
            raise typer.BadParameter("give the diff either as an argument or with --diff")
        formats = parse_formats(format)
        gates = parse_fail_on(fail_on)
        if out_dir is not None and formats == ("terminal",):
            formats = ("terminal", "markdown", "json")  # --out alone means "write artifacts"
        wants_files = [f for f in formats if f != "terminal"]
        if wants_files and out_dir is None:
            out_dir = Path(".")
        diff_path = Path(source) if source else diff
        number, pr_url = (int(pr), None) if pr and pr.isdigit() else (None, pr)
        ci = detect(os.environ) if diff_path is None and not pr_url else None
        forge = _forge_to_post(pr_url, ci) if post and not dry_run else None
        request = ReviewRequest(
            cwd=Path.cwd(),
            diff_path=diff_path,
            base=base,
            head=head,
            team=team,
            repo=repo,
            pr_number=number,
            model=model,
            config_path=config,
            ledger_url=ledger,
            formats=formats,
            out_dir=out_dir if wants_files else None,
            dry_run=dry_run,
            concurrency=concurrency,
            max_cost=max_cost,
            over_max_cost=_over_max_cost(over_max_cost),
            mask=not no_mask,
            cache=not no_cache,
            pr_url=pr_url,
            ci=ci,
        )
        if dry_run:
            print_dry_run(_run(plan_only(request)), consoles.out)
            return
        progress = TerminalProgress(consoles.err)
        try:
            result = _run_interruptible(run_review(request, progress))
        finally:
            progress.close()

    in_actions = ci is not None and ci.host == "github" and ci.for_pull_request
    selection = Selection(
        formats=formats,
        out_dir=out_dir if wants_files else None,
        post=forge,
        summary_path=ci.summary_path if in_actions and ci is not None else None,
        annotations=sys.stdout if in_actions else None,
    )
    done: list[str] = []
    failures: list[OwnitError] = []
    for reporter in choose(selection, lambda: consoles.out):
        try:
            done += reporter.deliver(result)
        except OwnitError as exc:  # one reporter failing does not stop the others
            failures.append(exc)
    if "terminal" not in formats:
        # The review went elsewhere: still say, in one line, what it found.
        err(f"ownit: {footer(result)}")
    report_outcome(result, done, failures, gates, shown="terminal" in formats)


def _over_max_cost(value: str | None) -> str | None:
    if value is None:
        return None
    chosen = value.strip().lower().replace("-", "_")
    if chosen not in ("refuse", "riskiest_first"):
        raise typer.BadParameter(
            f"--over-max-cost is refuse or riskiest-first, not {value!r}",
            param_hint="--over-max-cost",
        )
    return chosen


def _forge_to_post(pr_url: str | None, ci: CIRun | None) -> Forge:
    from agent.forge import forge_to_post

    return forge_to_post(pr_url, ci, os.environ)


def report_outcome(
    result: Review,
    done: list[str],
    failures: list[OwnitError],
    gates: frozenset[str],
    *,
    shown: bool = True,
) -> None:
    """What the run left behind and what went wrong, on stderr; then the exit code. The
    gates (``--fail-on``) are decided here, apart from the reporters."""
    from agent.policy import exit_code, failed

    say = err
    for line in done:
        say(line)
    for note in result.notes:
        say(f"note: {note}")
    for exc in failures:
        say(f"error: {exc.message}")
        if exc.hint:
            say(exc.hint)
    if result.ledger_error:
        say(f"error: the ledger was not written: {result.ledger_error}")
        json_artifact = [w.removeprefix("wrote ") for w in done if w.endswith(".json")]
        places = [p for p in (result.ledger_spool, *json_artifact) if p]
        if places:
            say(
                "Every call of this run is saved in "
                + " and in ".join(places)
                + f"; when the ledger is back, run: ownit ledger import {places[0]}"
            )
        else:
            say(
                "No spool file could be written and no JSON artifact was asked for: this "
                "run's calls are not recorded anywhere. Re-run with --format json --out DIR."
            )
    if result.interrupted:
        wrote = any(w.startswith("wrote ") for w in done)
        where = [w for w, yes in (("above", shown), ("in the files written", wrote)) if yes]
        say(
            f"interrupted ({result.interrupted}): what was reviewed by then is "
            + (" and ".join(where) or "summarised above")
            + "; every call made is recorded."
        )
        raise typer.Exit(EXIT_SIGNAL.get(result.interrupted, 130))
    if not result.complete:
        say("error: the review is incomplete:")
        for problem in result.problems:
            say(f"  {problem}")
        for hint in result.hints:
            say(hint)
        if result.no_usable_model:
            say("No configured model could be used; run `ownit models` to see why.")
            raise typer.Exit(EXIT_NO_MODEL)
        say("Spend so far is recorded. Fix the cause and run again.")
    held = failed(result, gates)
    if held:
        if held != ["incomplete: part of the diff was not reviewed"]:
            say("failing (--fail-on): " + "; ".join(held))
        raise typer.Exit(exit_code(held))
    if failures:
        raise typer.Exit(EXIT_PUBLISH)
    if result.ledger_error:
        raise typer.Exit(EXIT_LEDGER)


@app.command()
def models(
    config: Annotated[
        Path | None, typer.Option(help="A providers.yaml layered over the others.")
    ] = None,
) -> None:
    """List the configured models and whether each is ready to use."""
    from agent.config import load_config
    from agent.providers import catalogue, choose_model
    from agent.sources.git import repo_root

    with user_errors():
        cfg = load_config(repo_root=repo_root(Path.cwd()), explicit=config)
        try:
            chosen = choose_model(cfg).name
        except OwnitError:
            chosen = None
        for m in catalogue(cfg):
            mark = "*" if m.name == chosen else " "
            state = "ready" if m.usable else f"needs {', '.join(m.missing_env)}"
            if chain := cfg.fallback_chain(m.name):
                state += f"; falls back to {', '.join(chain)}"
            out(f"{mark} {m.name:<16} {m.litellm_model:<40} {state}")
        out(f"configuration: {' < '.join(cfg.sources)}")


@app.command("config-path")
def config_path() -> None:
    """Where ownit reads providers.yaml from, lowest layer first, and which exist."""
    from agent.config import bundled_config_path, repo_config_path, user_config_path
    from agent.sources.git import repo_root

    root = repo_root(Path.cwd())
    layers = [
        ("bundled", bundled_config_path()),
        ("user", user_config_path()),
        ("repository", repo_config_path(root) if root else None),
    ]
    for name, path in layers:
        if path is None:
            out(f"{name:<11} (not in a git checkout)")
        else:
            state = "" if path.is_file() else "  (not present)"
            out(f"{name:<11} {path}{state}")
    out("then --config FILE, then command-line flags")


def main() -> None:
    # A bug's traceback, and whatever a library logs, may quote a request: both redacted.
    for handler in [*logging.getLogger().handlers, logging.lastResort]:
        if handler is not None:
            handler.addFilter(RedactingFilter())
    try:
        app()
    except Exception:
        sys.stderr.write(visible(redact(traceback.format_exc())))
        sys.stderr.write(
            "ownit stopped on an unexpected error (above). Calls made so far are in the "
            "ledger; please report this with the traceback.\n"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
