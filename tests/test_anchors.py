"""Tests for agent.anchors: a question is only ever shown against lines the diff really has.

multi_hunk.patch shows src/multi.py old lines 1-8 and 27-39, new lines 1-9 and 28-39.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.anchors import Anchored, anchor
from agent.diff import Diff, parse_diff
from agent.schema import ProposedQuestion

DATA = Path(__file__).parent / "data" / "diffs"


def load(name: str) -> Diff:
    return parse_diff((DATA / name).read_bytes())


def q(path: str, start: int, end: int, side: str = "new") -> ProposedQuestion:
    return ProposedQuestion(
        question="What happens when this fails?",
        category="failure_mode",
        path=path,
        side=side,  # type: ignore[arg-type]
        start_line=start,
        end_line=end,
        why_it_matters="The author must know.",
    )


def kept(result: Anchored | str) -> Anchored:
    assert isinstance(result, Anchored), f"rejected: {result}"
    return result


def span(result: Anchored | str) -> tuple[str, str, int, int, bool]:
    a = kept(result)
    return (a.anchor.path, a.anchor.side, a.anchor.start_line, a.anchor.end_line, a.repaired)


@pytest.mark.parametrize(("start", "end"), [(3, 3), (1, 9), (28, 39), (30, 33)])
def test_range_inside_one_hunk_is_kept_as_is(start: int, end: int) -> None:
    result = anchor(q("src/multi.py", start, end), load("multi_hunk.patch"))
    assert span(result) == ("src/multi.py", "new", start, end, False)


def test_range_spanning_two_hunks_is_clamped_to_the_first_shown_run() -> None:
    # New lines 10-27 lie between the hunks and are not shown.
    result = anchor(q("src/multi.py", 5, 30), load("multi_hunk.patch"))
    assert span(result) == ("src/multi.py", "new", 5, 9, True)


def test_range_starting_before_a_hunk_is_clamped_to_its_shown_lines() -> None:
    result = anchor(q("src/multi.py", 20, 30), load("multi_hunk.patch"))
    assert span(result) == ("src/multi.py", "new", 28, 30, True)


def test_range_past_the_end_of_the_last_hunk_is_clamped() -> None:
    result = anchor(q("src/multi.py", 37, 45), load("multi_hunk.patch"))
    assert span(result) == ("src/multi.py", "new", 37, 39, True)


@pytest.mark.parametrize(("start", "end"), [(12, 20), (40, 45), (10, 27)])
def test_range_entirely_outside_the_shown_lines_is_rejected(start: int, end: int) -> None:
    result = anchor(q("src/multi.py", start, end), load("multi_hunk.patch"))
    assert isinstance(result, str)
    assert "src/multi.py" in result and "not shown" in result


def test_unknown_file_is_rejected() -> None:
    result = anchor(q("src/other.py", 1, 2), load("multi_hunk.patch"))
    assert isinstance(result, str)
    assert "'src/other.py'" in result


@pytest.mark.parametrize("written", ["multi.py", "./src/multi.py", "b/src/multi.py"])
def test_recoverable_path_is_repaired_to_the_diff_path(written: str) -> None:
    result = anchor(q(written, 3, 3), load("multi_hunk.patch"))
    assert span(result) == ("src/multi.py", "new", 3, 3, True)


def test_suffix_must_match_at_a_directory_boundary() -> None:
    result = anchor(q("ulti.py", 3, 3), load("multi_hunk.patch"))
    assert isinstance(result, str)


def test_ambiguous_suffix_is_rejected() -> None:
    text = "".join(
        f"--- a/{d}/util.py\n+++ b/{d}/util.py\n@@ -1,1 +1,1 @@\n-x = 1\n+x = 2\n"
        for d in ("lib", "tools")
    )
    diff = parse_diff(text)
    assert isinstance(anchor(q("util.py", 1, 1), diff), str)
    assert span(anchor(q("tools/util.py", 1, 1), diff)) == ("tools/util.py", "new", 1, 1, False)


def test_old_side_uses_old_line_numbers_on_a_deletion() -> None:
    diff = load("deleted.patch")  # doomed.txt: old lines 1-3 removed, no new side at all
    assert span(anchor(q("doomed.txt", 2, 3, side="old"), diff)) == (
        "doomed.txt",
        "old",
        2,
        3,
        False,
    )
    assert isinstance(anchor(q("doomed.txt", 1, 1, side="new"), diff), str)
    clamped = anchor(q("doomed.txt", 2, 9, side="old"), diff)
    assert span(clamped) == ("doomed.txt", "old", 2, 3, True)


def test_sides_have_different_shown_lines() -> None:
    diff = load("multi_hunk.patch")
    # Line 9 exists on the new side of the first hunk (old 1-8, new 1-9) but not the old side.
    assert span(anchor(q("src/multi.py", 8, 9, side="new"), diff))[2:] == (8, 9, False)
    assert span(anchor(q("src/multi.py", 8, 9, side="old"), diff))[2:] == (8, 8, True)
    # Removed line 30 is old-side line 30.
    assert span(anchor(q("src/multi.py", 30, 30, side="old"), diff))[2:] == (30, 30, False)


def test_old_path_of_a_renamed_file_resolves_to_its_new_path() -> None:
    diff = load("rename.patch")
    result = anchor(q("src/renamed_edit.py", 11, 11), diff)
    assert span(result) == ("src/renamed_after.py", "new", 11, 11, True)


def test_reversed_range_is_normalised() -> None:
    a = kept(anchor(q("src/multi.py", 9, 5), load("multi_hunk.patch"))).anchor
    assert (a.start_line, a.end_line) == (5, 9)
