"""The plan for a review: what is sent in which chunk, tokens, and the estimated cost."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache

from agent import prompts
from agent.chunking import Chunk, Skipped, pack
from agent.config import ReviewSettings
from agent.diff import Diff
from agent.errors import ConfigError
from agent.providers import ModelFacts
from agent.schema import ChunkReview, Synthesis, reply_shape
from agent.surround import Check, Reader, add_context
from agent.tokens import count_messages, count_tokens

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
    diff: Diff, facts: ModelFacts, settings: ReviewSettings, model_name: str, model: str
) -> Plan:
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
    if n > 1:
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


def estimate_cost(plan: Plan, facts: ModelFacts) -> float | None:
    if facts.price is None:
        return None
    return facts.price.estimate(plan.prompt_tokens, plan.output_tokens)


def with_context(
    plan: Plan, facts: ModelFacts, read: Reader, *, max_lines: int, check: Check
) -> Plan:
    """The plan with context lines in the room its chunks have left (``agent.surround``)."""
    if not max_lines or not plan.chunks:
        return plan
    chunks = add_context(plan.chunks, plan.budget, read, max_lines=max_lines, check=check)
    added = sum(c.tokens for c in chunks) - sum(c.tokens for c in plan.chunks)
    grown = replace(plan, chunks=chunks, prompt_tokens=plan.prompt_tokens + added)
    return replace(grown, cost_usd=estimate_cost(grown, facts))
