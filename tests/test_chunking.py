"""Tests for agent.chunking (packing a diff into chunks) and agent.plan (budget and cost)."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal

import pytest

from agent import prompts
from agent.chunking import Chunk, Packing, Parts, pack, render_file, split_chunk, split_parts
from agent.config import ReviewSettings
from agent.diff import Diff, DiffLine, LineKind, parse_diff
from agent.errors import ConfigError
from agent.plan import (
    REPLY_PER_FILE,
    SAFETY_MARGIN,
    chunk_overhead,
    estimate_cost,
    make_plan,
    schema_text,
)
from agent.pricing import Price
from agent.providers import ModelFacts
from agent.schema import ChunkReview, Synthesis, reply_shape
from agent.splitting import boundaries
from agent.tokens import count_messages, count_tokens

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
@pytest.mark.parametrize("deleted", ["summarize", "full"])
def test_real_diffs_are_covered_exactly_once(
    name: str, budget: int, deleted: Literal["summarize", "full"]
) -> None:
    diff = parse_diff((DATA / name).read_bytes())
    assert_complete_and_within_budget(diff, pack(diff, budget, ReviewSettings(deleted=deleted)))


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


# --- best-fit packing ---------------------------------------------------------------------------


def varied_diff(n_files: int, seed: int = 3) -> str:
    """Files of very different sizes in a few directories (1-6 hunks of 2-12 changed lines),
    and every tenth one long (30-50 hunks): a first-fit packer in diff order leaves a tail chunk
    behind most of the long ones."""
    import random

    rng = random.Random(seed)
    text = ""
    for f in range(n_files):
        hunks = rng.randint(30, 50) if f % 10 == 9 else rng.randint(1, 6)
        text += synthetic_diff(1, hunks, changed=rng.randint(2, 12), path=f"dir{f % 4}/file_{f}.py")
    return text


@pytest.mark.parametrize("budget", [4000, 9000, 24000])
def test_best_fit_packs_near_the_lower_bound(budget: int) -> None:
    diff = parse_diff(varied_diff(80))
    packing = pack(diff, budget)
    assert_complete_and_within_budget(diff, packing)
    total = sum(c.tokens for c in packing.chunks)
    assert len(packing.chunks) <= math.ceil(total / budget) + 1
    # At most one chunk is under half full (best fit opens a chunk only for a part that fits
    # in no other, so a second half-empty one cannot exist).
    assert sum(1 for c in packing.chunks if c.tokens < budget / 2) <= 1


@pytest.mark.parametrize("budget", [1500, 4000])
def test_whole_files_larger_than_half_a_chunk_still_leave_one_half_empty_chunk_at_most(
    budget: int,
) -> None:
    # Hunks of 30 changed lines: parts cannot all be full, and files that fit stay whole.
    import random

    rng = random.Random(5)
    text = "".join(
        synthetic_diff(1, rng.randint(1, 12), changed=30, path=f"d{f % 3}/f{f}.py")
        for f in range(40)
    )
    diff = parse_diff(text)
    packing = pack(diff, budget)
    assert_complete_and_within_budget(diff, packing)
    assert sum(1 for c in packing.chunks if c.tokens < budget / 2) <= 1
    for chunk in packing.chunks:  # a file that fits a chunk is never split
        for part in chunk.files:
            if count_tokens(render_file(part.file)) <= budget:
                assert part.hunks == part.file.hunks


def test_packing_is_deterministic_and_numbered_in_diff_order() -> None:
    diff = parse_diff(varied_diff(30))
    a, b = pack(diff, 3000), pack(parse_diff(varied_diff(30)), 3000)
    assert [[p.content_key for p in c.files] for c in a.chunks] == [
        [p.content_key for p in c.files] for c in b.chunks
    ]
    order = {f.path: i for i, f in enumerate(diff.files)}
    firsts = [min(order[p.file.path] for p in c.files) for c in a.chunks]
    assert firsts == sorted(firsts)  # chunks in the order of their first file
    for chunk in a.chunks:  # and parts in diff order inside a chunk
        keys = [(order[p.file.path], p.spans[0].hunk if p.spans else 0) for p in chunk.files]
        assert keys == sorted(keys)


def test_files_of_one_directory_share_a_chunk_when_it_costs_nothing() -> None:
    # Two directories interleaved in the diff, each small enough for one chunk: kept apart.
    text = "".join(
        synthetic_diff(1, 2, path=f"{d}/mod_{i}.py") for i in range(4) for d in ("api", "web")
    )
    diff = parse_diff(text)
    sizes = split_parts(diff, 10**6).parts
    per_dir = max(sum(t + 2 for p, t in sizes if p.file.path.startswith(d)) for d in ("api", "web"))
    packing = pack(diff, per_dir + 10)
    assert len(packing.chunks) == 2
    for chunk in packing.chunks:
        assert len({p.file.path.split("/")[0] for p in chunk.files}) == 1


def test_a_files_parts_depend_only_on_that_file() -> None:
    """The content cache keys on parts: changing one file or adding another must leave every
    other file's parts (and their content keys) as they were."""
    big = synthetic_diff(1, 30, changed=12, path="core/engine.py")  # split: it exceeds 1,500
    others = [synthetic_diff(1, m, path=f"lib/mod_{m}.py") for m in (1, 3, 5)]
    before = parse_diff(big + "".join(others))
    changed = others[1].replace("+new 0.1.0", "+changed 0.1.0")
    after = parse_diff(
        synthetic_diff(1, 2, path="aaa/first.py") + big + others[0] + changed + others[2]
    )
    a, b = split_parts(before, 1500), split_parts(after, 1500)

    def by_file(parts: Parts) -> dict[str, list[tuple[str, int]]]:
        out: dict[str, list[tuple[str, int]]] = {}
        for part, tokens in parts.parts:
            out.setdefault(part.file.path, []).append((part.content_key, tokens))
        return out

    pa, pb = by_file(a), by_file(b)
    assert len(pa["core/engine.py"]) > 1
    for path in ("core/engine.py", "lib/mod_1.py", "lib/mod_5.py"):
        assert pa[path] == pb[path]
    assert pa["lib/mod_3.py"] != pb["lib/mod_3.py"]


def test_content_key_is_sha256_of_what_the_model_is_shown() -> None:
    (part, _), *_ = split_parts(parse_diff(synthetic_diff(1, 2)), 10**6).parts
    assert part.content_key == hashlib.sha256(part.render().encode()).hexdigest()
    (same, _), *_ = split_parts(parse_diff(synthetic_diff(1, 2)), 10**6).parts
    assert same.content_key == part.content_key
    moved = parse_diff(synthetic_diff(1, 2).replace("mod_0.py", "mod_9.py"))
    assert split_parts(moved, 10**6).parts[0][0].content_key != part.content_key


def test_a_file_that_must_be_split_keeps_consecutive_hunks_together() -> None:
    diff = parse_diff(synthetic_diff(1, 40))
    parts = split_parts(diff, 1500).parts
    whole = count_tokens(render_file(diff.files[0]))
    assert len(parts) <= math.ceil(whole / 1500) + 1
    for part, tokens in parts:
        assert tokens <= 1500
        assert [s.hunk for s in part.spans] == list(
            range(part.spans[0].hunk, part.spans[-1].hunk + 1)
        )


# --- splitting a hunk at function boundaries ----------------------------------------------------


def new_module(functions: int, body: int, *, decorated: bool = False) -> str:
    lines: list[str] = ['"""A module."""', "", "import os", ""]
    for f in range(functions):
        if f % 4 == 0:
            lines += [f"class Service{f}:", f'    """Service number {f}."""', ""]
        if decorated:
            lines.append("    @staticmethod")
        lines.append(f"    def handler_{f}(request, retries=3):")
        lines += [
            f"        value_{f}_{k} = compute(request, {k}, 'payload text')" for k in range(body)
        ]
        lines += [f"        return value_{f}_0", ""]
    path = "svc/handlers.py"
    head = f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
    return head + f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{ln}\n" for ln in lines)


@pytest.mark.parametrize("decorated", [False, True])
def test_a_big_hunk_is_cut_where_a_function_or_class_starts(decorated: bool) -> None:
    diff = parse_diff(new_module(24, 12, decorated=decorated))
    budget = 900
    packing = pack(diff, budget)
    assert_complete_and_within_budget(diff, packing)
    pieces = sorted(
        (
            (s.start, h)
            for c in packing.chunks
            for p in c.files
            for s, h in zip(p.spans, p.hunks, strict=True)
        ),
        key=lambda x: x[0],
    )
    assert len(pieces) > 3
    for _, piece in pieces[1:]:
        first = piece.lines[0].text.strip()
        # Every piece after the first starts a definition, its decorator, or its class.
        assert first.startswith(("def ", "class ", "@staticmethod")), first
        if decorated:
            assert not first.startswith("def ")  # never between a decorator and its def
    for _, piece in pieces[:-1]:
        shown = count_tokens(render_file(diff.files[0], (piece,)))
        assert shown >= budget / 2 - 60  # cut at a boundary only when the piece is half full


def test_a_definition_near_the_start_of_a_piece_is_not_worth_a_nearly_empty_piece() -> None:
    body = [f"    total_{k} = compute(total_{k - 1}, {k}, 'some payload')" for k in range(120)]
    diff = parse_diff(file_diff("svc/long.py", ["import os", "def run():", *body], status="added"))
    packing = pack(diff, 700)
    assert_complete_and_within_budget(diff, packing)
    first = min((p for c in packing.chunks for p in c.files), key=lambda p: p.spans[0].start)
    # Cutting before "def run():" would leave a one-line piece: cut where the budget ends.
    assert len(first.hunks[0].lines) > 20


def test_a_hunk_without_definitions_is_cut_at_the_last_line_that_fits() -> None:
    text = synthetic_diff(1, 1, context=20, changed=200, words=8)
    diff = parse_diff(text)
    packing = pack(diff, 700)
    assert_complete_and_within_budget(diff, packing)
    sizes = sorted(c.tokens for c in packing.chunks)
    assert all(size > 700 * 0.85 for size in sizes[1:])  # full pieces; one tail


def test_definitions_nested_deep_are_not_boundaries() -> None:
    lines = tuple(
        DiffLine(LineKind.ADDED, text, None, i + 1)
        for i, text in enumerate(
            [
                "class A:",
                "    def f(self):",
                "        def inner():",
                "            pass",
                "    @property",
                "    # why",
                "    def g(self):",
                "func (s *Server) Serve() error {",
                "export default function App() {",
                "x = 1",
            ]
        )
    )
    assert boundaries(lines) == {0, 1, 4, 7, 8}


# --- files summarized or listed instead of sent ---------------------------------------------------


def file_diff(path: str, lines: list[str], *, status: str = "modified") -> str:
    if status == "deleted":
        head = (
            f"diff --git a/{path} b/{path}\ndeleted file mode 100644\n--- a/{path}\n+++ /dev/null\n"
        )
        return head + f"@@ -1,{len(lines)} +0,0 @@\n" + "".join(f"-{ln}\n" for ln in lines)
    if status == "added":
        head = f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
        return head + f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{ln}\n" for ln in lines)
    head = f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
    return head + "@@ -1,1 +1,2 @@\n x\n" + "".join(f"+{ln}\n" for ln in lines[:1])


def mixed_kinds_diff() -> Diff:
    svg = [f'<path d="M{i} {i}L{i + 1} {i + 2}"/>' for i in range(300)]
    return parse_diff(
        file_diff("app/main.py", ["print('hello')"])
        + file_diff("assets/logo.svg", svg, status="deleted")
        + file_diff(
            "api/gen.go",
            ["// Code generated by protoc-gen-go. DO NOT EDIT.", "package api"],
            status="added",
        )
        + file_diff("schema/types.py", ["# @generated by tool", "X = 1"], status="added")
        + file_diff("api/service.pb.go", ["package api"], status="added")
        + file_diff("vendor/github.com/x/y.go", ["package y"], status="added")
        + file_diff("web/node_modules/left-pad/index.js", ["module.exports = 1"], status="added")
        + file_diff("web/package-lock.json", ['{"lockfileVersion": 3}'], status="added")
    )


def test_deleted_generated_and_vendored_files_are_listed_with_reasons_not_sent() -> None:
    diff = mixed_kinds_diff()
    packing = pack(diff, 12000)
    assert_complete_and_within_budget(diff, packing)
    skipped = {s.path: s for s in packing.skipped}
    assert set(skipped) == {f.path for f in diff.files} - {"app/main.py"}
    logo = skipped["assets/logo.svg"]
    assert logo.kind == "summarized"
    size = sum(len(f'<path d="M{i} {i}L{i + 1} {i + 2}"/>') + 1 for i in range(300))
    assert logo.reason == f"deleted (300 lines, {size:,} bytes): reviewed as a deletion"
    reasons = {path: s.reason for path, s in skipped.items() if s.kind == "not_sent"}
    assert "Code generated ... DO NOT EDIT." in reasons["api/gen.go"]
    assert "@generated" in reasons["schema/types.py"]
    assert "'*.pb.go'" in reasons["api/service.pb.go"]
    assert "vendored" in reasons["vendor/github.com/x/y.go"]
    assert "vendored" in reasons["web/node_modules/left-pad/index.js"]
    assert "'package-lock.json'" in reasons["web/package-lock.json"]
    # The deleted file goes to the model as its name and size only: a few tokens, not 300 lines.
    (chunk,) = packing.chunks
    summary = next(p for p in chunk.files if p.summary is not None)
    text = summary.render()
    assert text.startswith("=== FILE assets/logo.svg (deleted, not shown) ===")
    assert "300 lines" in text and "M1 1" not in text
    assert count_tokens(text) < 40
    assert chunk.diff_paths == ["app/main.py"]


def test_deleted_files_can_be_sent_in_full_or_skipped() -> None:
    diff = mixed_kinds_diff()
    full = pack(diff, 12000, ReviewSettings(deleted="full"))
    assert "assets/logo.svg" not in {s.path for s in full.skipped}
    assert_complete_and_within_budget(diff, full)
    skip = pack(diff, 12000, ReviewSettings(deleted="skip"))
    (logo,) = [s for s in skip.skipped if s.path == "assets/logo.svg"]
    assert logo.kind == "not_sent" and "review.deleted: skip" in logo.reason
    assert_complete_and_within_budget(diff, skip)


def test_generated_and_vendored_rules_are_settings() -> None:
    diff = mixed_kinds_diff()
    settings = ReviewSettings(generated=(), vendored=(), generated_markers=False)
    packing = pack(diff, 12000, settings)
    assert {s.path for s in packing.skipped} == {"assets/logo.svg"}
    mine = ReviewSettings(vendored=("web/*",))
    skipped = {s.path: s.reason for s in pack(diff, 12000, mine).skipped}
    assert "web/*" in skipped["web/package-lock.json"]
    assert "vendor/github.com/x/y.go" not in skipped  # the defaults were replaced


def test_sensitive_and_exclude_win_over_summarizing() -> None:
    diff = parse_diff(
        file_diff("deploy/.env", ["TOKEN=x"], status="deleted")
        + file_diff("old/notes.md", ["hi"], status="deleted")
    )
    packing = pack(diff, 12000, ReviewSettings(exclude=("old/*",)))
    reasons = {s.path: (s.kind, s.reason) for s in packing.skipped}
    assert reasons["deploy/.env"][0] == "not_sent" and "credentials" in reasons["deploy/.env"][1]
    assert reasons["old/notes.md"] == ("not_sent", "excluded by pattern 'old/*'")
    assert packing.chunks == ()


def test_text_about_markers_is_not_a_marker() -> None:
    diff = parse_diff(
        file_diff("tools/triage.py", ['"""Skips files marked ``@generated`` or', "DO NOT EDIT."])
        + file_diff("app/limits.py", ["# DO NOT EDIT without asking payments", "LIMIT = 3"])
        + file_diff("docs/review.md", ["* Files marked @generated are skipped", "ok"])
        + file_diff("app/strings.py", ['MARK = "@generated"  # the marker tools look for'])
    )
    assert pack(diff, 12000).skipped == ()


def test_a_marker_deep_in_a_file_is_not_a_generated_file() -> None:
    lines = [f"x_{i} = {i}" for i in range(30)] + ["# DO NOT EDIT below this line"]
    diff = parse_diff(file_diff("app/settings.py", lines, status="added"))
    assert pack(diff, 12000).skipped == ()


# --- the budget -------------------------------------------------------------------------------


def test_a_configured_chunk_budget_caps_the_windows_room_and_never_raises_it() -> None:
    diff = parse_diff(EXAMPLE.read_bytes())
    room = make_plan(diff, facts(window=32_768), ReviewSettings(), "m", "openai/m").budget
    capped = ReviewSettings(max_chunk_tokens=3000)
    assert make_plan(diff, facts(window=32_768), capped, "m", "openai/m").budget == 3000
    above = ReviewSettings(max_chunk_tokens=10**6)
    assert make_plan(diff, facts(window=32_768), above, "m", "openai/m").budget == room
    assert 20_000 < room < 32_768


# --- the fixed cost of a call ---------------------------------------------------------------


def test_the_prompt_around_the_diff_stays_short() -> None:
    # Instructions and the reply's shape: 1,295 tokens before issue 15, ~510 after. Each call
    # pays them; a schema pasted back in whole (indented JSON) would cost ~800 more.
    messages = prompts.load("chunk").render(
        schema=schema_text(ChunkReview),
        nonce="0" * 16,
        diff="",
        title="",
        repo="",
        part="1",
        parts="1",
    )
    assert count_messages(messages) < 600
    # The response_format schema has no titles or class docstrings (tokens the model ignores).
    text = json.dumps(ChunkReview.model_json_schema())
    assert '"title"' not in text and "The model's review" not in text


def test_the_reply_shape_names_every_field_and_choice_of_the_class() -> None:
    shape = reply_shape(ChunkReview)
    schema = ChunkReview.model_json_schema()
    for model in (schema, *schema["$defs"].values()):
        for name, field in model["properties"].items():
            optional = name not in model.get("required", [])
            assert f'"{name}"{"?" if optional else ""}:' in shape
            for choice in field.get("enum", []):
                assert f'"{choice}"' in shape
    assert reply_shape(Synthesis) == (
        '{"summary":string,"risk":"low"|"medium"|"high","risk_reasons":[string],'
        '"question_order":[int]}'
    )


def test_a_chunk_holds_no_more_files_than_its_reply_can_explain() -> None:
    # 120 small files fit one chunk of a 200k window, but a 4,096-token reply cannot hold a
    # walkthrough for each: chunks are closed by their number of files.
    diff = parse_diff(synthetic_diff(120, 1))
    small = make_plan(diff, facts(), ReviewSettings(max_output_tokens=4096), "m", "openai/m")
    cap = 4096 // REPLY_PER_FILE
    assert all(len(c.files) <= cap for c in small.chunks)
    assert len(small.chunks) == math.ceil(120 / cap)
    big = make_plan(diff, facts(), ReviewSettings(max_output_tokens=8192), "m", "openai/m")
    assert len(big.chunks) < len(small.chunks)
    assert_complete_and_within_budget(diff, Packing(small.chunks, small.skipped, small.budget))


@pytest.mark.parametrize("budget", [80, 100, 130, 200])
def test_an_empty_hunk_after_a_full_part_is_still_sent(budget: int) -> None:
    hunks = "".join(
        f"@@ -{i * 10 + 1},1 +{i * 10 + 1},1 @@\n-a{i} {'w ' * 30}\n+b{i} {'w ' * 30}\n"
        for i in range(5)
    )
    diff = parse_diff(f"--- a/x.py\n+++ b/x.py\n{hunks}@@ -100,0 +100,0 @@\n")
    assert diff.files[0].hunks[-1].lines == ()
    assert_complete_and_within_budget(diff, pack(diff, budget), allow_cut=True)


NEW_AND_MODIFIED = """\
diff --git a/src/fresh.py b/src/fresh.py
new file mode 100644
--- /dev/null
+++ b/src/fresh.py
@@ -0,0 +1,3 @@
+def fresh(x):
+    -x  # a line that starts with a minus once its indent is gone
+    return x
diff --git a/src/old.py b/src/old.py
--- a/src/old.py
+++ b/src/old.py
@@ -1,2 +1,2 @@
 def old():
-    return 1
+    return 2
"""


def test_a_new_files_lines_are_shown_without_their_plus_and_its_header_says_so() -> None:
    fresh, old = parse_diff(NEW_AND_MODIFIED).files
    assert render_file(fresh).splitlines() == [
        "=== FILE src/fresh.py (new file: every line added, shown as number and text) ===",
        "@@",
        "1 def fresh(x):",
        "2     -x  # a line that starts with a minus once its indent is gone",
        "3     return x",
    ]
    # A changed file keeps its marks: its lines are of three kinds.
    assert render_file(old).splitlines()[2:] == [
        "1   def old():",
        "2 -     return 1",
        "2 +     return 2",
    ]
    # The system prompt tells the model how to read both.
    system = prompts.load("chunk").render(
        schema="", nonce="0", diff="", title="", repo="", part="1", parts="1"
    )[0]["content"]
    assert '"new file"' in system and "number and text only" in system


def test_a_new_file_split_into_pieces_is_sized_as_it_is_shown() -> None:
    lines = [f"+    value_{i} = compute_{i}(argument_{i})  # line {i}" for i in range(400)]
    text = (
        "diff --git a/big.py b/big.py\nnew file mode 100644\n--- /dev/null\n+++ b/big.py\n"
        f"@@ -0,0 +1,{len(lines)} @@\n" + "\n".join(lines) + "\n"
    )
    diff = parse_diff(text)
    budget = 1500
    packing = pack(diff, budget)
    assert len(packing.chunks) > 2
    for chunk in packing.chunks:
        assert chunk.tokens == count_tokens(chunk.render())
        assert " + " not in chunk.render()
    # Sized without the marks, the pieces fill their chunks: each but the last holds at least
    # 96% of the budget (sized with them, as if shown with them, about 94%).
    assert all(c.tokens >= 0.96 * budget for c in packing.chunks[:-1])
    assert_complete_and_within_budget(diff, packing)


def test_a_hunk_starts_with_its_definition_not_gits_ranges() -> None:
    """Every line carries its number, so git's ``-a,b +c,d`` ranges would only repeat them at
    about nine tokens a hunk; what is left is where the hunk is (the definition git found)."""
    diff = parse_diff(
        "--- a/x.py\n+++ b/x.py\n"
        "@@ -3,2 +3,2 @@ def charge(amount):\n     total = amount\n-    return total\n"
        "+    return round(total)\n"
        "@@ -40,1 +40,1 @@\n-LIMIT = 1\n+LIMIT = 2\n"
    )
    (shown,) = diff.files
    assert render_file(shown).splitlines() == [
        "=== FILE x.py (modified) ===",
        "@@ def charge(amount):",
        "3       total = amount",
        "4 -     return total",
        "4 +     return round(total)",
        "@@",
        "40 - LIMIT = 1",
        "40 + LIMIT = 2",
    ]
    # A hunk cut into pieces still says which of its lines each piece holds.
    long = "".join(f"+    step_{i} = call_{i}(amount, {i})\n" for i in range(400))
    cut = parse_diff(f"--- a/y.py\n+++ b/y.py\n@@ -1,0 +1,400 @@ def run(amount):\n{long}")
    parts = split_parts(cut, 1000).parts
    headings = [ln for p, _ in parts for ln in p.render().splitlines() if ln.startswith("@@")]
    assert len(headings) > 1
    assert all(h.startswith("@@ def run(amount): (lines ") for h in headings)
