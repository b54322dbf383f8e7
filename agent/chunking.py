"""Token-aware packing of a diff into chunks that fit the model's window.

Two steps, so that a cache can sit between them: ``split_parts`` cuts each file into parts
that fit a chunk (a file's parts depend only on that file and the budget; see
``agent.splitting``), then ``pack_parts`` places the parts in as few chunks as hold them
(best-fit decreasing; see ``agent.binpack``). ``pack`` is the two together.

Every hunk lands in chunks or is listed as not sent with a reason (``Skipped``); a deleted file
is, by default, named with its size instead of shown (``agent.triage``): nothing is dropped
silently. Each part records which lines of which original hunk it shows (``HunkSpan``), so
coverage is counted per line: a hunk is reviewed only when every piece of it was.
"""

from __future__ import annotations

from agent.binpack import pack_parts
from agent.config import ReviewSettings
from agent.diff import Diff, Hunk
from agent.parts import (
    Chunk,
    ChunkFile,
    Context,
    HunkSpan,
    Packing,
    Skipped,
    render_file,
    render_line,
)
from agent.splitting import Parts, piece, split_parts
from agent.tokens import count_tokens
from agent.triage import skip_reason

__all__ = [
    "Chunk",
    "ChunkFile",
    "Context",
    "HunkSpan",
    "Packing",
    "Parts",
    "Skipped",
    "pack",
    "pack_parts",
    "render_file",
    "render_line",
    "skip_reason",
    "split_chunk",
    "split_parts",
]


def pack(
    diff: Diff, budget: int, settings: ReviewSettings | None = None, max_parts: int | None = None
) -> Packing:
    """``split_parts`` then ``pack_parts``."""
    parts = split_parts(diff, budget, settings)
    chunks = pack_parts(parts.parts, budget, max_parts)
    return Packing(chunks, parts.skipped, budget, parts.notes)


def split_chunk(chunk: Chunk) -> tuple[Chunk, Chunk] | None:
    """Two halves of a chunk the model could not take whole: by files, then by hunks, then by
    lines. None when it is a single line (nothing smaller can be sent)."""
    halves: tuple[list[ChunkFile], list[ChunkFile]]
    if len(chunk.files) > 1:
        sizes = [count_tokens(f.render()) for f in chunk.files]
        cut, total, running = 1, sum(sizes), sizes[0]
        while cut < len(sizes) - 1 and running + sizes[cut] <= total / 2:
            running += sizes[cut]
            cut += 1
        halves = (list(chunk.files[:cut]), list(chunk.files[cut:]))
    else:
        part = chunk.files[0]
        if len(part.spans) > 1:
            mid = len(part.spans) // 2
            halves = (
                [_with_spans(part, part.hunks[:mid], part.spans[:mid])],
                [_with_spans(part, part.hunks[mid:], part.spans[mid:])],
            )
        elif part.spans and part.spans[0].end - part.spans[0].start > 1:
            span, shown = part.spans[0], part.hunks[0]
            mid = (span.end - span.start) // 2
            original = part.file.hunks[span.hunk]
            first = HunkSpan(span.hunk, span.start, span.start + mid)
            second = HunkSpan(span.hunk, span.start + mid, span.end)
            halves = (
                [
                    _with_spans(
                        part,
                        (piece(original, shown.lines[:mid], first.start, first.end),),
                        (first,),
                    )
                ],
                [
                    _with_spans(
                        part,
                        (piece(original, shown.lines[mid:], second.start, second.end),),
                        (second,),
                    )
                ],
            )
        else:
            return None
    a, b = (
        Chunk(
            (*chunk.key, n),
            tuple(files),
            count_tokens("\n\n".join(f.render() for f in files)),
            route=chunk.route,
        )
        for n, files in ((1, halves[0]), (2, halves[1]))
    )
    return a, b


def _with_spans(part: ChunkFile, hunks: tuple[Hunk, ...], spans: tuple[HunkSpan, ...]) -> ChunkFile:
    return ChunkFile(part.file, tuple(hunks), tuple(spans))
