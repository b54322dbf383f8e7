"""Running one review: resolve the source, configuration and model, then run the graph.

This is the single function the CLI calls for ``ownit review``. It raises ``OwnitError``s and
never prints.
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from agent.config import Config, load_config
from agent.context import NoProgress, Progress, ReviewContext
from agent.errors import LedgerError
from agent.graph import build_graph
from agent.ledger import LedgerStore, Recorder, Run
from agent.llm import CallRecord, ModelClient, model_facts
from agent.plan import Plan, estimate_cost
from agent.providers import ResolvedModel, catalogue, choose_model
from agent.result import LedgerRow, Review
from agent.sources import DiffSource, from_file, from_git, from_stdin
from agent.state import InputState, RunMeta


def ownit_version() -> str:
    try:
        return version("ownit")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class ReviewRequest:
    cwd: Path
    diff_path: Path | None = None  # Path("-") for standard input
    base: str | None = None
    head: str | None = None
    team: str | None = None
    repo: str | None = None
    pr_number: int | None = None
    model: str | None = None
    config_path: Path | None = None
    ledger_url: str | None = None
    formats: tuple[str, ...] = ("terminal",)
    out_dir: Path | None = None
    dry_run: bool = False
    concurrency: int | None = None


@dataclass(frozen=True)
class Estimate:
    name: str
    model: str
    usable: bool
    missing_env: tuple[str, ...]
    context_window: int
    cost_usd: float | None


@dataclass(frozen=True)
class DryRun:
    source: DiffSource
    model: ResolvedModel
    plan: Plan
    estimates: list[Estimate] = field(default_factory=list)


def read_source(request: ReviewRequest) -> DiffSource:
    if request.diff_path is not None and str(request.diff_path) == "-":
        return from_stdin(request.cwd)
    if request.diff_path is not None:
        return from_file(request.diff_path, request.cwd)
    return from_git(request.cwd, request.base, request.head)


def _configure(request: ReviewRequest, source: DiffSource) -> Config:
    config = load_config(repo_root=source.repo_root or request.cwd, explicit=request.config_path)
    if request.concurrency is not None:
        review = config.review.model_copy(update={"concurrency": request.concurrency})
        config = config.model_copy(update={"review": review})
    return config


def _meta(request: ReviewRequest) -> RunMeta:
    return RunMeta(
        run_id=uuid.uuid4().hex,
        started_at=datetime.now(UTC),
        team=request.team,
        pr_number=request.pr_number,
    )


def _prepare(request: ReviewRequest) -> tuple[DiffSource, Config]:
    source = read_source(request)
    if request.repo:
        source = replace(source, repo=request.repo)
    return source, _configure(request, source)


async def dry_run(request: ReviewRequest) -> DryRun:
    source, config = _prepare(request)
    model = choose_model(config, request.model, require_usable=False)
    facts = model_facts(model)
    meta = _meta(request)
    ctx = ReviewContext(
        settings=config.review,
        model=model,
        facts=facts,
        recorder=Recorder(run=Run(id=meta.run_id, started_at=meta.started_at), store=None),
        client=None,
    )
    out = await build_graph().ainvoke(InputState(source, meta, dry_run=True), context=ctx)
    plan: Plan = out["plan"]
    others = catalogue(config)
    if all(m.name != model.name for m in others):
        others.insert(0, model)
    estimates = []
    for m in others:
        f = facts if m.name == model.name else model_facts(m)
        estimates.append(
            Estimate(
                m.name,
                m.litellm_model,
                m.usable,
                m.missing_env,
                f.context_window,
                estimate_cost(plan, f),
            )
        )
    return DryRun(source=source, model=model, plan=plan, estimates=estimates)


async def run_review(request: ReviewRequest, progress: Progress | None = None) -> Review:
    source, config = _prepare(request)
    # An empty diff is a complete review with nothing in it; it needs no model or key.
    empty = not source.data.strip()
    model = choose_model(config, request.model, require_usable=not empty)
    meta = _meta(request)
    run = Run(
        id=meta.run_id,
        started_at=meta.started_at,
        team=meta.team,
        repo=source.repo,
        pr_number=meta.pr_number,
        head_sha=source.head_sha,
        base=source.base,
        author=source.author,
        model_name=model.name,
        ownit_version=ownit_version(),
    )
    store: LedgerStore | None = None
    recorder = Recorder(run=run, store=None)
    try:
        store = LedgerStore(request.ledger_url)
        store.start_run(run)
        recorder.store = store
    except LedgerError as exc:
        # Review anyway: the calls go to a spool file and the JSON artifact, and the exit code
        # says the ledger was not written.
        recorder.error = exc

    def on_call(rec: CallRecord) -> None:
        recorder.record(_row(rec, run))

    client = None if empty else ModelClient(model, config.review, on_call)
    ctx = ReviewContext(
        settings=config.review,
        model=model,
        facts=client.facts if client else model_facts(model),
        recorder=recorder,
        client=client,
        progress=progress or NoProgress(),
        formats=request.formats,
        out_dir=request.out_dir,
        ownit_version=ownit_version(),
    )
    graph_config: Any = {"max_concurrency": config.review.concurrency}
    try:
        out = await build_graph().ainvoke(
            InputState(source, meta), context=ctx, config=graph_config
        )
    except BaseException:
        if store is not None and recorder.error is None:
            with suppress(LedgerError):  # the original error is the one to report
                store.finish_run(run.id, status="failed")
        raise
    review: Review = out["review"]
    return review


def _row(rec: CallRecord, run: Run) -> LedgerRow:
    return LedgerRow(
        idempotency_key=f"{run.id}:{rec.purpose}:{rec.attempt}",
        run_id=run.id,
        created_at=rec.started_at,
        team=run.team,
        repo=run.repo,
        pr_number=run.pr_number,
        head_sha=run.head_sha,
        author=run.author,
        purpose=rec.purpose,
        model_name=rec.model_name,
        model=rec.model,
        provider=rec.provider,
        prompt_tokens=rec.prompt_tokens,
        completion_tokens=rec.completion_tokens,
        cached_tokens=rec.cached_tokens,
        reasoning_tokens=rec.reasoning_tokens,
        cost_usd=rec.cost_usd,
        latency_ms=rec.latency_ms,
        outcome=rec.outcome,
        error=rec.error,
        raw_usage=rec.raw_usage,
    )
