"""Re-reviews that pay only for what changed: file reviews kept in the content cache.

A file shown whole in one chunk, and explained by the model, is kept with its walkthrough, its
questions and its chunk's summary and risk, under a key of the prompt version, the schema, the
model and the file exactly as the model saw it. A later review of a diff where that file is
byte-for-byte the same plans only the other files and takes this one's review from the cache.
A file split over several chunks is not kept: its parts' reviews do not stand alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent import replies, risk_triage
from agent.chunking import Chunk, ChunkFile, render_file
from agent.config import Triage
from agent.diff import Diff, FileDiff
from agent.errors import LedgerError
from agent.ledger import cache as cache_store
from agent.ledger.records import CachedChunk, CallRecord
from agent.ledger.store import LedgerStore
from agent.plan import schema_text
from agent.redact import Redactor, redactor
from agent.risk_triage import Verdict
from agent.schema import ChunkReview, FileWalkthrough, ProposedQuestion
from agent.state import ChunkResult
from agent.tokens import count_tokens


def file_key(prompt_version: str, schema: str, model: str, file: FileDiff) -> str:
    text = "\x00".join((prompt_version, _digest(schema), model, render_file(file)))
    return _digest(text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _whole(part: ChunkFile) -> bool:
    return bool(part.file.hunks) and part.whole_hunks == len(part.file.hunks)


@dataclass(frozen=True)
class Hit:
    file: FileDiff
    entry: CachedChunk

    @property
    def saved_usd(self) -> float | None:
        return self.entry.cost_usd


def entries(
    result: ChunkResult,
    calls: Sequence[CallRecord],
    *,
    key: Callable[[FileDiff], str],
    prompt_version: str,
    now: datetime | None = None,
) -> list[CachedChunk]:
    """What ``result`` leaves in the cache: one entry per file it reviewed whole.

    ``calls`` are the run's calls so far (the chunk's own give its cost, shared among its files
    by their size); ``key(file)`` gives a file's cache key."""
    review = result.review
    if review is None or result.failure is not None:
        return []
    now = now or datetime.now(UTC)
    purpose = f"chunk-{result.chunk.id}"
    answered = [c for c in calls if c.purpose == purpose and c.billed]
    costs = [c.cost_usd for c in answered]
    cost = None if not costs or any(c is None for c in costs) else sum(c or 0.0 for c in costs)
    last = answered[-1] if answered else None
    origin = _digest(result.chunk.render())
    sizes = [len(p.render()) for p in result.chunk.files]
    total = max(sum(sizes), 1)
    hide = redactor()  # once: building one reads the environment
    kept = []
    for part, size in zip(result.chunk.files, sizes, strict=True):
        path = part.file.path
        if not _whole(part) or path not in result.explained:
            continue
        share = None if cost is None else cost * size / total
        kept.append(
            CachedChunk(
                key=key(part.file),
                prompt_version=prompt_version,
                model=last.model if last else (result.model_name or ""),
                result=_redacted(
                    {
                        "origin": origin,
                        "path": path,
                        "walkthroughs": [f.walkthrough for f in review.files if f.path == path],
                        "questions": [_proposed(q) for q in result.questions if q.path == path],
                        "summary": review.summary,
                        "risk": review.risk,
                        "risk_reasons": review.risk_reasons,
                        "model_name": result.model_name or (last.model_name if last else ""),
                        "provider": last.provider if last else "",
                        "reviewed_at": now.isoformat(),
                    },
                    hide,
                ),
                cost_usd=share,
                created_at=now,
                last_used_at=now,
            )
        )
    return kept


def _redacted(value: Any, hide: Redactor) -> Any:
    """The reply's text as the ledger may keep it: without credentials (the model may have
    quoted one the masking did not know)."""
    if isinstance(value, str):
        return hide(value)
    if isinstance(value, list):
        return [_redacted(v, hide) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v, hide) for k, v in value.items()}
    return value


def _proposed(q: Any) -> dict[str, Any]:
    fields = ProposedQuestion.model_fields
    return {name: getattr(q, name) for name in fields}


def results(hits: Sequence[Hit], diff: Diff, first_key: int) -> list[tuple[ChunkResult, Hit]]:
    """The hits as reviewed chunks: one per chunk of the review they came from, so a summary
    shared by several files is said once. Each is paired with one of its hits (for the ledger:
    its model and the cost saved, summed over the group)."""
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(str(hit.entry.result.get("origin", hit.entry.key)), []).append(hit)
    made = []
    for n, group in enumerate(groups.values()):
        parts = tuple(ChunkFile.whole(h.file) for h in group)
        chunk = Chunk((first_key + n,), parts, count_tokens("\n\n".join(p.render() for p in parts)))
        first = group[0].entry.result
        review = ChunkReview.model_validate(
            {
                "summary": first.get("summary", ""),
                "risk": first.get("risk", "low"),
                "risk_reasons": first.get("risk_reasons", []),
                "files": [
                    FileWalkthrough(path=h.file.path, walkthrough=w).model_dump()
                    for h in group
                    for w in h.entry.result.get("walkthroughs", [])
                ],
                "questions": [q for h in group for q in h.entry.result.get("questions", [])],
            }
        )
        checked = replies.check(review, chunk, diff)
        result = ChunkResult(
            chunk,
            checked.review,
            checked.questions,
            checked.dropped,
            checked.explained,
            model_name=str(first.get("model_name") or group[0].entry.model),
            cached=True,
        )
        made.append((result, _summed(group)))
    return made


def _summed(group: list[Hit]) -> Hit:
    costs = [h.saved_usd for h in group]
    total = None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)
    return Hit(group[0].file, group[0].entry.model_copy(update={"cost_usd": total}))


class ContentCache:
    """The content cache as one review uses it: ``read`` off for ``--no-cache`` (the review is
    fresh and refreshes the entries), ``write`` off for a dry run. A cache that cannot be read
    or written is a missed saving, never a failed review: ``problem`` says what happened."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        prompt_version: str,
        model: str,
        read: bool = True,
        write: bool = True,
        model_of: Callable[[FileDiff], str] | None = None,
    ) -> None:
        """``model``: the model files are reviewed by, unless ``model_of`` says per file
        (routing rules)."""
        self.store = store
        self.prompt_version = prompt_version
        self.model = model
        self.model_of = model_of
        self.read = read
        self.write = write
        self.problem: str | None = None
        self._schema = schema_text(ChunkReview)

    def key(self, file: FileDiff) -> str:
        model = self.model_of(file) if self.model_of is not None else self.model
        return file_key(self.prompt_version, self._schema, model, file)

    def lookup(self, files: Sequence[FileDiff], *, count: bool = True) -> list[Hit]:
        """The files whose review is held, in diff order."""
        if not self.read or not files:
            return []
        keys = {id(f): self.key(f) for f in files}
        try:
            found = cache_store.lookup(self.store, list(keys.values()), count=count)
        except LedgerError as exc:
            self.problem = f"the content cache could not be read ({exc.message})"
            return []
        return [Hit(f, found[keys[id(f)]]) for f in files if keys[id(f)] in found]

    def keep(self, results: Sequence[ChunkResult], calls: Sequence[CallRecord]) -> None:
        if not self.write:
            return
        kept = [
            e
            for r in results
            if not r.cached
            for e in entries(r, calls, key=self.key, prompt_version=self.prompt_version)
        ]
        try:
            cache_store.remember(self.store, kept)
        except LedgerError as exc:
            self.problem = f"the content cache could not be written ({exc.message})"


# --- triage ratings -------------------------------------------------------------------------


def kept_ratings(
    cache: ContentCache | None, files: Sequence[FileDiff], settings: Triage, *, count: bool
) -> tuple[list[Verdict], list[FileDiff], str | None]:
    """The verdicts kept for unchanged files, the files still to rate, and what went wrong
    reading them (a missed saving, never a failed review)."""
    if cache is None or not cache.read or not files:
        return [], list(files), None
    keys = {id(f): risk_triage.verdict_key(f, settings) for f in files}
    try:
        found = cache_store.lookup(cache.store, list(keys.values()), count=count)
    except LedgerError as exc:
        return [], list(files), f"kept triage ratings could not be read ({exc.message})"
    held: list[Verdict] = []
    rest: list[FileDiff] = []
    for f in files:
        entry = found.get(keys[id(f)])
        verdict = risk_triage.kept(f, entry.result) if entry is not None else None
        if verdict is not None:
            held.append(verdict)
        else:
            rest.append(f)
    return held, rest, None


def keep_ratings(
    cache: ContentCache | None,
    verdicts: Sequence[Verdict],
    files: Sequence[FileDiff],
    settings: Triage,
) -> str | None:
    """Keep the model's ratings of ``files`` for the next review; what went wrong, if anything."""
    if cache is None or not cache.write:
        return None
    by_path = {f.path: f for f in files}
    now = datetime.now(UTC)
    entries = [
        CachedChunk(
            key=risk_triage.verdict_key(by_path[v.path], settings),
            prompt_version=risk_triage.version(),
            model=settings.model[0],
            result={"rated": v.rated, "reason": v.reason},
            cost_usd=None,
            created_at=now,
            last_used_at=now,
            hits=0,
        )
        for v in verdicts
        if v.rated is not None and v.path in by_path
    ]
    try:
        cache_store.remember(cache.store, entries)
    except LedgerError as exc:
        return f"triage ratings could not be kept ({exc.message})"
    return None
