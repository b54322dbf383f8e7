"""Splitting a diff into parts that each fit a chunk, before any part is placed in one.

A file's parts depend only on that file and the budget (never on the other files of the diff),
so a part's ``content_key`` is stable across runs and diffs: a re-review can recognise it. A
file that fits is one part. One that does not is cut at hunk boundaries into as few parts as
fit, consecutive hunks together; a hunk that alone does not fit is cut into pieces, preferably
where a function or class starts (a ``def``/``class``/``function``/``func``/… line at low
indentation, with its decorators and comments), else at the last line that fits. Each part
records which lines of which original hunk it shows (``HunkSpan``), so coverage stays exact.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.config import ReviewSettings
from agent.diff import Diff, DiffLine, FileDiff, Hunk
from agent.parts import ChunkFile, HunkSpan, Skipped, file_header, hunk_heading, line_renderer
from agent.tokens import count_tokens, truncate
from agent.triage import decide

# Below this many tokens a cut line says nothing; budgets that small are not cut (make_plan
# never plans one under 500).
_MIN_KEPT = 50
# A piece cut at a function boundary holds at least this share of what would fit.
_BOUNDARY_FILL = 0.5
# Deeper than this (tabs as 4) a definition is nested in a function: not a boundary.
_MAX_INDENT = 4
_DEFINITION = re.compile(
    r"(?:(?:export|default|public|private|protected|internal|static|abstract|final|async|"
    r"override|sealed|open|data|suspend|inline|unsafe|extern|pub(?:\([\w:]+\))?)\s+)*"
    r"(?:def|class|function|func|fn|fun|interface|struct|enum|trait|impl|module|object|record|"
    r"type|sub|procedure)\b"
)
_DECORATION = re.compile(r"(?:@\w|#\[|#|//|/\*|\*|--)")


@dataclass(frozen=True)
class Parts:
    """Every part to send, with its token count, in diff order; what is not sent line by line
    (with why); and notes (lines cut to fit)."""

    parts: tuple[tuple[ChunkFile, int], ...]
    skipped: tuple[Skipped, ...]
    notes: tuple[str, ...] = ()


def split_parts(diff: Diff, budget: int, settings: ReviewSettings | None = None) -> Parts:
    """The diff as parts of at most ``budget`` tokens each (see the module docstring)."""
    settings = settings or ReviewSettings()
    parts: list[tuple[ChunkFile, int]] = []
    skipped: list[Skipped] = []
    notes: list[str] = []
    for file in diff.files:
        decision = decide(file, settings)
        if decision is not None:
            skipped.append(Skipped(file.path, len(file.hunks), decision.reason, decision.kind))
            if decision.kind == "summarized":
                summary = ChunkFile(file, (), (), summary=f"({decision.reason})")
                tokens = count_tokens(summary.render())
                parts.append((summary, tokens))
                if tokens > budget:
                    notes.append(
                        f"{file.path}: its path alone nearly fills a chunk; its summary is sent "
                        "over the chunk budget"
                    )
            continue
        file_parts, file_notes = split_file(file, budget)
        parts.extend(file_parts)
        notes.extend(file_notes)
    return Parts(tuple(parts), tuple(skipped), tuple(notes))


def split_file(file: FileDiff, budget: int) -> tuple[list[tuple[ChunkFile, int]], list[str]]:
    """The file as one part when it fits, else as few parts as fit: consecutive hunks
    together, a part topped up with the first lines of the next hunk when much room is left,
    and a hunk larger than a part cut into pieces; with a note for each line cut to fit."""
    whole = ChunkFile.whole(file)
    tokens = count_tokens(whole.render())
    if tokens <= budget:
        return [(whole, tokens)], []
    # Paths this long (generated trees) leave no room for lines: send the file anyway (one line
    # a part when it has lines), over the budget; the model client checks the real window.
    over = (
        f"{file.path}: its path alone nearly fills a chunk; its parts are sent over the chunk "
        "budget"
    )
    if not file.hunks:
        return [(whole, tokens)], [over]
    notes: list[str] = []
    parts = _Filler(file, budget)
    if budget - parts.head - _SLACK < _MIN_KEPT:
        notes.append(over)
    for index, hunk in enumerate(file.hunks):
        size = count_tokens("\n".join([hunk_heading(hunk), *map(parts.render, hunk.lines)])) + 1
        if parts.used + size <= budget:
            parts.add(HunkSpan(index, 0, len(hunk.lines)), hunk, size)
            continue
        if not hunk.lines or (parts.room() < budget * _TOP_UP and parts.head + size <= budget):
            parts.flush()  # nothing to cut, or too little room left to be worth cutting for
            parts.add(HunkSpan(index, 0, len(hunk.lines)), hunk, size)
            continue
        notes.extend(_add_in_pieces(parts, index, hunk))
    parts.flush()
    return parts.out, notes


# Tokens kept free in a part for what the estimates miss (piece headers, joins).
_SLACK = 16
# A part is topped up with the first lines of a hunk that does not fit when at least this share
# of the budget is left; with less, the hunk starts the next part whole.
_TOP_UP = 0.05


class _Filler:
    """Parts of one file, filled in order."""

    def __init__(self, file: FileDiff, budget: int) -> None:
        self.file, self.budget = file, budget
        self.head = count_tokens("\n".join(file_header(file)))
        self.render = line_renderer(file)
        self.out: list[tuple[ChunkFile, int]] = []
        self.spans: list[HunkSpan] = []
        self.hunks: list[Hunk] = []
        self.used = self.head

    def room(self) -> int:
        """Tokens a piece may take in the current part (at least a line's worth)."""
        return max(self.budget - self.used - _SLACK, _MIN_KEPT)

    def add(self, span: HunkSpan, hunk: Hunk, tokens: int) -> None:
        self.spans.append(span)
        self.hunks.append(hunk)
        self.used += tokens

    def flush(self) -> None:
        if self.spans:
            self._emit(list(zip(self.spans, self.hunks, strict=True)))
        self.spans, self.hunks, self.used = [], [], self.head

    def _emit(self, group: list[tuple[HunkSpan, Hunk]]) -> None:
        part = ChunkFile(self.file, tuple(h for _, h in group), tuple(s for s, _ in group))
        tokens = count_tokens(part.render())
        if tokens > self.budget and len(group) > 1:  # the sum of the estimates was off
            self._emit(group[: len(group) // 2])
            self._emit(group[len(group) // 2 :])
            return
        self.out.append((part, tokens))


def _add_in_pieces(parts: _Filler, index: int, hunk: Hunk) -> list[str]:
    """``hunk`` cut into pieces: the first fills the current part, the others fresh ones (the
    last one stays open for the hunks after it). Returns notes for lines cut to fit."""
    n = len(hunk.lines)
    # A piece's own header also says which lines of the hunk it holds.
    header = count_tokens(f"{hunk_heading(hunk)} (lines {n}-{n} of {n})") + 4
    fresh = max(parts.budget - parts.head - _SLACK, _MIN_KEPT)
    costs, cut = _line_costs(hunk, fresh - header, parts.render)
    starts = sorted(boundaries(hunk.lines))
    start = 0
    while start < n:
        room = parts.room()
        if parts.spans and (room < parts.budget * _TOP_UP or header + costs[start] > room):
            parts.flush()
            continue
        end, tokens = _take(costs, starts, start, room, header)
        lines = tuple(cut.get(i, hunk.lines[i]) for i in range(start, end))
        parts.add(HunkSpan(index, start, end), piece(hunk, lines, start, end), tokens + 1)
        start = end
        if start < n:
            parts.flush()
    notes = []
    for line in cut.values():
        side, no = ("new", line.new_no) if line.new_no is not None else ("old", line.old_no)
        notes.append(
            f"{parts.file.path}: {side} line {no} is longer than a chunk and was cut to fit"
        )
    return notes


def _line_costs(
    hunk: Hunk, room: int, render_line: Callable[[DiffLine], str]
) -> tuple[list[int], dict[int, DiffLine]]:
    """Each line's tokens once rendered (with its newline); a single line longer than ``room``
    (minified or generated text) is cut to fit, with a visible marker, and returned by index so
    the review can say so."""
    keep = room - 40  # what a cut line keeps, leaving room for its marker
    costs: list[int] = []
    cut: dict[int, DiffLine] = {}
    for i, line in enumerate(hunk.lines):
        cost = count_tokens(render_line(line)) + 1
        if cost > room and keep >= _MIN_KEPT:
            line = _truncate(line, keep, cost)
            cut[i] = line
            cost = count_tokens(render_line(line)) + 1
        costs.append(cost)
    return costs, cut


def _take(
    costs: list[int], starts: list[int], start: int, room: int, header: int
) -> tuple[int, int]:
    """Where a piece from line ``start`` ends to fit ``room`` tokens with its header (at least
    one line), and its tokens: at the last line that fits, or earlier where a function or class
    starts if the piece is then at least half full."""
    end, used = start, header
    prefix = [used]
    while end < len(costs) and (end == start or used + costs[end] <= room):
        used += costs[end]
        end += 1
        prefix.append(used)
    if end < len(costs):
        k = bisect_right(starts, end) - 1
        if k >= 0 and starts[k] > start:
            filled = prefix[starts[k] - start] - header
            if filled >= _BOUNDARY_FILL * (room - header):
                end = starts[k]
    return end, prefix[end - start]


def boundaries(lines: tuple[DiffLine, ...]) -> set[int]:
    """Indexes of lines a piece may start at because a function or class starts there: its
    first decorator or comment line when it has some directly above it."""
    found: set[int] = set()
    for i, line in enumerate(lines):
        indent = _indent(line.text)
        if indent is None or not definition_at(line.text):
            continue
        start = i
        while start > 0 and _decorates(lines[start - 1].text, indent):
            start -= 1
        found.add(start)
    return found


def definition_at(text: str) -> bool:
    """Whether a function or class (``def``, ``class``, ``function``, ``func``, …) starts on
    this line, at low indentation (a top-level one or a method)."""
    indent = _indent(text)
    return indent is not None and indent <= _MAX_INDENT and bool(_DEFINITION.match(text.lstrip()))


def _indent(text: str) -> int | None:
    stripped = text.lstrip(" \t")
    if not stripped:
        return None
    return len(text[: len(text) - len(stripped)].expandtabs(4))


def _decorates(text: str, indent: int) -> bool:
    return _indent(text) == indent and bool(_DECORATION.match(text.lstrip()))


def _truncate(line: DiffLine, keep: int, total: int) -> DiffLine:
    return replace(line, text=f"{truncate(line.text, keep)} … [line cut: it is {total:,} tokens]")


def piece(hunk: Hunk, lines: tuple[DiffLine, ...], start: int, end: int) -> Hunk:
    """Lines ``start..end`` of ``hunk`` as a hunk of their own, numbered as in the diff."""
    if start == 0 and end == len(hunk.lines) and lines == hunk.lines:
        return hunk
    where = f"(lines {start + 1}-{end} of {len(hunk.lines)})"
    # ``lines`` are those lines, some perhaps cut to fit: the same numbers, shorter text.
    return replace(hunk.part(start, end), section=f"{hunk.section} {where}".strip(), lines=lines)
