"""``ownit review`` against providers that misbehave as real ones do, through the CLI: every
failure ends in a clear message and a documented exit code, never a traceback; spend is kept;
keys appear nowhere. Model traffic replays from cassettes recorded against
``tests/llm_server.py`` (see cassettes/README.md)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.client import ModelRequest
from agent.ledger import LedgerStore, RunInfo
from tests.conftest import SECRET
from tests.fakes import FakeTransport, good
from tests.test_review_cli import EXAMPLE, ledger_calls, local_config, model_config, review

runner = CliRunner()


def everything_written(result: Any, out: Path, tmp: Path) -> list[tuple[str, bytes]]:
    """Every place a key could leak to: the terminal, the artifacts, the ledger, spools."""
    places = [("stdout", result.stdout.encode()), ("stderr", result.stderr.encode())]
    for path in [*out.rglob("*"), *tmp.rglob("*.jsonl"), *tmp.rglob("*.db")]:
        if path.is_file():
            places.append((str(path), path.read_bytes()))
    return places


def test_a_400_is_a_clear_error_and_the_review_is_written(cassette: Any, tmp_path: Path) -> None:
    config = model_config(tmp_path, "strict", "openai/badrequest-model", {"retries": 3})
    out = tmp_path / "out"
    result = review("--diff", str(EXAMPLE), "--config", str(config), "--out", str(out))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "refused the request" in result.stderr and "this model rejects" in result.stderr
    data = json.loads((out / "ownit-review.json").read_text())
    assert data["complete"] is False and len(data["calls"]) == 1  # a 400 is not retried
    (call,) = ledger_calls()
    assert (call.outcome, call.cost_usd) == ("error", 0.0)  # refused: nothing billed
    assert "rejects every request" in (call.error or "")


def test_a_model_that_does_not_exist_is_exit_3_with_the_fix(cassette: Any, tmp_path: Path) -> None:
    config = model_config(tmp_path, "typo", "openai/notfound-model")
    result = review("--diff", str(EXAMPLE), "--config", str(config))
    assert result.exit_code == 3
    assert "Traceback" not in result.output
    assert "was not found" in result.stderr and "openai/notfound-model" in result.stderr
    assert "ownit models" in result.stderr
    assert [c.outcome for c in ledger_calls()] == ["error"]


def test_a_window_smaller_than_configured_splits_the_chunk(
    cassette: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """The server's real window (1,850 tokens) is smaller than providers.yaml says: the first
    call is refused for size, ownit learns the window from the message and reviews the diff
    in smaller parts."""
    monkeypatch.setenv("LOCAL_LLM_KEY", "unused")
    config = model_config(
        tmp_path,
        "small",
        "openai/ctx1850-model",
        {"retry_backoff_seconds": 0, "max_output_tokens": 1024},
        api_key="${LOCAL_LLM_KEY}",
        context_window=32000,
        input_cost_per_token=0.000001,
        output_cost_per_token=0.000002,
    )
    out = tmp_path / "out"
    result = review("--diff", str(EXAMPLE), "--config", str(config), "--out", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads((out / "ownit-review.json").read_text())
    assert data["coverage"]["hunks_reviewed"] == data["coverage"]["hunks_total"] == 3
    calls = ledger_calls()
    # Refused for size, asked once more (nothing had been answered yet to compare with), then
    # believed: the rest are the parts and one synthesis, all answered.
    refused, answered = calls[:2], calls[2:]
    for call in refused:
        assert call.outcome == "error" and "maximum context length is 1850" in (call.error or "")
        assert call.cost_usd == 0.0  # refused: nothing billed
    assert all(c.outcome == "ok" for c in answered)
    halves = [c.purpose for c in answered if c.purpose.startswith("chunk-1.")]
    assert len(halves) >= 2 and len(answered) == len(halves) + 1


@pytest.mark.parametrize("status", ["unauthorized", "notfound", "error500"])
def test_a_key_the_provider_echoes_appears_nowhere(
    cassette: Any, tmp_path: Path, monkeypatch: Any, status: str
) -> None:
    """An OpenAI-compatible server that puts the bearer token in its error bodies, reached
    through the vendor's usual variables (so providers.yaml does not know the key)."""
    from tests.conftest import SERVER_URL

    monkeypatch.setenv("OPENAI_API_BASE", f"{SERVER_URL}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = tmp_path / "out"
    config = tmp_path / "p.yaml"
    config.write_text('{"review": {"retries": 1, "retry_backoff_seconds": 0}}')
    result = review(
        "--diff",
        str(EXAMPLE),
        "--model",
        f"openai/echokey-{status}-model",
        "--config",
        str(config),
        "--format",
        "terminal,markdown,json",
        "--out",
        str(out),
    )
    assert result.exit_code in (1, 3)
    # The recording really holds the echoed key (as a placeholder on disk).
    bodies = [r["body"]["string"] for r in cassette.responses]
    assert any(SECRET in (b.decode() if isinstance(b, bytes) else b) for b in bodies)
    assert "***" in result.stderr  # the provider's message is shown, the key masked
    for where, content in everything_written(result, out, tmp_path):
        assert SECRET.encode() not in content, f"the key leaked into {where}"


def test_a_bad_ledger_url_fails_before_any_model_is_called(tmp_path: Path) -> None:
    config = model_config(tmp_path, "any", "openai/gpt-local")
    result = review("--diff", str(EXAMPLE), "--config", str(config), "--ledger", "not a url")
    assert result.exit_code == 2
    assert "not an SQLAlchemy URL" in result.stderr and "sqlite:///" in result.stderr
    assert "Traceback" not in result.output


def test_an_unwritable_data_dir_spools_next_to_the_artifacts(
    cassette: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("LOCAL_LLM_KEY", "unused")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker / "data"))  # cannot be created
    monkeypatch.setenv("OWNIT_LEDGER_URL", f"sqlite:///{blocker}/ledger.db")
    out = tmp_path / "out"
    result = review(
        "--diff", str(EXAMPLE), "--config", str(local_config(tmp_path)), "--out", str(out)
    )
    assert result.exit_code == 4, result.output
    spools = list(out.glob("ownit-spool-*.jsonl"))
    assert len(spools) == 1, result.stderr
    assert str(spools[0]) in result.stderr and "ownit-review.json" in result.stderr
    good_ledger = f"sqlite:///{tmp_path / 'good.db'}"
    imported = runner.invoke(app, ["ledger", "import", str(spools[0]), "--ledger", good_ledger])
    assert imported.exit_code == 0 and "1 call(s) added" in imported.output


def test_sigterm_writes_what_was_reviewed_and_exits_143(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM during a review (a CI job cancelled): the partial review is written, every call
    made is in the ledger, the run says interrupted."""
    answered = {"n": 0}

    def handler(request: ModelRequest) -> Any:
        answered["n"] += 1
        if answered["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the event loop's handler
        return good(request)

    monkeypatch.setattr("agent.review.LiteLLMTransport", lambda *_: FakeTransport(handler))
    diff = tmp_path / "big.patch"
    diff.write_text(
        "".join(
            f"--- a/m{n}.py\n+++ b/m{n}.py\n@@ -1 +1,16 @@\n x\n"
            + "".join(f"+line_{n}_{k} = compute({k}, 'padding text here')\n" for k in range(15))
            for n in range(6)
        )
    )
    config = model_config(
        tmp_path, "p", "openai/gpt-local", {"max_chunk_tokens": 600, "concurrency": 1}
    )
    out = tmp_path / "out"
    result = review(str(diff), "--config", str(config), "--format", "json", "--out", str(out))
    assert result.exit_code == 143, result.output
    data = json.loads((out / "ownit-review.json").read_text())
    assert data["interrupted"] == "SIGTERM" and data["complete"] is False
    assert 0 < data["coverage"]["files_reviewed"] < 6
    (run,) = LedgerStore(os.environ["OWNIT_LEDGER_URL"]).runs()
    assert run.status == "interrupted"
    assert len(ledger_calls()) == len(data["calls"]) >= 2


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"calls": null}', '"calls" must be a list'),
        (b'{"calls": 5}', '"calls" must be a list'),
        (b"\xff\xfe not utf-8", "not UTF-8"),
        (b'{"name": "web"}', 'without "calls"'),
    ],
)
def test_import_refuses_what_is_not_a_ledger_file(
    tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(content)
    result = runner.invoke(app, ["ledger", "import", str(path)])
    assert result.exit_code == 2
    assert says in result.stderr and "Traceback" not in result.output


def test_import_refuses_negative_counts_and_huge_pr_numbers(tmp_path: Path) -> None:
    row = {
        "run_id": "r1",
        "created_at": "2026-01-01T00:00:00Z",
        "purpose": "chunk-1",
        "model_name": "m",
        "model": "openai/m",
        "provider": "openai",
        "outcome": "ok",
        "prompt_tokens": -5,
        "cost_usd": -4.96,
        "pr_number": 2**70,
    }
    path = tmp_path / "ownit-review.json"
    path.write_text(json.dumps({"calls": [row]}))
    result = runner.invoke(app, ["ledger", "import", str(path)])
    assert result.exit_code == 2
    for words in ("prompt_tokens: must be at least 0", "cost_usd", "pr_number"):
        assert words in result.stderr
    assert "errors.pydantic.dev" not in result.stderr
    assert LedgerStore(os.environ["OWNIT_LEDGER_URL"]).calls() == []


def test_ledger_repair_closes_runs_whose_process_is_gone() -> None:
    from datetime import UTC, datetime

    from agent.ledger.store import host_name

    store = LedgerStore(os.environ["OWNIT_LEDGER_URL"])
    store.start_run(
        RunInfo(id="dead-run", started_at=datetime.now(UTC), host=host_name(), pid=2**22 + 7)
    )
    result = runner.invoke(app, ["ledger", "repair"])
    assert result.exit_code == 0 and "1 run(s) marked interrupted" in result.stdout
    assert store.runs()[0].status == "interrupted"
    again = runner.invoke(app, ["ledger", "repair"])
    assert "no interrupted runs" in again.stdout


def test_artifacts_only_still_say_what_the_review_found(
    cassette: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("LOCAL_LLM_KEY", "unused")
    out = tmp_path / "out"
    result = review(
        "--diff",
        str(EXAMPLE),
        "--config",
        str(local_config(tmp_path)),
        "--format",
        "markdown,json",
        "--out",
        str(out),
    )
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "ownit: files 3/3 · hunks 3/3" in result.stderr
    assert f"wrote {out / 'ownit-review.md'}" in result.stderr


def test_config_path_names_every_layer(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config-path"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("bundled") and lines[0].endswith("providers.yaml")
    assert lines[1].startswith("user") and "ownit/providers.yaml" in lines[1]


def test_a_request_the_recording_does_not_hold_fails_at_once_saying_so(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Replaying a cassette whose recorded request differs (a prompt changed) must say so, not
    look like a provider outage retried with back-off."""
    from tests.conftest import make_vcr

    monkeypatch.setenv("LOCAL_LLM_KEY", "unused")
    other = tmp_path / "other.patch"
    other.write_text("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n")
    name = "test_cli_failures/test_artifacts_only_still_say_what_the_review_found.yaml"
    with make_vcr().use_cassette(name, allow_playback_repeats=False):
        result = review(str(other), "--config", str(local_config(tmp_path, retries=3)))
    assert result.exit_code == 1
    assert "CannotOverwriteExistingCassette" in result.stderr
    assert [c.outcome for c in ledger_calls()] == ["error"]  # not retried
