"""Ranking the candidate questions: deduplicated, in the synthesis's order when there is one."""

from __future__ import annotations

from agent.state import AnchoredQuestion

_PRIORITY = {"high": 0, "medium": 1, "low": 2}
# Failure modes and security first: they are what an owner most needs to be able to answer.
_CATEGORY = {
    "security": 0,
    "failure_mode": 1,
    "edge_case": 2,
    "mechanism": 3,
    "tests": 4,
    "intent": 5,
}
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


def default_key(q: AnchoredQuestion) -> tuple[int, int, tuple[int, ...], int]:
    return (_PRIORITY.get(q.priority, 1), _CATEGORY.get(q.category, 9), q.chunk, q.order)


def rank(candidates: list[AnchoredQuestion], order: list[int] | None) -> list[AnchoredQuestion]:
    """The synthesis order when there is one (invalid numbers ignored, omissions appended in
    default order), else priority, then category, then position in the diff."""
    unique: list[AnchoredQuestion] = []
    seen: set[tuple[str, str, int, int, str]] = set()
    for q in candidates:
        key = (q.path, q.side, q.start_line, q.end_line, " ".join(q.question.lower().split()))
        if key not in seen:
            seen.add(key)
            unique.append(q)
    by_default = sorted(unique, key=default_key)
    if not order:
        return by_default
    picked: list[AnchoredQuestion] = []
    for n in dict.fromkeys(order):
        if (
            1 <= n <= len(candidates)
            and candidates[n - 1] in unique
            and candidates[n - 1] not in picked
        ):
            picked.append(candidates[n - 1])
    return picked + [q for q in by_default if q not in picked]
