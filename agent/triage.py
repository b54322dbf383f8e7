"""Which files of a diff are sent line by line, which only named, and which not at all.

Decided per file, from the file alone and the review settings, in this order: binary files,
files that may hold credentials (``review.sensitive``) and excluded files (``review.exclude``)
are not sent; vendored paths (``review.vendored``) and generated files (``review.generated``
names, or a marker such as ``@generated`` or ``Code generated ... DO NOT EDIT.`` near the top)
are listed, not sent; a deleted file is, by default (``review.deleted: summarize``), named with
its size and reviewed as a deletion. Every one of these decisions carries its reason.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from agent.config import ReviewSettings
from agent.diff import FileDiff, FileStatus, LineKind
from agent.parts import SkipKind

# A marker counts only near the top of the file, where generators write it.
MARKER_LINES = 12
_MARKERS = (
    ("@generated", re.compile(r"@generated\b")),
    ("Code generated ... DO NOT EDIT.", re.compile(r"\bCode generated\b.*\bDO NOT EDIT\b")),
    ("DO NOT EDIT", re.compile(r"\bDO NOT EDIT\b")),
    ("auto-generated", re.compile(r"(?i)\b(?:auto-?generated|automatically generated)\b")),
)


@dataclass(frozen=True)
class Decision:
    kind: SkipKind
    reason: str


def _matches(path: str, patterns: tuple[str, ...]) -> str | None:
    name = PurePosixPath(path).name
    for pattern in patterns:
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(name, pattern):
            return pattern
    return None


def marker(file: FileDiff) -> tuple[str, int] | None:
    """A generated-file marker on one of the first lines of the file as the diff shows it, and
    that line's number."""
    for hunk in file.hunks:
        for line in hunk.lines:
            deleted = line.kind is LineKind.REMOVED
            n = line.old_no if deleted else line.new_no
            if n is None or n > MARKER_LINES:
                continue
            for name, pattern in _MARKERS:
                if pattern.search(line.text):
                    return name, n
    return None


def size(file: FileDiff) -> str:
    """A deleted file's size, from its removed lines: "120 lines, 3,456 bytes"."""
    lines = [ln for h in file.hunks for ln in h.lines if ln.kind is LineKind.REMOVED]
    if file.is_binary:
        return "binary, size unknown"
    if not lines:
        return "empty"
    data = sum(len(ln.text.encode("utf-8", "surrogatepass")) + 1 for ln in lines)
    data -= sum(1 for ln in lines if ln.no_newline_at_eof)
    return f"{len(lines):,} line{'s' if len(lines) != 1 else ''}, {data:,} bytes"


def decide(file: FileDiff, settings: ReviewSettings) -> Decision | None:
    """Why ``file`` is not sent line by line, or None when it is."""
    path = file.path
    # A deleted file's old path is its path; a rename is judged by where it lands.
    if file.is_binary and not (file.status is FileStatus.DELETED and settings.deleted != "full"):
        return Decision("not_sent", "binary file")
    if pattern := _matches(path, settings.sensitive):
        return Decision(
            "not_sent", f"not sent: may hold credentials (review.sensitive pattern {pattern!r})"
        )
    if pattern := _matches(path, settings.exclude):
        return Decision("not_sent", f"excluded by pattern {pattern!r}")
    if pattern := _matches(path, settings.vendored):
        return Decision("not_sent", f"vendored code, listed not sent (review.vendored {pattern!r})")
    if pattern := _matches(path, settings.generated):
        return Decision(
            "not_sent", f"generated file, listed not sent (review.generated {pattern!r})"
        )
    if file.status is FileStatus.DELETED:
        if settings.deleted == "skip":
            return Decision("not_sent", f"deleted ({size(file)}); review.deleted: skip")
        if settings.deleted == "summarize":
            return Decision("summarized", f"deleted ({size(file)}): reviewed as a deletion")
    if settings.generated_markers and (found := marker(file)):
        name, n = found
        return Decision(
            "not_sent", f"generated file (marker {name!r} on line {n}), listed not sent"
        )
    return None


def skip_reason(file: FileDiff, settings: ReviewSettings) -> str | None:
    """Why nothing of ``file`` is sent (a summarized file is sent, as its summary), or None."""
    decision = decide(file, settings)
    return decision.reason if decision and decision.kind == "not_sent" else None
