"""Placing parts in as few chunks as hold them: best-fit decreasing.

Parts go in largest first, each into the chunk it leaves the least room in, a new chunk only
when none has room: every chunk but at most one is more than half full (unless chunks are
closed by their number of parts), and the count is near ``ceil(total / budget)`` when parts
are small next to the budget. Files of one directory are
kept in one chunk when that costs no extra chunk (both packings are tried, the one with fewer
chunks is kept). Chunks are then numbered in diff order, their parts in diff order inside.
Deterministic: same parts, same chunks.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence
from pathlib import PurePosixPath

from agent.parts import Chunk, ChunkFile

SEPARATOR = 2  # tokens of the blank line between two parts of a chunk


def pack_parts(
    parts: Sequence[tuple[ChunkFile, int]], budget: int, max_parts: int | None = None
) -> tuple[Chunk, ...]:
    """``parts`` (each with its token count, in diff order) in chunks of at most ``budget``
    tokens and ``max_parts`` parts (the reply has to explain each); a part over the budget alone
    (a path that fills a chunk) gets a chunk to itself."""
    if not parts:
        return ()
    sizes = [tokens + SEPARATOR for _, tokens in parts]
    capacity = budget + SEPARATOR
    most = max_parts or len(parts)
    single = [[i] for i in range(len(parts))]
    plain = _best_fit(single, sizes, capacity, most)
    grouped = _best_fit(_by_directory(parts, sizes, capacity, most), sizes, capacity, most)
    bins = grouped if len(grouped) <= len(plain) else plain
    ordered = sorted((sorted(b) for b in bins), key=lambda b: b[0])
    return tuple(
        Chunk(
            (n,),
            tuple(parts[i][0] for i in members),
            sum(parts[i][1] for i in members) + SEPARATOR * (len(members) - 1),
        )
        for n, members in enumerate(ordered, 1)
    )


def _by_directory(
    parts: Sequence[tuple[ChunkFile, int]], sizes: list[int], capacity: int, most: int
) -> list[list[int]]:
    """Items to place: the parts of one directory together when they fit one chunk, else one
    by one."""
    dirs: dict[str, list[int]] = {}
    for i, (part, _) in enumerate(parts):
        dirs.setdefault(str(PurePosixPath(part.file.path).parent), []).append(i)
    items: list[list[int]] = []
    for members in dirs.values():
        if sum(sizes[i] for i in members) <= capacity and len(members) <= most:
            items.append(members)
        else:
            items.extend([i] for i in members)
    return items


def _best_fit(
    items: list[list[int]], sizes: list[int], capacity: int, most: int
) -> list[list[int]]:
    """Best-fit decreasing over ``items`` (groups of part indexes placed together), at most
    ``most`` parts a bin."""
    weight = [sum(sizes[i] for i in item) for item in items]
    order = sorted(range(len(items)), key=lambda k: (-weight[k], items[k][0]))
    bins: list[list[int]] = []
    rooms: list[tuple[int, int]] = []  # (room left, bin number), sorted
    for k in order:
        at = bisect_left(rooms, (weight[k], -1))
        while at < len(rooms) and len(bins[rooms[at][1]]) + len(items[k]) > most:
            at += 1
        if at < len(rooms):
            room, b = rooms.pop(at)
        else:
            room, b = capacity, len(bins)
            bins.append([])
        bins[b].extend(items[k])
        insort(rooms, (room - weight[k], b))
    return bins
