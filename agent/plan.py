"""The plan for a review: what is sent in which chunk, tokens, and the estimated cost."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING

from agent import prompts
from agent.chunking import Chunk, Skipped, pack
from agent.config import ReviewSettings
from agent.diff import Diff, FileDiff
from agent.errors import ConfigError
from agent.parts import Route
from agent.providers import ModelFacts, ResolvedModel
from agent.schema import ChunkReview, Synthesis, reply_shape
from agent.surround import Check, Reader, add_context
from agent.tokens import count_messages, count_tokens

if TYPE_CHECKING:
    from agent.risk_triage import Outcome
    from agent.routing import Router

# Tokens held back from the window for the difference between our tokenizer and the model's.
SAFETY_MARGIN = 0.10
# Expected reply size; real replies are recorded, this only feeds the estimate.
EST_OUTPUT_PER_CHUNK = 1200
EST_SYNTHESIS_INPUT_PER_CHUNK = 600
EST_SYNTHESIS_OUTPUT = 600
# Reply tokens to plan for each file of a chunk (its walkthrough, its share of the questions):
# a chunk holds no more files than its reply can explain, and never fewer than MIN_FILES.
REPLY_PER_FILE = 120
MIN_FILES = 4


@dataclass(frozen=True)
class Plan:
    model_name: str
    model: str
    context_window: int
    budget: int
    chunks: tuple[Chunk, ...]
    skipped: tuple[Skipped, ...]
    files_total: int
    hunks_total: int
    prompt_tokens: int
    output_tokens: int
    notes: tuple[str, ...] = ()
    # The estimate for the chosen model; None when it has no price.
    cost_usd: float | None = None
    # The whole diff was estimated over --max-cost: this plan holds only the riskiest files.
    over_max_cost: bool = False
    # Routed (``make_routed_plan``): one plan per chain of models, its chunks numbered as in
    # this one; empty when every chunk goes to the run's model.
    by_model: tuple[Plan, ...] = ()
    # The triage pass the routing used (routing.triage): its verdicts, and the files it moved
    # to another model; in a dry run, what it would cost. Not in ``cost_usd``: it is made (or
    # would be) before the chunks are planned.
    triage: Outcome | None = None

    @property
    def calls(self) -> int:
        return len(self.chunks) + (1 if len(self.chunks) > 1 else 0)


@cache
def schema_text(schema: type[ChunkReview] | type[Synthesis]) -> str:
    """The reply's shape as the prompt shows it; the full JSON schema goes through
    ``response_format`` where the model takes it."""
    return reply_shape(schema)


@cache
def response_format_tokens(schema: type[ChunkReview] | type[Synthesis]) -> int:
    """About what the JSON schema sent as ``response_format`` costs (providers bill it as
    prompt tokens)."""
    return count_tokens(json.dumps(schema.model_json_schema(), separators=(",", ":")))


def chunk_overhead(send_schema: bool = False) -> int:
    """Tokens each chunk's call pays besides the diff: the prompt around it, and the schema
    when it also goes as ``response_format``."""
    schema = response_format_tokens(ChunkReview) if send_schema else 0
    return _prompt_overhead() + schema


def _prompt_overhead() -> int:
    prompt = prompts.load("chunk")
    empty = prompt.render(
        schema=schema_text(ChunkReview),
        nonce="0" * 16,
        diff="",
        title="",
        repo="",
        part="1",
        parts="1",
    )
    return count_messages(empty) + 200  # the title and the repository name


def make_plan(
    diff: Diff,
    facts: ModelFacts,
    settings: ReviewSettings,
    model_name: str,
    model: str,
    *,
    synthesis: bool = True,
) -> Plan:
    """The chunks of ``diff`` for one model, and their estimate (with the PR-level synthesis
    call, when there is more than one chunk and ``synthesis``)."""
    overhead = chunk_overhead(facts.send_schema)
    max_output = min(settings.max_output_tokens, facts.max_output_tokens or 10**9)
    room = int((facts.context_window - overhead - max_output) * (1 - SAFETY_MARGIN))
    # The window's room, unless a configured budget caps it.
    budget = room if settings.max_chunk_tokens is None else min(settings.max_chunk_tokens, room)
    if budget < 500:
        raise ConfigError(
            f"{model_name}'s context window ({facts.context_window} tokens) leaves {budget} "
            "tokens for the diff after the prompt and the reply",
            hint="set a larger context_window for it in providers.yaml if it has one, "
            "lower review.max_output_tokens, or choose another model with --model",
        )
    files = max(MIN_FILES, max_output // REPLY_PER_FILE)
    packing = pack(diff, budget, settings, max_parts=files)
    n = len(packing.chunks)
    prompt_tokens = sum(c.tokens + overhead for c in packing.chunks)
    output_tokens = n * EST_OUTPUT_PER_CHUNK
    if n > 1 and synthesis:
        prompt_tokens += overhead + n * EST_SYNTHESIS_INPUT_PER_CHUNK
        output_tokens += EST_SYNTHESIS_OUTPUT
    plan = Plan(
        model_name=model_name,
        model=model,
        context_window=facts.context_window,
        budget=budget,
        chunks=packing.chunks,
        skipped=packing.skipped,
        files_total=len(diff.files),
        hunks_total=sum(len(f.hunks) for f in diff.files),
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        notes=packing.notes,
    )
    return replace(plan, cost_usd=estimate_cost(plan, facts))


def make_routed_plan(diff: Diff, router: Router) -> Plan:
    """The plan when routing rules choose the models: each file routed (``Router.route``),
    the files of each chain of models packed together with its first model's window, then
    one plan of them all, the synthesis on the run's model."""
    groups: dict[tuple[str, ...], list[FileDiff]] = {}
    why: dict[str, str] = {}
    for file in diff.files:
        route = router.route(file)
        groups.setdefault(route.models, []).append(file)
        why[file.path] = route.why
    subs = []
    for models, files in groups.items():
        model = router.model(models[0])
        sub = make_plan(
            replace(diff, files=tuple(files)),
            router.facts(model.name),
            router.settings,
            model.name,
            model.litellm_model,
            synthesis=False,
        )
        chunks = tuple(
            replace(c, route=Route(models, "; ".join(dict.fromkeys(why[p] for p in c.paths))))
            for c in sub.chunks
        )
        subs.append(replace(sub, chunks=chunks))
    return merge(subs, router.facts(router.default.name), router.default)


def merge(subs: list[Plan], facts: ModelFacts, default: ResolvedModel) -> Plan:
    """One plan of per-model plans: chunks numbered in order, totals summed, and the
    PR-level synthesis estimated once, on the run's model."""
    numbered: list[Plan] = []
    n = 0
    for sub in subs:
        chunks = tuple(replace(c, key=(n + i + 1,)) for i, c in enumerate(sub.chunks))
        n += len(chunks)
        numbered.append(replace(sub, chunks=chunks))
    prompt = sum(s.prompt_tokens for s in numbered)
    output = sum(s.output_tokens for s in numbered)
    costs = [s.cost_usd for s in numbered if s.chunks]
    cost = None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)
    if n > 1:
        synthesis_in = chunk_overhead(facts.send_schema) + n * EST_SYNTHESIS_INPUT_PER_CHUNK
        prompt += synthesis_in
        output += EST_SYNTHESIS_OUTPUT
        if cost is not None and facts.price is not None:
            cost += facts.price.estimate(synthesis_in, EST_SYNTHESIS_OUTPUT)
        elif facts.price is None:
            cost = None
    own = next((s for s in numbered if s.model_name == default.name), None)
    return Plan(
        model_name=default.name,
        model=default.litellm_model,
        context_window=facts.context_window,
        budget=own.budget if own else max((s.budget for s in numbered), default=0),
        chunks=tuple(c for s in numbered for c in s.chunks),
        skipped=tuple(k for s in numbered for k in s.skipped),
        files_total=sum(s.files_total for s in numbered),
        hunks_total=sum(s.hunks_total for s in numbered),
        prompt_tokens=prompt,
        output_tokens=output,
        notes=tuple(dict.fromkeys(note for s in numbered for note in s.notes)),
        cost_usd=cost,
        by_model=tuple(numbered),
    )


def estimate_cost(plan: Plan, facts: ModelFacts) -> float | None:
    if facts.price is None:
        return None
    return facts.price.estimate(plan.prompt_tokens, plan.output_tokens)


def with_context(
    plan: Plan,
    facts: ModelFacts,
    read: Reader,
    *,
    max_lines: int,
    check: Check,
    router: Router | None = None,
) -> Plan:
    """The plan with context lines in the room its chunks have left (``agent.surround``); a
    routed plan's chunks each within their own model's room."""
    if not max_lines or not plan.chunks:
        return plan
    if plan.by_model and router is not None:
        subs = [
            with_context(s, router.facts(s.model_name), read, max_lines=max_lines, check=check)
            for s in plan.by_model
        ]
        merged = merge(subs, facts, router.default)
        # Only the chunks and the estimate change: what was left out (for budget too) stays.
        return replace(
            plan,
            chunks=merged.chunks,
            prompt_tokens=merged.prompt_tokens,
            output_tokens=merged.output_tokens,
            cost_usd=merged.cost_usd,
            by_model=merged.by_model,
        )
    chunks = add_context(plan.chunks, plan.budget, read, max_lines=max_lines, check=check)
    added = sum(c.tokens for c in chunks) - sum(c.tokens for c in plan.chunks)
    grown = replace(plan, chunks=chunks, prompt_tokens=plan.prompt_tokens + added)
    return replace(grown, cost_usd=estimate_cost(grown, facts))
