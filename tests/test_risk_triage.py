"""The triage pass (routing.triage): a cheap model rates each file's risk before routing.

Unit tests of what is shown to the triage model and how its reply is read (unknown paths,
missing files, invalid ratings, the path heuristic's high that a rating never lowers), the
setting's validation at load with its file and line, and reviews end to end through LiteLLM
against two models on the loopback stand-in server (``tests/llm_server.py``): its triage
answer rates by the changed lines, so it can rate high a file whose path the heuristic rates
low.
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent import risk_triage
from agent.cli import app
from agent.config import Config, Triage, load_config
from agent.diff import FileDiff, parse_diff
from agent.errors import ConfigError
from agent.ledger import LedgerStore
from agent.providers import ModelFacts, ResolvedModel, choose_model
from agent.render.markdown import footer
from agent.result import Review
from agent.review import ReviewRequest, run_review
from agent.routing import Router
from agent.schema import TriageReply
from agent.tokens import count_messages
from tests import llm_server
from tests.llm_server import LLMServer, serve

HELPER = "tests/helpers.py"  # low by its path; its change runs a shell: high by its lines
PAYMENTS = "src/payments/refund.py"  # high by its path; a plain change: medium by its lines
PLAIN = "src/util/strings.py"  # medium by both
DOCS = "docs/guide.md"  # low by both

BODIES = {
    HELPER: ["import subprocess", "def run(cmd):", "    subprocess.run(cmd, shell=True)"],
    PAYMENTS: ["def refund(amount):", "    return amount"],
    PLAIN: ["def upper(s):", "    return s.upper()"],
    DOCS: ["# Guide", "Read this first."],
}


def diff_of(bodies: dict[str, list[str]]) -> bytes:
    out = []
    for path, lines in bodies.items():
        added = "".join(f"+{line}\n" for line in lines)
        out.append(
            f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,1 +1,{len(lines) + 1} @@\n keep\n{added}"
        )
    return "".join(out).encode()


def files_of(bodies: dict[str, list[str]]) -> dict[str, FileDiff]:
    return {f.path: f for f in parse_diff(diff_of(bodies)).files}


def write_config(tmp: Path, url: str, triage: str = "triage: cheap", rater: str = "rater") -> Path:
    """strong and cheap (and rater, for triage models that misbehave) on the stand-in server;
    strong ten times cheap's price; one rule: high risk to strong."""
    text = textwrap.dedent(
        f"""\
        default: cheap
        models:
          strong:
            model: openai/strong-model
            api_base: {url}/v1
            context_window: 32000
            input_cost_per_token: 0.00001
            output_cost_per_token: 0.00002
          cheap:
            model: openai/cheap-model
            api_base: {url}/v1
            context_window: 32000
            input_cost_per_token: 0.000001
            output_cost_per_token: 0.000002
          rater:
            model: openai/{rater}-model
            api_base: {url}/v1
            context_window: 32000
            input_cost_per_token: 0.000001
            output_cost_per_token: 0.000002
        review:
          retry_backoff_seconds: 0
          retries: 0
        routing:
          rules:
            - name: risky
              risk: high
              model: strong
        """
    )
    path = tmp / "providers.yaml"
    path.write_text(text + textwrap.indent(triage, "  ") + "\n" if triage else text)
    return path


@pytest.fixture
def srv() -> Iterator[LLMServer]:
    with serve() as server:
        yield server


def review(tmp: Path, config: Path) -> Review:
    patch = tmp / "change.patch"
    patch.write_bytes(diff_of(BODIES))
    request = ReviewRequest(cwd=tmp, diff_path=patch, config_path=config, cache=False)
    return asyncio.run(run_review(request))


def reviewed_by(srv: LLMServer) -> dict[str, str]:
    """Each file, and the model whose chunk request showed it."""
    out = {}
    for request in srv.requests:
        text = llm_server._messages_text(request.body, roles=("user",))
        for f in llm_server.parse_diff(text):
            out[f.path] = request.body["model"].removesuffix("-model")
    return out


def calls() -> list[Any]:
    return LedgerStore(os.environ["OWNIT_LEDGER_URL"]).calls()


# --- end to end: two models on the stand-in server, a third to misbehave as the triage ------


def test_a_file_the_triage_rates_high_goes_to_the_strong_model_and_the_ledger_says_so(
    srv: LLMServer, tmp_path: Path
) -> None:
    result = review(tmp_path, write_config(tmp_path, srv.url))
    assert result.complete, result.problems
    assert reviewed_by(srv) == {
        HELPER: "strong",  # raised by the triage: its path alone says low
        PAYMENTS: "strong",  # its path's high stands, though the triage rated it medium
        PLAIN: "cheap",
        DOCS: "cheap",
    }
    rows = calls()
    (rated,) = [c for c in rows if c.purpose.startswith("triage")]
    assert (rated.purpose, rated.model_name, rated.route, rated.outcome) == (
        "triage-1",
        "cheap",
        "triage",
        "ok",
    )
    assert rated.cost_usd and rated.prompt_tokens > 0
    chunks = {c.model_name: c.route for c in rows if c.purpose.startswith("chunk-")}
    assert "rule 'risky' (triage: high)" in chunks["strong"]
    assert chunks["cheap"] == "default"
    # The review's JSON and footer say which file the triage moved, and what it cost.
    data = json.loads(result.model_dump_json())["triage"]
    assert data["moved"] == [{"path": HELPER, "from_model": "cheap", "to_model": "strong"}]
    assert data["ran"] and data["calls"] == 1 and data["cost_usd"] == pytest.approx(rated.cost_usd)
    verdicts = {f["path"]: (f["risk"], f["path_risk"], f["rated"]) for f in data["files"]}
    assert verdicts[HELPER] == ("high", "low", "high")
    assert verdicts[PAYMENTS] == ("high", "high", "medium")
    assert f"triage cheap ${rated.cost_usd:.4f} moved 1 file(s): {HELPER} to strong" in footer(
        result
    )
    assert any("high stands" in n and PAYMENTS in n for n in result.notes)


@pytest.mark.parametrize("switch", ["garbage", "badrequest"])
def test_a_triage_model_that_fails_leaves_the_paths_risk_and_the_review_completes(
    srv: LLMServer, tmp_path: Path, switch: str
) -> None:
    config = write_config(tmp_path, srv.url, triage="triage: rater", rater=f"rater-{switch}")
    result = review(tmp_path, config)
    assert result.complete, result.problems
    assert reviewed_by(srv)[HELPER] == "cheap"  # its path's low: nothing raised it
    assert reviewed_by(srv)[PAYMENTS] == "strong"
    triage_rows = [c for c in calls() if c.purpose.startswith("triage")]
    assert triage_rows and all(c.model_name == "rater" for c in triage_rows)
    assert {c.outcome for c in triage_rows} == {
        "garbage": {"invalid_output"},
        "badrequest": {"error"},
    }[switch]
    assert any("could not rate 4 file(s)" in n and "path's risk stands" in n for n in result.notes)
    assert result.triage is not None and result.triage.moved == []
    assert not result.triage.ran and result.triage.calls == len(triage_rows)
    assert f"triage rater failed ({len(triage_rows)} call(s)" in footer(result)
    assert "routed by path risk" in footer(result)


def test_the_dry_run_says_the_triage_would_run_and_its_cost_and_calls_nothing(
    srv: LLMServer, tmp_path: Path
) -> None:
    patch = tmp_path / "change.patch"
    patch.write_bytes(diff_of(BODIES))
    config = write_config(tmp_path, srv.url)
    result = CliRunner().invoke(
        app, ["review", "--diff", str(patch), "--dry-run", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "Triage: cheap would first rate the risk of 4 file(s) in 1 call(s)" in out
    assert "est. $0.0" in out.split("Triage:")[1] and "(1 high, 1 medium, 2 low)" in out
    assert srv.requests == []


def test_a_triage_model_whose_key_is_not_set_is_not_called(
    srv: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RATER_KEY", raising=False)
    config = write_config(tmp_path, srv.url, triage="triage: rater")
    text = config.read_text().replace(
        "model: openai/rater-model", "model: openai/rater-model\n    api_key: ${RATER_KEY}"
    )
    config.write_text(text)
    result = review(tmp_path, config)
    assert result.complete
    assert not [r for r in srv.requests if "rater" in r.body["model"]]
    assert any("triage (rater) not run: rater needs RATER_KEY" in n for n in result.notes)
    assert "triage rater not run" in footer(result)


# --- reading the triage model's reply -------------------------------------------------------


def test_a_rating_raises_any_file_but_never_lowers_a_path_rated_high() -> None:
    files = files_of(BODIES)
    reply = TriageReply.model_validate(
        {
            "files": [
                {"path": HELPER, "risk": "HIGH", "reason": "runs a shell"},
                {"path": PAYMENTS, "risk": "low", "reason": "says it is harmless"},
                {"path": PLAIN, "risk": "low", "reason": "a one-liner"},
                {"path": PLAIN, "risk": "high", "reason": "rated twice: the first stands"},
            ]
        }
    )
    verdicts, notes = risk_triage.judge(reply, list(files.values()), "cheap")
    got = {v.path: (v.risk, v.path_risk, v.rated) for v in verdicts}
    assert got == {
        HELPER: ("high", "low", "high"),
        PAYMENTS: ("high", "high", "low"),
        PLAIN: ("low", "medium", "low"),
        DOCS: ("low", "low", None),  # not rated: its path's risk
    }
    assert any("did not rate 1 file(s) (docs/guide.md)" in n for n in notes)
    assert any("high stands" in n and PAYMENTS in n for n in notes)


def test_ratings_of_paths_not_shown_and_invalid_ratings_are_dropped_one_by_one() -> None:
    files = files_of(BODIES)
    reply = TriageReply.model_validate(
        {
            "files": [
                {"path": "src/not_in_diff.py", "risk": "high", "reason": "stray"},
                {"path": DOCS, "risk": "critical", "reason": "not a level"},
                {"path": HELPER, "risk": "high", "reason": "runs a shell"},
            ]
        }
    )
    assert reply.dropped and "docs/guide.md" in reply.dropped[0]
    verdicts, notes = risk_triage.judge(reply, list(files.values()), "cheap")
    assert {v.path for v in verdicts} == set(files)
    assert {v.path: v.rated for v in verdicts}[DOCS] is None
    assert any("not shown (src/not_in_diff.py): ignored" in n for n in notes)
    assert any("1 rating(s) that were not valid" in n for n in notes)
    # A reply that rates none of the files shown is sent back for a repair.
    stray = TriageReply.model_validate({"files": [{"path": "x.py", "risk": "low"}]})
    assert risk_triage.problem(stray, list(files.values())) is not None
    assert risk_triage.problem(reply, list(files.values())) is None


# --- what the triage model is shown ---------------------------------------------------------


def cfg(tmp: Path, triage: str = "triage: cheap") -> Config:
    return load_config(repo_root=tmp, explicit=write_config(tmp, "http://127.0.0.1:9", triage))


def facts(model: ResolvedModel) -> ModelFacts:
    return ModelFacts(32000, True, None, None, True)


def router(config: Config) -> Router:
    return Router(config, choose_model(config, environ={}), facts)


def test_each_file_is_shown_with_its_kind_and_size_and_a_bounded_excerpt() -> None:
    long = {"src/app/big.py": [f"value_{n} = {'x' * 300}" for n in range(50)]}
    (file,) = files_of(long).values()
    text = risk_triage.excerpt(
        file, Triage(model=("cheap",), excerpt_lines=3), summarized=False, kind="code"
    )
    lines = text.splitlines()
    assert lines[0] == "=== FILE src/app/big.py (modified, code, +50 -0) ==="
    assert len(lines) == 5 and lines[-1] == "... 47 more changed line(s) not shown"
    assert all(len(ln) <= risk_triage.LINE_CHARS + 2 for ln in lines[1:4])
    # A deleted file the review only names is named, not shown, to the triage too.
    only = risk_triage.excerpt(file, Triage(model=("cheap",)), summarized=True, kind="code")
    assert only.splitlines() == [lines[0]]


def test_files_are_batched_within_the_token_budget(tmp_path: Path) -> None:
    bodies = {
        f"src/app/mod_{n}.py": [f"line {i} of module {n}" for i in range(30)] for n in range(12)
    }
    config = cfg(tmp_path, "triage: {model: cheap, batch_tokens: 1000}")
    assert config.routing.triage is not None
    files = list(files_of(bodies).values())
    work = risk_triage.batches(files, router(config), config.routing.triage, "t", "r")
    assert len(work) > 1 and [f for b in work for f in b.files] == files
    overhead = count_messages(risk_triage.messages([], "t", "r"))
    assert all(b.tokens - overhead <= 1000 for b in work)
    one = risk_triage.batches(files, router(config), Triage(model=("cheap",)), "t", "r")
    assert len(one) == 1 and one[0].tokens > max(b.tokens for b in work)


def test_a_rule_matched_on_the_triages_rating_says_so(tmp_path: Path) -> None:
    r = router(cfg(tmp_path))
    helper = files_of(BODIES)[HELPER]
    assert (r.route(helper).model, r.route(helper).why) == ("cheap", "default")
    r.rated({HELPER: "high"})
    assert (r.route(helper).model, r.route(helper).why) == ("strong", "rule 'risky' (triage: high)")
    assert r.heuristic_route(helper).model == "cheap"
    assert "cheap" in r.named()  # the client is given the triage model's endpoint


# --- routing.triage is validated at load, with its file and line ------------------------------


def load_error(tmp: Path, triage: str, rules: bool = True) -> str:
    path = write_config(tmp, "http://127.0.0.1:9", triage)
    if not rules:
        text = path.read_text()
        path.write_text(
            text.replace(
                "  rules:\n    - name: risky\n      risk: high\n",
                "  rules:\n    - paths: ['src/*']\n",
            )
        )
    with pytest.raises(ConfigError) as caught:
        load_config(repo_root=tmp, explicit=path)
    return caught.value.message


def test_the_triage_setting_is_checked_at_load_with_its_file_and_line(tmp_path: Path) -> None:
    assert cfg(tmp_path).routing.triage == Triage(model=("cheap",))
    assert cfg(tmp_path, "triage: {model: [cheap, rater], excerpt_lines: 0}").routing.triage == (
        Triage(model=("cheap", "rater"), excerpt_lines=0)
    )
    line = write_config(tmp_path, "x", "").read_text().count("\n") + 1
    where = f"{tmp_path / 'providers.yaml'}:{line}"
    message = load_error(tmp_path, "triage: chaep")
    assert f"routing.triage ({where})" in message and "'chaep'" in message
    message = load_error(tmp_path, "triage: {model: cheap, excerpt_line: 5}")
    assert where in message and "excerpt_line" in message
    message = load_error(tmp_path, "triage: cheap", rules=False)
    assert "no routing rule matches on risk" in message


def test_what_the_triage_spent_comes_out_of_max_cost(srv: LLMServer, tmp_path: Path) -> None:
    """A triage that costs more than --max-cost leaves the chunks nothing: they are not sent,
    and the message says where the money went."""
    config = write_config(tmp_path, srv.url, triage="triage: rater")
    text = config.read_text()
    # The rater at $0.01 a token: its call alone costs more than the $1 limit.
    head, _, tail = text.partition("openai/rater-model")
    tail = tail.replace("input_cost_per_token: 0.000001", "input_cost_per_token: 0.01", 1)
    config.write_text(head + "openai/rater-model" + tail)
    patch = tmp_path / "change.patch"
    patch.write_bytes(diff_of(BODIES))
    request = ReviewRequest(
        cwd=tmp_path, diff_path=patch, config_path=config, cache=False, max_cost=1.0
    )
    result = asyncio.run(run_review(request))
    (rated,) = [c for c in calls() if c.purpose.startswith("triage")]
    assert rated.cost_usd is not None and rated.cost_usd > 1.0
    assert not [c for c in calls() if c.purpose.startswith("chunk-")]
    assert any("spent on triage" in p for p in result.problems), result.problems


def test_a_re_review_rates_only_the_files_that_changed(srv: LLMServer, tmp_path: Path) -> None:
    """After a push the unchanged files keep their rating (no triage call for them), and a
    file the triage raised stays with the strong model, so its review comes from the cache."""
    config = write_config(tmp_path, srv.url)
    patch = tmp_path / "change.patch"

    def run(bodies: dict[str, list[str]]) -> Review:
        patch.write_bytes(diff_of(bodies))
        return asyncio.run(
            run_review(ReviewRequest(cwd=tmp_path, diff_path=patch, config_path=config))
        )

    first = run(BODIES)
    assert first.triage is not None and len(first.triage.files) == 4
    # A dry run of the same diff routes by the kept ratings too: every file's review is found
    # in the cache (the raised helper's under the strong model), nothing would be sent.
    from agent.review import dry_run

    planned = asyncio.run(dry_run(ReviewRequest(cwd=tmp_path, diff_path=patch, config_path=config)))
    assert planned.plan.chunks == ()
    srv.requests.clear()
    pushed = {**BODIES, PLAIN: [*BODIES[PLAIN], "    # shout"]}
    second = run(pushed)
    triaged = [r for r in srv.requests if llm_server.is_triage(b"", r.body)]
    assert len(triaged) == 1
    shown = llm_server._messages_text(triaged[0].body, roles=("user",))
    assert PLAIN in shown and HELPER not in shown
    assert second.triage is not None
    risks = {f.path: (f.risk, f.rated) for f in second.triage.files}
    assert risks[HELPER] == ("high", "high")  # the kept rating, not the path's low
    # Only the changed file was reviewed again; the helper's review came from the cache, kept
    # under the strong model the kept rating routes it to.
    assert set(reviewed_by(srv)) == {PLAIN}
    assert any("kept their rating" in n for n in second.notes)
