"""Context lines (agent.surround): read from the checkout, only into room a chunk has left,
shown apart from the change, never coverage, never an anchor."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from agent.chunking import Chunk, pack
from agent.client import ModelRequest
from agent.diff import parse_diff
from agent.masking import is_clean
from agent.result import Review
from agent.review import ReviewRequest, run_review
from agent.surround import add_context, worktree_reader
from agent.tokens import count_tokens
from tests.fakes import FakeTransport, good, user_text

MODULE = [
    "import os",
    "",
    "",
    "class Billing:",
    '    """Charges customers."""',
    "",
    "    def charge(self, customer, amount):",
    "        if amount <= 0:",
    "            raise ValueError(amount)",
    "        account = self.accounts[customer]",
    "        fee = self.fee(amount)",
    "        total = amount + fee",
    "        account.balance -= total",
    "        return total",
]


def checkout(tmp: Path, lines: list[str] = MODULE) -> Path:
    (tmp / "billing").mkdir(parents=True, exist_ok=True)
    (tmp / "billing" / "core.py").write_text("\n".join(lines) + "\n")
    return tmp


def change() -> str:
    """Line 13 of MODULE changed: the diff shows lines 10-14 only."""
    old = "        account.balance -= amount"
    return (
        "diff --git a/billing/core.py b/billing/core.py\n--- a/billing/core.py\n"
        "+++ b/billing/core.py\n@@ -10,5 +10,5 @@ class Billing:\n"
        f" {MODULE[9]}\n {MODULE[10]}\n {MODULE[11]}\n-{old}\n+{MODULE[12]}\n {MODULE[13]}\n"
    )


def with_context(tmp: Path, budget: int = 5000, **kw: Any) -> tuple[Chunk, ...]:
    chunks = pack(parse_diff(change()), budget).chunks
    return add_context(chunks, budget, worktree_reader(tmp), max_lines=30, **kw)


def test_lines_up_to_the_enclosing_function_are_added_apart_from_the_change(
    tmp_path: Path,
) -> None:
    checkout(tmp_path)
    (chunk,) = with_context(tmp_path)
    (block,) = chunk.context
    assert block.path == "billing/core.py"
    # From "def charge" down to the first line the diff shows (10), none of the diff's own.
    assert [n for n, _ in block.lines] == [7, 8, 9]
    assert block.lines[0][1] == "    def charge(self, customer, amount):"
    text = chunk.render()
    assert "=== CONTEXT billing/core.py (unchanged lines, not part of the change) ===" in text
    assert text.index("=== FILE") < text.index("=== CONTEXT")
    assert chunk.tokens >= count_tokens(text)  # the tally never undercounts what is sent


def test_context_is_never_coverage(tmp_path: Path) -> None:
    checkout(tmp_path)
    before = pack(parse_diff(change()), 5000).chunks
    after = with_context(tmp_path)
    # The parts (what coverage is counted from) are the same objects; context sits apart.
    assert [c.files for c in after] == [c.files for c in before]
    spans = {(p.file.path, s) for c in after for p in c.files for s in p.spans}
    assert spans == {(p.file.path, s) for c in before for p in c.files for s in p.spans}
    assert after[0].context and not before[0].context


def test_context_only_in_room_left_never_an_extra_chunk(tmp_path: Path) -> None:
    checkout(tmp_path)
    tight = pack(parse_diff(change()), 5000).chunks[0].tokens
    (roomy,) = with_context(tmp_path)
    cost = roomy.tokens - tight  # what the context block costs, separator included
    assert cost > 30
    need = max(cost, 50)  # under 50 tokens of room left, no context is tried
    for budget in (tight, tight + need - 1):
        (chunk,) = with_context(tmp_path, budget=budget)
        assert chunk.context == () and chunk.tokens == tight
    for budget in (tight + need, 5000):
        chunks = with_context(tmp_path, budget=budget)
        assert len(chunks) == 1 and chunks[0].context
        assert chunks[0].tokens <= budget and count_tokens(chunks[0].render()) <= budget


def test_a_checkout_that_is_not_the_diffs_new_side_gives_no_context(tmp_path: Path) -> None:
    checkout(tmp_path, [*MODULE[:12], "        account.balance -= amount", *MODULE[13:]])
    (chunk,) = with_context(tmp_path)
    assert chunk.context == ()


def test_nothing_outside_the_checkout_is_read(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "secret.txt").write_text("top secret\n")
    (repo / "link.txt").symlink_to(tmp_path / "secret.txt")
    read = worktree_reader(repo)
    assert read("../secret.txt") is None
    assert read("link.txt") is None
    assert read("/etc/hostname") is None


def test_context_with_a_credential_is_dropped_not_sent(tmp_path: Path) -> None:
    leaky = list(MODULE)
    leaky[7] = '        aws_key = "AKIAIOSFODNN7EXAMPLE"  # for the demo'
    checkout(tmp_path, leaky)
    assert not is_clean("billing/core.py", ((8, leaky[7]),))
    (chunk,) = with_context(tmp_path, check=is_clean)
    assert chunk.context == ()


# --- through the pipeline -----------------------------------------------------------------------


def review_in_checkout(tmp: Path, handler: Any, lines: list[str] = MODULE) -> Review:
    checkout(tmp, lines)
    subprocess.run(["git", "init", "-q", str(tmp)], check=True)
    patch = tmp / "change.patch"
    patch.write_text(change())
    config = tmp / "providers.yaml"
    model = {
        "model": "openai/m",
        "api_base": "http://127.0.0.1:9/v1",
        "context_window": 32000,
        "input_cost_per_token": 0.000001,
        "output_cost_per_token": 0.000002,
    }
    config.write_text(json.dumps({"default": "m", "models": {"m": model}}))
    request = ReviewRequest(cwd=tmp, diff_path=patch, config_path=config)
    return asyncio.run(run_review(request, transport=FakeTransport(handler)))


def test_a_question_on_a_context_line_is_dropped_and_coverage_is_the_diffs(
    tmp_path: Path,
) -> None:
    seen: list[str] = []

    def handler(request: ModelRequest) -> Any:
        reply = good(request)
        seen.append(user_text(request))
        question = {
            "question": "Why does charge accept a negative amount here?",
            "category": "edge_case",
            "path": "billing/core.py",
            "side": "new",
            "start_line": 8,  # a context line: not in the diff
            "end_line": 8,
            "why_it_matters": "a refund could be charged",
        }
        reply["questions"] = [*reply["questions"], question]
        return reply

    review = review_in_checkout(tmp_path, handler)
    assert "=== CONTEXT billing/core.py" in seen[0]
    assert "    def charge(self, customer, amount):" in seen[0]
    assert review.complete, review.problems
    assert (review.coverage.hunks_reviewed, review.coverage.hunks_total) == (1, 1)
    assert all(q.anchor.start_line != 8 for q in review.questions)
    assert review.dropped.questions_outside_diff == 1


def test_a_credential_in_the_context_never_leaves(tmp_path: Path) -> None:
    leaky = list(MODULE)
    leaky[7] = '        aws_key = "AKIAIOSFODNN7EXAMPLE"  # for the demo'
    seen: list[str] = []

    def handler(request: ModelRequest) -> Any:
        seen.append(user_text(request))
        return good(request)

    review_in_checkout(tmp_path, handler, leaky)
    assert seen and "AKIA" not in seen[0] and "=== CONTEXT" not in seen[0]
