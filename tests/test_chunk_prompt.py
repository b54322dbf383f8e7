"""A chunk's prompt is sized from the planner's count of its diff: the diff is tokenized once
per run (by the planner), not again by the model client before each call."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import nodes, tokens
from agent.client import Completion, Endpoint, ModelClient, ModelRequest, Usage
from agent.config import ModelEntry, ReviewSettings
from agent.diff import parse_diff
from agent.ledger import LedgerStore, Recorder, RunInfo
from agent.plan import make_plan
from agent.pricing import Price
from agent.providers import ModelFacts, resolve
from agent.state import ExplainTask
from tests.fakes import FakeTransport, good

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "retry-charges.patch"


def test_the_client_does_not_tokenize_a_planned_chunks_diff_again(monkeypatch: Any) -> None:
    diff = parse_diff(EXAMPLE.read_text())
    facts = ModelFacts(32000, True, 4096, Price(1e-6, 2e-6, None, "test"), True)
    settings = ReviewSettings()
    (chunk,) = make_plan(diff, facts, settings, "m", "openai/m").chunks
    task = ExplainTask(chunk=chunk, parts=1, diff=diff, title="Retries", repo="acme/widgets")
    shown = chunk.render()

    real = tokens.encoding()
    tokenized: list[str] = []

    class Spy:
        def encode(self, text: str, **options: Any) -> Any:
            tokenized.append(text)
            return real.encode(text, **options)

    monkeypatch.setattr(tokens, "encoding", lambda: Spy())

    def answer(request: ModelRequest) -> Completion:
        return Completion(json.dumps(good(request)), False, Usage())

    endpoint = Endpoint(resolve("m", ModelEntry(model="openai/m"), {}), facts)
    store = LedgerStore(os.environ["OWNIT_LEDGER_URL"])
    recorder = Recorder(RunInfo(id="run-c", started_at=datetime.now(UTC)), store)
    client = ModelClient([endpoint], FakeTransport(handler=answer), recorder, settings)
    (result,) = asyncio.run(nodes._explain(task, chunk, client))
    recorder.close()

    assert result.ok
    assert tokenized, "the prompt around the diff is still counted"
    assert not [text for text in tokenized if shown in text]
    # The count the call was sized with is the full prompt's, within a token of counting it.
    monkeypatch.undo()
    full = tokens.count_messages(nodes._messages(task, chunk))
    (call,) = recorder.rows
    assert abs(call.estimated_prompt_tokens - endpoint.estimate(full)) <= 2
