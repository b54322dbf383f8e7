"""The review pipeline in-process, through a fake model transport (``tests/fakes.py``): retries,
repairs, splitting on context overflow, fallbacks, per-question validation, coverage, staged
synthesis, interruption, and what each leaves in the ledger."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from agent.client import ModelRequest
from agent.diff import parse_diff
from agent.errors import (
    ContextOverflowError,
    CredentialsError,
    ModelNotFoundError,
    RequestRejectedError,
    TransientError,
)
from agent.ledger import LedgerStore
from agent.replies import mentionable, strays
from agent.result import Review
from agent.review import ReviewRequest, run_review
from tests.conftest import ROOT
from tests.fakes import FakeTransport, good, sequence, user_text, wants, weak

EXAMPLE = ROOT / "examples" / "retry-charges.patch"


def write_config(tmp: Path, review: dict[str, Any] | None = None, **models: Any) -> Path:
    """primary (and, when given, fallback) on a loopback address nothing listens on: every call
    goes to the fake transport."""
    entries = {
        "primary": {
            "model": "openai/primary-model",
            "api_base": "http://127.0.0.1:9/v1",
            "context_window": 32000,
            "input_cost_per_token": 0.000001,
            "output_cost_per_token": 0.000002,
        }
    }
    for name, entry in models.items():
        entries[name] = {"api_base": "http://127.0.0.1:9/v1", **entry}
    cfg = {
        "default": "primary",
        "models": entries,
        "review": {"retry_backoff_seconds": 0, **(review or {})},
    }
    path = tmp / "providers.yaml"
    path.write_text(json.dumps(cfg))
    return path


def run(
    tmp: Path,
    transport: FakeTransport,
    config: Path | None = None,
    diff: bytes | None = None,
    **request: Any,
) -> Review:
    patch = tmp / "change.patch"
    patch.write_bytes(diff if diff is not None else EXAMPLE.read_bytes())
    req = ReviewRequest(
        cwd=tmp, diff_path=patch, config_path=config or write_config(tmp), **request
    )
    return asyncio.run(run_review(req, transport=transport))


def ledger() -> LedgerStore:
    return LedgerStore(os.environ["OWNIT_LEDGER_URL"])


def big_diff(files: int, lines: int = 30) -> bytes:
    out = []
    for f in range(files):
        out.append(f"diff --git a/pkg/mod{f}.py b/pkg/mod{f}.py\n--- a/pkg/mod{f}.py\n")
        out.append(f"+++ b/pkg/mod{f}.py\n@@ -1,1 +1,{lines + 1} @@\n import os\n")
        out.extend(
            f"+value_{f}_{n} = compute({n}, 'some text to make it longer')\n" for n in range(lines)
        )
    return "".join(out).encode()


# --- a well-behaved model -------------------------------------------------------------------


def test_a_good_model_gives_a_complete_review_recorded_call_by_call(tmp_path: Path) -> None:
    review = run(tmp_path, FakeTransport())
    assert review.complete and not review.problems
    assert review.coverage.files_reviewed == review.coverage.files_total == 3
    assert review.coverage.hunks_reviewed == review.coverage.hunks_total == 3
    # Every file's walkthrough is kept, not only the first one's.
    assert [f.path for f in review.files] == [
        "payments/client.py",
        "payments/config.py",
        "tests/test_client.py",
    ]
    (call,) = ledger().calls()
    assert call.outcome == "ok" and call.attempt == 1
    assert call.price_source == "providers.yaml" and call.input_cost_per_token == 0.000001
    assert call.cost_usd == pytest.approx(call.prompt_tokens * 1e-6 + call.completion_tokens * 2e-6)
    assert call.estimated_prompt_tokens >= call.prompt_tokens  # our estimate, made before sending
    (row,) = ledger().runs()
    assert (row.status, row.files_total, row.hunks_total) == ("complete", 3, 3)
    assert row.prompt_version and row.prompt_version == review.run.prompt_version


DELETED_SVG = (
    "diff --git a/assets/logo.svg b/assets/logo.svg\ndeleted file mode 100644\n"
    "--- a/assets/logo.svg\n+++ /dev/null\n@@ -1,200 +0,0 @@\n"
    + "".join(f'-<path d="M{i} {i}L{i + 1} {i + 3}" fill="#a0{i % 10}"/>\n' for i in range(200))
)


def test_a_deleted_file_is_summarized_not_sent_and_counted_apart(tmp_path: Path) -> None:
    transport = FakeTransport()
    diff = EXAMPLE.read_bytes() + DELETED_SVG.encode()
    review = run(tmp_path, transport, diff=diff)
    (request,) = transport.requests
    sent = user_text(request)
    # Named with its size, once; none of its 200 lines.
    assert "=== FILE assets/logo.svg (deleted, not shown) ===" in sent
    assert "(deleted (200 lines, " in sent and "M7 7L8 10" not in sent
    # Neither reviewed lines nor a failure: the review is complete, the file listed apart.
    assert review.complete, review.problems
    assert [s.path for s in review.coverage.summarized] == ["assets/logo.svg"]
    assert "reviewed as a deletion" in review.coverage.summarized[0].reason
    assert review.coverage.not_reviewed == []
    assert (review.coverage.hunks_reviewed, review.coverage.hunks_total) == (3, 4)
    assert (review.coverage.files_reviewed, review.coverage.files_total) == (3, 4)
    from agent.render.markdown import footer, render_markdown

    assert "## Summarized, not shown" in render_markdown(review)
    assert "(1 file(s) summarized)" in footer(review)


def test_a_diff_of_deletions_only_needs_no_walkthrough(tmp_path: Path) -> None:
    # The stand-in model writes walkthroughs only for files whose lines it sees: none here.
    review = run(tmp_path, FakeTransport(), diff=DELETED_SVG.encode())
    assert review.complete, review.problems
    assert [s.path for s in review.coverage.summarized] == ["assets/logo.svg"]
    assert [c.outcome for c in ledger().calls()] == ["ok"]


def test_a_summarized_file_whose_part_failed_is_not_reviewed_with_the_reason(
    tmp_path: Path,
) -> None:
    def handler(request: ModelRequest) -> Any:
        return RequestRejectedError("refused", status=400)

    review = run(tmp_path, FakeTransport(handler), diff=EXAMPLE.read_bytes() + DELETED_SVG.encode())
    assert review.coverage.summarized == []
    (logo,) = [n for n in review.coverage.not_reviewed if n.path == "assets/logo.svg"]
    assert "model call failed" in logo.reason


# --- provider errors ------------------------------------------------------------------------


def test_transient_errors_are_retried_each_attempt_a_ledger_row(tmp_path: Path) -> None:
    transport = FakeTransport(
        sequence(
            TransientError("primary failed: 503", status=503),
            TransientError("primary is rate limiting", status=429, retry_after=0),
            good,
        )
    )
    review = run(tmp_path, transport)
    assert review.complete
    calls = ledger().calls()
    assert [(c.outcome, c.attempt) for c in calls] == [("error", 1), ("error", 2), ("ok", 3)]
    assert [c.cost_usd for c in calls[:2]] == [0.0, 0.0]  # refused: nothing billed
    assert len({c.idempotency_key for c in calls}) == 3


def test_retry_after_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    transport = FakeTransport(
        sequence(TransientError("slow down", status=429, retry_after=7), good)
    )
    assert run(tmp_path, transport).complete
    assert 7 in slept


def test_a_bad_request_on_one_chunk_leaves_the_others_reviewed(tmp_path: Path) -> None:
    def handler(request: ModelRequest) -> Any:
        if "mod1.py" in user_text(request) and wants(request) == "ChunkReview":
            return RequestRejectedError("primary refused the request: invalid", status=400)
        return good(request)

    config = write_config(tmp_path, {"max_chunk_tokens": 700})  # a file per chunk
    review = run(tmp_path, FakeTransport(handler), config, diff=big_diff(4))
    assert not review.complete and review.interrupted is None
    assert [n.path for n in review.coverage.not_reviewed] == ["pkg/mod1.py"]
    assert "invalid" in review.coverage.not_reviewed[0].reason
    assert review.coverage.files_reviewed == 3
    assert {f.path for f in review.files} == {"pkg/mod0.py", "pkg/mod2.py", "pkg/mod3.py"}
    assert (ledger().runs()[0].status) == "incomplete"


def test_rejected_credentials_everywhere_mean_no_usable_model(tmp_path: Path) -> None:
    transport = FakeTransport(lambda r: CredentialsError("primary rejected the credentials"))
    config = write_config(tmp_path, {"max_chunk_tokens": 500, "concurrency": 1})
    review = run(tmp_path, transport, config, diff=big_diff(3))
    assert not review.complete and review.no_usable_model
    assert review.coverage.files_reviewed == 0
    assert review.problems and all("rejected the credentials" in p for p in review.problems)
    # The model is known to be unusable after the first refusal: no call per chunk after it.
    assert len(transport.requests) == 1


# --- fallbacks ------------------------------------------------------------------------------


def fallback_config(tmp: Path, review: dict[str, Any] | None = None) -> Path:
    return write_config(
        tmp,
        review,
        fallback={
            "model": "openai/fallback-model",
            "context_window": 32000,
            "input_cost_per_token": 0.000003,
            "output_cost_per_token": 0.000004,
        },
    ).parent.joinpath("providers.yaml")


def with_fallbacks(path: Path) -> Path:
    cfg = json.loads(path.read_text())
    cfg["models"]["primary"]["fallbacks"] = ["fallback"]
    path.write_text(json.dumps(cfg))
    return path


def test_a_missing_model_hands_every_chunk_to_the_fallback(tmp_path: Path) -> None:
    def handler(request: ModelRequest) -> Any:
        if request.model.name == "primary":
            return ModelNotFoundError("primary was not found", status=404)
        return good(request)

    transport = FakeTransport(handler)
    config = with_fallbacks(fallback_config(tmp_path, {"max_chunk_tokens": 500, "concurrency": 1}))
    review = run(tmp_path, transport, config, diff=big_diff(3))
    assert review.complete
    calls = ledger().calls()
    assert [c.model_name for c in calls if c.outcome == "error"] == ["primary"]  # once only
    answered = [c for c in calls if c.outcome == "ok"]
    assert answered and all(c.model_name == "fallback" for c in answered)
    assert all(c.fallback_from == "primary" for c in answered)
    assert all(c.input_cost_per_token == 0.000003 for c in answered)  # the fallback's price
    assert review.usage.fallback_calls == len(answered)
    assert review.usage.models == ["openai/fallback-model"]


def test_after_retries_a_chunk_moves_to_the_fallback(tmp_path: Path) -> None:
    def handler(request: ModelRequest) -> Any:
        if request.model.name == "primary":
            return TransientError("primary failed: 500", status=500)
        return good(request)

    config = with_fallbacks(fallback_config(tmp_path, {"retries": 1}))
    review = run(tmp_path, FakeTransport(handler), config)
    assert review.complete
    outcomes = [(c.model_name, c.outcome) for c in ledger().calls()]
    assert outcomes == [("primary", "error"), ("primary", "error"), ("fallback", "ok")]


def test_an_unusable_reply_moves_to_the_fallback(tmp_path: Path) -> None:
    def handler(request: ModelRequest) -> Any:
        return "I cannot do that." if request.model.name == "primary" else good(request)

    config = with_fallbacks(fallback_config(tmp_path, {"repair_attempts": 1}))
    review = run(tmp_path, FakeTransport(handler), config)
    assert review.complete
    outcomes = [(c.model_name, c.outcome) for c in ledger().calls()]
    assert outcomes == [
        ("primary", "invalid_output"),
        ("primary", "invalid_output"),
        ("fallback", "ok"),
    ]


# --- repairs and weak models ----------------------------------------------------------------


def test_an_invalid_reply_is_sent_back_once_with_the_reason(tmp_path: Path) -> None:
    transport = FakeTransport(sequence("Sure! Here is my review: it looks fine.", good))
    review = run(tmp_path, transport)
    assert review.complete
    assert [c.outcome for c in ledger().calls()] == ["invalid_output", "ok"]
    repair = transport.requests[1].messages
    assert repair[-2] == {"role": "assistant", "content": "Sure! Here is my review: it looks fine."}
    assert "not a JSON object" in repair[-1]["content"]


def test_a_cut_off_reply_is_not_sent_back(tmp_path: Path) -> None:
    transport = FakeTransport()
    cut = '{"summary": "Adds retries", "files": [{"path": "payments/cli'

    def handler(request: ModelRequest) -> Any:
        if len(transport.requests) == 1:
            return transport.completion(request, cut, truncated=True)
        return good(request)

    transport.handler = handler
    review = run(tmp_path, transport)
    assert review.complete
    repair = transport.requests[1].messages
    assert all(m["content"] != cut for m in repair)  # not the broken reply again
    assert "cut off" in repair[-1]["content"] and "shorter" in repair[-1]["content"]
    (first, _) = ledger().calls()
    assert first.outcome == "invalid_output" and "cut off" in (first.error or "")


def test_questions_at_line_zero_are_dropped_one_by_one(tmp_path: Path) -> None:
    review = run(tmp_path, FakeTransport(weak("line0")))
    assert review.complete, review.problems
    assert review.questions  # the valid ones stand
    assert review.dropped.questions_invalid >= 2
    assert any("at least 1" in e.reason for e in review.dropped.examples)
    assert all(q.anchor.start_line >= 1 for q in review.questions)
    assert [c.outcome for c in ledger().calls()] == ["ok"]  # no paid repair round for it


@pytest.mark.parametrize(
    ("switch", "kind"),
    [("badcategory", "questions_invalid"), ("halfbad", "questions_outside_diff")],
)
def test_unknown_categories_and_invented_anchors_are_counted(
    tmp_path: Path, switch: str, kind: str
) -> None:
    review = run(tmp_path, FakeTransport(weak(switch)))
    assert review.complete
    assert getattr(review.dropped, kind) >= 1
    assert review.dropped.questions == getattr(review.dropped, kind)
    assert review.questions


@pytest.mark.parametrize("switch", ["empty", "echo"])
def test_an_empty_or_echoed_reply_is_not_a_review(tmp_path: Path, switch: str) -> None:
    review = run(tmp_path, FakeTransport(weak(switch)))
    assert not review.complete
    assert review.coverage.files_reviewed == 0 and review.coverage.hunks_reviewed == 0
    assert [c.outcome for c in ledger().calls()] == ["invalid_output", "invalid_output"]
    assert "part 1" in review.problems[0]


def test_a_file_the_reply_does_not_explain_is_not_counted_reviewed(tmp_path: Path) -> None:
    review = run(tmp_path, FakeTransport(weak("missingfile")))
    assert not review.complete
    assert review.coverage.files_reviewed == 1
    assert {n.path for n in review.coverage.not_reviewed} == {
        "payments/config.py",
        "tests/test_client.py",
    }
    assert all("not explained" in n.reason for n in review.coverage.not_reviewed)


def test_walkthroughs_and_risk_reasons_about_other_files_are_dropped(tmp_path: Path) -> None:
    review = run(tmp_path, FakeTransport(weak("strayrisk")))
    assert review.complete
    assert "src/not_in_diff.py" not in review.model_dump_json(exclude={"dropped"})
    assert review.dropped.walkthroughs == 1 and review.dropped.risk_reasons == 1


def test_a_risk_reason_may_name_a_file_of_the_diff_by_path_tail_or_name() -> None:
    diff = parse_diff("--- a/src/pay/Charges.py\n+++ b/src/pay/Charges.py\n@@ -1 +1 @@\n-a\n+b\n")
    known = mentionable(diff)
    named = "src/pay/charges.py, pay/Charges.py and CHARGES.PY change; so do ay/charges.py,"
    assert strays(named + " x/charges.py and refunds.py", known) == [
        "ay/charges.py",
        "x/charges.py",
        "refunds.py",
    ]


# --- windows --------------------------------------------------------------------------------


def overflow_above(limit: int, transport: FakeTransport) -> Any:
    """A server whose real window is ``limit`` tokens, whatever the configuration says."""
    from agent.tokens import count_messages

    def handler(request: ModelRequest) -> Any:
        used = count_messages(request.messages) + request.max_tokens
        if used > limit:
            return ContextOverflowError(
                f"This model's maximum context length is {limit} tokens",
                window=limit,
                status=400,
            )
        return good(request)

    return handler


def test_a_server_window_smaller_than_configured_splits_chunks_not_the_review(
    tmp_path: Path,
) -> None:
    transport = FakeTransport()
    transport.handler = overflow_above(6000, transport)
    config = write_config(tmp_path, {"max_chunk_tokens": 20000, "max_output_tokens": 1500})
    review = run(tmp_path, transport, config, diff=big_diff(12, 40))
    assert review.complete, review.problems
    assert review.coverage.hunks_reviewed == review.coverage.hunks_total == 12
    purposes = {c.purpose for c in ledger().calls()}
    assert "chunk-1" in purposes and any(p.startswith("chunk-1.") for p in purposes)
    refused = [c for c in ledger().calls() if c.outcome == "error"]
    # Refused twice (a first refusal, before anything was answered, is asked again), then
    # learnt: no other call was refused.
    assert [c.purpose for c in refused] == ["chunk-1", "chunk-1"]


def test_a_tokenizer_that_counts_more_is_learnt(tmp_path: Path) -> None:
    """The model counts 50% more than o200k (CJK text, code): after the first reply every
    prompt is sized with the model's own count, and nothing overflows."""
    transport = FakeTransport(token_ratio=1.5)
    limit = 7000

    def handler(request: ModelRequest) -> Any:
        from agent.tokens import count_messages

        if count_messages(request.messages) * 1.5 + request.max_tokens > limit:
            return ContextOverflowError("too long", window=limit, status=400)
        return good(request)

    transport.handler = handler
    config = write_config(
        tmp_path,
        {"max_chunk_tokens": 20000, "max_output_tokens": 1200, "concurrency": 1},
        primary={"model": "openai/primary-model", "context_window": limit},
    )
    # Files small next to a chunk: the packed chunks are full, so the first one overflows.
    review = run(tmp_path, transport, config, diff=big_diff(20, 30))
    assert review.complete, review.problems
    assert review.coverage.hunks_reviewed == 20
    calls = ledger().calls()
    # Only the first chunk, sent before any reply, was refused (and asked again once); later
    # ones were sized (and split when needed) with the model's own count, before sending.
    assert [c.purpose for c in calls if c.outcome == "error"] == ["chunk-1", "chunk-1"]
    first_answer = next(i for i, c in enumerate(calls) if c.outcome == "ok")
    assert all(c.estimated_prompt_tokens >= c.prompt_tokens for c in calls[first_answer + 1 :])


def test_a_line_too_large_for_any_window_is_not_reviewed_with_the_reason(tmp_path: Path) -> None:
    def handler(request: ModelRequest) -> Any:
        return ContextOverflowError("prompt is too long", status=400)

    review = run(tmp_path, FakeTransport(handler))
    assert not review.complete
    assert any("too large" in p for p in review.problems)


def test_split_hunk_counts_reviewed_only_when_every_piece_is(tmp_path: Path) -> None:
    """One hunk larger than a chunk is split in pieces; one piece failing leaves the hunk not
    reviewed (it used to count as reviewed when its last piece succeeded)."""
    calls = {"n": 0}

    def handler(request: ModelRequest) -> Any:
        if wants(request) == "ChunkReview":
            calls["n"] += 1
            if calls["n"] == 1:
                return RequestRejectedError("refused", status=400)
        return good(request)

    config = write_config(tmp_path, {"max_chunk_tokens": 500, "concurrency": 1})
    review = run(tmp_path, FakeTransport(handler), config, diff=big_diff(1, 120))
    assert review.coverage.hunks_total == 1
    assert review.coverage.hunks_reviewed == 0
    assert not review.complete


def test_synthesis_that_does_not_fit_is_done_in_stages(tmp_path: Path) -> None:
    transport = FakeTransport()
    config = write_config(
        tmp_path,
        {"max_chunk_tokens": 500, "max_output_tokens": 1024},
        primary={
            "model": "openai/primary-model",
            "context_window": 3800,
            "input_cost_per_token": 0.000001,
            "output_cost_per_token": 0.000002,
        },
    )
    review = run(tmp_path, transport, config, diff=big_diff(30, 12))
    assert review.complete, review.problems
    purposes = [c.purpose for c in ledger().calls()]
    assert "synthesis" in purposes
    assert any(p.startswith("synthesis-1.") for p in purposes)
    assert any("stages" in n for n in review.notes)
    assert all(c.outcome == "ok" for c in ledger().calls())


def staged_config(tmp: Path) -> Path:
    return write_config(
        tmp,
        {"max_chunk_tokens": 500, "max_output_tokens": 1024, "concurrency": 4},
        primary={
            "model": "openai/primary-model",
            "context_window": 3800,
            "input_cost_per_token": 0.000001,
            "output_cost_per_token": 0.000002,
        },
    )


def test_the_batches_of_a_synthesis_stage_are_asked_at_once(tmp_path: Path) -> None:
    busy = {"now": 0, "most": 0}

    class Slow(FakeTransport):
        async def complete(self, request: ModelRequest) -> Any:
            staged = wants(request) == "Synthesis"
            if staged:
                busy["now"] += 1
                busy["most"] = max(busy["most"], busy["now"])
                await asyncio.sleep(0.05)
                busy["now"] -= 1
            return await super().complete(request)

    review = run(tmp_path, Slow(), staged_config(tmp_path), diff=big_diff(30, 12))
    assert review.complete, review.problems
    batches = [c.purpose for c in ledger().calls() if c.purpose.startswith("synthesis-1.")]
    assert len(batches) >= 2
    assert busy["most"] >= 2  # the stage's batches overlapped; concurrency bounds them
    assert busy["most"] <= 4


def test_a_failed_synthesis_batch_leaves_the_parts_own_summaries(tmp_path: Path) -> None:
    def handler(request: ModelRequest) -> Any:
        if wants(request) == "Synthesis":
            return RequestRejectedError("primary refused the request: invalid", status=400)
        return good(request)

    review = run(tmp_path, FakeTransport(handler), staged_config(tmp_path), diff=big_diff(30, 12))
    assert review.complete  # every part was reviewed; only the PR-level summary is missing
    assert any("PR-level summary could not be written" in n for n in review.notes)
    assert review.summary


# --- interruption ---------------------------------------------------------------------------


def test_an_interrupted_run_keeps_what_it_has_and_every_call(tmp_path: Path) -> None:
    """Three chunks answered in the same instant (LangGraph reports them as one update), three
    more in flight when SIGTERM arrives: the three count as reviewed, the three in flight are
    in the ledger as outcome unknown, the run as interrupted."""
    gate = asyncio.Event()
    transport = FakeTransport(gate=gate)

    async def scenario() -> Review:
        patch = tmp_path / "change.patch"
        patch.write_bytes(big_diff(6, 20))
        config = write_config(tmp_path, {"max_chunk_tokens": 600, "concurrency": 3})
        req = ReviewRequest(cwd=tmp_path, diff_path=patch, config_path=config)
        task = asyncio.create_task(run_review(req, transport=transport))
        while len(transport.requests) < 3:
            await asyncio.sleep(0.01)
        gate.set()  # the first three answer together
        await asyncio.sleep(0)
        gate.clear()  # the next three hang in flight
        while len(transport.requests) < 6:
            await asyncio.sleep(0.01)
        task.cancel("SIGTERM")
        return await task

    review = asyncio.run(scenario())
    assert review.interrupted == "SIGTERM" and not review.complete
    calls = ledger().calls()
    assert sorted(c.outcome for c in calls) == ["ok"] * 3 + ["unknown"] * 3
    assert review.coverage.files_reviewed == 3 and review.coverage.hunks_reviewed == 3
    assert ledger().runs()[0].status == "interrupted"
    assert len(review.calls) == len(calls)
    assert sum("interrupted" in n.reason for n in review.coverage.not_reviewed) == 3


# --- structured output ----------------------------------------------------------------------


def test_a_model_litellm_does_not_know_is_still_asked_for_the_schema(tmp_path: Path) -> None:
    transport = FakeTransport()
    config = write_config(tmp_path, primary={"model": "openai/qwen2.5-coder"})
    run(tmp_path, transport, config)
    assert transport.requests[0].schema is not None
    assert transport.requests[0].schema.__name__ == "ChunkReview"


def test_a_server_that_refuses_response_format_gets_the_schema_in_the_prompt(
    tmp_path: Path,
) -> None:
    def handler(request: ModelRequest) -> Any:
        if request.schema is not None:
            return RequestRejectedError("response_format is not supported", status=400)
        return good(request)

    transport = FakeTransport(handler)
    review = run(tmp_path, transport)
    assert review.complete
    assert [r.schema is None for r in transport.requests] == [False, True]
    assert any("response_format" in n for n in review.notes)


def test_updates_of_parallel_chunks_reported_together_are_all_kept() -> None:
    """LangGraph reports parallel tasks of one node that finish in the same step as one update
    holding a list; a run interrupted after such a step must keep every result in it."""
    from agent.review import _consume

    async def stream() -> Any:
        yield {"plan": {"plan": None}}
        yield {"explain": [{"results": ["a"]}, {"results": ["b", "c"]}]}
        yield {"explain": {"results": ["d"]}}

    seen: dict[str, Any] = {"results": []}
    ctx: Any = type("Ctx", (), {"recorder": None})()
    asyncio.run(_consume(stream(), ctx, seen))
    assert seen["results"] == ["a", "b", "c", "d"]


def test_a_call_that_may_have_been_billed_is_not_recorded_as_free(tmp_path: Path) -> None:
    transport = FakeTransport(
        sequence(
            TransientError("primary: connection dropped mid-answer", billing_unknown=True),
            TransientError("primary: 503", status=503),
            good,
        )
    )
    review = run(tmp_path, transport)
    assert review.complete
    cut, refused, ok = ledger().calls()
    assert (cut.outcome, cut.cost_usd, cut.price_source) == ("error", None, None)
    assert (refused.outcome, refused.cost_usd) == ("error", 0.0)
    assert ok.cost_usd and ok.cost_usd > 0
    assert review.usage.unknown_calls == 1 and not review.usage.cost_complete


def test_a_refusal_for_size_below_what_was_answered_is_retried_not_learnt(
    tmp_path: Path,
) -> None:
    """A pool of servers with different windows (or a flaky proxy) refuses a request for size
    after answering ones at least as large: that says nothing about the window; it is retried and
    the rest of the run keeps the window."""
    largest, refusals = {"chars": 0}, []

    def handler(request: ModelRequest) -> Any:
        if wants(request) == "ChunkReview":
            size = len(user_text(request))
            if size <= largest["chars"] and not refusals:
                refusals.append(size)  # no larger than one already answered
                return ContextOverflowError(
                    "This model's maximum context length is 2000 tokens", window=2000, status=400
                )
            largest["chars"] = max(largest["chars"], size)
        return good(request)

    config = write_config(tmp_path, {"max_chunk_tokens": 800, "concurrency": 1})
    review = run(tmp_path, FakeTransport(handler), config, diff=big_diff(5, 30))
    assert review.complete, review.problems
    assert refusals, "no request was as small as one answered before it: the test proves nothing"
    calls = ledger().calls()
    refused = [c for c in calls if c.outcome == "error"]
    assert len(refused) == 1
    # Retried as it was, not split: no part smaller than the plan's chunks was sent.
    assert not any(c.purpose.count(".") for c in calls)
    assert [c.purpose for c in calls].count(refused[0].purpose) == 2


def test_a_window_too_small_for_the_prompt_sends_every_part_to_the_fallback(
    tmp_path: Path,
) -> None:
    """The primary's real window cannot hold even the instructions: splitting cannot help, so
    the parts go to the fallback instead of being split to single lines and dropped."""

    def handler(request: ModelRequest) -> Any:
        if request.model.name == "primary":
            return ContextOverflowError(
                "This model's maximum context length is 1200 tokens", window=1200, status=400
            )
        return good(request)

    config = with_fallbacks(fallback_config(tmp_path, {"max_chunk_tokens": 600, "concurrency": 1}))
    transport = FakeTransport(handler)
    review = run(tmp_path, transport, config, diff=big_diff(4, 20))
    assert review.complete, review.problems
    calls = ledger().calls()
    # Learnt from the first refusal, asked again once: the primary is not tried after that.
    assert [c.model_name for c in calls if c.outcome == "error"] == ["primary", "primary"]
    assert all(c.model_name == "fallback" for c in calls if c.outcome == "ok")
    assert not any("." in c.purpose.removeprefix("chunk-") for c in calls)
    assert len(transport.requests) == len(calls)


def test_a_line_too_long_for_the_primary_goes_to_a_fallback_with_a_larger_window(
    tmp_path: Path,
) -> None:
    from agent.tokens import count_messages

    def handler(request: ModelRequest) -> Any:
        if request.model.name == "primary" and count_messages(request.messages) > 1800:
            return ContextOverflowError("prompt is too long", window=2200, status=400)
        return good(request)

    long_line = "x = '" + "word " * 1500 + "'"
    diff = f"--- a/a.py\n+++ b/a.py\n@@ -1 +1,2 @@\n a = 1\n+{long_line}\n".encode()
    config = with_fallbacks(fallback_config(tmp_path, {"max_chunk_tokens": 6000}))
    transport = FakeTransport(handler)
    review = run(tmp_path, transport, config, diff=diff)
    assert review.complete, review.problems
    # Split as far as it goes, the part holding the long line went to the fallback.
    (part,) = [c for c in ledger().calls() if c.model_name == "fallback"]
    assert part.outcome == "ok" and part.fallback_from == "primary"
    sent = [r for r in transport.requests if r.model.name == "fallback"]
    assert "word word" in sent[0].messages[1]["content"]


def test_a_first_refusal_for_size_is_asked_again_before_it_is_believed(tmp_path: Path) -> None:
    """Before anything was answered there is nothing to compare a refusal with; believing a
    flaky one would shrink the window for the whole run and split every part."""
    transport = FakeTransport(
        sequence(
            ContextOverflowError("maximum context length is 1000 tokens", window=1000, status=400),
            good,
        )
    )
    config = write_config(tmp_path, {"max_chunk_tokens": 800, "concurrency": 1})
    review = run(tmp_path, transport, config, diff=big_diff(3, 30))
    assert review.complete, review.problems
    calls = ledger().calls()
    assert [c.outcome for c in calls].count("error") == 1
    assert not any("." in c.purpose.removeprefix("chunk-") for c in calls)  # nothing split


def test_the_synthesis_is_shown_a_shortlist_of_the_candidates(tmp_path: Path) -> None:
    """A large PR's synthesis prompt does not grow with every question of every part: it orders
    the strongest 2 x max_questions; the review still asks the best max_questions."""
    transport = FakeTransport()
    config = write_config(tmp_path, {"max_chunk_tokens": 700, "max_questions": 4})
    review = run(tmp_path, transport, config, diff=big_diff(12))
    (synthesis,) = [r for r in transport.requests if wants(r) == "Synthesis"]
    shown = re.findall(r"^\[Q\d+\]", user_text(synthesis), re.M)
    chunk_questions = sum(
        len(json.loads(json.dumps(good(r)))["questions"])
        for r in transport.requests
        if wants(r) == "ChunkReview"
    )
    assert chunk_questions > 8  # more candidates than the shortlist holds
    assert len(shown) == 8
    assert len(review.questions) == 4 and review.questions_omitted == chunk_questions - 4
