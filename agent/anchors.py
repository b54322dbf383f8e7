"""Checking that a question's anchor points at lines the diff really shows.

An anchor is kept when its range overlaps lines shown on its side of the file; the range is
clamped to those lines (and marked repaired) when it overreaches. Anything else is rejected
with a reason: a question is never printed against lines that do not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.diff import Diff, FileDiff
from agent.result import Anchor
from agent.schema import ProposedQuestion


@dataclass(frozen=True)
class Anchored:
    anchor: Anchor
    repaired: bool


def find_file(diff: Diff, path: str) -> FileDiff | None:
    path = path.strip().removeprefix("./")
    found = diff.file(path) or diff.file(path.removeprefix("a/").removeprefix("b/"))
    if found:
        return found
    # Models sometimes drop a leading directory; accept only an unambiguous suffix match.
    matches = [f for f in diff.files if f.path.endswith("/" + path)]
    return matches[0] if len(matches) == 1 else None


def anchor(question: ProposedQuestion, diff: Diff) -> Anchored | str:
    """The validated anchor, or the reason it was rejected."""
    file = find_file(diff, question.path)
    if file is None:
        return f"{question.path!r} is not a file in the diff"
    start, end = sorted((question.start_line, question.end_line))
    shown = file.line_numbers(question.side)
    inside = [n for n in shown if start <= n <= end]
    if not inside:
        return f"{file.path} lines {start}-{end} ({question.side} side) are not shown in the diff"
    # Keep the first contiguous run: a range spanning two hunks would cover unshown lines.
    first = last = min(inside)
    while last + 1 <= end and last + 1 in shown:
        last += 1
    repaired = (first, last) != (start, end) or file.path != question.path
    return Anchored(
        Anchor(path=file.path, side=question.side, start_line=first, end_line=last), repaired
    )
