"""A re-review pays only for what changed: files the content cache holds a review of are not
sent again, their review is reused, and the ledger records each hit at zero cost with the cost
it saved. Through the real pipeline (fake transport), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from agent.ledger import LedgerStore
from agent.ledger import cache as cache_store
from agent.ledger.rollup import drift
from agent.result import Review
from agent.review import ReviewRequest, dry_run
from tests.fakes import FakeTransport, user_text, wants, weak
from tests.test_pipeline import big_diff, run, write_config

FILES = 8


def changed(diff: bytes, n: int) -> bytes:
    """The same diff with file ``n``'s added lines edited (a push that touched one file)."""
    return diff.replace(f"value_{n}_".encode(), f"edited_{n}_".encode())


def files_sent(transport: FakeTransport) -> list[str]:
    """The files each chunk request showed the model, in request order."""
    shown = []
    for request in transport.requests:
        if wants(request) == "ChunkReview":
            shown.extend(re.findall(r"=== FILE (\S+)", user_text(request)))
    return shown


def prompt_tokens(transport: FakeTransport) -> int:
    from agent.tokens import count_messages

    return sum(count_messages(r.messages) for r in transport.requests)


@pytest.fixture
def ledger(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OWNIT_LEDGER_URL", ledger_url)
    return ledger_url


@pytest.fixture
def config(tmp_path: Path) -> Path:
    # Small chunks: several files per chunk and several chunks, as on a real PR.
    return write_config(tmp_path, review={"max_chunk_tokens": 1500})


def test_a_rerun_after_one_file_changed_sends_only_that_file(
    tmp_path: Path, ledger: str, config: Path
) -> None:
    diff = big_diff(FILES)
    first_t = FakeTransport()
    first = run(tmp_path, first_t, config, diff)
    assert first.complete and first.usage.cached_files == 0
    assert sorted(set(files_sent(first_t))) == [f"pkg/mod{n}.py" for n in range(FILES)]

    second_t = FakeTransport()
    second = run(tmp_path, second_t, config, changed(diff, 3))

    # Only the changed file went to the model, and only once.
    assert files_sent(second_t) == ["pkg/mod3.py"]
    assert prompt_tokens(second_t) < 0.35 * prompt_tokens(first_t)
    # The review is whole: every file covered and explained, the others' words reused.
    assert second.complete
    assert second.coverage.files_reviewed == FILES == second.coverage.files_total
    assert second.coverage.hunks_reviewed == second.coverage.hunks_total
    walk = {f.path: f.walkthrough for f in second.files}
    assert sorted(walk) == [f"pkg/mod{n}.py" for n in range(FILES)]
    before = {f.path: f.walkthrough for f in first.files}
    assert all(walk[p] == before[p] for p in walk if p != "pkg/mod3.py")
    reused_questions = {q.question for q in second.questions if q.anchor.path != "pkg/mod3.py"}
    assert reused_questions and reused_questions <= {q.question for q in first.questions}
    assert second.usage.cached_files == FILES - 1
    assert any("taken from the content cache" in n for n in second.notes)

    # The ledger: each hit a row at $0 that saved what the files had cost; calls exclude them.
    store = LedgerStore(ledger)
    hits = [c for c in store.calls(second.run.id) if c.outcome == "cached"]
    assert hits and all(c.cost_usd == 0.0 and c.prompt_tokens == 0 for c in hits)
    saved = sum(c.cache_savings_usd or 0.0 for c in hits)
    assert saved == pytest.approx(second.usage.cache_saved_usd, abs=1e-6)
    # Files are charged by size: seven of eight equal files saved about 7/8 of the chunk cost.
    chunk_cost = sum(
        c.cost_usd or 0.0 for c in store.calls(first.run.id) if c.purpose.startswith("chunk-")
    )
    assert saved == pytest.approx(chunk_cost * (FILES - 1) / FILES, rel=0.05)
    assert second.usage.calls == len(second_t.requests)
    with store.reading("test") as conn:
        assert drift(conn) == []
    held = cache_store.stats(store)
    assert held.hits == FILES - 1
    assert held.saved_usd == pytest.approx(saved)
    store.close()


def test_no_cache_reviews_everything_and_refreshes_the_cache(
    tmp_path: Path, ledger: str, config: Path
) -> None:
    diff = big_diff(FILES)
    run(tmp_path, FakeTransport(), config, diff)
    fresh_t = FakeTransport()
    fresh = run(tmp_path, fresh_t, config, diff, cache=False)
    assert sorted(files_sent(fresh_t)) == [f"pkg/mod{n}.py" for n in range(FILES)]
    assert fresh.usage.cached_files == 0 and fresh.usage.cache_saved_usd == 0

    again_t = FakeTransport()
    again = run(tmp_path, again_t, config, diff)
    assert files_sent(again_t) == []
    assert again.complete and again.usage.cached_files == FILES


def test_another_model_or_prompt_version_does_not_reuse(
    tmp_path: Path, ledger: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(
        tmp_path,
        review={"max_chunk_tokens": 1500},
        other={"model": "openai/other-model", "context_window": 32000},
    )
    diff = big_diff(3)
    run(tmp_path, FakeTransport(), cfg, diff)
    other_t = FakeTransport()
    run(tmp_path, other_t, cfg, diff, model="other")
    assert len(set(files_sent(other_t))) == 3

    monkeypatch.setattr("agent.prompts.version", lambda: "a-newer-prompt")
    newer_t = FakeTransport()
    run(tmp_path, newer_t, cfg, diff)
    assert len(set(files_sent(newer_t))) == 3


def test_a_file_the_model_did_not_explain_is_not_kept(
    tmp_path: Path, ledger: str, config: Path
) -> None:
    diff = big_diff(FILES)
    # Only the first file of each chunk gets a walkthrough: the others are "not explained".
    run(tmp_path, FakeTransport(weak("missingfile")), config, diff)
    second_t = FakeTransport()
    second = run(tmp_path, second_t, config, diff)
    sent = set(files_sent(second_t))
    assert sent and len(sent) < FILES  # the explained ones were reused, the others were not
    assert second.complete and second.coverage.files_reviewed == FILES


def test_a_cache_that_cannot_be_read_costs_the_saving_not_the_review(
    tmp_path: Path, ledger: str, config: Path
) -> None:
    diff = big_diff(3)
    run(tmp_path, FakeTransport(), config, diff)
    store = LedgerStore(ledger)
    with store.writing("test") as conn:
        conn.execute(sa.text("DROP TABLE chunk_cache"))
    store.close()
    second_t = FakeTransport()
    second = run(tmp_path, second_t, config, diff)
    assert len(set(files_sent(second_t))) == 3
    assert second.complete
    assert any("content cache could not be read" in n for n in second.notes)


def test_a_dry_run_plans_only_what_changed_and_counts_no_hit(
    tmp_path: Path, ledger: str, config: Path
) -> None:
    diff = big_diff(FILES)
    first: Review = run(tmp_path, FakeTransport(), config, diff)
    patch = tmp_path / "pushed.patch"
    patch.write_bytes(changed(diff, 5))
    planned = asyncio.run(dry_run(ReviewRequest(cwd=tmp_path, diff_path=patch, config_path=config)))
    shown = {p.file.path for c in planned.plan.chunks for p in c.files}
    assert shown == {"pkg/mod5.py"}
    assert planned.plan.files_total == FILES
    assert any("would be taken from the content cache" in n for n in planned.plan.notes)
    store = LedgerStore(ledger)
    assert cache_store.stats(store).hits == 0
    assert first.usage.calls > 0
    store.close()


def test_ledger_cache_shows_and_prunes_what_it_holds(
    tmp_path: Path, ledger: str, config: Path
) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    run(tmp_path, FakeTransport(), config, big_diff(3))
    cli = CliRunner()
    shown = cli.invoke(app, ["ledger", "cache", "--ledger", ledger])
    assert shown.exit_code == 0, shown.output
    assert "3 cached file review(s), reused 0 time(s)" in shown.output
    kept = cli.invoke(app, ["ledger", "cache", "--prune-unused-days", "1", "--ledger", ledger])
    assert "deleted 0 cached review(s)" in kept.output
    gone = cli.invoke(app, ["ledger", "cache", "--clear", "--ledger", ledger])
    assert "deleted 3 cached review(s)" in gone.output
    assert "0 cached file review(s)" in gone.output


def test_a_key_the_model_quotes_is_not_kept_in_the_cache(
    tmp_path: Path, ledger: str, config: Path
) -> None:
    from tests.fakes import good

    key = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zB9dF1hJ3lM5"

    def quoting(request):  # type: ignore[no-untyped-def]
        reply = good(request)
        if wants(request) == "ChunkReview":
            reply["files"][0]["walkthrough"] += f" It reads the key {key}."
            reply["summary"] += f" ({key})"
        return reply

    run(tmp_path, FakeTransport(quoting), config, big_diff(3))
    store = LedgerStore(ledger)
    with store.reading("test") as conn:
        held = [str(row[0]) for row in conn.execute(sa.text("SELECT result FROM chunk_cache"))]
    store.close()
    assert held and all(key not in text for text in held)
    assert any("It reads the key" in text for text in held)
