"""The code a question is anchored to: the excerpt a grader is shown, and its fingerprint.

The fingerprint says whether the code under a question changed between the review that asked
it and a later check: an answer holds for the code it was given about, not for whatever a
later push put there.
"""

from __future__ import annotations

import hashlib
import re

from agent.anchors import find_file
from agent.diff import Diff, DiffLine, LineKind
from agent.result import Anchor

# Placeholders are numbered per run («secret:aws#2»): the same masked line may be numbered
# differently when another file gains a credential.
_PLACEHOLDER = re.compile(r"«secret:[^»#]*#\d+»")


def _number(line: DiffLine, side: str) -> int | None:
    if side == "old":
        return line.old_no if line.kind is not LineKind.ADDED else None
    return line.new_no if line.kind is not LineKind.REMOVED else None


def _hunk_lines(diff: Diff, anchor: Anchor) -> list[tuple[int, DiffLine, bool]]:
    """The lines of the hunks the anchor falls in: (number on its side, line, anchored)."""
    found = find_file(diff, anchor.path)
    if found is None:
        return []
    out = []
    for hunk in found.hunks:
        numbered = [(n, ln) for ln in hunk.lines if (n := _number(ln, anchor.side)) is not None]
        if any(anchor.start_line <= n <= anchor.end_line for n, _ in numbered):
            out += [(n, ln, anchor.start_line <= n <= anchor.end_line) for n, ln in numbered]
    return out


def fingerprint(diff: Diff, anchor: Anchor) -> str | None:
    """A hash of the anchored lines as the diff shows them; None when the diff no longer
    shows them."""
    lines = [f"{ln.kind.value}{ln.text}" for _, ln, inside in _hunk_lines(diff, anchor) if inside]
    if not lines:
        return None
    text = _PLACEHOLDER.sub("«secret»", "\n".join(lines))
    return hashlib.sha256(f"{anchor.path}\0{anchor.side}\0{text}".encode()).hexdigest()[:16]


def excerpt(diff: Diff, anchor: Anchor, around: int = 12) -> str:
    """The anchored lines with ``around`` lines of their hunk each side, numbered as in the
    review's prompt; anchored lines are marked ``>``."""
    lines = _hunk_lines(diff, anchor)
    inside = [i for i, (_, _, hit) in enumerate(lines) if hit]
    if not inside:
        return ""
    first, last = max(0, inside[0] - around), min(len(lines), inside[-1] + around + 1)
    return "\n".join(
        f"{'>' if hit else ' '}{n} {ln.kind.value}{ln.text}" for n, ln, hit in lines[first:last]
    )
