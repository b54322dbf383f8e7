"""``review.diff_context_lines``: fewer of git's unchanged lines around each change, every
changed line still sent, each piece of a cut hunk numbered as in the diff."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.diff import LineKind, parse_diff
from agent.narrow import narrow
from agent.review import ReviewRequest, dry_run
from tests.fakes import FakeTransport, user_text, wants
from tests.test_pipeline import run, write_config

# One hunk as git writes it: two changes 6 unchanged lines apart share their context.
TWO_CHANGES = """\
--- a/calc.py
+++ b/calc.py
@@ -10,13 +10,14 @@ class Calculator:
     def total(self):
         amount = self.base
         rate = self.rate
-        tax = amount * rate
+        tax = round(amount * rate, 2)
         fees = self.fees
         discount = self.discount
         shipping = self.shipping
         insurance = self.insurance
         handling = self.handling
         points = self.points
+        audit(self, tax)
         self.log(amount)
         self.log(rate)
         return amount + tax
"""


def test_context_is_cut_to_the_lines_kept_and_a_hunk_in_two_where_its_changes_part() -> None:
    diff = parse_diff(TWO_CHANGES)
    assert narrow(diff, None) is diff and narrow(diff, 3) is diff  # as git wrote it already

    (file,) = narrow(diff, 1).files
    assert len(file.hunks) == 2
    first, second = file.hunks
    assert [(ln.kind.value, ln.text.strip()) for ln in first.lines] == [
        (" ", "rate = self.rate"),
        ("-", "tax = amount * rate"),
        ("+", "tax = round(amount * rate, 2)"),
        (" ", "fees = self.fees"),
    ]
    assert [ln.text.strip() for ln in second.lines] == [
        "points = self.points",
        "audit(self, tax)",
        "self.log(amount)",
    ]
    # Numbered as in the diff, each header's ranges exactly its lines (anchors are looked up
    # through them), and the definition git named kept.
    assert (first.old_start, first.old_count, first.new_start, first.new_count) == (12, 3, 12, 3)
    assert (second.old_start, second.old_count, second.new_start, second.new_count) == (
        19,
        2,
        19,
        3,
    )
    for hunk in file.hunks:
        assert hunk.section == "class Calculator:"
        for line in hunk.lines:
            assert line.old_no is None or file.has_line("old", line.old_no)
            assert line.new_no is None or file.has_line("new", line.new_no)
    assert not file.has_line("new", 15)  # a context line left out

    (only,) = narrow(diff, 0).files
    kept = [ln for h in only.hunks for ln in h.lines]
    assert all(ln.kind is not LineKind.CONTEXT for ln in kept) and len(kept) == 3
    # An added line alone: its old side is empty and starts after the line before it.
    assert (only.hunks[1].old_start, only.hunks[1].old_count) == (19, 0)


def test_a_review_with_no_context_sends_every_changed_line_and_nothing_else(
    tmp_path: Path,
) -> None:
    transport = FakeTransport()
    config = write_config(tmp_path, {"diff_context_lines": 0})
    review = run(tmp_path, transport, config, diff=TWO_CHANGES.encode())
    (request,) = transport.requests
    sent = user_text(request)
    assert "13 -         tax = amount * rate" in sent
    assert "13 +         tax = round(amount * rate, 2)" in sent
    assert "20 +         audit(self, tax)" in sent
    assert "self.base" not in sent and "self.log(amount)" not in sent
    assert review.complete, review.problems
    # The hunks counted are those sent: git's one, cut in two.
    assert review.coverage.hunks_reviewed == review.coverage.hunks_total == 2
    assert review.coverage.not_reviewed == []


def context_heavy(files: int = 6) -> bytes:
    """Files each changing one line inside git's three lines of context either side."""
    out = []
    for i in range(files):
        path = f"src/mod{i}.py"
        out.append(f"--- a/{path}\n+++ b/{path}\n@@ -1,7 +1,7 @@ def step_{i}():\n")
        out += [
            f"     before_{i}_{n} = prepare({n}, 'unchanged around the change')\n"
            for n in (1, 2, 3)
        ]
        out.append(f"-    result_{i} = compute({i})\n+    result_{i} = compute({i}, strict=True)\n")
        out += [
            f"     after_{i}_{n} = finish({n}, 'unchanged around the change')\n" for n in (1, 2, 3)
        ]
    return "".join(out).encode()


def estimate(tmp: Path, review: dict[str, object]) -> float:
    patch = tmp / "estimate.patch"
    patch.write_bytes(context_heavy())
    request = ReviewRequest(cwd=tmp, diff_path=patch, config_path=write_config(tmp, review))
    cost = asyncio.run(dry_run(request)).plan.cost_usd
    assert cost is not None
    return cost


@pytest.mark.parametrize("fits", [1, 0])
def test_over_max_cost_gits_context_goes_before_any_file_does(tmp_path: Path, fits: int) -> None:
    """Every changed line reviewed with less around it beats files left out: over the limit,
    the review keeps one line of context, or none, before its policy drops files or refuses."""
    small = {"max_chunk_tokens": 600}  # a chunk or two per file: the estimate follows the text
    whole = estimate(tmp_path, small)
    one = estimate(tmp_path, {**small, "diff_context_lines": 1})
    none = estimate(tmp_path, {**small, "diff_context_lines": 0})
    assert none < one < whole
    limit = (one + whole) / 2 if fits == 1 else (none + one) / 2

    transport = FakeTransport()
    review = run(
        tmp_path, transport, write_config(tmp_path, small), context_heavy(), max_cost=limit
    )

    sent = "\n".join(user_text(r) for r in transport.requests if wants(r) == "ChunkReview")
    assert all(f"compute({i}, strict=True)" in sent and f"compute({i})" in sent for i in range(6))
    assert sent.count("unchanged around the change") == 2 * fits * 6
    assert review.complete and not review.over_budget, review.problems
    assert review.coverage.not_reviewed == []
    assert any(f"git's context is cut to {fits} line(s)" in n for n in review.notes)


def test_a_dry_run_says_the_context_was_cut_for_max_cost(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from agent.render.terminal import print_dry_run

    whole = estimate(tmp_path, {"max_chunk_tokens": 600})
    patch = tmp_path / "change.patch"
    patch.write_bytes(context_heavy())
    config = write_config(tmp_path, {"max_chunk_tokens": 600})
    request = ReviewRequest(cwd=tmp_path, diff_path=patch, config_path=config, max_cost=whole * 0.9)
    shown = io.StringIO()
    print_dry_run(asyncio.run(dry_run(request)), Console(file=shown, width=200))
    assert "note: the estimate" in shown.getvalue()
    assert "git's context is cut to 1 line(s) around each change" in shown.getvalue()
