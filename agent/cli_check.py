"""``ownit questions`` and ``ownit check``: the ownership loop's commands.

Exit codes of ``ownit check`` (as ``ownit review``'s): 0 the gate passed, or only reports;
1 some answers could not be graded; 2 bad input or config; 3 no usable model; 4 the check
was not recorded in the ledger; 5 the gate did not pass (``ownership.require``); 6 the verdicts
could not be posted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.errors import OwnitError
from agent.redact import redact
from agent.terminal import LedgerOpt, err, out, user_errors

if TYPE_CHECKING:
    from agent.ownership import Check
    from agent.sources.ci import CIRun

EXIT_INCOMPLETE = 1
EXIT_LEDGER = 4
EXIT_GATE = 5
EXIT_PUBLISH = 6

ReviewOpt = Annotated[
    Path | None,
    typer.Option(
        "--review",
        help="A review's ownit-review.json (default: ./ownit-review.json; in CI or "
        "with --pr, the questions in ownit's PR comment).",
    ),
]
PrOpt = Annotated[
    str | None,
    typer.Option(
        "--pr", help="The pull request: its number, or its GitHub or GitLab URL (token from env)."
    ),
]


def _actor() -> str | None:
    env = os.environ
    return env.get("GITHUB_ACTOR") or env.get("GITLAB_USER_LOGIN") or env.get("USER")


def questions(review: ReviewOpt = None, pr: PrOpt = None) -> None:
    """Print the current questions as a form to answer: save it, write your answers under each
    question, and run `ownit check --answers FILE` (or paste it into a reply on the PR)."""
    from agent.check import CheckRequest, asked_questions
    from agent.render.ownership import answer_form
    from agent.sources.ci import detect

    with user_errors():
        ci = detect(os.environ) if not pr and review is None else None
        request = CheckRequest(cwd=Path.cwd(), review_path=review, pr_url=pr, ci=ci)
        out(redact(answer_form(asked_questions(request))))


def check(
    answers: Annotated[
        Path | None,
        typer.Option("--answers", help="A file of answers (`ownit questions` prints a form)."),
    ] = None,
    review: ReviewOpt = None,
    pr: PrOpt = None,
    diff: Annotated[Path | None, typer.Option(help="The patch the review was of.")] = None,
    base: Annotated[str | None, typer.Option(help="Base revision, as for the review.")] = None,
    head: Annotated[str | None, typer.Option(help="Head revision, as for the review.")] = None,
    team: Annotated[str | None, typer.Option(envvar="OWNIT_TEAM", help="Team to charge.")] = None,
    repo: Annotated[str | None, typer.Option(help="Repository name, as for the review.")] = None,
    model: Annotated[
        str | None,
        typer.Option(help="The grading model (default: ownership.model, else the default)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="A providers.yaml layered over the others.")
    ] = None,
    ledger: LedgerOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Write ownit-check.json and ownit-check.md here."),
    ] = None,
    post: Annotated[
        bool,
        typer.Option(
            "--post",
            help="Put the verdicts in ownit's PR comment; set the ownit/ownership status.",
        ),
    ] = False,
    override: Annotated[
        str | None,
        typer.Option(
            "--override",
            help="Pass the gate anyway, with this reason (recorded; only ownership.maintainers).",
        ),
    ] = None,
) -> None:
    """Grade the author's answers to ownit's questions, and decide the ownership gate."""
    from agent.check import CheckRequest, run_check
    from agent.render.ownership import render_text
    from agent.sources.ci import detect

    with user_errors():
        number, pr_url = (int(pr), None) if pr and pr.isdigit() else (None, pr)
        ci = detect(os.environ) if diff is None and not pr_url else None
        request = CheckRequest(
            cwd=Path.cwd(),
            review_path=review,
            answers_path=answers,
            diff_path=diff,
            base=base,
            head=head,
            pr_url=pr_url,
            pr_number=number,
            repo=repo,
            ci=ci,
            config_path=config,
            ledger_url=ledger,
            model=model,
            team=team,
            override=override,
            actor=_actor(),
        )
        import asyncio  # here: every ledger command imports this module and never runs it

        result = asyncio.run(run_check(request))

    out(redact(render_text(result)))
    failures = _deliver(result, out_dir, post, pr_url, ci)
    for line in result.problems:
        err(f"error: {line}")
    if result.require != "report" and not result.passed:
        if any(g.status == "ungraded" for g in result.graded):
            raise typer.Exit(EXIT_INCOMPLETE)
        err("failing: ownership not shown (ownership.require in providers.yaml)")
        raise typer.Exit(EXIT_GATE)
    if failures:
        raise typer.Exit(EXIT_PUBLISH)
    if any(g.status == "ungraded" for g in result.graded):
        raise typer.Exit(EXIT_INCOMPLETE)
    if any("not recorded" in p for p in result.problems):
        raise typer.Exit(EXIT_LEDGER)


def _deliver(
    result: Check, out_dir: Path | None, post: bool, pr: str | None, ci: CIRun | None
) -> list[OwnitError]:
    """Artifacts, the job summary, the PR comment and the commit status; each failure is said
    and the others still happen."""
    from agent.forge import forge_to_post
    from agent.reporters import post_check, write_check

    failures: list[OwnitError] = []
    steps: list[Callable[[], list[str]]] = []
    if out_dir is not None:
        steps.append(lambda: write_check(result, out_dir))
    if post:
        summary = ci.summary_path if ci is not None and ci.host == "github" else None
        steps.append(lambda: post_check(result, forge_to_post(pr, ci, os.environ), summary))
    for step in steps:
        try:
            for line in step():
                err(line)
        except OwnitError as exc:
            err(f"error: {exc.message}")
            if exc.hint:
                err(exc.hint)
            failures.append(exc)
    return failures
