"""Fewer of git's unchanged lines around each change (``review.diff_context_lines``).

git shows three unchanged lines on each side of a change; on a diff that modifies code they are
about a third of what a review sends. A team may keep fewer: every changed line is still sent,
and a hunk whose changes end up further apart than the lines kept around them is cut into hunks
of their own, numbered as in the diff, each keeping the definition git named for the whole.
"""

from __future__ import annotations

from dataclasses import replace

from agent.diff import Diff, FileDiff, Hunk, LineKind


def narrow(diff: Diff, keep: int | None) -> Diff:
    """``diff`` with at most ``keep`` unchanged lines before and after each run of changes;
    None keeps the diff as it is."""
    if keep is None:
        return diff
    files = tuple(_file(f, keep) for f in diff.files)
    if all(new is old for new, old in zip(files, diff.files, strict=True)):
        return diff
    return replace(diff, files=files)


def _file(file: FileDiff, keep: int) -> FileDiff:
    pieces = [_hunk(hunk, keep) for hunk in file.hunks]
    if all(len(p) == 1 and p[0] is hunk for p, hunk in zip(pieces, file.hunks, strict=True)):
        return file
    return replace(file, hunks=tuple(h for p in pieces for h in p))


def _hunk(hunk: Hunk, keep: int) -> list[Hunk]:
    changed = [i for i, line in enumerate(hunk.lines) if line.kind is not LineKind.CONTEXT]
    if not changed:  # nothing changed in it (a damaged diff): nothing to narrow it to
        return [hunk]
    runs: list[list[int]] = []  # [first, end) of each stretch of lines kept
    for i in changed:
        first, end = max(0, i - keep), min(len(hunk.lines), i + keep + 1)
        if runs and first <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([first, end])
    if runs == [[0, len(hunk.lines)]]:
        return [hunk]
    return [hunk.part(first, end) for first, end in runs]
