"""An in-process stand-in for the model wire (``agent.client.Transport``), as httpx's
``MockTransport`` stands in for the network: each request goes to a handler that answers with a
reply or raises a provider error, so the retry, repair, split, fallback and recording logic
runs for real without a server or a cassette.

The default answers are the stand-in server's (``tests/llm_server.py``): a ChunkReview built
from the diff in the prompt, or a Synthesis ordering the candidate questions.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.client import Completion, ModelRequest, Usage
from tests import llm_server

Reply = Completion | str | dict[str, Any] | BaseException
Handler = Callable[[ModelRequest], Reply]


def user_text(request: ModelRequest) -> str:
    return "\n".join(m["content"] for m in request.messages if m["role"] == "user")


def wants(request: ModelRequest) -> str:
    """ "ChunkReview", "Synthesis", "TriageReply" or "Grades": what the request asks for."""
    system = request.messages[0]["content"]
    if '"grades"' in system:
        return "Grades"
    if llm_server.FILES_BLOCK.search(user_text(request)):
        return "TriageReply"
    return "Synthesis" if '"question_order"' in system else "ChunkReview"


def good(request: ModelRequest) -> dict[str, Any]:
    """What a well-behaved model answers."""
    text = user_text(request)
    if wants(request) == "Grades":
        return llm_server.grades(text)
    if wants(request) == "TriageReply":
        return llm_server.triage(text)
    if wants(request) == "Synthesis":
        return llm_server.synthesis(text)
    return llm_server.chunk_review(text)


def gullible(request: ModelRequest) -> dict[str, Any]:
    """A grader any answer talks round: every answer understood (reviews as ``good``)."""
    if wants(request) == "Grades":
        return llm_server.grades(user_text(request), gullible=True)
    return good(request)


def weak(*switches: str) -> Handler:
    """A weak model: the stand-in server's ``line0``, ``halfbad``, ``empty``, ``echo``,
    ``missingfile``, ``strayrisk``... applied to chunk reviews."""

    def handler(request: ModelRequest) -> Reply:
        reply = good(request)
        if wants(request) != "ChunkReview":
            return reply
        body = {"messages": request.messages}
        return llm_server.weaken(reply, set(switches), body)

    return handler


@dataclass
class FakeTransport:
    handler: Handler = good
    # How many of its own tokens the "model" counts per o200k token (a tokenizer that counts
    # more, as real models do on code and CJK text).
    token_ratio: float = 1.0
    requests: list[ModelRequest] = field(default_factory=list)
    # Set to make every call wait until it is set (to interrupt a run mid-call).
    gate: asyncio.Event | None = None

    async def complete(self, request: ModelRequest) -> Completion:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        out = self.handler(request)
        if isinstance(out, BaseException):
            raise out
        if isinstance(out, Completion):
            return out
        content = out if isinstance(out, str) else json.dumps(out)
        return self.completion(request, content)

    def completion(
        self, request: ModelRequest, content: str, truncated: bool = False
    ) -> Completion:
        from agent.tokens import count_messages, count_tokens

        prompt = math.ceil(count_messages(request.messages) * self.token_ratio)
        completion = count_tokens(content)
        return Completion(
            content=content,
            truncated=truncated,
            usage=Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                raw={"prompt_tokens": prompt, "completion_tokens": completion},
            ),
        )

    def purposes(self) -> list[str]:
        return [wants(r) for r in self.requests]


def sequence(*replies: Reply | Handler) -> Handler:
    """Answer the n-th request with the n-th reply (a reply, or a handler to call); the last
    one answers every request after it."""
    state = {"n": 0}

    def handler(request: ModelRequest) -> Reply:
        n = min(state["n"], len(replies) - 1)
        state["n"] += 1
        reply = replies[n]
        return reply(request) if callable(reply) else reply  # type: ignore[return-value]

    return handler
