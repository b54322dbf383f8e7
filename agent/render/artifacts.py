"""The review's artifacts: renderers chosen from a registry by format name, written atomically."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from agent.errors import InputError
from agent.redact import redact
from agent.render.codequality import render_codequality
from agent.render.markdown import render_markdown
from agent.render.safe import HIDDEN
from agent.render.sarif import render_sarif
from agent.result import Review


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:  # a UTF-16 surrogate pair, as JSON spells it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def render_json(review: Review) -> str:
    """The review as JSON, values exactly as they are. Control characters are escaped by JSON
    itself; DEL, C1 controls and invisible bidi/zero-width characters, which JSON allows raw,
    are escaped too (``\\u202e``), so printing the file cannot drive a terminal."""
    return HIDDEN.sub(_json_escape, review.model_dump_json(indent=2)) + "\n"


# format name -> (file name, renderer)
RENDERERS: dict[str, tuple[str, Callable[[Review], str]]] = {
    "markdown": ("ownit-review.md", render_markdown),
    "json": ("ownit-review.json", render_json),
    "sarif": ("ownit-review.sarif", render_sarif),
    "codequality": ("ownit-codequality.json", render_codequality),
}
FORMATS = ("terminal", *RENDERERS)


def parse_formats(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise InputError(
            f"unknown format {', '.join(unknown) or repr(value)}",
            hint=f"choose from {', '.join(FORMATS)} (comma-separated)",
        )
    return names


def write_artifacts(review: Review, formats: tuple[str, ...], out_dir: Path) -> list[Path]:
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in formats:
            if name not in RENDERERS:
                continue
            filename, renderer = RENDERERS[name]
            path = out_dir / filename
            # Write then rename, so a crash never leaves a half-written artifact behind.
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(redact(renderer(review)), encoding="utf-8")
            tmp.replace(path)
            written.append(path)
    except OSError as exc:
        raise InputError(
            f"cannot write the review to {out_dir}: {exc.strerror or exc}",
            hint="choose a writable directory with --out; the calls are in the ledger",
        ) from exc
    return written
