"""A diff from a patch file or standard input."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from agent.errors import SourceError
from agent.sources.base import DiffSource
from agent.sources.git import repo_metadata


def from_file(path: Path, cwd: Path) -> DiffSource:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from exc
    return replace(
        repo_metadata(cwd), data=data, origin=f"file {path}", head=None, head_sha=None, title=None
    )


def from_stdin(cwd: Path) -> DiffSource:
    if sys.stdin is None or sys.stdin.isatty():
        raise SourceError(
            "`-` reads a diff from standard input, but nothing is piped in",
            hint="pipe one: git diff main... | ownit review -",
        )
    data = sys.stdin.buffer.read()
    return replace(
        repo_metadata(cwd), data=data, origin="stdin", head=None, head_sha=None, title=None
    )
