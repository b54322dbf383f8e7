"""A model call's ledger writes run on the recorder's writer thread (their commits leave the
event loop), in order, and each is written before the call goes on: the pending row before the
request is sent, the answered row before the reply is parsed."""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from agent.client import Completion, Endpoint, ModelClient, ModelRequest, Usage
from agent.config import ModelEntry, ReviewSettings
from agent.ledger import LedgerStore, Recorder, RunInfo
from agent.pricing import Price
from agent.providers import ModelFacts, resolve
from tests.fakes import FakeTransport


class Answer(BaseModel):
    x: int


def test_a_calls_writes_are_committed_off_the_event_loop_before_it_goes_on(
    monkeypatch: Any,
) -> None:
    store = LedgerStore(os.environ["OWNIT_LEDGER_URL"])
    written: list[tuple[str, str, bool]] = []  # (what, outcome, on the event loop's thread)
    for name in ("insert_call", "update_call"):
        original = getattr(store, name)

        def spy(record: Any, original: Any = original, name: str = name) -> None:
            original(record)
            on_loop = threading.current_thread() is threading.main_thread()
            written.append((name, record.outcome, on_loop))

        monkeypatch.setattr(store, name, spy)

    seen_by_transport: list[list[str]] = []

    def handler(request: ModelRequest) -> Completion:
        # The request leaves only once its pending row is in the ledger.
        seen_by_transport.append([c.outcome for c in store.calls()])
        return Completion('{"x": 1}', False, Usage())

    facts = ModelFacts(32000, True, 4096, Price(1e-6, 2e-6, None, "test"), True)
    endpoint = Endpoint(resolve("m", ModelEntry(model="openai/m"), {}), facts)
    recorder = Recorder(RunInfo(id="run-w", started_at=datetime.now(UTC)), store)
    client = ModelClient(
        [endpoint], FakeTransport(handler=handler), recorder, ReviewSettings(repair_attempts=0)
    )

    async def ask() -> Any:
        return await client.structured([{"role": "user", "content": "hi"}], Answer, "one")

    answer = asyncio.run(ask())
    recorder.close()
    assert answer.value.x == 1
    assert seen_by_transport == [["pending"]]
    assert [(what, outcome) for what, outcome, _ in written] == [
        ("insert_call", "pending"),
        ("update_call", "answered"),
        ("update_call", "ok"),
    ]
    assert not any(on_loop for _, _, on_loop in written)
    (call,) = store.calls()
    assert call.outcome == "ok"
