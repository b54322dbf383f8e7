"""Context for a chunk with room to spare: the unchanged lines above each piece of the change,
up to the function or class that encloses it, read from the repository.

Only after packing, only into the room a chunk has left (never an extra chunk), only when the
file in the repository is exactly the diff's new side (every line the diff shows matches), and
never what a credential scan flags. Context is shown apart, under ``=== CONTEXT``: it is not part
of the change, covers nothing, and questions anchored to it are dropped (their lines are not in
the diff).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from agent.binpack import SEPARATOR
from agent.diff import FileDiff, FileStatus, Hunk
from agent.parts import Chunk, ChunkFile, Context
from agent.splitting import definition_at
from agent.tokens import count_tokens

# path -> the text of the file's new version, or None when it cannot be read.
Reader = Callable[[str], str | None]
# The context lines of a file -> whether they may be sent (no credential in them).
Check = Callable[[str, tuple[tuple[int, str], ...]], bool]

# How far above a piece to look for the line that opens its function or class.
LOOK_BACK = 200
_MAX_FILE_BYTES = 2_000_000


def worktree_reader(root: Path) -> Reader:
    """Files of the checkout at ``root``; nothing outside it (a ``..`` path or a symlink out)."""
    top = root.resolve()

    def read(path: str) -> str | None:
        try:
            target = (top / path).resolve()
            if not target.is_relative_to(top) or not target.is_file():
                return None
            if target.stat().st_size > _MAX_FILE_BYTES:
                return None
            return target.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError, ValueError):
            return None

    return read


def add_context(
    chunks: tuple[Chunk, ...],
    budget: int,
    read: Reader,
    *,
    max_lines: int,
    check: Check = lambda path, lines: True,
) -> tuple[Chunk, ...]:
    """``chunks`` with context added where it fits in ``budget``."""
    contents: dict[str, list[str] | None] = {}

    def lines_of(file: FileDiff) -> list[str] | None:
        if file.path not in contents:
            text = read(file.path)
            lines = text.split("\n") if text is not None else None
            contents[file.path] = lines if lines is not None and _matches(file, lines) else None
        return contents[file.path]

    out = []
    for chunk in chunks:
        tokens, blocks = chunk.tokens, list(chunk.context)
        for part in chunk.files:
            if budget - tokens < 50:
                break
            if part.summary is not None or part.file.status is FileStatus.DELETED:
                continue
            lines = lines_of(part.file)
            if lines is None:
                continue
            shown = part.file.line_numbers("new")
            above = _above(part, lines, shown, max_lines)
            if not above or not check(part.file.path, above):
                continue
            block = Context(part.file.path, above)
            cost = count_tokens(block.render()) + SEPARATOR
            if tokens + cost <= budget:
                blocks.append(block)
                tokens += cost
        out.append(replace(chunk, context=tuple(blocks), tokens=tokens))
    return tuple(out)


def _matches(file: FileDiff, lines: list[str]) -> bool:
    """Whether ``lines`` are the file's new version as the diff shows it."""
    for hunk in file.hunks:
        for line in hunk.lines:
            n = line.new_no
            if n is not None and (n > len(lines) or lines[n - 1] != line.text):
                return False
    return True


def _above(
    part: ChunkFile, lines: list[str], shown: frozenset[int], max_lines: int
) -> tuple[tuple[int, str], ...]:
    """For each piece of ``part``: the lines from its enclosing definition down to it that the
    diff does not show; at most ``max_lines`` per piece (the definition line and the nearest
    ones)."""
    picked: dict[int, str] = {}
    for hunk in part.hunks:
        first = _first_new(hunk)
        top = max(1, first - LOOK_BACK)
        opening = next(
            (n for n in range(first - 1, top - 1, -1) if definition_at(lines[n - 1])), None
        )
        if opening is None:
            continue
        wanted = [n for n in range(opening, first) if n not in shown]
        if len(wanted) > max_lines:
            wanted = [wanted[0], *wanted[len(wanted) - max_lines + 1 :]]
        picked.update((n, lines[n - 1]) for n in wanted)
    return tuple(sorted(picked.items()))


def _first_new(hunk: Hunk) -> int:
    """The new-side number of the hunk's first line (where a removal-only hunk sits)."""
    return next((ln.new_no for ln in hunk.lines if ln.new_no is not None), hunk.new_start + 1)
