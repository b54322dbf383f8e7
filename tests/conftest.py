"""Test isolation and recorded model traffic.

Every test gets a temporary home, config and data directory and its own SQLite ledger, and no
vendor key from the machine it runs on. Model traffic replays from ``cassettes/``; set
``OWNIT_RECORD=1`` to re-record against the local model server (``tests/llm_server.py``),
see ``cassettes/README.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import vcr

from agent.ledger import LedgerStore
from agent.llm import OFFLINE_ENV
from tests.environment import VENDOR_ENV
from tests.ledger_db import postgres_url

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
RECORD = os.environ.get("OWNIT_RECORD") == "1"
# Fixed, so recorded URLs match on replay, when nothing listens there.
SERVER_PORT = 8765
SERVER_URL = f"http://127.0.0.1:{SERVER_PORT}"
SECRET_HEADERS = [
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "private-token",
    "job-token",
]
# The dummy key tests hand to ownit. Some stand-in servers echo it back in error bodies (as
# real ones do): a cassette keeps KEY_PLACEHOLDER in its place, and replay puts the key back,
# so the redaction is tested against the real bytes while no file holds the key.
SECRET = "sk-test-9f8e7d6c5b4a3210-never-log-me"
KEY_PLACEHOLDER = "<<the test API key>>"


class _KeyFreeYaml:
    """vcrpy's YAML serializer, with the test key swapped for a placeholder on disk."""

    @staticmethod
    def serialize(cassette: dict[str, Any]) -> str:
        from vcr.serializers import yamlserializer

        return str(yamlserializer.serialize(cassette)).replace(SECRET, KEY_PLACEHOLDER)

    @staticmethod
    def deserialize(text: str) -> Any:
        from vcr.serializers import yamlserializer

        return yamlserializer.deserialize(text.replace(KEY_PLACEHOLDER, SECRET))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    for name in VENDOR_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("OWNIT_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _json_body(r1: Any, r2: Any) -> None:
    def load(body: Any) -> Any:
        if body is None or body == b"" or body == "":
            return None
        try:
            return json.loads(body)
        except ValueError:
            return body

    assert load(r1.body) == load(r2.body), "request body differs from the recording"


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    # Real vendors send account identifiers and cookies back; none belongs in a cassette.
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in ("set-cookie", "openai-organization", "anthropic-organization-id"):
            del headers[name]
    return response


def make_vcr() -> vcr.VCR:
    v = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="once" if RECORD else "none",
        match_on=["method", "scheme", "host", "port", "path", "json_body"],
        filter_headers=SECRET_HEADERS,
        # Gemini's own endpoint takes the key as ?key=...; it never belongs in a recording.
        filter_query_parameters=["key"],
        before_record_response=_scrub_response,
        decode_compressed_response=True,
        serializer="key-free-yaml",
    )
    v.register_matcher("json_body", _json_body)
    v.register_serializer("key-free-yaml", _KeyFreeYaml)
    return v


@pytest.fixture
def cassette(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Replay (or with OWNIT_RECORD=1, record) this test's model traffic."""
    name = f"{request.module.__name__.split('.')[-1]}/{request.node.name}.yaml"
    path = CASSETTES / name
    if RECORD and path.exists():
        path.unlink()
    if RECORD:
        from tests.llm_server import serve

        with serve(port=SERVER_PORT), make_vcr().use_cassette(name) as cass:
            yield cass
    else:
        if not path.exists():
            pytest.fail(
                f"missing cassette {path}: record it with OWNIT_RECORD=1 (cassettes/README.md)"
            )
        with make_vcr().use_cassette(name, allow_playback_repeats=False) as cass:
            yield cass


# --- ledgers: every store test runs on SQLite, and on PostgreSQL when it is there -----------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'ledger.db'}"
    return postgres_url()


@pytest.fixture
def open_store(ledger_url: str) -> Iterator[Callable[[], LedgerStore]]:
    """Opens (and at the end closes) stores on this test's ledger."""
    opened: list[LedgerStore] = []

    def _open() -> LedgerStore:
        store = LedgerStore(ledger_url)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], LedgerStore]) -> LedgerStore:
    return open_store()
