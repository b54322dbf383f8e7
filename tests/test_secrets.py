"""Nothing sensitive leaves the machine or leaks into output.

Credentials planted in a diff (``tests/planted.py``: twelve kinds, generated, never real) must
not reach the model, the artifacts or the ledger, and the review must name where each was. Keys
must not appear in anything ownit prints or writes, whichever way they arrive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.client import ModelRequest
from agent.diff import parse_diff
from agent.errors import TransientError
from agent.ledger import LedgerStore
from agent.masking import mask
from agent.render.artifacts import write_artifacts
from agent.result import Review
from agent.review import ReviewRequest, run_review
from tests.conftest import SECRET
from tests.fakes import FakeTransport, good
from tests.planted import planted_diff

runner = CliRunner()


def config(tmp: Path, **review: Any) -> Path:
    cfg = {
        "default": "local",
        "models": {
            "local": {
                "model": "openai/gpt-local",
                "api_base": "http://127.0.0.1:9/v1",
                "api_key": "${LOCAL_LLM_KEY}",
                "context_window": 32000,
                "input_cost_per_token": 0.000001,
                "output_cost_per_token": 0.000002,
            }
        },
        "review": {"retry_backoff_seconds": 0, **review},
    }
    path = tmp / "providers.yaml"
    path.write_text(json.dumps(cfg))
    return path


def review_planted(
    tmp: Path, transport: FakeTransport, *, mask_secrets: bool = True, **review: Any
) -> Review:
    data, _, _ = planted_diff()
    patch = tmp / "planted.patch"
    patch.write_bytes(data)
    request = ReviewRequest(
        cwd=tmp,
        diff_path=patch,
        config_path=config(tmp, **review),
        mask=mask_secrets,
        out_dir=tmp / "out",
        formats=("markdown", "json"),
    )
    return asyncio.run(run_review(request, transport=transport))


def everything_kept(tmp: Path) -> bytes:
    """Every file ownit wrote under the test's directory (artifacts, ledger, spools): all but
    the test's own input."""
    files = [p for p in sorted(tmp.rglob("*")) if p.is_file() and p.suffix != ".patch"]
    assert any(p.suffix == ".db" for p in files) and any(p.suffix == ".json" for p in files)
    return b"".join(p.read_bytes() for p in files)


def test_planted_credentials_reach_neither_the_model_nor_any_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_LLM_KEY", "unused-key-123")
    transport = FakeTransport()
    review = review_planted(tmp_path, transport)
    write_artifacts(review, ("markdown", "json"), tmp_path / "out")
    _, _, planted = planted_diff()
    assert len({p.kind for p in planted if p.kind != "(not sent)"}) >= 11

    sent = json.dumps([r.messages for r in transport.requests], ensure_ascii=False)
    kept = everything_kept(tmp_path)
    for p in planted:
        assert p.value not in sent, f"{p.kind} in {p.path} reached the model"
        assert p.value.encode() not in kept, f"{p.kind} in {p.path} was written to a file"

    # The review names each one: kind and place, not the value.
    found = {(f.kind, f.path, f.line, f.side) for f in review.secrets}
    for p in planted:
        if p.kind == "private-key":
            assert ("private-key", p.path, 2, "new") in found
        elif p.kind != "(not sent)":
            assert (p.kind, p.path, p.line, p.side) in found, p
    assert "«secret:aws-access-key#1»" in sent  # the placeholder took its place, lines intact

    # A .env file is not sent at all, and the review says why.
    (dotenv,) = [n for n in review.coverage.not_reviewed if n.path == ".env"]
    assert "may hold credentials" in dotenv.reason
    assert review.complete

    # Each file that held one gets a high-priority security question at the line.
    asked = {q.anchor.path: q for q in review.questions if "like a credential" in q.question}
    assert len(asked) == len({p.path for p in planted if p.kind != "(not sent)"})
    for q in asked.values():
        assert q.category == "security" and q.priority == "high" and q.rank <= len(asked)
    assert asked["app/legacy.py"].anchor.side == "old"
    assert all(p.value not in q.question for p in planted for q in review.questions)

    # The run row records how many, of which kinds and where; never a value.
    (run,) = LedgerStore(os.environ["OWNIT_LEDGER_URL"]).runs()
    assert run.masking is True and run.secrets_masked == len(review.secrets)
    assert run.secret_findings and {"kind", "path", "line"} <= set(run.secret_findings[0])


def test_a_key_in_the_commit_title_is_masked_before_it_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a checkout, the PR title is the head commit's subject: it is sent, so it is masked."""
    import subprocess

    _, title, planted = planted_diff()
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "dev@example.com")
    git("config", "user.name", "Dev")
    (repo / "a.py").write_text("x = 1\n")
    git("add", "-A")
    git("commit", "-qm", "base")
    git("checkout", "-qb", "feature")
    (repo / "a.py").write_text("x = 2\n")
    git("commit", "-qam", title)
    monkeypatch.setenv("LOCAL_LLM_KEY", "unused-key-123")
    transport = FakeTransport()
    request = ReviewRequest(cwd=repo, config_path=config(tmp_path))
    review = asyncio.run(run_review(request, transport=transport))
    sent = json.dumps([r.messages for r in transport.requests], ensure_ascii=False)
    assert "Pull request: Rotate «secret:aws-access-key#1» and move keys" in sent
    assert planted[0].value not in sent
    assert [f.path for f in review.secrets] == ["(title)"]


def test_the_same_secret_gets_the_same_placeholder_and_lines_stay(tmp_path: Path) -> None:
    key = "ghp_" + "a1B2c3D4e5F6" * 3
    text = (
        "--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,3 @@\n-OLD = 1\n"
        f'+A = "{key}"\n+B = "{key}"\n ok = True\n'
    )
    masked = mask(parse_diff(text))
    (file,) = masked.diff.files
    lines = file.hunks[0].lines
    assert [ln.text for ln in lines] == [
        "OLD = 1",
        'A = "«secret:github-token#1»"',
        'B = "«secret:github-token#1»"',
        "ok = True",
    ]
    assert [(ln.old_no, ln.new_no) for ln in lines] == [(1, None), (None, 1), (None, 2), (2, 3)]
    assert [f.line for f in masked.findings] == [1, 2]


def test_no_mask_sends_the_diff_as_it_is_and_the_run_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_LLM_KEY", "unused-key-123")
    transport = FakeTransport()
    review = review_planted(tmp_path, transport, mask_secrets=False)
    _, _, planted = planted_diff()
    sent = json.dumps([r.messages for r in transport.requests], ensure_ascii=False)
    assert planted[0].value in sent  # what the user asked for
    assert not review.secrets and review.run.masking is False
    (run,) = LedgerStore(os.environ["OWNIT_LEDGER_URL"]).runs()
    assert run.masking is False
    # .env stays out: that is review.sensitive, not masking.
    assert planted[-1].value not in sent


def test_the_dry_run_says_what_would_be_masked(tmp_path: Path) -> None:
    data, _, _ = planted_diff()
    patch = tmp_path / "planted.patch"
    patch.write_bytes(data)
    result = runner.invoke(app, ["review", "--diff", str(patch), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would be masked" in result.stdout and "aws-access-key" in result.stdout
    for p in planted_diff()[2]:
        assert p.value not in result.stdout


# --- keys, at every edge where text leaves the process ------------------------------------------


def test_a_key_in_an_error_message_never_reaches_the_terminal(monkeypatch: Any) -> None:
    """The terminal edge: an error that quotes a key (here, a path the user typed)."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    result = runner.invoke(app, ["review", "--diff", f"/nowhere/{SECRET}.patch"])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr
    assert SECRET not in result.output


def test_a_key_in_the_review_never_reaches_the_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The artifact edge: text of the review that carries a key (a repository named after one,
    a model quoting one)."""
    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRET)
    monkeypatch.setenv("LOCAL_LLM_KEY", "unused-key-123")
    review = review_planted(tmp_path, FakeTransport())
    review = review.model_copy(update={"summary": f"uses {SECRET} for the login"})
    written = write_artifacts(review, ("markdown", "json"), tmp_path / "art")
    for path in written:
        text = path.read_text()
        assert SECRET not in text and "uses *** for the login" in text


def test_a_key_in_a_provider_error_never_reaches_the_ledger_or_the_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger edge, whatever transport or provider produced the text."""
    monkeypatch.setenv("LOCAL_LLM_KEY", SECRET)

    def handler(request: ModelRequest) -> Any:
        if len(transport.requests) == 1:
            return TransientError(f"upstream said: invalid key {SECRET}", status=500)
        return good(request)

    transport = FakeTransport(handler)
    # A ledger that cannot be written: the calls go to the spool too.
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("OWNIT_LEDGER_URL", f"sqlite:///{blocker}/x.db")
    review = review_planted(tmp_path, transport)
    assert review.ledger_spool
    error_rows = [c for c in review.calls if c.outcome == "error"]
    assert error_rows and all(SECRET not in (c.error or "") for c in error_rows)
    assert "invalid key ***" in (error_rows[0].error or "")
    assert SECRET.encode() not in Path(review.ledger_spool).read_bytes()


def test_a_traceback_never_shows_a_key(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """The traceback edge: a bug whose exception quotes a key."""
    from agent import cli

    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"request failed with headers {{'x-api-key': '{SECRET}'}}")

    monkeypatch.setattr(cli, "app", broken)
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "RuntimeError" in err and "unexpected error" in err
    assert SECRET not in err


def test_a_log_record_never_shows_a_key(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """The logging edge: what LiteLLM logs at error level may quote a request. (LiteLLM masks
    bearer headers itself; a gateway token in an error body it does not know.)"""
    from agent.llm import litellm

    token = "gw_9f8e7d6c5b4a3210fedcba98"
    monkeypatch.setenv("ACME_GATEWAY_TOKEN", token)
    litellm()  # guards LiteLLM's loggers
    logging.getLogger("LiteLLM").error("gateway refused: %s", f"token {token} expired")
    err = capsys.readouterr().err
    assert "gateway refused: token *** expired" in err and token not in err


def test_planted_credentials_stay_home_on_the_real_wire(
    cassette: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, through the CLI and LiteLLM to the stand-in vendor (recorded): what the vendor
    received, the terminal, the artifacts and the ledger hold none of the planted values."""
    from tests.conftest import CASSETTES
    from tests.test_review_cli import local_config, review

    monkeypatch.setenv("LOCAL_LLM_KEY", SECRET)
    data, _, planted = planted_diff()
    patch = tmp_path / "planted.patch"
    patch.write_bytes(data)
    out = tmp_path / "out"
    result = review(
        str(patch),
        "--config",
        str(local_config(tmp_path)),
        "--format",
        "terminal,markdown,json",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    received = "".join(
        r.body.decode() if isinstance(r.body, bytes) else str(r.body) for r in cassette.requests
    )
    assert "«secret:" in received or "\\u00absecret:" in received
    path = CASSETTES / "test_secrets" / f"{cassette_name()}.yaml"
    recording = path.read_text() if path.exists() else ""  # written after a recording test
    kept = everything_kept(tmp_path)
    for p in planted:
        for where, text in [
            ("the vendor", received),
            ("the recording", recording),
            ("the terminal", result.output),
        ]:
            assert p.value not in text, f"{p.kind} reached {where}"
        assert p.value.encode() not in kept, f"{p.kind} was written to a file"
    assert "credential(s)" in result.stderr and "were masked" in result.stderr
    assert SECRET not in result.output and SECRET.encode() not in kept


def cassette_name() -> str:
    return "test_planted_credentials_stay_home_on_the_real_wire"


def test_escape_sequences_in_paths_never_reach_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path with escape sequences (git quotes it in the diff) and a credential in it: the
    notes, problems and report on stdout and stderr show it escaped, never raw."""
    monkeypatch.setenv("LOCAL_LLM_KEY", "unused-key-123")
    monkeypatch.setattr("agent.review.LiteLLMTransport", lambda *_: FakeTransport())
    name = "evil\\033[2J\\033]0;pwned\\007.py"  # as git C-quotes it
    key = "ghp_" + "Zz9Yy8Xx7Ww6" * 3
    diff = tmp_path / "evil.patch"
    diff.write_text(
        f'diff --git "a/{name}" "b/{name}"\n--- "a/{name}"\n+++ "b/{name}"\n'
        f'@@ -1 +1 @@\n-a = 1\n+TOKEN = "{key}"\n'
    )
    result = runner.invoke(
        app, ["review", str(diff), "--config", str(config(tmp_path)), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x07" not in stream
    assert "\\x1b[2J" in result.stderr  # shown, escaped, in the note naming where it was
    assert key not in result.output
