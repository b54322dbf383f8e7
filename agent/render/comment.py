"""The sticky pull request comment: one per PR, found by a hidden marker and updated in place.

The marker (an HTML comment, invisible on the page) also carries the state the next push
compares with: the ids and words of the questions asked, so the comment can say which questions
are new, which were resolved (no longer asked) and which carry over. It also carries what
``ownit check`` needs without the review's artifact: the questions with their anchors and code
fingerprints, and which question each number meant at each push (an answer's ``Q3`` means the
third question of the comment as it stood when the answer was written). Long parts are folded
in ``<details>``, and the body is cut to fit the host's limit.

``ownit check --post`` writes its verdicts between ``OWNERSHIP_START`` and ``OWNERSHIP_END``,
right under the state; a review's new comment starts without them (the check that follows it
writes them again).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from agent.render.markdown import footer, render_markdown
from agent.render.safe import md_code, md_inline
from agent.result import Anchor, Question, Review

MARKER = "<!-- ownit:review"
_STATE = re.compile(r"<!-- ownit:review (?P<state>\{.*?\}) -->", re.S)
_QUESTION_WORDS = 160  # of a question, kept in the state for the "resolved" list
_NUMBERINGS = 20  # pushes whose numbering is kept
OWNERSHIP_START = "<!-- ownit:ownership -->"
OWNERSHIP_END = "<!-- /ownit:ownership -->"


@dataclass(frozen=True)
class Numbering:
    """The question ids in rank order, as the comment showed them from ``at`` on, with the
    fingerprint of the code each asked about then. ``after``: the newest comment id on the PR
    when it was posted; hosts number comments in order, so a comment with a larger id was
    written against this numbering (whatever the runner's clock says)."""

    at: datetime
    head_sha: str | None
    ids: tuple[str, ...]
    fingerprints: tuple[str | None, ...] = ()
    after: int | None = None

    def fingerprint(self, question_id: str) -> str | None:
        pairs = dict(zip(self.ids, self.fingerprints, strict=False))
        return pairs.get(question_id)


@dataclass(frozen=True)
class Previous:
    """What the last comment asked, by question id."""

    questions: dict[str, str] = field(default_factory=dict)
    head_sha: str | None = None
    # The questions in full, with anchors and code fingerprints (state v2 on).
    asked: tuple[Question, ...] = ()
    numberings: tuple[Numbering, ...] = ()
    # With a state key: whether the state carries a valid signature (None: no key to check).
    signed: bool | None = None

    def numbering_for(self, comment_id: int | None, when: datetime | None) -> Numbering:
        """The numbering a comment was written against: by comment ids where the state has
        them, else by time (the latest when neither is known; the first for a comment older
        than every numbering kept)."""
        if (
            comment_id is not None
            and self.numberings
            and all(n.after is not None for n in self.numberings)
        ):
            shown = [n for n in self.numberings if (n.after or 0) < comment_id]
        else:
            shown = [n for n in self.numberings if when is None or n.at <= when]
        if shown:
            return shown[-1]
        if self.numberings:
            return self.numberings[0]
        ids = tuple(q.id for q in self.asked)
        return Numbering(
            datetime.min.replace(tzinfo=UTC),
            self.head_sha,
            ids,
            tuple(q.code_fingerprint for q in self.asked),
        )


def _canonical(data: dict[str, object]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _signature(data: dict[str, object], key: bytes) -> str:
    """An HMAC of the state: people who can edit others' comments on a PR (write access) can
    change its hidden state, but not sign it without the key."""
    return hmac.new(key, _canonical(data), hashlib.sha256).hexdigest()


def previous_state(body: str, key: bytes | None = None) -> Previous | None:
    """The state a comment of ours carries; None for anyone else's comment. With ``key``,
    ``signed`` says whether the state is the one ownit wrote."""
    match = _STATE.search(body)
    if not match or not body.startswith(MARKER):
        return None
    try:
        data = json.loads(match["state"])
        sig = data.pop("sig", None)
        signed = None
        if key is not None:
            signed = isinstance(sig, str) and hmac.compare_digest(sig, _signature(data, key))
        questions = {str(k): str(v) for k, v in (data.get("questions") or {}).items()}
        head = data.get("head") if isinstance(data.get("head"), str) else None
        asked = tuple(_question(item) for item in data.get("qs") or ())
        numberings = tuple(
            Numbering(
                datetime.fromisoformat(n["at"]),
                n.get("head"),
                tuple(str(i) for i in n["ids"]),
                tuple(n.get("fps") or ()),
                n.get("after") if isinstance(n.get("after"), int) else None,
            )
            for n in data.get("asked") or ()
        )
        return Previous(questions, head, asked, numberings, signed)
    except (ValueError, AttributeError, TypeError, KeyError, ValidationError):
        return Previous()  # ours, but unreadable: every question counts as new


def _question(item: dict[str, object]) -> Question:
    return Question(
        rank=item["rank"],  # type: ignore[arg-type]
        question=item["q"],  # type: ignore[arg-type]
        category=item["c"],  # type: ignore[arg-type]
        priority=item["p"],  # type: ignore[arg-type]
        why_it_matters=item.get("w", ""),  # type: ignore[arg-type]
        anchor=Anchor(
            path=item["path"],  # type: ignore[arg-type]
            side=item["side"],  # type: ignore[arg-type]
            start_line=item["s"],  # type: ignore[arg-type]
            end_line=item["e"],  # type: ignore[arg-type]
        ),
        code_fingerprint=item.get("fp"),  # type: ignore[arg-type]
    )


def _numberings(
    review: Review, previous: Previous | None, now: datetime, after: int | None
) -> list[Numbering]:
    ids = tuple(q.id for q in review.questions)
    fps = tuple(q.code_fingerprint for q in review.questions)
    kept = list(previous.numberings) if previous else []
    if not kept or (kept[-1].ids, kept[-1].fingerprints) != (ids, fps):
        kept.append(Numbering(now, review.run.head_sha, ids, fps, after))
    return kept[-_NUMBERINGS:]


def _state(
    review: Review,
    previous: Previous | None,
    now: datetime,
    room: int,
    after: int | None,
    key: bytes | None,
) -> str:
    """The hidden state, in at most ``room`` characters where it can be: over it, question
    texts are shortened, then the numbering history goes, then the questions in full (a check
    then needs the review's JSON artifact)."""
    numberings = [
        {
            "at": n.at.isoformat(),
            "head": n.head_sha,
            "ids": list(n.ids),
            "fps": list(n.fingerprints),
            "after": n.after,
        }
        for n in _numberings(review, previous, now, after)
    ]
    text = ""
    steps = [(None, None, True), (_QUESTION_WORDS, None, True), (_QUESTION_WORDS, 1, True)]
    for words, history, full in [*steps, (_QUESTION_WORDS, 1, False)]:
        data: dict[str, object] = {
            "v": 2,
            "head": review.run.head_sha,
            "questions": {q.id: q.question[:_QUESTION_WORDS] for q in review.questions},
        }
        if full:
            data["qs"] = [
                {
                    "rank": q.rank,
                    "q": q.question[:words],
                    "c": q.category,
                    "p": q.priority,
                    "path": q.anchor.path,
                    "side": q.anchor.side,
                    "s": q.anchor.start_line,
                    "e": q.anchor.end_line,
                    "fp": q.code_fingerprint,
                }
                for q in review.questions
            ]
            data["asked"] = numberings[-history:] if history else numberings
        if key is not None:
            data["sig"] = _signature(data, key)
        # "--" cannot appear inside an HTML comment; JSON never needs it outside strings.
        text = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("--", "-\\u002d")
        if len(text) <= room:
            break
    return text


def _changes(review: Review, previous: Previous | None) -> list[str]:
    if previous is None:
        return []
    now = {q.id for q in review.questions}
    new = [q for q in review.questions if q.id not in previous.questions]
    kept = [q for q in review.questions if q.id in previous.questions]
    resolved = [text for qid, text in previous.questions.items() if qid not in now]
    since = f" since {md_code(previous.head_sha[:12])}" if previous.head_sha else ""
    out = [
        f"**Changes{since}:** {len(new)} new, {len(resolved)} resolved, {len(kept)} carried over.\n"
    ]
    if new:
        out.append("New: " + ", ".join(f"#{q.rank}" for q in new) + "\n")
    if resolved:
        out.append("<details><summary>Resolved (no longer asked)</summary>\n")
        out.extend(f"- ~~{md_inline(text)}~~" for text in resolved)
        out.append("\n</details>\n")
    return out


def render_comment(
    review: Review,
    previous: Previous | None,
    limit: int,
    *,
    now: datetime | None = None,
    after: int | None = None,
    key: bytes | None = None,
) -> str:
    """The comment body, at most ``limit`` characters. ``after``: the newest comment id on the
    pull request (answers written after this body is posted have larger ids); ``key`` signs
    the state (``OWNIT_STATE_KEY``)."""
    state = _state(review, previous, now or datetime.now(UTC), limit // 3, after, key)
    head = f"{MARKER} {state} -->\n"
    body = render_markdown(review)
    # Fold what a reader opens only when they need it: the walkthrough and what was not
    # reviewed. The questions and the summary stay open.
    for section in ("## Walkthrough", "## Not reviewed", "## Credentials masked"):
        body = _fold(body, section)
    changes = "\n".join(_changes(review, previous))
    text = head + (changes + "\n" if changes else "") + body
    if len(text) <= limit:
        return text
    # Too long for the host: keep the summary and the questions; point at the artifact.
    cut = body.split("## Walkthrough", 1)[0].rstrip()
    tail = (
        "\n\n_The walkthrough and the rest are in the `ownit-review.md` artifact of this run "
        f"(the comment would exceed the host's {limit:,}-character limit)._\n\n---\n"
        f"_{md_inline(footer(review))}_\n"
    )
    text = head + (changes + "\n" if changes else "") + cut
    if len(text) + len(tail) > limit:  # the questions alone are too long: cut at a line
        room = max(len(head), limit - len(tail) - 60)
        text = text[:room].rsplit("\n", 1)[0] + "\n\n_(the questions are cut here)_"
    return text + tail


def _fold(markdown: str, heading: str) -> str:
    """The section under ``heading`` (to the next ``## `` or the closing rule) in <details>."""
    start = markdown.find(f"\n{heading}\n")
    if start == -1:
        return markdown
    body_start = start + len(heading) + 2
    ends = [
        i
        for i in (markdown.find("\n## ", body_start), markdown.find("\n---\n", body_start))
        if i != -1
    ]
    end = min(ends) if ends else len(markdown)
    title = heading.removeprefix("## ")
    inner = markdown[body_start:end].strip("\n")
    return (
        markdown[:start]
        + f"\n<details><summary>{title}</summary>\n\n{inner}\n\n</details>\n"
        + markdown[end:]
    )


def with_ownership(body: str, section: str) -> str:
    """Our comment with ``section`` (Markdown) as its ownership verdicts, replacing earlier ones."""
    start, end = body.find(OWNERSHIP_START), body.find(OWNERSHIP_END)
    if start != -1 and end > start:
        body = body[:start] + body[end + len(OWNERSHIP_END) :].lstrip("\n")
    head, _, rest = body.partition(" -->\n")
    return f"{head} -->\n{OWNERSHIP_START}\n{section.strip()}\n{OWNERSHIP_END}\n\n{rest}"


def state_key(environ: Mapping[str, str]) -> bytes | None:
    """The key that signs the comment's state: a CI secret, ``OWNIT_STATE_KEY``."""
    value = environ.get("OWNIT_STATE_KEY")
    return value.encode() if value else None
