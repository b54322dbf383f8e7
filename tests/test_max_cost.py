"""A review estimated over ``--max-cost`` sends nothing by default, or, with ``--over-max-cost
riskiest-first``, the riskiest files that fit the limit, listing the rest as not reviewed for
budget; either way the exit code says the review is incomplete and over budget."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.kinds import risk_score
from agent.policy import exit_code, failed, parse_fail_on
from agent.review import ReviewRequest, dry_run
from tests.fakes import FakeTransport, user_text, wants
from tests.test_pipeline import run, write_config

# Equal sizes: only the path says which file is riskier.
PATHS = ["docs/guide.md", "tests/test_util.py", "src/util.py", "payments/charge.py"]


def diff(lines: int = 40) -> bytes:
    out = []
    for path in PATHS:
        out.append(f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n")
        out.append(f"@@ -1,1 +1,{lines + 1} @@\n keep = 1\n")
        out.extend(
            f"+line_{n} = work({n}, 'a line of about a dozen tokens')\n" for n in range(lines)
        )
    return "".join(out).encode()


def whole_cost(tmp: Path, cfg: Path) -> float:
    patch = tmp / "estimate.patch"
    patch.write_bytes(diff())
    plan = asyncio.run(dry_run(ReviewRequest(cwd=tmp, diff_path=patch, config_path=cfg)))
    assert plan.plan.cost_usd is not None
    return plan.plan.cost_usd


def sent(transport: FakeTransport) -> set[str]:
    return {
        path
        for r in transport.requests
        if wants(r) == "ChunkReview"
        for path in re.findall(r"=== FILE (\S+)", user_text(r))
    }


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    # One file per chunk: the estimate grows file by file.
    return write_config(tmp_path, review={"max_chunk_tokens": 700})


def test_paths_that_handle_money_rank_above_code_above_tests_above_docs() -> None:
    from agent.diff import parse_diff

    files = parse_diff(diff()).files
    ranked = sorted(files, key=lambda f: -risk_score(f))
    assert [f.path for f in ranked] == list(reversed(PATHS))


def test_riskiest_first_reviews_what_fits_and_lists_the_rest(tmp_path: Path, cfg: Path) -> None:
    limit = whole_cost(tmp_path, cfg) * 0.6
    transport = FakeTransport()
    review = run(tmp_path, transport, cfg, diff(), max_cost=limit, over_max_cost="riskiest_first")
    assert sent(transport) == {"payments/charge.py", "src/util.py"}
    assert review.usage.cost_usd <= limit * 1.5  # the estimate, not a bill; same order
    left = {n.path: n.reason for n in review.coverage.not_reviewed}
    assert set(left) == {"docs/guide.md", "tests/test_util.py"}
    assert all(r.startswith("not reviewed for budget") for r in left.values())
    assert review.coverage.files_reviewed == 2 and review.coverage.files_total == 4
    assert any("the 2 riskiest file(s) are reviewed" in n for n in review.notes)
    assert review.over_budget and not review.complete
    assert exit_code(failed(review, parse_fail_on("budget"))) == 5
    assert exit_code(failed(review, parse_fail_on("incomplete"))) == 1


def test_refuse_is_the_default_and_when_not_even_one_file_fits(tmp_path: Path, cfg: Path) -> None:
    whole = whole_cost(tmp_path, cfg)
    refused_t = FakeTransport()
    refused = run(tmp_path, refused_t, cfg, diff(), max_cost=whole * 0.6)
    assert refused_t.requests == [] and refused.over_budget and not refused.complete

    tiny_t = FakeTransport()
    tiny = run(tmp_path, tiny_t, cfg, diff(), max_cost=whole / 100, over_max_cost="riskiest_first")
    assert tiny_t.requests == [] and tiny.over_budget
    assert all("over the limit" in n.reason for n in tiny.coverage.not_reviewed)


def test_the_flag_takes_only_its_two_policies(tmp_path: Path) -> None:
    patch = tmp_path / "change.patch"
    patch.write_bytes(diff())
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["review", "--diff", str(patch), "--max-cost", "1", "--over-max-cost", "cheapest"]
    )
    assert result.exit_code == 2
    assert "refuse or riskiest-first" in result.output
