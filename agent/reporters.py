"""Reporters: each takes the finished ``Review`` and delivers it somewhere.

The graph ends at the review; the CLI then runs the reporters chosen from ``--format``,
``--post`` and the CI the job runs in, as reviewdog does. Each returns what it did, in words.
Every byte a reporter writes or posts goes through ``redact``.

    terminal          the review on stdout (rich on a terminal, plain text in a pipe)
    files             ownit-review.md / .json / .sarif / -codequality.json in --out
    job summary       GitHub Actions: the Markdown appended to $GITHUB_STEP_SUMMARY
    annotations       GitHub Actions: one ::notice/::warning per question, on its line
    comment           --post: the one sticky PR comment (GitHub) or MR note (GitLab)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from rich.console import Console

from agent.errors import InputError
from agent.forge import MAX_COMMENT, STATUS_CONTEXT, Comment, Forge, ForgeError
from agent.ownership import Check
from agent.redact import redact
from agent.render.artifacts import RENDERERS, write_artifacts
from agent.render.comment import (
    MARKER,
    Previous,
    previous_state,
    render_comment,
    state_key,
    with_ownership,
)
from agent.render.markdown import render_markdown
from agent.render.ownership import render_markdown as render_check
from agent.render.ownership import verdict_line
from agent.render.safe import one_line
from agent.render.terminal import print_review
from agent.result import Review


class Reporter(Protocol):
    name: str

    def deliver(self, review: Review) -> list[str]: ...


@dataclass
class TerminalReporter:
    console: Console
    name: str = "terminal"

    def deliver(self, review: Review) -> list[str]:
        print_review(review, self.console)
        return []


@dataclass
class FileReporter:
    out_dir: Path
    formats: tuple[str, ...]
    name: str = "files"

    def deliver(self, review: Review) -> list[str]:
        return [f"wrote {p}" for p in write_artifacts(review, self.formats, self.out_dir)]


@dataclass
class JobSummaryReporter:
    """GitHub Actions shows the step summary on the run's page."""

    path: Path
    name: str = "job summary"

    def deliver(self, review: Review) -> list[str]:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(redact(render_markdown(review)) + "\n")
        return [f"added the review to the job summary ({self.path})"]


def _property(value: str) -> str:
    # Workflow command properties escape %, CR, LF, ":" and ",".
    return (
        value.replace("%", "%25")
        .replace("\r", "%0D")
        .replace("\n", "%0A")
        .replace(":", "%3A")
        .replace(",", "%2C")
    )


def _message(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


@dataclass
class AnnotationsReporter:
    """GitHub Actions workflow commands: each question as an annotation on its lines."""

    stream: TextIO
    name: str = "annotations"

    def deliver(self, review: Review) -> list[str]:
        count = 0
        for q in review.questions:
            if q.anchor.side != "new":
                continue  # annotations sit on the new file; removed lines have no place there
            level = "warning" if q.priority == "high" else "notice"
            title = f"ownit #{q.rank}: {q.category.replace('_', ' ')}"
            props = ",".join(
                [
                    f"file={_property(one_line(q.anchor.path))}",
                    f"line={q.anchor.start_line}",
                    f"endLine={q.anchor.end_line}",
                    f"title={_property(title)}",
                ]
            )
            text = f"{q.question}\nWhy it matters: {q.why_it_matters}"
            self.stream.write(redact(f"::{level} {props}::{_message(one_line(text))}") + "\n")
            count += 1
        return [f"annotated {count} question(s) on their lines"] if count else []


@dataclass
class CommentReporter:
    """The one ownit comment on the pull request: found by its marker, updated in place."""

    forge: Forge
    name: str = "comment"

    def deliver(self, review: Review) -> list[str]:
        comments = self.forge.comments()
        ours: Comment | None = next((c for c in comments if c.body.startswith(MARKER)), None)
        key = state_key(os.environ)
        previous: Previous | None = previous_state(ours.body, key) if ours else None
        if previous is not None and previous.signed is False:
            previous = Previous()  # edited by someone else: nothing in it is ours to carry
        newest = max((c.id for c in comments), default=0)
        limit = MAX_COMMENT[self.forge.host]
        body = redact(render_comment(review, previous, limit, after=newest, key=key))
        if ours is not None:
            try:
                self.forge.update_comment(ours.id, body)
                return [f"updated ownit's comment on the pull request ({self.forge.host})"]
            except ForgeError as exc:
                if exc.status not in (403, 404):
                    raise
                # Someone else's comment carrying our marker (GitLab refuses to edit it): ours
                # is a new one.
        self.forge.create_comment(body)
        return [f"commented on the pull request ({self.forge.host})"]


@dataclass(frozen=True)
class Selection:
    """What the run asked for, from the flags and the CI it runs in."""

    formats: tuple[str, ...]
    out_dir: Path | None
    post: Forge | None
    summary_path: Path | None
    annotations: TextIO | None


def choose(selection: Selection, console: Callable[[], Console]) -> list[Reporter]:
    reporters: list[Reporter] = []
    if "terminal" in selection.formats:
        reporters.append(TerminalReporter(console()))
    files = tuple(f for f in selection.formats if f in RENDERERS)
    if files and selection.out_dir is not None:
        reporters.append(FileReporter(selection.out_dir, files))
    if selection.summary_path is not None:
        reporters.append(JobSummaryReporter(selection.summary_path))
    if selection.annotations is not None:
        reporters.append(AnnotationsReporter(selection.annotations))
    if selection.post is not None:
        reporters.append(CommentReporter(selection.post))
    return reporters


# --- an ownership check ----------------------------------------------------------------------


def write_check(check: Check, out_dir: Path) -> list[str]:
    """``ownit-check.json`` (the contract: ``Check``) and ``ownit-check.md``."""
    files = {
        "ownit-check.json": check.model_dump_json(indent=2) + "\n",
        "ownit-check.md": render_check(check),
    }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            tmp = out_dir / (name + ".tmp")
            tmp.write_text(redact(text), encoding="utf-8")
            tmp.replace(out_dir / name)
    except OSError as exc:
        raise InputError(
            f"cannot write the check to {out_dir}: {exc.strerror or exc}",
            hint="choose a writable directory with --out; the check is in the ledger",
        ) from exc
    return [f"wrote {out_dir / name}" for name in files]


def post_check(check: Check, forge: Forge, summary: Path | None = None) -> list[str]:
    """The verdicts in ownit's comment (under its state), the ``ownit/ownership`` commit status,
    and the GitHub Actions job summary."""
    done = []
    section = render_check(check)
    ours = next((c for c in forge.comments() if c.body.startswith(MARKER)), None)
    if ours is not None:
        body = with_ownership(ours.body, section)
        if len(body) > MAX_COMMENT[forge.host]:  # the verdicts win over the walkthrough
            body = with_ownership(ours.body.split("## Walkthrough", 1)[0], section)
        forge.update_comment(ours.id, redact(body[: MAX_COMMENT[forge.host]]))
        done.append(f"put the verdicts in ownit's comment ({forge.host})")
    if check.head_sha:
        # Report-only teams see the verdict without a red mark on the PR.
        passed = check.passed or check.require == "report"
        forge.set_status(check.head_sha, passed, verdict_line(check))
        done.append(f"set the {STATUS_CONTEXT} status on {check.head_sha[:12]}")
    if summary is not None:
        with summary.open("a", encoding="utf-8") as fh:
            fh.write(redact(section) + "\n")
        done.append(f"added the verdicts to the job summary ({summary})")
    return done
