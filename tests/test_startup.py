"""Start-up off the critical path: LiteLLM loads on a thread while the diff is read, parsed,
masked and planned, and a model providers.yaml describes in full is planned without it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent import llm
from agent.config import ModelEntry
from agent.providers import resolve

ROOT = Path(__file__).resolve().parent.parent

FULL = ModelEntry(
    model="openai/served-here",
    api_base="http://127.0.0.1:9/v1",
    context_window=32768,
    max_output_tokens=8192,
    input_cost_per_token=0.000001,
    output_cost_per_token=0.000002,
    cache_read_input_token_cost=0.0000005,
    price_source="our own server",
)


def test_a_model_described_in_full_is_not_looked_up_in_litellm(monkeypatch: Any) -> None:
    model = resolve("local", FULL, {})

    def no_litellm() -> Any:
        raise AssertionError("litellm was needed")

    monkeypatch.setattr(llm, "litellm", no_litellm)
    facts = llm.model_facts(model)
    monkeypatch.undo()
    # The same facts the map path gives: providers.yaml's figures win there too.
    monkeypatch.setattr(llm, "entry_facts", lambda entry: None)
    assert facts == llm.model_facts(model)
    assert facts.context_window == 32768 and facts.max_output_tokens == 8192
    assert facts.price is not None and facts.price.source == "providers.yaml (our own server)"


@pytest.mark.parametrize(
    "missing", ["context_window", "max_output_tokens", "output_cost_per_token"]
)
def test_a_model_described_in_part_is_completed_from_litellms_map(missing: str) -> None:
    entry = FULL.model_copy(update={missing: None})
    assert llm.entry_facts(entry) is None


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_review_starts_loading_litellm_before_it_reads_the_diff(tmp_path: Path) -> None:
    code = f"""
        import asyncio, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from agent import llm, review

        def prepare(request):
            raise SystemExit(0 if llm._loader is not None else 3)

        review._prepare = prepare
        asyncio.run(review.run_review(review.ReviewRequest(cwd=Path("."))))
    """
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]


def test_nothing_litellm_imports_is_imported_by_the_review_meanwhile(tmp_path: Path) -> None:
    """Two threads importing each other's modules deadlock (or fail with _DeadlockError): while
    LiteLLM loads on its thread, the review's own thread must import none of its modules."""
    alone = _run(
        f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        import agent.cli, agent.review
        before = set(sys.modules)
        from agent import llm
        llm.litellm()
        print(json.dumps(sorted(set(sys.modules) - before)))
        """,
        tmp_path,
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    litellms = set(json.loads(alone.stdout.strip().splitlines()[-1]))
    assert "tiktoken" in litellms  # the one the review needs too, loaded before the thread starts

    diff = ROOT / "examples" / "retry-charges.patch"
    spied = _run(
        f"""
        import asyncio, importlib.abc, json, sys, threading
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        import agent.cli
        from agent import llm, review
        from tests.llm_server import serve

        during = set()

        class Spy(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if threading.current_thread() is threading.main_thread() and (
                    llm._loader is not None and llm._loader.is_alive()
                ):
                    during.add(name)
                return None

        with serve() as srv:
            config = Path("providers.yaml")
            config.write_text(json.dumps({{"default": "m", "models": {{"m": {{
                "model": "openai/local-model", "api_base": srv.url + "/v1",
                "context_window": 32768, "input_cost_per_token": 0,
                "output_cost_per_token": 0}}}}}}))
            sys.meta_path.insert(0, Spy())
            done = asyncio.run(review.run_review(review.ReviewRequest(
                cwd=Path("."), diff_path=Path({str(diff)!r}), config_path=config)))
            assert done.complete, done.problems
            assert len(srv.requests) >= 1
        print(json.dumps(sorted(during)))
        """,
        tmp_path,
    )
    assert spied.returncode == 0, spied.stderr[-2000:]
    during = set(json.loads(spied.stdout.strip().splitlines()[-1]))
    assert not during & litellms, sorted(during & litellms)


def test_the_bundled_models_are_described_in_full_as_litellms_map_has_them() -> None:
    """So a dry run of the bundled catalogue (the README's first command) plans and prices
    every model without loading LiteLLM; where the map knows the model, providers.yaml says
    what it says (a vendor's change shows up here when LiteLLM's pin is raised)."""
    from agent.config import load_config

    config = load_config()
    for name, entry in config.models.items():
        model = resolve(name, entry, {})
        facts = llm.entry_facts(entry)
        assert facts is not None, f"{name} is not described in full"
        try:
            info = llm.litellm().get_model_info(model.litellm_model)
        except Exception:  # a bare Exception for a model the map does not list
            continue
        if info.get("max_input_tokens") is None:  # listed without a window: Ollama's models
            continue
        assert facts.context_window == info["max_input_tokens"], name
        assert facts.max_output_tokens == info["max_output_tokens"], name


def test_a_dry_run_of_the_bundled_catalogue_does_not_load_litellm(tmp_path: Path) -> None:
    code = f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from typer.testing import CliRunner
        from agent.cli import app

        patch = {str(ROOT / "examples" / "retry-charges.patch")!r}
        r = CliRunner().invoke(app, ["review", "--diff", patch, "--dry-run"])
        assert r.exit_code == 0, r.output
        assert "claude-sonnet" in r.output and "mistral" in r.output, r.output
        assert "litellm" not in sys.modules, "litellm imported"
    """
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
