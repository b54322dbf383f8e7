"""Routing rules in providers.yaml: which model reviews which file, validated at load with the
file and line, shown before spending (``--dry-run``) and recorded after (footer, JSON, ledger);
``local_only`` keeps every part of the diff on local models."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import Config, load_config
from agent.diff import parse_diff
from agent.errors import ConfigError, NoModelError, TransientError
from agent.providers import ModelFacts, ResolvedModel, choose_model
from agent.render.markdown import footer
from agent.routing import Router
from tests.fakes import FakeTransport, good, wants
from tests.test_pipeline import EXAMPLE, ledger, run

FILES = {
    "src/auth/session.py": "code",
    "src/payments/refund.py": "code",
    "src/util/strings.py": "code",
    "tests/test_strings.py": "tests",
    "docs/guide.md": "docs",
    "deploy/app.yaml": "config",
}


def diff_of(paths: list[str], lines: int = 3) -> bytes:
    out = []
    for path in paths:
        body = "".join(f"+line {n} of {path}\n" for n in range(lines))
        out.append(
            f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,1 +1,{lines + 1} @@\n keep\n{body}"
        )
    return "".join(out).encode()


def config_file(tmp: Path, routing: str, extra: str = "", default: str = "cheap") -> Path:
    """strong and cheap on a loopback address nothing listens on (the fake transport answers),
    strong ten times cheap's price."""
    text = textwrap.dedent(
        f"""\
        default: {default}
        models:
          strong:
            model: openai/strong-model
            api_base: http://127.0.0.1:9/v1
            context_window: 32000
            input_cost_per_token: 0.00001
            output_cost_per_token: 0.00002
          cheap:
            model: openai/cheap-model
            api_base: http://127.0.0.1:9/v1
            context_window: 32000
            input_cost_per_token: 0.000001
            output_cost_per_token: 0.000002
        review:
          retry_backoff_seconds: 0
        """
    )
    path = tmp / "providers.yaml"
    path.write_text(text + extra + textwrap.dedent(routing))
    return path


def loaded(tmp: Path, routing: str) -> Config:
    return load_config(repo_root=tmp, explicit=config_file(tmp, routing))


def facts(model: ResolvedModel) -> ModelFacts:
    return ModelFacts(32000, True, None, None, True)


def router(config: Config, team: str | None = None, repo: str | None = None) -> Router:
    return Router(config, choose_model(config, environ={}), facts, team=team, repo=repo)


def routes(r: Router, paths: list[str]) -> dict[str, tuple[str, str]]:
    files = parse_diff(diff_of(paths)).files
    return {f.path: (r.route(f).model, r.route(f).why) for f in files}


# --- matching and precedence ----------------------------------------------------------------


def test_each_condition_matches_and_the_first_matching_rule_wins(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        """\
        routing:
          rules:
            - name: security
              paths: ["src/auth/*", "*/payments/*"]
              model: strong
            - name: docs-and-tests
              kinds: [docs, tests]
              model: cheap
            - name: risky
              risk: high
              model: strong
        """,
    )
    got = routes(router(cfg), list(FILES))
    assert got == {
        "src/auth/session.py": ("strong", "rule 'security'"),
        "src/payments/refund.py": ("strong", "rule 'security'"),
        "src/util/strings.py": ("cheap", "default"),
        "tests/test_strings.py": ("cheap", "rule 'docs-and-tests'"),
        "docs/guide.md": ("cheap", "rule 'docs-and-tests'"),
        # deploy/ is infrastructure: high risk by its path
        "deploy/app.yaml": ("strong", "rule 'risky'"),
    }


def test_size_team_and_repo_conditions(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        """\
        routing:
          rules:
            - teams: [payments]
              repos: ["acme/*"]
              max_tokens: 60
              model: strong
        """,
    )
    small, large = "src/a.py", "src/b.py"
    files = parse_diff(diff_of([small]) + diff_of([large], lines=40)).files
    assert [router(cfg, "payments", "acme/pay").route(f).model for f in files] == [
        "strong",
        "cheap",  # over max_tokens
    ]
    assert router(cfg, "search", "acme/pay").route(files[0]).model == "cheap"
    assert router(cfg, "payments", "other/pay").route(files[0]).model == "cheap"
    assert router(cfg, None, None).route(files[0]).model == "cheap"


def test_a_rule_names_a_chain_or_takes_the_models_fallbacks(tmp_path: Path) -> None:
    cfg = loaded(
        tmp_path,
        """\
        fallbacks: [cheap]
        routing:
          rules:
            - paths: ["src/auth/*"]
              model: [strong]
            - paths: ["docs/*"]
              model: [cheap, strong]
        """,
    )
    files = parse_diff(diff_of(["src/auth/x.py", "docs/x.md"])).files
    assert [router(cfg).route(f).models for f in files] == [
        ("strong", "cheap"),
        ("cheap", "strong"),
    ]


# --- validated at load, with the file and line ----------------------------------------------


def load_error(tmp: Path, routing: str) -> str:
    with pytest.raises(ConfigError) as caught:
        loaded(tmp, routing)
    return caught.value.message


def test_a_rule_naming_an_unknown_model_is_refused_with_its_file_and_line(
    tmp_path: Path,
) -> None:
    message = load_error(
        tmp_path,
        """\
        routing:
          rules:
            - paths: ["a/*"]
              model: strong
            - name: typo
              paths: ["b/*"]
              model: stronk
        """,
    )
    line = config_file(tmp_path, "").read_text().count("\n") + 5
    assert f"rule 'typo' ({tmp_path / 'providers.yaml'}:{line})" in message
    assert "'stronk'" in message and "not defined" in message


def test_an_unreachable_rule_is_refused_naming_the_rule_that_takes_its_files(
    tmp_path: Path,
) -> None:
    message = load_error(
        tmp_path,
        """\
        routing:
          rules:
            - kinds: [tests, docs]
              model: cheap
            - kinds: [tests]
              paths: ["tests/unit/*"]
              model: strong
        """,
    )
    assert "rule 2" in message and "can never match" in message and "rule 1" in message
    message = load_error(
        tmp_path,
        """\
        routing:
          rules:
            - model: cheap
            - paths: ["src/*"]
              model: strong
        """,
    )
    assert "rule 2" in message and "can never match" in message
    # Narrower first, wider second is the right order.
    loaded(
        tmp_path,
        """\
        routing:
          rules:
            - kinds: [tests]
              paths: ["tests/unit/*"]
              model: strong
            - kinds: [tests, docs]
              model: cheap
        """,
    )


def test_a_malformed_rule_names_its_line(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        """\
        routing:
          rules:
            - kinds: [tests]
              model: cheap
            - kinds: [benchmarks]
              model: strong
        """,
    )
    line = config_file(tmp_path, "").read_text().count("\n") + 5
    assert f"providers.yaml:{line}" in message and "kinds" in message
    message = load_error(
        tmp_path,
        """\
        routing:
          rules:
            - min_tokens: 500
              max_tokens: 100
              model: strong
        """,
    )
    assert "never match" in message


# --- a review routed across two models -------------------------------------------------------


SECURITY = """\
routing:
  rules:
    - name: security
      paths: ["payments/client.py"]
      model: strong
"""


def test_each_chunk_goes_to_the_model_its_rule_chose_and_the_ledger_says_why(
    tmp_path: Path,
) -> None:
    transport = FakeTransport()
    review = run(tmp_path, transport, config=config_file(tmp_path, SECURITY))
    assert review.complete
    sent = {
        r.model.name: [p for p in ("payments/client.py", "payments/config.py", "tests/")
                       if p in r.messages[-1]["content"]]
        for r in transport.requests
        if wants(r) == "ChunkReview"
    }  # fmt: skip
    assert sent == {"strong": ["payments/client.py"], "cheap": ["payments/config.py", "tests/"]}
    calls = ledger().calls()
    chunks = {c.model_name: c.route for c in calls if c.purpose.startswith("chunk-")}
    assert chunks == {"strong": "rule 'security'", "cheap": "default"}
    (synthesis,) = [c for c in calls if c.purpose == "synthesis"]
    assert synthesis.model_name == "cheap"  # the run's model writes the PR summary
    by_model = {m.model_name: m for m in review.usage.by_model}
    assert by_model["strong"].routes == ["rule 'security'"] and by_model["strong"].calls == 1
    strong_cost = sum(c.cost_usd or 0 for c in calls if c.model_name == "strong")
    assert by_model["strong"].cost_usd == pytest.approx(strong_cost)
    assert by_model["cheap"].routes == ["default"] and by_model["cheap"].calls == 2


def test_a_routed_model_that_fails_hands_its_chunk_to_its_own_fallback(tmp_path: Path) -> None:
    def strong_down(request: Any) -> Any:
        if request.model.name == "strong":
            return TransientError("503 overloaded", status=503)
        return good(request)

    cfg = config_file(
        tmp_path,
        """\
        routing:
          rules:
            - paths: ["payments/client.py"]
              model: [strong, cheap]
        """,
        extra="review: {retries: 0, retry_backoff_seconds: 0}\n",
    )
    review = run(tmp_path, FakeTransport(strong_down), config=cfg)
    assert review.complete
    answered = [c for c in ledger().calls() if c.outcome == "ok" and c.fallback_from]
    assert [(c.model_name, c.fallback_from, c.route) for c in answered] == [
        ("cheap", "strong", "rule 1")
    ]


def test_a_rule_sending_chunks_to_a_model_without_its_key_stops_before_any_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRONG_KEY", raising=False)
    cfg = config_file(tmp_path, SECURITY)
    keyed = "model: openai/strong-model\n    api_key: ${STRONG_KEY}"
    cfg.write_text(cfg.read_text().replace("model: openai/strong-model", keyed))
    transport = FakeTransport()
    with pytest.raises(NoModelError) as caught:
        run(tmp_path, transport, config=cfg)
    assert "rule 'security'" in caught.value.message and "STRONG_KEY" in caught.value.message
    assert transport.requests == []


def test_the_dry_run_shows_which_model_reviews_what_and_its_cost(tmp_path: Path) -> None:
    cfg = config_file(tmp_path, SECURITY)
    result = CliRunner().invoke(
        app, ["review", "--diff", str(EXAMPLE), "--dry-run", "--config", str(cfg)]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    rows = [ln for ln in out.splitlines() if "payments/client.py" in ln and "│" in ln]
    assert rows and "strong" in rows[0] and "rule 'security'" in rows[0]
    assert "Estimated cost by routed model" in out
    strong = next(ln for ln in out.splitlines() if "openai/strong-model" in ln and "$" in ln)
    cheap = next(ln for ln in out.splitlines() if "openai/cheap-model" in ln and "$" in ln)
    assert strong.split("│")[3].strip() == "1" and cheap.split("│")[3].strip() == "1"


def test_the_footer_and_the_json_say_which_model_did_what(tmp_path: Path) -> None:
    review = run(tmp_path, FakeTransport(), config=config_file(tmp_path, SECURITY))
    line = footer(review)
    assert "strong 1 call(s)" in line and "rule 'security'" in line and "cheap 2 call(s)" in line
    data = json.loads(review.model_dump_json())
    assert {m["model_name"]: m["routes"] for m in data["usage"]["by_model"]} == {
        "strong": ["rule 'security'"],
        "cheap": ["default"],
    }


# --- local_only ------------------------------------------------------------------------------


HOSTED = """\
  hosted:
    model: openai/gpt-hosted
    api_base: https://llm.example.com/v1
    input_cost_per_token: 0.000001
    output_cost_per_token: 0.000002
"""


def local_only_config(tmp: Path, default: str = "cheap") -> Path:
    path = config_file(tmp, "local_only: true\nfallbacks: [hosted]\n", default=default)
    text = path.read_text().replace("review:\n", HOSTED + "review:\n")
    path.write_text(text)
    return path


def test_local_only_never_hands_a_part_to_a_hosted_fallback(tmp_path: Path) -> None:
    transport = FakeTransport(lambda r: TransientError("503", status=503))
    review = run(tmp_path, transport, config=local_only_config(tmp_path))
    assert not review.complete
    assert {r.model.name for r in transport.requests} == {"cheap"}
    assert any("hosted" in n and "local_only" in n for n in review.notes)


def test_local_only_refuses_a_hosted_model_for_the_run(tmp_path: Path) -> None:
    transport = FakeTransport()
    with pytest.raises(ConfigError) as caught:
        run(tmp_path, transport, config=local_only_config(tmp_path, default="hosted"))
    assert "hosted model" in caught.value.message and "local_only" in caught.value.message
    assert transport.requests == []


def test_the_dry_run_says_a_local_only_review_would_not_send_to_a_hosted_model(
    tmp_path: Path,
) -> None:
    cfg = local_only_config(tmp_path, default="hosted")
    result = CliRunner().invoke(
        app, ["review", "--diff", str(EXAMPLE), "--dry-run", "--config", str(cfg)]
    )
    assert result.exit_code == 0, result.output
    assert "A review would stop here: not sent: hosted" in result.output
    assert "local_only" in result.output
