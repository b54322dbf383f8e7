"""The triage pass: a cheap model rates each file's risk before routing (``routing.triage``).

The files that will be sent (masked; not excluded, vendored or generated) are shown to the
triage model compactly, in batches: each file's path, status, kind and size, and its first
changed lines (``Triage.excerpt_lines``, each cut at ``LINE_CHARS``), at most
``batch_tokens`` of files per call. Its reply (``schema.TriageReply``) is checked like every
reply: a rating of a path it was not shown is dropped, a file it did not rate keeps its path's
risk, and a call that fails (a provider error, a reply that is not the schema even after a
repair) leaves its files with their path's risk and says so in a note. The review never stops
for triage.

What routing uses (``Verdict.risk``) is the model's rating, except that it never lowers a path
the heuristic (``kinds.risk_level``) rates high: the diff is written by the pull request's
author, a cheap model reading it can be talked into "low", and a path about credentials,
money, permissions or deployment stays on the model the team chose for it. The model may raise
any file to high, and move medium and low files either way.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from agent import prompts
from agent.chunking import render_file
from agent.config import RiskLevel, Triage
from agent.diff import FileDiff, LineKind
from agent.errors import ModelCallError, NoModelError
from agent.kinds import kind_of, risk_level
from agent.parts import file_header
from agent.providers import is_local
from agent.schema import TriageReply, reply_shape
from agent.tokens import count_messages, count_tokens
from agent.triage import decide

if TYPE_CHECKING:
    from agent.client import ModelClient
    from agent.routing import Router

ROUTE = "triage"  # the ledger rows' route
PURPOSE = "triage"  # "triage-1", "triage-2": one per batch
LINE_CHARS = 160
MAX_FILES_PER_CALL = 50
# The reply's tokens per file rated (path, risk, a one-line reason), for the estimate.
EST_REPLY_PER_FILE = 40
# Held back from the triage model's window for the reply and our tokenizer's error.
REPLY_ROOM = 1024 + MAX_FILES_PER_CALL * EST_REPLY_PER_FILE
SAFETY_MARGIN = 0.10


@dataclass(frozen=True)
class Verdict:
    """One file's risk as routing uses it, and where it came from."""

    path: str
    risk: RiskLevel  # what the rules' risk conditions match on
    path_risk: RiskLevel  # the path heuristic's
    rated: RiskLevel | None = None  # the triage model's; None when it did not rate the file
    reason: str = ""  # the model's one line, when it rated the file


@dataclass(frozen=True)
class Moved:
    """A file its triage rating sent to another model than its path's risk would have."""

    path: str
    from_model: str
    to_model: str


@dataclass(frozen=True)
class Outcome:
    """What the triage pass did (or, in a dry run, would do)."""

    models: tuple[str, ...]  # the triage model, then the models that take over its call
    verdicts: tuple[Verdict, ...]
    # It rated files (this run, or kept from an earlier one); False: a dry run, it could not
    # be used, or every call failed.
    ran: bool
    calls: int  # one per batch (planned, in a dry run)
    prompt_tokens: int  # our count of the prompts
    output_tokens: int  # estimated
    cost_usd: float | None  # the estimate; the ledger holds what the calls cost
    notes: tuple[str, ...] = ()
    moved: tuple[Moved, ...] = ()  # set by the plan node, once the files are routed

    @property
    def risks(self) -> dict[str, RiskLevel]:
        """Each rated file's risk, for ``Router.route``."""
        return {v.path: v.risk for v in self.verdicts}


@dataclass(frozen=True)
class Batch:
    files: tuple[FileDiff, ...]
    messages: list[dict[str, str]]
    tokens: int  # our count of the whole prompt


def excerpt(file: FileDiff, settings: Triage, *, summarized: bool, kind: str) -> str:
    """A file as the triage model sees it: one header line, then its first changed lines."""
    size = f"+{file.added} -{file.removed}"
    head = file_header(file, f"{kind}, {size}")
    if summarized:  # a deleted file whose lines the review does not send: nor does triage
        return "\n".join(head)
    changed = [
        ln for h in file.hunks for ln in h.lines if ln.kind in (LineKind.ADDED, LineKind.REMOVED)
    ]
    # Indentation tells a rater nothing and costs tokens on every line.
    shown = [
        f"{ln.kind.value} {ln.text.strip()[:LINE_CHARS]}"
        for ln in changed[: settings.excerpt_lines]
    ]
    if len(changed) > len(shown):
        shown.append(f"... {len(changed) - len(shown)} more changed line(s) not shown")
    return "\n".join([*head, *shown])


@cache
def _shape() -> str:
    return reply_shape(TriageReply)


def messages(blocks: Sequence[str], title: str, repo: str) -> list[dict[str, str]]:
    text = "\n\n".join(blocks)
    return prompts.load("triage").render(
        schema=_shape(), nonce=prompts.fence_nonce(text), files=text, title=title, repo=repo
    )


def batches(
    files: Sequence[FileDiff], router: Router, settings: Triage, title: str, repo: str
) -> list[Batch]:
    """The triage calls for ``files``: each at most ``batch_tokens`` of files (or what the
    triage model's window leaves), at most ``MAX_FILES_PER_CALL`` files, never none."""
    window = router.facts(settings.model[0]).context_window
    overhead = count_messages(messages([], title, repo))
    room = int((window - overhead - REPLY_ROOM) * (1 - SAFETY_MARGIN))
    budget = max(min(settings.batch_tokens, room), 1)
    out: list[Batch] = []
    group: list[tuple[FileDiff, str]] = []
    used = 0

    def close() -> None:
        if group:
            blocks = [b for _, b in group]
            msgs = messages(blocks, title, repo)
            out.append(Batch(tuple(f for f, _ in group), msgs, count_messages(msgs)))

    for file in files:
        decision = decide(file, router.settings)
        block = excerpt(
            file,
            settings,
            summarized=decision is not None and decision.kind == "summarized",
            kind=kind_of(file, router.settings),
        )
        size = count_tokens(block) + 2
        if group and (used + size > budget or len(group) >= MAX_FILES_PER_CALL):
            close()
            group, used = [], 0
        group.append((file, block))
        used += size
    close()
    return out


def estimate(
    work: Sequence[Batch], router: Router, settings: Triage
) -> tuple[int, int, float | None]:
    """Prompt tokens, reply tokens and cost of the triage calls, before any is made."""
    prompt = sum(b.tokens for b in work)
    output = sum(20 + EST_REPLY_PER_FILE * len(b.files) for b in work)
    price = router.facts(settings.model[0]).price
    return prompt, output, None if price is None else price.estimate(prompt, output)


def unusable(router: Router, settings: Triage, client: ModelClient | None) -> str | None:
    """Why the triage model cannot be asked in this run (a variable it needs is not set, a
    hosted model under local_only, a model the client does not hold), or None."""
    reasons = []
    for name in settings.model:
        model = router.model(name)
        if not model.usable:
            reasons.append(f"{name} needs {', '.join(model.missing_env)}")
        elif router.config.local_only and not is_local(model):
            reasons.append(f"{name} is a hosted model and local_only is set")
        elif client is not None and name not in client.known:
            reasons.append(f"{name} is not available to this run")
        else:
            return None
    return "; ".join(reasons)


def heuristic(files: Sequence[FileDiff]) -> list[Verdict]:
    """Every file at its path's risk: no triage model, or none that answered."""
    return [Verdict(f.path, risk_level(f), risk_level(f)) for f in files]


def judge(
    reply: TriageReply, files: Sequence[FileDiff], model: str
) -> tuple[list[Verdict], list[str]]:
    """The verdicts for the files of one batch from the triage model's reply, and what the
    review's notes should say about the reply."""
    shown = {f.path for f in files}
    ratings: dict[str, tuple[RiskLevel, str]] = {}
    strays: list[str] = []
    for item in reply.files:
        if item.path not in shown:
            strays.append(item.path)
        elif item.path not in ratings:  # a file rated twice: its first rating
            ratings[item.path] = (item.risk, " ".join(item.reason.split())[:200])
    verdicts, unrated, held = [], [], []
    for file in files:
        path_risk = risk_level(file)
        if file.path not in ratings:
            unrated.append(file.path)
            verdicts.append(Verdict(file.path, path_risk, path_risk))
            continue
        rated, reason = ratings[file.path]
        if path_risk == "high" and rated != "high":
            held.append(file.path)
        risk: RiskLevel = "high" if path_risk == "high" else rated
        verdicts.append(Verdict(file.path, risk, path_risk, rated, reason))
    notes = []
    if strays:
        notes.append(
            f"triage ({model}) rated {len(strays)} path(s) it was not shown ({_some(strays)}): "
            "ignored"
        )
    if reply.dropped:
        notes.append(
            f"triage ({model}) gave {len(reply.dropped)} rating(s) that were not valid "
            f"({_some(reply.dropped)}): those files keep their path's risk"
        )
    if unrated:
        notes.append(
            f"triage ({model}) did not rate {len(unrated)} file(s) ({_some(unrated)}): "
            "their path's risk stands"
        )
    if held:
        notes.append(
            f"triage ({model}) rated {len(held)} file(s) below high whose path is rated high "
            f"({_some(held)}): high stands, a triage never lowers it"
        )
    return verdicts, notes


def _some(items: Sequence[str], n: int = 3) -> str:
    more = f" +{len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def problem(reply: TriageReply, files: Sequence[FileDiff]) -> str | None:
    """Why a valid reply is still unusable (sent back for a repair), or None."""
    shown = {f.path for f in files}
    if not any(item.path in shown for item in reply.files):
        return (
            "it rates none of the files shown; rate each one by its path exactly as in its "
            "=== FILE header"
        )
    return None


async def rate(
    work: Sequence[Batch], client: ModelClient, settings: Triage, concurrency: int
) -> tuple[list[Verdict], list[str], int]:
    """Ask the triage model about every batch, at most ``concurrency`` at once: the verdicts,
    the notes, and how many batches it answered. A batch whose call fails keeps its files'
    path risk, with a note: never an error."""
    gate = asyncio.Semaphore(concurrency)
    model = settings.model[0]

    async def one(n: int, batch: Batch) -> tuple[list[Verdict], list[str], bool]:
        async with gate:
            try:
                answer = await client.structured(
                    batch.messages,
                    TriageReply,
                    purpose=f"{PURPOSE}-{n}",
                    check=lambda reply: problem(reply, batch.files),
                    models=settings.model,
                    route=ROUTE,
                )
            except (ModelCallError, NoModelError) as exc:
                note = (
                    f"triage ({model}) could not rate {len(batch.files)} file(s) "
                    f"({exc.message}): their path's risk stands"
                )
                return heuristic(batch.files), [note], False
        return (*judge(answer.value, batch.files, answer.model_name), True)

    done = await asyncio.gather(*(one(n, b) for n, b in enumerate(work, start=1)))
    verdicts = [v for found, _, _ in done for v in found]
    return verdicts, [n for _, notes, _ in done for n in notes], sum(ok for _, _, ok in done)


def moved(outcome: Outcome, files: Sequence[FileDiff], router: Router) -> tuple[Moved, ...]:
    """The files of ``files`` whose verdict sent them to another model than their path's risk
    alone would have."""
    changed = {v.path for v in outcome.verdicts if v.risk != v.path_risk}
    out = []
    for file in files:
        if file.path not in changed:
            continue
        before, after = router.heuristic_route(file).model, router.route(file).model
        if before != after:
            out.append(Moved(file.path, before, after))
    return tuple(out)


def outcome(
    work: Sequence[Batch],
    router: Router,
    settings: Triage,
    verdicts: Sequence[Verdict],
    notes: Sequence[str],
    *,
    ran: bool,
) -> Outcome:
    prompt, output, cost = estimate(work, router, settings)
    return Outcome(
        models=settings.model,
        verdicts=tuple(verdicts),
        ran=ran,
        calls=len(work),
        prompt_tokens=prompt,
        output_tokens=output,
        cost_usd=cost,
        notes=tuple(notes),
    )


# --- verdicts kept for re-reviews -------------------------------------------------------------
# A re-review after a push rates only the files that changed: a file's rating is kept in the
# content cache (the ``chunk_cache`` table, under its own prompt version) by the rubric, the
# model and the file exactly as the diff has it. The kept value is the model's rating; the path
# heuristic's floor is applied again on reuse.


@cache
def version() -> str:
    """The triage prompt and reply schema, as verdicts are kept under."""
    text = f"{prompts.load('triage').version}\0{_shape()}"
    return "triage-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def verdict_key(file: FileDiff, settings: Triage) -> str:
    parts = (version(), settings.model[0], str(settings.excerpt_lines), render_file(file))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def kept(file: FileDiff, result: dict[str, object]) -> Verdict | None:
    """A kept rating as this run's verdict (None when the entry is not one)."""
    rated, reason = result.get("rated"), result.get("reason")
    if rated not in ("low", "medium", "high") or not isinstance(reason, str):
        return None
    path_risk = risk_level(file)
    risk: RiskLevel = "high" if path_risk == "high" else rated
    return Verdict(file.path, risk, path_risk, rated, reason)
