"""The content cache: reviews of file contents, addressed by what produced them.

A key is a hash of the prompt version, the model and exactly what the model was shown, so an
entry can only be reused for the same question asked of the same model about the same text.
Entries are written after a review succeeds and read before the next one plans; the ledger's
own database holds them so a team's CI and laptops share them with the spend they saved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from agent.ledger.database import conflict_insert
from agent.ledger.records import CachedChunk
from agent.ledger.store import LedgerStore

_cache = CachedChunk.__table__  # type: ignore[attr-defined]
# Keys per statement: well under SQLite's 32,766 bound parameters.
_BATCH = 500


def lookup(
    store: LedgerStore, keys: Sequence[str], *, count: bool = True, now: datetime | None = None
) -> dict[str, CachedChunk]:
    """The entries held for ``keys``; with ``count``, each one found is counted as a hit."""
    found: dict[str, CachedChunk] = {}
    if not keys:
        return found
    doing = "cannot read the content cache"
    with store.writing(doing) if count else store.reading(doing) as conn:
        for start in range(0, len(keys), _BATCH):
            batch = list(keys[start : start + _BATCH])
            for row in conn.execute(sa.select(_cache).where(_cache.c.key.in_(batch))):
                found[row.key] = CachedChunk.model_validate(dict(row._mapping))
        if found and count:
            conn.execute(
                _cache.update()
                .where(_cache.c.key.in_(sa.bindparam("keys", expanding=True)))
                .values(hits=_cache.c.hits + 1, last_used_at=now or datetime.now(UTC)),
                {"keys": sorted(found)},
            )
    return found


def remember(store: LedgerStore, entries: Iterable[CachedChunk]) -> int:
    """Write ``entries``, replacing any held under the same key (a ``--no-cache`` review
    refreshes them). Returns how many were written."""
    rows = [e.model_dump() for e in sorted(entries, key=lambda e: e.key)]
    if not rows:
        return 0
    with store.writing("cannot write the content cache") as conn:
        stmt = conflict_insert(conn, _cache)
        fresh = ("prompt_version", "model", "result", "cost_usd", "created_at", "last_used_at")
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["key"], set_={name: stmt.excluded[name] for name in fresh}
            ),
            rows,
        )
    return len(rows)


@dataclass(frozen=True)
class CacheStats:
    entries: int
    hits: int
    saved_usd: float  # what the hits would have cost: hits x the cost of producing each entry
    oldest_use: datetime | None


def stats(store: LedgerStore) -> CacheStats:
    query = sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(_cache.c.hits), 0),
        sa.func.coalesce(sa.func.sum(_cache.c.hits * _cache.c.cost_usd), 0.0),
        sa.func.min(_cache.c.last_used_at),
    )
    with store.reading("cannot read the content cache") as conn:
        row: Any = conn.execute(query).one()
    oldest = row[3]
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return CacheStats(int(row[0]), int(row[1]), float(row[2]), oldest)


def prune(store: LedgerStore, unused_since: datetime | None = None) -> int:
    """Delete entries not used since ``unused_since`` (all of them when None)."""
    delete = _cache.delete()
    if unused_since is not None:
        delete = delete.where(_cache.c.last_used_at < unused_since)
    with store.writing("cannot prune the content cache") as conn:
        return int(conn.execute(delete).rowcount or 0)
