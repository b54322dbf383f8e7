"""Answers to ownit's questions, as authors write them: in a file (``ownit check --answers``) or
in pull request comments.

An answer starts at a line naming its question: ``Q3``, ``A3:``, ``**Q3**``, ``### Q3`` (a
heading: the rest of its line is the question's title, not the answer), optionally with the
question's id in brackets, ``Q3 [1f2e3d4c]``, which wins over the number (numbers change when a
push changes the questions; ids do not). Quoted lines (``> ...``) and HTML comments are not part
of an answer: they are where the question itself is repeated. ``/ownit override <reason>`` on a
line of its own is a maintainer's override, not an answer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_MARKER = re.compile(
    r"""^[ \t]*(?P<heading>\#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*
        (?:Q|A|Question|Answer)[ \t]*\#?[ \t]*(?P<n>\d{1,3})\b
        (?:[ \t]*\[(?P<id>[0-9a-f]{6,16})\])?
        [ \t]*(?:\*\*|__)?[ \t]*[.:)\-–—]?[ \t]*(?:\*\*|__)?""",
    re.I | re.X,
)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_OVERRIDE = re.compile(r"^[ \t]*/ownit[ \t]+override\b[ \t:]*(?P<reason>.*)$", re.I | re.M)


@dataclass(frozen=True)
class Answer:
    """What someone wrote for one question: its number, or its id when they gave one."""

    number: int
    question_id: str | None
    text: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.text)


def fingerprint(text: str) -> str:
    """The same answer, however it is spaced or capitalised."""
    return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()[:16]


def parse_answers(text: str) -> list[Answer]:
    """Every answer in ``text``, in order; a question answered twice keeps both (the caller
    takes the last)."""
    text = _COMMENT.sub("", text.replace("\r\n", "\n"))
    found: list[tuple[int, str | None, list[str]]] = []
    in_fence = False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
        marker = None if in_fence else _MARKER.match(line)
        if marker:
            rest = "" if marker["heading"] else line[marker.end() :]
            in_fence = rest.count("```") % 2 == 1  # "Q3: ```" opens a fence
            found.append((int(marker["n"]), marker["id"], [rest]))
            continue
        if not found or (not in_fence and (stripped.startswith(">") or _OVERRIDE.match(line))):
            continue
        found[-1][2].append(line)
    return [
        Answer(number, qid.lower() if qid else None, body)
        for number, qid, lines in found
        if (body := "\n".join(lines).strip())
    ]


def parse_override(text: str) -> str | None:
    """The reason of an ``/ownit override <reason>`` line; "" when none was given."""
    match = _OVERRIDE.search(_COMMENT.sub("", text))
    return match["reason"].strip() if match else None
