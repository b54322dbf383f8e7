"""Token-aware packing of a diff into chunks that fit the model's window.

Every hunk lands in exactly one chunk or is listed as not reviewed with a reason: nothing is
dropped silently. Whole files are kept together when they fit; a file that does not fit is split
at hunk boundaries, and a hunk that alone does not fit is split into consecutive pieces whose
line numbers stay true to the diff.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path, PurePosixPath

from agent.diff import Diff, DiffLine, FileDiff, Hunk

# tiktoken fetches its encodings on first use; litellm ships the common ones. Find them without
# importing litellm (which costs seconds).
_LITELLM_TOKENIZERS = ("litellm_core_utils", "tokenizers")


def _point_tiktoken_at_bundled_encodings() -> None:
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    spec = importlib.util.find_spec("litellm")
    if spec and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))).joinpath(*_LITELLM_TOKENIZERS)
        if bundled.is_dir():
            os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)


@cache
def _encoding():  # type: ignore[no-untyped-def]
    _point_tiktoken_at_bundled_encodings()
    import tiktoken

    return tiktoken.get_encoding("o200k_base")


def count_tokens(text: str) -> int:
    # o200k_base is exact for current OpenAI models and a close estimate for the others; the
    # chunk budget keeps a margin for the difference.
    return len(_encoding().encode(text, disallowed_special=()))


def render_line(line: DiffLine) -> str:
    old = "" if line.old_no is None else str(line.old_no)
    new = "" if line.new_no is None else str(line.new_no)
    return f"{old:>6} {new:>6} {line.kind.value} {line.text}"


def render_file(file: FileDiff, hunks: tuple[Hunk, ...] | None = None) -> str:
    """A file as the model sees it: a header, then hunks with both line numbers on every line."""
    status = file.status.value
    header = f"=== FILE {file.path} ({status}) ==="
    extra = []
    if file.old_path and file.new_path and file.old_path != file.new_path:
        extra.append(f"(was {file.old_path})")
    if file.old_mode and file.new_mode and file.old_mode != file.new_mode:
        extra.append(f"(mode {file.old_mode} -> {file.new_mode})")
    parts = [header, *extra]
    for hunk in file.hunks if hunks is None else hunks:
        parts.append(hunk.header)
        parts.extend(render_line(line) for line in hunk.lines)
    return "\n".join(parts)


@dataclass(frozen=True)
class ChunkFile:
    """A file, or the part of it (some hunks, or a piece of one hunk) a chunk carries."""

    file: FileDiff
    hunks: tuple[Hunk, ...]
    # Hunks of the original file this part covers in full (a hunk split in pieces counts once,
    # on its last piece).
    hunks_covered: int

    def render(self) -> str:
        return render_file(self.file, self.hunks)


@dataclass(frozen=True)
class Chunk:
    id: int
    files: tuple[ChunkFile, ...]
    tokens: int

    def render(self) -> str:
        return "\n\n".join(f.render() for f in self.files)

    @property
    def label(self) -> str:
        paths = list(dict.fromkeys(f.file.path for f in self.files))
        return paths[0] if len(paths) == 1 else f"{paths[0]} +{len(paths) - 1} more"


@dataclass(frozen=True)
class Skipped:
    path: str
    hunks: int
    reason: str


@dataclass(frozen=True)
class Packing:
    chunks: tuple[Chunk, ...]
    skipped: tuple[Skipped, ...]
    budget: int
    notes: tuple[str, ...] = ()


def skip_reason(file: FileDiff, exclude: tuple[str, ...]) -> str | None:
    if file.is_binary:
        return "binary file"
    name = PurePosixPath(file.path).name
    for pattern in exclude:
        if fnmatch.fnmatch(file.path, pattern) or fnmatch.fnmatch(name, pattern):
            return f"excluded by pattern {pattern!r}"
    return None


def _split_hunk(hunk: Hunk, budget: int) -> tuple[list[Hunk], list[DiffLine]]:
    """Consecutive pieces of one hunk, each within ``budget`` tokens, numbering kept exact.

    A single line longer than the budget (minified or generated text) is cut to fit, with a
    visible marker; those lines are returned so the review can say so.
    """
    pieces: list[Hunk] = []
    cut: list[DiffLine] = []
    current: list[DiffLine] = []
    header = count_tokens(hunk.header)
    keep = budget - header - 40  # what a cut line keeps, leaving room for its marker
    used = header
    for line in hunk.lines:
        cost = count_tokens(render_line(line)) + 1
        if header + cost > budget and keep >= _MIN_KEPT:
            line = _truncate(line, keep, cost)
            cut.append(line)
            cost = count_tokens(render_line(line)) + 1
        if current and used + cost > budget:
            pieces.append(_piece(hunk, current, len(pieces) + 1))
            current, used = [], header
        current.append(line)
        used += cost
    if current:
        pieces.append(_piece(hunk, current, len(pieces) + 1))
    return pieces, cut


# Below this many tokens a cut line says nothing; budgets that small are not cut (make_plan
# never plans one under 500).
_MIN_KEPT = 50


def _truncate(line: DiffLine, keep: int, total: int) -> DiffLine:
    encoding = _encoding()
    text = encoding.decode(encoding.encode(line.text, disallowed_special=())[:keep])
    return replace(line, text=f"{text} … [line cut: it is {total:,} tokens]")


def _piece(hunk: Hunk, lines: list[DiffLine], n: int) -> Hunk:
    old = [ln.old_no for ln in lines if ln.old_no is not None]
    new = [ln.new_no for ln in lines if ln.new_no is not None]
    return replace(
        hunk,
        old_start=old[0] if old else hunk.old_start,
        old_count=len(old),
        new_start=new[0] if new else hunk.new_start,
        new_count=len(new),
        section=f"{hunk.section} (part {n})".strip(),
        lines=tuple(lines),
    )


def _file_parts(file: FileDiff, budget: int) -> tuple[list[tuple[ChunkFile, int]], list[str]]:
    """The file as one part when it fits, else hunk-sized (or smaller) parts with token
    counts; and a note for each line that had to be cut."""
    whole = ChunkFile(file, file.hunks, len(file.hunks))
    tokens = count_tokens(whole.render())
    if tokens <= budget or not file.hunks:
        return [(whole, tokens)], []
    parts: list[tuple[ChunkFile, int]] = []
    notes: list[str] = []
    piece_budget = budget - count_tokens(render_file(file, ())) - 16
    for hunk in file.hunks:
        part = ChunkFile(file, (hunk,), 1)
        part_tokens = count_tokens(part.render())
        if part_tokens <= budget:
            parts.append((part, part_tokens))
            continue
        pieces, cut = _split_hunk(hunk, piece_budget)
        for line in cut:
            side, n = ("new", line.new_no) if line.new_no is not None else ("old", line.old_no)
            notes.append(f"{file.path}: {side} line {n} is longer than a chunk and was cut to fit")
        for i, piece in enumerate(pieces):
            part = ChunkFile(file, (piece,), 1 if i == len(pieces) - 1 else 0)
            parts.append((part, count_tokens(part.render())))
    return parts, notes


def pack(diff: Diff, budget: int, exclude: tuple[str, ...] = ()) -> Packing:
    """Greedy first-fit in diff order, so related files (same directory) tend to share a chunk."""
    chunks: list[Chunk] = []
    skipped: list[Skipped] = []
    notes: list[str] = []
    current: list[ChunkFile] = []
    used = 0

    def close() -> None:
        nonlocal current, used
        if current:
            chunks.append(Chunk(len(chunks) + 1, tuple(current), used))
            current, used = [], 0

    for file in diff.files:
        reason = skip_reason(file, exclude)
        if reason:
            skipped.append(Skipped(file.path, len(file.hunks), reason))
            continue
        parts, cut = _file_parts(file, budget)
        notes.extend(cut)
        for part, tokens in parts:
            separator = 2 if current else 0
            if current and used + separator + tokens > budget:
                close()
                separator = 0
            current.append(part)
            used += separator + tokens
    close()
    return Packing(tuple(chunks), tuple(skipped), budget, tuple(notes))
