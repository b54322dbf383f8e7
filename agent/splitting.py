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
from dataclasses import dataclass, replace

from agent.config import ReviewSettings
from agent.diff import Diff, DiffLine, FileDiff, Hunk
from agent.parts import ChunkFile, HunkSpan, Skipped, file_header, render_file, render_line
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
    """The file as one part when it fits, else as few parts (consecutive hunks, or pieces of a
    hunk) as fit; and a note for each line that had to be cut."""
    whole = ChunkFile(
        file, file.hunks, tuple(HunkSpan(i, 0, len(h.lines)) for i, h in enumerate(file.hunks))
    )
    tokens = count_tokens(whole.render())
    if tokens <= budget or not file.hunks:
        return [(whole, tokens)], []
    notes: list[str] = []
    head = count_tokens("\n".join(file_header(file)))
    piece_budget = budget - head - 16
    if piece_budget < _MIN_KEPT:
        # Paths this long (generated trees) leave no room for lines: send the file one line at
        # a time anyway, each part over the budget; the model client checks the real window.
        notes.append(
            f"{file.path}: its path alone nearly fills a chunk; its parts are sent over the "
            "chunk budget"
        )
        piece_budget = _MIN_KEPT
    units: list[_Unit] = []
    for index, hunk in enumerate(file.hunks):
        alone = count_tokens(render_file(file, (hunk,)))
        if alone <= budget:
            units.append(_Unit(HunkSpan(index, 0, len(hunk.lines)), hunk, alone - head))
            continue
        ranges, cut = split_hunk(hunk, piece_budget)
        for line in cut.values():
            side, n = ("new", line.new_no) if line.new_no is not None else ("old", line.old_no)
            notes.append(f"{file.path}: {side} line {n} is longer than a chunk and was cut to fit")
        for start, end, used in ranges:
            lines = tuple(cut.get(i, hunk.lines[i]) for i in range(start, end))
            units.append(_Unit(HunkSpan(index, start, end), piece(hunk, lines, start, end), used))
    return _group(file, units, head, budget), notes


@dataclass(frozen=True)
class _Unit:
    span: HunkSpan
    hunk: Hunk  # as shown: the whole hunk, or a piece of it
    tokens: int  # its header and lines, rendered


def _group(
    file: FileDiff, units: list[_Unit], head: int, budget: int
) -> list[tuple[ChunkFile, int]]:
    """Consecutive units in as few parts as fit the budget (each unit alone fits it)."""
    out: list[tuple[ChunkFile, int]] = []
    current: list[_Unit] = []
    used = head

    def flush(group: list[_Unit]) -> None:
        part = ChunkFile(file, tuple(u.hunk for u in group), tuple(u.span for u in group))
        tokens = count_tokens(part.render())
        if tokens > budget and len(group) > 1:  # the sum of the pieces' counts was off
            mid = len(group) // 2
            flush(group[:mid])
            flush(group[mid:])
            return
        out.append((part, tokens))

    for unit in units:
        if current and used + 1 + unit.tokens > budget:
            flush(current)
            current, used = [], head
        current.append(unit)
        used += 1 + unit.tokens
    if current:
        flush(current)
    return out


def boundaries(lines: tuple[DiffLine, ...]) -> set[int]:
    """Indexes of lines a piece may start at because a function or class starts there: its
    first decorator or comment line when it has some directly above it."""
    found: set[int] = set()
    for i, line in enumerate(lines):
        indent = _indent(line.text)
        if indent is None or indent > _MAX_INDENT:
            continue
        if not _DEFINITION.match(line.text.lstrip()):
            continue
        start = i
        while start > 0 and _decorates(lines[start - 1].text, indent):
            start -= 1
        found.add(start)
    return found


def _indent(text: str) -> int | None:
    stripped = text.lstrip(" \t")
    if not stripped:
        return None
    return len(text[: len(text) - len(stripped)].expandtabs(4))


def _decorates(text: str, indent: int) -> bool:
    return _indent(text) == indent and bool(_DECORATION.match(text.lstrip()))


def split_hunk(hunk: Hunk, budget: int) -> tuple[list[tuple[int, int, int]], dict[int, DiffLine]]:
    """Consecutive line ranges ``(start, end, tokens)`` of one hunk, each within ``budget``
    tokens once rendered with its own header, cut where a function or class starts when one
    is in the second half of what fits.

    A single line longer than the budget (minified or generated text) is cut to fit, with a
    visible marker; the cut lines are returned by index so the review can say so.
    """
    n = len(hunk.lines)
    # A piece's own header also says which lines of the hunk it holds.
    header = count_tokens(f"{hunk.header} (lines {n}-{n} of {n})") + 4
    keep = budget - header - 40  # what a cut line keeps, leaving room for its marker
    cut: dict[int, DiffLine] = {}
    costs: list[int] = []
    for i, line in enumerate(hunk.lines):
        cost = count_tokens(render_line(line)) + 1
        if header + cost > budget and keep >= _MIN_KEPT:
            line = _truncate(line, keep, cost)
            cut[i] = line
            cost = count_tokens(render_line(line)) + 1
        costs.append(cost)
    starts = sorted(boundaries(hunk.lines))
    ranges: list[tuple[int, int, int]] = []
    first, prefix = 0, [header]  # prefix[k]: the header and lines first..first+k-1
    for i, cost in enumerate(costs):
        while i > first and prefix[-1] + cost > budget:
            end = i
            k = bisect_right(starts, i) - 1
            if k >= 0 and starts[k] > first:
                filled = prefix[starts[k] - first] - header
                if filled >= _BOUNDARY_FILL * (budget - header):
                    end = starts[k]
            ranges.append((first, end, prefix[end - first]))
            moved = prefix[end - first] - header
            prefix = [p - moved for p in prefix[end - first :]]
            first = end
        prefix.append(prefix[-1] + cost)
    if hunk.lines:
        ranges.append((first, n, prefix[-1]))
    return ranges, cut


def _truncate(line: DiffLine, keep: int, total: int) -> DiffLine:
    return replace(line, text=f"{truncate(line.text, keep)} … [line cut: it is {total:,} tokens]")


def piece(hunk: Hunk, lines: tuple[DiffLine, ...], start: int, end: int) -> Hunk:
    """Lines ``start..end`` of ``hunk`` as a hunk of their own, numbered as in the diff."""
    if start == 0 and end == len(hunk.lines) and lines == hunk.lines:
        return hunk
    old = [ln.old_no for ln in lines if ln.old_no is not None]
    new = [ln.new_no for ln in lines if ln.new_no is not None]
    where = f"(lines {start + 1}-{end} of {len(hunk.lines)})"
    return replace(
        hunk,
        old_start=old[0] if old else hunk.old_start,
        old_count=len(old),
        new_start=new[0] if new else hunk.new_start,
        new_count=len(new),
        section=f"{hunk.section} {where}".strip(),
        lines=lines,
    )
