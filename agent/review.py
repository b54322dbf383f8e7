"""Running one review: resolve the source, configuration and model, then run the graph.

This is the single function the CLI calls for ``ownit review``. It raises ``OwnitError``s and
never prints.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from agent import prompts
from agent.assemble import build_review, usage_of
from agent.client import Endpoint, ModelClient, Transport
from agent.config import Config, load_config
from agent.context import NoProgress, Progress, ReviewContext
from agent.diff import FileDiff, parse_diff
from agent.errors import ConfigError, DiffParseError, LedgerError, RunInterrupted
from agent.forge import forge_for, parse_pull_url
from agent.gateway import Attribution
from agent.graph import build_graph
from agent.ledger import LedgerStore, Recorder, RunInfo
from agent.ledger.store import host_name
from agent.llm import LiteLLMTransport, model_facts, preload
from agent.masking import Finding
from agent.plan import Plan, estimate_cost
from agent.providers import ModelFacts, ResolvedModel, catalogue, choose_model, is_local, resolve
from agent.redact import redact, remember
from agent.result import Review
from agent.reuse import ContentCache
from agent.routing import Router
from agent.sources import DiffSource, from_file, from_git, from_stdin
from agent.sources.ci import CIRun
from agent.sources.codeowners import find_codeowners, parse_codeowners, team_for_change
from agent.sources.host import from_ci, from_forge
from agent.spending import BudgetGuard, guard_for
from agent.state import ChunkResult, InputState


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
    max_cost: float | None = None  # --max-cost, over review.max_cost_usd
    over_max_cost: str | None = None  # --over-max-cost, over review.over_max_cost
    # False only with --no-mask: credentials in the diff are sent as they are.
    mask: bool = True
    # False only with --no-cache: files reviewed before are reviewed (and paid for) again.
    cache: bool = True
    # ``--pr URL``: the pull request as the host has it.
    pr_url: str | None = None
    # The CI job this runs in (cli.py detects it): with no diff given, its pull request.
    ci: CIRun | None = None


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
    secrets: tuple[Finding, ...] = ()
    refused: str | None = None  # a real run would send nothing: over --max-cost


def read_source(request: ReviewRequest) -> DiffSource:
    """The diff, in order: a file or stdin, ``--pr URL``, the CI job's pull request, the local
    branch against its base."""
    if request.diff_path is not None and str(request.diff_path) == "-":
        return from_stdin(request.cwd)
    if request.diff_path is not None:
        return from_file(request.diff_path, request.cwd)
    if request.pr_url:
        return from_forge(forge_for(parse_pull_url(request.pr_url), os.environ), request.cwd)
    if request.ci is not None and request.base is None and request.head is None:
        return from_ci(request.ci, request.cwd)
    return from_git(request.cwd, request.base, request.head)


def team_for(request: ReviewRequest, source: DiffSource, config: Config) -> str | None:
    """``--team``/``OWNIT_TEAM``, else the CODEOWNERS owner of most changed lines, else the
    configured default."""
    if request.team:
        return request.team
    if source.repo_root is not None and (path := find_codeowners(source.repo_root)):
        try:
            owners = parse_codeowners(path.read_text(encoding="utf-8", errors="replace"))
            changed = {f.path: f.added + f.removed for f in parse_diff(source.data).files}
        except (OSError, DiffParseError):
            changed = {}  # a diff that does not parse is reported by the review itself
        if changed and (team := team_for_change(owners, changed)):
            return team
    return config.team


def _configure(request: ReviewRequest, source: DiffSource) -> Config:
    config = load_config(repo_root=source.repo_root or request.cwd, explicit=request.config_path)
    flags: dict[str, object] = {}
    if request.concurrency is not None:
        flags["concurrency"] = request.concurrency
    if request.max_cost is not None:
        flags["max_cost_usd"] = request.max_cost
    if request.over_max_cost is not None:
        flags["over_max_cost"] = request.over_max_cost
    if flags:  # command-line flags win over every layer
        config = config.model_copy(update={"review": config.review.model_copy(update=flags)})
    return config


def _prepare(request: ReviewRequest) -> tuple[DiffSource, Config]:
    source = read_source(request)
    if request.repo:
        source = replace(source, repo=request.repo)
    return source, _configure(request, source)


def run_info(
    request: ReviewRequest,
    source: DiffSource,
    config: Config,
    *,
    model_name: str | None,
    prompt_version: str,
) -> RunInfo:
    """The run's identity (a review's, or an ownership check's), built once and passed down."""
    return RunInfo(
        id=uuid.uuid4().hex,
        started_at=datetime.now(UTC),
        team=team_for(request, source, config),
        repo=request.repo or source.repo,
        pr_number=request.pr_number or source.pr_number,
        head_sha=source.head_sha,
        base=source.base,
        author=source.author,
        model_name=model_name,
        prompt_version=prompt_version,
        ownit_version=ownit_version(),
        host=host_name(),
        pid=os.getpid(),
        masking=request.mask,
    )


async def dry_run(request: ReviewRequest) -> DryRun:
    source, config = _prepare(request)
    model = choose_model(config, request.model, require_usable=False)
    facts = model_facts(model)
    run = run_info(request, source, config, model_name=model.name, prompt_version=prompts.version())
    store = _ledger_for_reading(request.ledger_url)
    router = _router(config, model, run)
    try:
        guard, budget_note = _budget(store, run.team, config)
        ctx = ReviewContext(
            settings=config.review,
            model=model,
            facts_of=lambda: facts,
            budget=guard,
            notes=(budget_note,) if budget_note else (),
            cache=_cache(store, request, run, model, write=False, router=router),
            router=router,
        )
        start = InputState(source, run, dry_run=True, mask=request.mask)
        out = await build_graph().ainvoke(start, context=ctx)
    finally:
        if store is not None:
            store.close()
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
    refused = out.get("refused")
    try:
        refuse_hosted(config, model)
    except ConfigError as exc:
        refused = refused or f"not sent: {exc.message}"
    return DryRun(
        source=source,
        model=model,
        plan=plan,
        estimates=estimates,
        secrets=out["secrets"],
        refused=refused,
    )


def open_ledger(url: str | None) -> tuple[LedgerStore | None, LedgerError | None]:
    """The ledger, checked before any model is called. A URL that cannot work raises
    ``ConfigError`` (exit 2); a database that cannot be reached or written is returned as the
    error, and the run records to a spool file instead."""
    try:
        store = LedgerStore(url)
    except LedgerError as exc:
        return None, exc
    try:
        store.repair()  # runs a crash left "running" become "interrupted"
    except LedgerError as exc:
        store.close()
        return None, exc
    return store, None


def _ledger_for_reading(url: str | None) -> LedgerStore | None:
    """A dry run reads the team's budget if it can; a ledger it cannot open changes nothing."""
    try:
        return LedgerStore(url)
    except (LedgerError, ConfigError):
        return None


def _budget(
    store: LedgerStore | None, team: str | None, config: Config
) -> tuple[BudgetGuard | None, str | None]:
    return guard_for(store, team, tuple(catalogue(config)), model_facts)


def _cache(
    store: LedgerStore | None,
    request: ReviewRequest,
    run: RunInfo,
    model: ResolvedModel,
    *,
    write: bool = True,
    router: Router | None = None,
) -> ContentCache | None:
    if store is None:
        return None

    def model_of(file: FileDiff) -> str:
        # A file's review is kept under the model its route sends it to.
        assert router is not None
        return router.model(router.route(file).model).litellm_model

    return ContentCache(
        store,
        prompt_version=run.prompt_version or prompts.version(),
        model=model.litellm_model,
        read=request.cache,
        write=write,
        model_of=model_of if router is not None else None,
    )


def _facts_of(model: ResolvedModel) -> Callable[[], ModelFacts]:
    return lambda: model_facts(model)


def _router(config: Config, model: ResolvedModel, run: RunInfo) -> Router | None:
    if not config.routing.rules:
        return None
    return Router(config, model, model_facts, team=run.team, repo=run.repo)


def usable_fallbacks(
    config: Config, names: Iterable[str], skip: Iterable[str] = ()
) -> tuple[list[ResolvedModel], list[str]]:
    """The models of ``names`` this run can use; why each other one is not used."""
    usable, notes = [], []
    for name in dict.fromkeys(names):
        if name in skip:
            continue
        m = resolve(name, config.models[name], os.environ)
        if not m.usable:
            notes.append(f"fallback {name} is not used: it needs {', '.join(m.missing_env)}")
        elif config.local_only and not is_local(m):
            notes.append(f"fallback {name} is not used: it is a hosted model and local_only is set")
        else:
            usable.append(m)
    return usable, notes


def model_client(
    config: Config,
    chain: Sequence[ResolvedModel],
    run: RunInfo,
    recorder: Recorder,
    transport: Transport | None,
    *,
    routed: Sequence[ResolvedModel] = (),
) -> ModelClient:
    """A run's model client (a review's or an ownership check's): ``chain`` and the ``routed``
    models, through LiteLLM unless ``transport`` stands in. Every configured key is made known
    to the redaction at the edges first, not only this run's. Facts are looked up when first
    needed: for a model providers.yaml does not describe in full, that waits for LiteLLM's map,
    which may be loading meanwhile."""
    remember(*(m.api_key.get_secret_value() for m in [*catalogue(config), *chain] if m.api_key))
    return ModelClient(
        [Endpoint(m, _facts_of(m)) for m in chain],
        transport or LiteLLMTransport(redact, Attribution.of(run)),
        recorder,
        config.review,
        routed=[Endpoint(m, _facts_of(m)) for m in routed],
    )


def refuse_hosted(config: Config, model: ResolvedModel) -> None:
    if config.local_only and not is_local(model):
        raise ConfigError(
            f"{model.name} ({model.litellm_model}) is a hosted model, and local_only is set: "
            "no part of the diff may leave for one",
            hint="choose a local model with --model or `default:`, or mark a server you "
            "control `local: true` in providers.yaml",
        )


async def run_review(
    request: ReviewRequest,
    progress: Progress | None = None,
    *,
    transport: Transport | None = None,
) -> Review:
    """Review the requested diff. ``transport`` replaces LiteLLM (tests, benchmarks).

    Cancelling the task that runs this (SIGINT, SIGTERM: see the CLI) does not lose the run:
    the review of what was done by then is returned with ``interrupted`` set, every call still in
    flight is recorded as outcome unknown, and the run row says ``interrupted``.
    """
    if transport is None:
        preload()  # LiteLLM loads while the diff is read, parsed, masked and planned
    source, config = _prepare(request)
    # An empty diff is a complete review with nothing in it; it needs no model or key.
    empty = not source.data.strip()
    model = choose_model(config, request.model, require_usable=not empty)
    run = run_info(request, source, config, model_name=model.name, prompt_version=prompts.version())
    store, ledger_error = open_ledger(request.ledger_url)
    recorder = Recorder(
        run,
        store,
        error=ledger_error,
        spool_dirs=[request.out_dir] if request.out_dir else [],
    )
    if not empty:
        refuse_hosted(config, model)
    fallbacks, notes = usable_fallbacks(config, config.fallback_chain(model.name))
    chain = [model, *fallbacks]
    router = _router(config, model, run)
    # The models rules name beyond the run's chain; a rule's own model that cannot be used is
    # refused when the plan routes a chunk to it (Router.check).
    routed, _ = usable_fallbacks(
        config, router.named() if router else (), skip={m.name for m in chain}
    )
    client = model_client(config, chain, run, recorder, transport, routed=routed)
    endpoints = list(client.endpoints)
    guard, budget_note = (None, None) if empty else _budget(store, run.team, config)
    ctx = ReviewContext(
        settings=config.review,
        model=model,
        facts_of=lambda: endpoints[0].facts,
        recorder=recorder,
        client=None if empty else client,
        progress=progress or NoProgress(),
        budget=guard,
        notes=(budget_note,) if budget_note else (),
        cache=None if empty or ledger_error else _cache(store, request, run, model, router=router),
        router=router,
    )
    seen: dict[str, Any] = {"results": []}
    interrupted: str | None = None
    try:
        start = InputState(source, run, mask=request.mask)
        await _run_graph(start, ctx, config.review.concurrency, seen)
    except asyncio.CancelledError as exc:
        if (task := asyncio.current_task()) is not None:
            task.uncancel()
        interrupted = str(exc.args[0]) if exc.args and exc.args[0] else "interrupted"
    except BaseException:
        _close(recorder, status="failed")
        raise

    review: Review | None = seen.get("review")
    if review is None:  # stopped before the graph finished: what was done by then
        if "plan" not in seen or "diff" not in seen:
            _close(recorder, status="interrupted" if interrupted else "failed")
            if interrupted:
                raise RunInterrupted(interrupted)
            raise RuntimeError("the review graph ended without a review")
        plan = seen["plan"]
        review = build_review(
            run=run,
            diff=seen["diff"],
            secrets=seen.get("secrets", ()),
            refused=seen.get("refused"),
            plan=plan,
            results=[*seen["results"], *_not_reached(plan, seen["results"])],
            synthesis=None,
            notes=[*source.notes, *plan.notes, *notes, *client.notes()],
            calls=recorder.rows,
            max_questions=config.review.max_questions,
            interrupted=interrupted or "interrupted",
        )
    elif notes:
        review = review.model_copy(update={"notes": [*notes, *review.notes]})
    status = (
        "interrupted" if review.interrupted else "complete" if review.complete else "incomplete"
    )
    _close(
        recorder,
        status=status,
        files_reviewed=review.coverage.files_reviewed,
        hunks_reviewed=review.coverage.hunks_reviewed,
    )
    calls = recorder.rows
    return review.model_copy(
        update={
            "calls": calls,
            "usage": usage_of(calls, model.litellm_model, review.usage.cached_files),
            "ledger_error": _ledger_problem(recorder),
            "ledger_spool": str(recorder.spool) if recorder.spool else None,
        }
    )


async def _run_graph(
    start: InputState, ctx: ReviewContext, concurrency: int, seen: dict[str, Any]
) -> None:
    """Run the graph, keeping every node's output in ``seen`` as it arrives, so that a run
    stopped half way still has what was done."""
    graph_config: Any = {"max_concurrency": concurrency}
    stream: Any = build_graph().astream(
        start, context=ctx, config=graph_config, stream_mode="updates"
    )
    with warnings.catch_warnings():
        # Cancelled before they started, LangGraph's queued tasks are dropped unawaited; that
        # is the point of cancelling, not a bug worth a warning on the user's terminal.
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        async with aclosing(stream):  # a cancelled run cancels the calls still in flight
            await _consume(stream, ctx, seen)


async def _consume(stream: Any, ctx: ReviewContext, seen: dict[str, Any]) -> None:
    async for update in stream:
        for node_output in update.values():
            # Parallel tasks of one node that finish together arrive as a list of updates.
            changes = node_output if isinstance(node_output, list) else [node_output]
            for change in changes:
                for key, value in (change or {}).items():
                    if key == "results":
                        seen["results"].extend(value)
                    else:
                        seen[key] = value
                if ctx.recorder:
                    _record_progress(ctx.recorder, change or {})


def _record_progress(recorder: Recorder, change: dict[str, Any]) -> None:
    """What the run row can say as soon as it is known, before any model is called."""
    if plan := change.get("plan"):
        recorder.update_run(files_total=plan.files_total, hunks_total=plan.hunks_total)
    if secrets := change.get("secrets"):
        recorder.update_run(
            secrets_masked=len(secrets),
            secret_findings=[
                f.model_dump(include={"kind", "path", "side", "line"}) for f in secrets
            ],
        )


def _not_reached(plan: Plan, results: list[ChunkResult]) -> list[ChunkResult]:
    """Chunks with no result when the run stopped: each says so."""
    done = {r.chunk.key[:1] for r in results}
    return [
        ChunkResult(c, None, error="the run stopped before it", failure="interrupted")
        for c in plan.chunks
        if c.key[:1] not in done
    ]


def _ledger_problem(recorder: Recorder) -> str | None:
    if recorder.error is None:
        return None
    if recorder.spool is None and recorder.spool_problem:
        problem = recorder.spool_problem
        return f"{recorder.error.message}; no spool file could be written either ({problem})"
    return recorder.error.message


def _close(recorder: Recorder, **values: Any) -> None:
    """End the run in the ledger: calls still in flight are recorded as outcome unknown."""
    for row in recorder.rows:
        if row.outcome == "pending":
            recorder.update(row, outcome="unknown", error="the run stopped during this call")
    recorder.finish(**values)
    recorder.close()
