"""Terminal output: rich when a person is watching, plain text when piped.

Paths, model names and replies are shown through ``agent.render.safe``: no escape sequence from a
diff or a model reaches the terminal, and no ``[...]`` in them is read as rich markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console, RenderableType
from rich.markdown import Markdown
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from agent.render.markdown import render_markdown
from agent.render.safe import one_line, rich_text, visible
from agent.result import Review

RISKS = ("high", "medium", "low")

if TYPE_CHECKING:
    from agent.review import DryRun


def print_review(review: Review, console: Console) -> None:
    text = render_markdown(review)  # every value in it is already escaped
    if console.is_terminal:
        console.print(Markdown(text))
    else:
        console.print(visible(text), markup=False, highlight=False, soft_wrap=True)


def print_dry_run(result: DryRun, console: Console) -> None:
    plan = result.plan
    src = result.source
    console.print(
        f"Dry run: nothing is sent to a model. Diff from {one_line(src.origin)}.", markup=False
    )
    reviewed_hunks = plan.hunks_total - sum(s.hunks for s in plan.skipped)
    console.print(
        f"{plan.files_total} files, {plan.hunks_total} hunks; "
        f"{reviewed_hunks} hunks would be reviewed in {len(plan.chunks)} chunk(s) "
        f"of at most {plan.budget:,} diff tokens for {one_line(plan.model_name)} "
        f"({plan.context_window:,}-token window): {plan.calls} call(s), "
        f"~{plan.prompt_tokens:,} prompt + ~{plan.output_tokens:,} reply tokens.",
        markup=False,
    )
    chunks = Table(title="Chunks", title_justify="left")
    chunks.add_column("#", justify="right")
    chunks.add_column("files")
    chunks.add_column("hunks", justify="right")
    chunks.add_column("diff tokens", justify="right")
    if plan.by_model:
        chunks.add_column("model")
        chunks.add_column("why")
    for c in plan.chunks:
        paths = ", ".join(dict.fromkeys(p.file.path for p in c.files))
        hunks = sum(len(p.hunks) for p in c.files)
        row: list[RenderableType] = [str(c.id), rich_text(paths), str(hunks), f"{c.tokens:,}"]
        if plan.by_model and c.route is not None:
            row += [rich_text(c.route.model), rich_text(c.route.why)]
        chunks.add_row(*row)
    console.print(chunks)
    if plan.by_model:
        _print_routing(result, console)
    if plan.triage is not None:
        _print_triage(result, console)
    for kind, title in (
        ("summarized", "Summarized (named with their size, not shown):"),
        ("not_sent", "Not reviewed:"),
    ):
        listed = [s for s in plan.skipped if s.kind == kind]
        if listed:
            console.print(title, markup=False)
        for s in listed:
            console.print(f"  {one_line(s.path)}: {one_line(s.reason)}", markup=False)
    if result.refused:
        console.print(f"A review would stop here: {one_line(result.refused)}.", markup=False)
    for note in plan.notes:  # what the plan decided on its own (context cut for --max-cost...)
        console.print(f"note: {one_line(note)}", markup=False)
    if result.secrets:
        console.print(
            f"{len(result.secrets)} credential(s) would be masked before sending:", markup=False
        )
        for f in result.secrets:
            console.print(f"  {one_line(f.kind)} at {one_line(f.where)}", markup=False)

    costs = Table(title="Estimated cost per configured model", title_justify="left")
    costs.add_column("name")
    costs.add_column("LiteLLM model")
    costs.add_column("window", justify="right")
    costs.add_column("est. USD", justify="right")
    costs.add_column("ready")
    for e in result.estimates:
        chosen = ""
        if e.name == result.model.name:
            chosen = " (chosen)" if e.usable else " (chosen once ready)"
        cost = "unknown price" if e.cost_usd is None else f"${e.cost_usd:.4f}"
        ready = "yes" if e.usable else f"needs {', '.join(e.missing_env)}"
        costs.add_row(
            rich_text(e.name + chosen),
            rich_text(e.model),
            f"{e.context_window:,}",
            cost,
            rich_text(ready),
        )
    console.print(costs)


def _print_routing(result: DryRun, console: Console) -> None:
    """What each model of a routed plan would review, and its estimate."""
    plan = result.plan
    table = Table(title="Estimated cost by routed model", title_justify="left")
    table.add_column("model")
    table.add_column("LiteLLM model")
    table.add_column("chunks", justify="right")
    table.add_column("~prompt tokens", justify="right")
    table.add_column("est. USD", justify="right")
    table.add_column("ready")
    ready = {e.name: e for e in result.estimates}
    for sub in plan.by_model:
        if not sub.chunks:
            continue
        cost = "unknown price" if sub.cost_usd is None else f"${sub.cost_usd:.4f}"
        e = ready.get(sub.model_name)
        state = "yes" if e is None or e.usable else f"needs {', '.join(e.missing_env)}"
        table.add_row(
            rich_text(sub.model_name),
            rich_text(sub.model),
            str(len(sub.chunks)),
            f"{sub.prompt_tokens:,}",
            cost,
            rich_text(state),
        )
    total = "unknown price" if plan.cost_usd is None else f"${plan.cost_usd:.4f}"
    synthesis = f", the PR summary on {plan.model_name}" if len(plan.chunks) > 1 else ""
    table.add_row("total", "", str(len(plan.chunks)), f"{plan.prompt_tokens:,}", total, "")
    console.print(table)
    console.print(f"Routed by providers.yaml's routing rules{synthesis}.", markup=False)


def _print_triage(result: DryRun, console: Console) -> None:
    """What the triage pass would do first, and its estimate (a dry run makes no call)."""
    plan = result.plan
    t = plan.triage
    assert t is not None
    name = one_line(t.models[0])
    if t.notes:  # it could not be used: the routes above are what a review would do
        for note in t.notes:
            console.print(f"Triage: {one_line(note)}.", markup=False)
        return
    cost = "unknown price" if t.cost_usd is None else f"est. ${t.cost_usd:.4f}"
    total = (
        f"; with the chunks, est. ${plan.cost_usd + t.cost_usd:.4f} in all"
        if plan.cost_usd is not None and t.cost_usd is not None
        else ""
    )
    levels = {level: sum(1 for v in t.verdicts if v.path_risk == level) for level in RISKS}
    by_path = ", ".join(f"{n} {level}" for level, n in levels.items() if n)
    console.print(
        f"Triage: {name} would first rate the risk of {len(t.verdicts)} file(s) in "
        f"{t.calls} call(s) (~{t.prompt_tokens:,} prompt + ~{t.output_tokens:,} reply tokens, "
        f"{cost}{total}). The routes above use each path's risk ({by_path}); a file it rates "
        "differently goes where the rules send that risk, and a path rated high stays high.",
        markup=False,
    )


class TerminalProgress:
    """Chunk progress on stderr: a live bar on a terminal, one line per chunk otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.total = 0
        self.done = 0

    def planned(self, chunks: int) -> None:
        self.total = chunks
        if self.console.is_terminal and chunks:
            self.bar = Progress(
                TextColumn("reviewing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}", markup=False),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("", total=chunks)
        elif chunks:
            self.console.print(f"reviewing {chunks} chunk(s)", markup=False)

    def chunk_done(self, label: str, ok: bool) -> None:
        self.done += 1
        status = "done" if ok else "FAILED"
        label = one_line(label)  # a path, from the diff
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, advance=1, description=f"{label} {status}")
        else:
            self.console.print(f"[{self.done}/{self.total}] {label}: {status}", markup=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
