"""What a chunk carries: parts of files as the model sees them, and the records of what is not sent.

A ``ChunkFile`` is a file, or the part of it (some hunks, or a piece of one hunk) one chunk
carries; its ``spans`` say which original lines it shows, so coverage is counted per line. A
part may instead carry a ``summary`` (a deleted file named with its size, not its lines): it
shows no lines and covers none. Context lines read from the repository ride along in a chunk
as ``Context``, marked as such: not part of the change, never coverage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from agent.diff import DiffLine, FileDiff, FileStatus, Hunk, LineKind


def render_line(line: DiffLine) -> str:
    """One number per line, the one a question anchors to: the old side's for a removed line,
    the new side's for the rest. Two padded columns cost a third more tokens than the text."""
    number = line.old_no if line.kind is LineKind.REMOVED else line.new_no
    return f"{number} {line.kind.value} {line.text}"


def render_new_line(line: DiffLine) -> str:
    """A line of a new file: every one is added, so the `+` says nothing (a token a line);
    the file's header says so once instead."""
    return f"{line.new_no} {line.text}"


def is_new(file: FileDiff) -> bool:
    """A wholly added file: every line of it is an addition."""
    return file.status is FileStatus.ADDED and all(
        line.kind is LineKind.ADDED for hunk in file.hunks for line in hunk.lines
    )


def line_renderer(file: FileDiff) -> Callable[[DiffLine], str]:
    """How the lines of ``file`` are shown (and sized)."""
    return render_new_line if is_new(file) else render_line


# The header of a new file, whose lines are shown without their `+` (``render_new_line``).
NEW_FILE = "new file: every line added, shown as number and text"


def hunk_heading(hunk: Hunk) -> str:
    """Where a hunk starts: ``@@`` and the enclosing definition git found, without git's
    ``-a,b +c,d`` ranges. Every line carries its own number, so the ranges told the model
    nothing, at about 9 tokens a hunk (6 % of a modified file's changed lines' own tokens)."""
    return f"@@ {hunk.section}" if hunk.section else "@@"


def file_header(file: FileDiff, note: str = "") -> list[str]:
    status = file.status.value
    if note:
        status = f"{status}, {note}"
    elif is_new(file):
        status = NEW_FILE
    out = [f"=== FILE {file.path} ({status}) ==="]
    if file.old_path and file.new_path and file.old_path != file.new_path:
        out.append(f"(was {file.old_path})")
    if file.old_mode and file.new_mode and file.old_mode != file.new_mode:
        out.append(f"(mode {file.old_mode} -> {file.new_mode})")
    return out


def render_file(file: FileDiff, hunks: tuple[Hunk, ...] | None = None) -> str:
    """A file as the model sees it: a header, then hunks, a line number on every line."""
    parts = file_header(file)
    render = line_renderer(file)
    for hunk in file.hunks if hunks is None else hunks:
        parts.append(hunk_heading(hunk))
        parts.extend(render(line) for line in hunk.lines)
    return "\n".join(parts)


@dataclass(frozen=True)
class HunkSpan:
    """Lines ``start``..``end`` (0-based, end exclusive) of the file's hunk number ``hunk``."""

    hunk: int
    start: int
    end: int


@dataclass(frozen=True)
class ChunkFile:
    """A file, or the part of it (some hunks, or a piece of one hunk) a chunk carries.

    ``hunks`` are what the model is shown (a piece of a hunk is a ``Hunk`` of its own, numbered
    as in the diff); ``spans`` say, in the same order, which original lines each one is. With
    ``summary`` the part shows the file's header and that line instead of any hunk.
    """

    file: FileDiff
    hunks: tuple[Hunk, ...]
    spans: tuple[HunkSpan, ...]
    summary: str | None = None

    @classmethod
    def whole(cls, file: FileDiff) -> ChunkFile:
        """Every hunk of ``file``, each shown in full."""
        spans = tuple(HunkSpan(i, 0, len(h.lines)) for i, h in enumerate(file.hunks))
        return cls(file, file.hunks, spans)

    def render(self) -> str:
        return self._text

    @cached_property
    def _text(self) -> str:
        # Rendered once: the planner counts it, the prompt carries it, the cache keys on it.
        if self.summary is not None:
            return "\n".join([*file_header(self.file, "not shown"), self.summary])
        return render_file(self.file, self.hunks)

    @cached_property
    def content_key(self) -> str:
        """sha256 (hex) of exactly what the model is shown for this part: equal content, equal
        key, in any run."""
        return hashlib.sha256(self.render().encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def whole_hunks(self) -> int:
        """Hunks shown in full in this part."""
        return sum(
            1 for s in self.spans if s.start == 0 and s.end == len(self.file.hunks[s.hunk].lines)
        )


@dataclass(frozen=True)
class Context:
    """Unchanged lines of a file's new version, shown around the change: never coverage, never
    an anchor. ``lines`` are (new-side number, text)."""

    path: str
    lines: tuple[tuple[int, str], ...]

    def render(self) -> str:
        head = f"=== CONTEXT {self.path} (unchanged lines, not part of the change) ==="
        return "\n".join([head, *(f"{n}   {text}" for n, text in self.lines)])


@dataclass(frozen=True)
class Route:
    """Which models review a chunk, and why (``agent.routing``)."""

    models: tuple[str, ...]  # the model, then its fallbacks, by name
    why: str  # "rule 'security'", "default", ...

    @property
    def model(self) -> str:
        return self.models[0]


@dataclass(frozen=True)
class Chunk:
    # (3,) for the third chunk; (3, 2) for the second half of the third, once split.
    key: tuple[int, ...]
    files: tuple[ChunkFile, ...]
    tokens: int
    context: tuple[Context, ...] = ()
    # Set when routing rules chose its model; None: the run's model and its fallbacks.
    route: Route | None = None

    @property
    def id(self) -> str:
        return ".".join(str(n) for n in self.key)

    def render(self) -> str:
        return self._text

    @cached_property
    def _text(self) -> str:
        return "\n\n".join([*(f.render() for f in self.files), *(c.render() for c in self.context)])

    @property
    def label(self) -> str:
        paths = self.paths
        return paths[0] if len(paths) == 1 else f"{paths[0]} +{len(paths) - 1} more"

    @property
    def paths(self) -> list[str]:
        return list(dict.fromkeys(f.file.path for f in self.files))

    @property
    def diff_paths(self) -> list[str]:
        """The files whose lines this chunk shows (not those it only names in a summary)."""
        return list(dict.fromkeys(f.file.path for f in self.files if f.summary is None))


# not_sent: nothing of the file reaches the model; summarized: its name and size do (a
# deleted file, reviewed as a deletion), its lines do not.
SkipKind = Literal["not_sent", "summarized"]


@dataclass(frozen=True)
class Skipped:
    path: str
    hunks: int
    reason: str
    kind: SkipKind = "not_sent"


@dataclass(frozen=True)
class Packing:
    chunks: tuple[Chunk, ...]
    skipped: tuple[Skipped, ...]
    budget: int
    notes: tuple[str, ...] = ()
