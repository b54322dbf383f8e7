"""Tests for agent.chunking (packing a diff into chunks) and agent.plan (budget and cost)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.chunking import Chunk, Packing, pack, split_chunk
from agent.config import ReviewSettings
from agent.diff import Diff, DiffLine, parse_diff
from agent.errors import ConfigError
from agent.plan import SAFETY_MARGIN, chunk_overhead, estimate_cost, make_plan
from agent.pricing import Price
from agent.providers import ModelFacts
from agent.tokens import count_tokens

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "diffs"
EXAMPLE = ROOT / "examples" / "retry-charges.patch"


def synthetic_diff(
    n_files: int,
    m_hunks: int,
    *,
    context: int = 3,
    changed: int = 4,
    words: int = 6,
    path: str = "pkg{d}/mod_{f}.py",
) -> str:
    """A git-style diff of ``n_files`` files with ``m_hunks`` hunks each; counts are exact."""
    out: list[str] = []
    for f in range(n_files):
        p = path.format(d=f % 3, f=f)
        out += [
            f"diff --git a/{p} b/{p}",
            "index 1111111..2222222 100644",
            f"--- a/{p}",
            f"+++ b/{p}",
        ]
        for h in range(m_hunks):
            start = 1 + h * 100
            size = 2 * context + changed
            out.append(f"@@ -{start},{size} +{start},{size} @@ def f{h}():")
            out += [f" before {f}.{h}.{k} " + "word " * words for k in range(context)]
            out += [f"-old {f}.{h}.{k} " + "x " * words for k in range(changed)]
            out += [f"+new {f}.{h}.{k} " + "y " * words for k in range(changed)]
            out += [f" after {f}.{h}.{k} " + "word " * words for k in range(context)]
    return "\n".join(out) + "\n"


def lines_sent(packing: Packing) -> dict[str, list[DiffLine]]:
    """Every diff line the chunks carry, per file, in the order of the file (a file's parts
    may sit in chunks in any order: best-fit places its tail wherever it fits)."""
    pieces: dict[str, list[tuple[tuple[int, int], tuple[DiffLine, ...]]]] = {}
    for chunk in packing.chunks:
        for part in chunk.files:
            if part.summary is not None:
                continue
            shown = pieces.setdefault(part.file.path, [])
            for span, hunk in zip(part.spans, part.hunks, strict=True):
                shown.append(((span.hunk, span.start), hunk.lines))
    return {
        path: [line for _, lines in sorted(shown, key=lambda p: p[0]) for line in lines]
        for path, shown in pieces.items()
    }


def hunks_covered(chunks: tuple[Chunk, ...] | Packing) -> dict[str, int]:
    """Per file, the hunks whose lines the chunks' spans cover exactly once, end to end."""
    if isinstance(chunks, Packing):
        chunks = chunks.chunks
    spans: dict[tuple[str, int], list[tuple[int, int]]] = {}
    files = {}
    for chunk in chunks:
        for part in chunk.files:
            if part.summary is not None:
                assert part.hunks == () and part.spans == ()  # names the file, shows no line
                continue
            files[part.file.path] = part.file
            assert len(part.spans) == len(part.hunks)
            for span, shown in zip(part.spans, part.hunks, strict=True):
                assert span.end - span.start == len(shown.lines)
                spans.setdefault((part.file.path, span.hunk), []).append((span.start, span.end))
    covered: dict[str, int] = {path: 0 for path in files}
    for (path, index), ranges in spans.items():
        ranges.sort()
        expected_start = 0
        for start, end in ranges:
            assert start == expected_start, f"{path} hunk {index}: a gap or an overlap"
            expected_start = end
        if expected_start == len(files[path].hunks[index].lines):
            covered[path] += 1
    return covered


CUT_MARKER = " … [line cut"


def _same_line_or_cut(sent: DiffLine, original: DiffLine) -> bool:
    """The line itself, or (for a line longer than a chunk) a marked prefix of it."""
    if sent == original:
        return True
    kept, marker, _ = sent.text.partition(CUT_MARKER)
    return (
        bool(marker)
        and (sent.kind, sent.old_no, sent.new_no)
        == (original.kind, original.old_no, original.new_no)
        and original.text.startswith(kept)
        and len(kept) < len(original.text)
    )


def assert_complete_and_within_budget(
    diff: Diff, packing: Packing, *, allow_cut: bool = False
) -> None:
    skipped = {s.path for s in packing.skipped}
    reviewed = [f for f in diff.files if f.path not in skipped]
    # A summarized file (a deleted one) is named in exactly one part, and nothing else is sent
    # of it; a file not sent appears nowhere.
    named = [p.file.path for c in packing.chunks for p in c.files if p.summary is not None]
    assert sorted(named) == sorted(s.path for s in packing.skipped if s.kind == "summarized")
    carried = {p.file.path for c in packing.chunks for p in c.files}
    assert not carried & {s.path for s in packing.skipped if s.kind == "not_sent"}
    # Every reviewed file is sent (a pure rename or an empty new file as its header alone),
    # every hunk is counted exactly once ...
    assert hunks_covered(packing) == {f.path: len(f.hunks) for f in reviewed}
    # ... and every one of its lines is sent exactly once.
    expected = {f.path: [ln for h in f.hunks for ln in h.lines] for f in reviewed}
    sent = lines_sent(packing)
    if allow_cut:
        assert set(sent) == set(expected)
        for path, lines in expected.items():
            assert len(sent[path]) == len(lines)
            assert all(map(_same_line_or_cut, sent[path], lines))
    else:
        assert sent == expected
    for chunk in packing.chunks:
        assert chunk.tokens <= packing.budget
        # What is really sent fits too, not only the packer's own tally.
        assert count_tokens(chunk.render()) <= packing.budget
    assert [c.id for c in packing.chunks] == [str(n) for n in range(1, len(packing.chunks) + 1)]


# --- packing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["multi_hunk.patch", "rename.patch", "deleted.patch", "new_file.patch", "binary.patch"],
)
# 80: about the smallest budget one line fits in with its file header and its piece header
# ("(lines 3-3 of 8)"); make_plan never plans a budget under 500.
@pytest.mark.parametrize("budget", [80, 400, 12000])
def test_real_diffs_are_covered_exactly_once(name: str, budget: int) -> None:
    diff = parse_diff((DATA / name).read_bytes())
    assert_complete_and_within_budget(diff, pack(diff, budget))


def test_example_fits_one_chunk_with_a_large_budget() -> None:
    diff = parse_diff(EXAMPLE.read_bytes())
    packing = pack(diff, 12000)
    assert len(packing.chunks) == 1
    assert [p.file.path for p in packing.chunks[0].files] == [f.path for f in diff.files]
    assert packing.skipped == ()
    assert_complete_and_within_budget(diff, packing)


@pytest.mark.parametrize(("n_files", "m_hunks"), [(1, 40), (20, 3), (7, 7)])
@pytest.mark.parametrize("budget", [150, 700, 2000])
def test_synthetic_big_diffs_are_covered_exactly_once(
    n_files: int, m_hunks: int, budget: int
) -> None:
    diff = parse_diff(synthetic_diff(n_files, m_hunks))
    packing = pack(diff, budget)
    assert len(packing.chunks) > 1  # these diffs do not fit one chunk at these budgets
    assert_complete_and_within_budget(diff, packing)


def test_small_files_share_a_chunk_and_whole_files_stay_together() -> None:
    diff = parse_diff(synthetic_diff(6, 2))
    one_file = count_tokens(pack(parse_diff(synthetic_diff(1, 2)), 10**6).chunks[0].render())
    packing = pack(diff, one_file * 3 + 50)
    assert 1 < len(packing.chunks) < len(diff.files)
    for chunk in packing.chunks:
        for part in chunk.files:
            assert part.hunks == part.file.hunks  # never split when the file fits
    assert_complete_and_within_budget(diff, packing)


def test_a_hunk_larger_than_the_budget_is_split_with_true_line_numbers() -> None:
    text = synthetic_diff(1, 1, context=20, changed=60, words=8)
    diff = parse_diff(text)
    (file,) = diff.files
    (hunk,) = file.hunks
    budget = 250
    assert count_tokens(text) > 3 * budget

    packing = pack(diff, budget)
    pieces = [h for c in packing.chunks for part in c.files for h in part.hunks]
    assert len(pieces) > 2
    # Together the pieces hold every line once, in order, each with its true numbers.
    assert [ln for p in pieces for ln in p.lines] == list(hunk.lines)
    for piece in pieces:
        old = [ln.old_no for ln in piece.lines if ln.old_no is not None]
        new = [ln.new_no for ln in piece.lines if ln.new_no is not None]
        # A piece's header describes exactly the lines it carries.
        if old:
            assert (piece.old_start, piece.old_count) == (old[0], len(old))
            assert old == list(range(old[0], old[0] + len(old)))
        if new:
            assert (piece.new_start, piece.new_count) == (new[0], len(new))
            assert new == list(range(new[0], new[0] + len(new)))
    # The split hunk counts as covered once, not once per piece.
    assert hunks_covered(packing) == {file.path: 1}
    assert_complete_and_within_budget(diff, packing)


def test_a_line_longer_than_the_budget_never_produces_an_oversized_chunk() -> None:
    long_line = " ".join(f"w{i}" for i in range(3000))  # a minified/generated one-liner
    text = f"--- a/data.json\n+++ b/data.json\n@@ -1,1 +1,1 @@\n-{{}}\n+{long_line}\n"
    diff = parse_diff(text)
    packing = pack(diff, 600)
    # Sent within budget (cut, with a visible marker and a note), never over budget.
    assert_complete_and_within_budget(diff, packing, allow_cut=True)
    (cut,) = [
        ln
        for c in packing.chunks
        for p in c.files
        for h in p.hunks
        for ln in h.lines
        if ln.new_no == 1
    ]
    assert CUT_MARKER in cut.text
    assert packing.notes == ("data.json: new line 1 is longer than a chunk and was cut to fit",)


def test_binary_files_are_skipped_with_a_reason() -> None:
    diff = parse_diff((DATA / "binary.patch").read_bytes())
    packing = pack(diff, 12000)
    assert packing.chunks == ()
    assert {s.path for s in packing.skipped} == {f.path for f in diff.files}
    assert all("binary" in s.reason for s in packing.skipped)


def test_excluded_globs_are_skipped_and_the_rest_reviewed() -> None:
    text = synthetic_diff(2, 2) + synthetic_diff(1, 3, path="deps/poetry.lock")
    text += synthetic_diff(1, 1, path="web/yarn.lock")
    diff = parse_diff(text)
    packing = pack(diff, 12000, ReviewSettings(exclude=("*.lock",)))
    skipped = {s.path: s for s in packing.skipped}
    assert set(skipped) == {"deps/poetry.lock", "web/yarn.lock"}
    assert skipped["deps/poetry.lock"].hunks == 3
    assert "*.lock" in skipped["deps/poetry.lock"].reason
    sent = {part.file.path for c in packing.chunks for part in c.files}
    assert sent == {"pkg0/mod_0.py", "pkg1/mod_1.py"}
    assert_complete_and_within_budget(diff, packing)


def test_exclude_matches_a_bare_file_name_in_any_directory() -> None:
    diff = parse_diff(synthetic_diff(1, 1, path="frontend/app/package-lock.json"))
    packing = pack(diff, 12000, ReviewSettings(exclude=("package-lock.json",)))
    assert [s.path for s in packing.skipped] == ["frontend/app/package-lock.json"]


def test_empty_diff_has_no_chunks() -> None:
    packing = pack(parse_diff(""), 12000)
    assert packing.chunks == () and packing.skipped == ()


# --- plan -------------------------------------------------------------------------------------


def facts(
    window: int = 200_000,
    max_out: int | None = 8192,
    price: bool = True,
    free: bool = False,
) -> ModelFacts:
    return ModelFacts(
        context_window=window,
        window_known=True,
        max_output_tokens=max_out,
        price=Price(0.0 if free else 3e-6, 0.0 if free else 15e-6, None, "test") if price else None,
        send_schema=True,
    )


def test_plan_for_the_example_is_one_call() -> None:
    diff = parse_diff(EXAMPLE.read_bytes())
    settings = ReviewSettings()
    plan = make_plan(diff, facts(), settings, "claude-sonnet", "anthropic/claude-sonnet-4-5")
    # Unset, the budget is what the window leaves after the prompt, the reply and the margin.
    reply = min(settings.max_output_tokens, 8192)
    assert plan.budget == int((200_000 - chunk_overhead(True) - reply) * (1 - SAFETY_MARGIN))
    assert len(plan.chunks) == 1 and plan.calls == 1  # no synthesis for a single chunk
    assert (plan.files_total, plan.hunks_total) == (3, 3)
    assert plan.prompt_tokens > plan.chunks[0].tokens  # the prompt around the diff counts
    assert plan.output_tokens > 0


def test_plan_budget_leaves_room_for_prompt_and_reply_in_the_window() -> None:
    diff = parse_diff(synthetic_diff(5, 5))
    settings = ReviewSettings()
    f = facts(window=8000)
    plan = make_plan(diff, f, settings, "small", "openai/small")
    assert 500 <= plan.budget < 8000
    reply = min(settings.max_output_tokens, f.max_output_tokens or 10**9)
    assert plan.budget + chunk_overhead() + reply <= f.context_window
    for chunk in plan.chunks:
        assert chunk.tokens <= plan.budget


def test_multi_chunk_plan_adds_a_synthesis_call_and_applies_exclude() -> None:
    text = synthetic_diff(10, 4) + synthetic_diff(1, 2, path="Cargo.lock")
    diff = parse_diff(text)
    settings = ReviewSettings(max_chunk_tokens=800, exclude=("*.lock",))
    plan = make_plan(diff, facts(), settings, "gpt", "openai/gpt-4.1-mini")
    assert plan.budget == 800
    assert len(plan.chunks) > 1
    assert plan.calls == len(plan.chunks) + 1
    assert [s.path for s in plan.skipped] == ["Cargo.lock"]
    assert (plan.files_total, plan.hunks_total) == (11, 42)


def test_context_window_too_small_is_a_config_error() -> None:
    diff = parse_diff(EXAMPLE.read_bytes())
    with pytest.raises(ConfigError) as info:
        make_plan(diff, facts(window=4096), ReviewSettings(), "tiny", "openai/tiny")
    assert "tiny" in info.value.message
    assert "4096" in info.value.message
    assert "context_window" in (info.value.hint or "")
    assert info.value.exit_code == 2


def test_estimate_cost_is_none_without_prices() -> None:
    diff = parse_diff(EXAMPLE.read_bytes())
    plan = make_plan(diff, facts(price=False), ReviewSettings(), "m", "openai/m")
    assert estimate_cost(plan, facts(price=False)) is None


def test_estimate_cost_arithmetic() -> None:
    diff = parse_diff(synthetic_diff(6, 4))
    f = facts()
    plan = make_plan(diff, f, ReviewSettings(max_chunk_tokens=1000), "m", "anthropic/m")
    expected = plan.prompt_tokens * 3e-6 + plan.output_tokens * 15e-6
    assert estimate_cost(plan, f) == pytest.approx(expected)
    # A free local model costs 0, which is a known price, not an unknown one.
    assert estimate_cost(plan, facts(window=32768, free=True)) == 0.0


def test_planning_does_not_import_litellm(tmp_path: Path) -> None:
    # In a fresh interpreter: other tests in this process may have imported litellm already.
    script = textwrap.dedent(
        f"""
        import sys
        from agent.config import ReviewSettings
        from agent.diff import parse_diff
        from agent.plan import estimate_cost, make_plan
        from agent.pricing import Price
        from agent.providers import ModelFacts

        diff = parse_diff(open({str(EXAMPLE)!r}, "rb").read())
        facts = ModelFacts(200_000, True, 8192, Price(3e-6, 15e-6, None, "t"), True)
        plan = make_plan(diff, facts, ReviewSettings(), "claude-sonnet", "anthropic/x")
        assert estimate_cost(plan, facts) > 0
        print(sorted(m for m in sys.modules if m == "litellm" or m.startswith("litellm.")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- splitting a chunk the model refused for size ---------------------------------------------


def split_all_the_way(chunk: Chunk) -> list[Chunk]:
    halves = split_chunk(chunk)
    if halves is None:
        return [chunk]
    return [*split_all_the_way(halves[0]), *split_all_the_way(halves[1])]


@pytest.mark.parametrize(
    "text",
    [synthetic_diff(5, 3), synthetic_diff(1, 4), synthetic_diff(1, 1, changed=30)],
    ids=["files", "hunks", "lines"],
)
def test_splitting_keeps_every_line_once_down_to_single_lines(text: str) -> None:
    diff = parse_diff(text)
    (chunk,) = pack(diff, 100_000).chunks
    a, b = split_chunk(chunk) or (None, None)
    assert a is not None and b is not None
    assert (a.id, b.id) == ("1.1", "1.2")
    assert hunks_covered((a, b)) == hunks_covered((chunk,))
    assert lines_sent(Packing((a, b), (), 0)) == lines_sent(Packing((chunk,), (), 0))
    for half in (a, b):
        assert half.tokens == count_tokens(half.render())
        assert half.tokens < chunk.tokens

    leaves = split_all_the_way(chunk)
    assert hunks_covered(tuple(leaves)) == {f.path: len(f.hunks) for f in diff.files}
    assert lines_sent(Packing(tuple(leaves), (), 0)) == lines_sent(Packing((chunk,), (), 0))
    # What cannot be split further is one line of one file.
    assert all(
        len(c.files) == 1 and sum(len(h.lines) for h in c.files[0].hunks) == 1 for c in leaves
    )
