"""Checking a model's chunk review against the diff it was shown.

A reply can be valid JSON and still not be a review: no walkthrough for any file shown, the
schema's own description echoed as the summary. ``problem`` says so, and the model client sends
it back for repair. What passes is filtered: questions anchored outside the diff, walkthroughs
of files the chunk does not show, and risk reasons naming files outside the diff are dropped and
counted, never printed as if true.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from agent import anchors
from agent.chunking import Chunk
from agent.diff import Diff
from agent.schema import ChunkReview, Dropped
from agent.state import AnchoredQuestion


@cache
def _schema_phrases() -> frozenset[str]:
    """Every description, title and field name in the reply schema: text a model may echo."""
    phrases: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("description", "title") and isinstance(value, str):
                    phrases.add(_norm(value))
                if key == "properties" and isinstance(value, dict):
                    phrases.update(_norm(name.replace("_", " ")) for name in value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(ChunkReview.model_json_schema())
    return frozenset(phrases)


def _norm(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


# JSON schema keywords, or the shape the prompt shows ("summary":string).
_SCHEMA_WORDS = re.compile(
    r'"(?:\$defs|properties|additionalProperties|\$ref)"\s*:|"\w+"\??:(?:string|int)\b'
)


def is_echo(text: str) -> bool:
    """Whether ``text`` is the schema talking, not the model."""
    return _norm(text) in _schema_phrases() or bool(_SCHEMA_WORDS.search(text))


def _match_path(path: str, chunk_paths: list[str]) -> str | None:
    path = path.strip().removeprefix("./")
    for candidate in (path, path.removeprefix("a/").removeprefix("b/")):
        if candidate in chunk_paths:
            return candidate
    suffix = [p for p in chunk_paths if p.endswith("/" + path)]
    return suffix[0] if len(suffix) == 1 else None


def problem(reply: ChunkReview, chunk: Chunk) -> str | None:
    """Why a valid reply is still not a review of ``chunk``; None when it is one."""
    if not reply.summary.strip() or is_echo(reply.summary):
        return (
            "the summary is empty or repeats the schema's own description; describe what "
            "this part of the change does"
        )
    # Files only named (deleted ones) need no walkthrough: a chunk of nothing else needs none.
    paths = chunk.diff_paths
    explained = {_match_path(w.path, paths) for w in reply.files if w.walkthrough.strip()} - {None}
    if paths and not explained:
        return "it has no walkthrough for any file shown: write one for each of " + ", ".join(paths)
    return None


@dataclass(frozen=True)
class Checked:
    review: ChunkReview
    questions: tuple[AnchoredQuestion, ...]
    dropped: tuple[Dropped, ...]
    explained: frozenset[str]


def check(reply: ChunkReview, chunk: Chunk, diff: Diff) -> Checked:
    """What of a valid review can be used: questions whose anchors exist, walkthroughs of the
    chunk's files, risk reasons about files in the diff."""
    dropped = list(reply.dropped)
    paths = chunk.paths
    files = []
    for w in reply.files:
        path = _match_path(w.path, paths)
        if path is None:
            dropped.append(
                Dropped(kind="walkthrough", what=w.path[:80], reason="not a file of this part")
            )
        elif is_echo(w.walkthrough) or not w.walkthrough.strip():
            dropped.append(Dropped(kind="walkthrough", what=path, reason="empty or echoed"))
        else:
            files.append(w.model_copy(update={"path": path}))

    questions: list[AnchoredQuestion] = []
    for order, q in enumerate(reply.questions):
        checked = anchors.anchor(q, diff)
        if isinstance(checked, str):
            dropped.append(Dropped(kind="anchor", what=q.question[:80], reason=checked))
            continue
        a = checked.anchor
        questions.append(
            AnchoredQuestion(
                chunk=chunk.key,
                order=order,
                question=q.question,
                category=q.category,
                priority=q.priority,
                why_it_matters=q.why_it_matters,
                path=a.path,
                side=a.side,
                start_line=a.start_line,
                end_line=a.end_line,
                repaired=checked.repaired,
            )
        )
    reasons = []
    known: frozenset[str] | None = None  # built when a reason first names a file
    for reason in reply.risk_reasons:
        stray: list[str] = []
        if _FILE.search(reason):
            known = mentionable(diff) if known is None else known
            stray = strays(reason, known)
        if stray:
            dropped.append(
                Dropped(
                    kind="risk_reason",
                    what=reason[:80],
                    reason=f"names {', '.join(stray)}, which the diff does not change",
                )
            )
        elif reason.strip():
            reasons.append(reason)
    cleaned = reply.model_copy(update={"files": files, "risk_reasons": reasons})
    cleaned._dropped = []
    return Checked(cleaned, tuple(questions), tuple(dropped), frozenset(w.path for w in files))


# File names a risk reason may mention: a path with a directory, or a name with an extension
# people give source, config and docs files.
_FILE = re.compile(
    r"(?<![\w/.-])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:py|pyi|js|jsx|ts|tsx|mjs|cjs|go|rs|java|kt|kts|"
    r"rb|php|c|h|cc|cpp|hpp|cs|swift|m|mm|scala|sh|bash|zsh|ps1|yaml|yml|json|toml|ini|cfg|conf|"
    r"md|rst|txt|sql|html|css|scss|xml|gradle|proto|tf|vue|svelte|dart|lua|pl|ex|exs|erl|hs|ml|"
    r"clj|env|lock|dockerfile|mk|cmake))(?![\w-])",
    re.I,
)


def mentionable(diff: Diff) -> frozenset[str]:
    """What a reply may name of ``diff``, lower-cased: each path and each of its tails after a
    ``/`` (``agent/x.py``, ``x.py``). Computed once per reply: a big diff has hundreds of files."""
    found: set[str] = set()
    for f in diff.files:
        parts = f.path.lower().split("/")
        found.update("/".join(parts[i:]) for i in range(len(parts)))
    return frozenset(found)


def strays(text: str, known: frozenset[str]) -> list[str]:
    """File names in ``text`` that are not files of the diff (``known``: ``mentionable``)."""
    return [name for name in _FILE.findall(text) if name.lower() not in known]
