"""A deterministic local model server speaking the real OpenAI Chat Completions and Anthropic
Messages wire formats, for recording vcrpy cassettes of ownit's LiteLLM traffic offline.

    with serve() as srv:  # srv is the base URL (a str), plus .url and .requests
        await litellm.acompletion(model="openai/gpt-local", api_base=f"{srv}/v1", ...)
        await litellm.acompletion(model="anthropic/claude-local", api_base=srv.url, ...)
        path, body, headers = srv.requests[-1]  # a Request; header names lower-cased

    python -m tests.llm_server --port 8765

Model name switches: garbage (prose), fenced (```json fence), badanchor (lines 99990-99995, first
path does/not/exist.py), error500, overloaded (Anthropic 529 / OpenAI 503), badrequest (400),
latency<N> (sleep N milliseconds before answering, e.g. ``openai/latency200-model``).
ids, ``created`` and token counts derive from the request body, so re-recording is stable.

LiteLLM 1.106.2 with ``response_format=<pydantic model titled ChunkReview>`` sends:

* ``openai/*`` (api_base ``<url>/v1``): POST /v1/chat/completions, ``response_format={"type":
  "json_schema", "json_schema": {"name": "ChunkReview", "schema": {..., "title": "ChunkReview",
  "additionalProperties": false}, "strict": true}}``; reads ``choices[0].message.content``.
* ``anthropic/claude-local`` (not in LiteLLM's model map; api_base ``<url>``): POST /v1/messages,
  ``tools=[{"name": "json_tool_call", "input_schema": {..., "title": "ChunkReview"}}]``,
  ``tool_choice={"name": "json_tool_call", "type": "tool"}``, ``max_tokens=4096``. Answered like
  Claude: a ``tool_use`` block with the object as ``input``, ``stop_reason: "tool_use"``; LiteLLM
  hands ``json.dumps(input)`` back as ``message.content`` with finish_reason "stop".
* ``anthropic/claude-sonnet-4-5`` (native structured output): ``output_format={"type":
  "json_schema", "schema": {..., "title": "ChunkReview"}}``, header ``anthropic-beta:
  structured-outputs-2025-11-13``, no tools, ``max_tokens=64000``. Answered with one ``text``
  block holding the JSON, ``stop_reason: "end_turn"`` (as is ``output_config.format``).
* Anthropic: system prompt as top-level ``system`` text blocks, user content as text blocks,
  headers ``x-api-key`` and ``anthropic-version: 2023-06-01``. Without response_format the JSON
  is plain text; garbage/fenced answer text even when a tool is forced.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import groupby
from typing import Any, NamedTuple
from urllib.parse import urlsplit

JSON = dict[str, Any]

CATEGORIES = ("intent", "mechanism", "failure_mode", "edge_case", "tests", "security")
PRIORITIES = ("high", "medium", "low")
TEMPLATES = {
    "intent": "What is the intent behind `{q}` in {path}, and what would break without it?",
    "mechanism": "How does `{q}` work together with the surrounding code in {path}?",
    "failure_mode": "What happens at runtime if `{q}` in {path} fails or gets unexpected input?",
    "edge_case": "Which edge cases (empty, None, very large values) reach `{q}` in {path}?",
    "tests": "Which test exercises the change at `{q}` in {path}?",
    "security": "Can untrusted input reach `{q}` in {path}, and is that safe?",
}
GARBAGE = "I'm sorry, I can't produce that format."
# switch: (OpenAI status, type), (Anthropic status, type)
ERRORS = {
    "error500": ((500, "server_error"), (500, "api_error")),
    "overloaded": ((503, "server_error"), (529, "overloaded_error")),
    "badrequest": ((400, "invalid_request_error"), (400, "invalid_request_error")),
}
OPENAI_500 = "The server had an error while processing your request. Sorry about that!"
ERROR_MESSAGES = {
    (500, "server_error"): OPENAI_500,
    (503, "server_error"): "The server is overloaded or not ready yet.",
    (500, "api_error"): "Internal server error",
    (529, "overloaded_error"): "Overloaded",
    (400, "invalid_request_error"): "Invalid request: this model rejects every request.",
}
COMPLETION_DETAILS = (  # all 0 in usage.completion_tokens_details
    "reasoning_tokens",
    "audio_tokens",
    "accepted_prediction_tokens",
    "rejected_prediction_tokens",
)

DIFF_BLOCK = re.compile(r"<<<DIFF-(\S+)\n(.*?)DIFF-\1>>>", re.S)
FILE_HEADER = re.compile(r"^=== FILE (.+) \((\w+)\) ===$")
DIFF_LINE = re.compile(r"^([ \d]{6}) ([ \d]{6}) ([ +-])(?: (.*))?$")
QUESTION_LINE = re.compile(r"^\s*\[Q(\d+)\].*$", re.M)
RISK_WORD = re.compile(r"\brisk\W{0,4}(high|medium|low)\b", re.I)
LATENCY = re.compile(r"latency(\d+)")


class Request(NamedTuple):
    path: str
    body: Any  # parsed JSON, or None when the body was not JSON
    headers: dict[str, str]


class Line(NamedTuple):
    old: int | None
    new: int | None
    tag: str
    text: str


class FileDiff(NamedTuple):
    path: str
    status: str
    hunks: list[list[Line]]


def _text(content: Any) -> str:
    """All text in a message content: a str, OpenAI parts or Anthropic blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text(part) for part in content)
    if isinstance(content, dict):
        return _text(content.get("text") or content.get("content"))
    return ""


def _messages_text(body: JSON, roles: tuple[str, ...] | None = None) -> str:
    texts = [] if roles else [_text(body.get("system"))]
    for message in body.get("messages") or []:
        if isinstance(message, dict) and (roles is None or message.get("role") in roles):
            texts.append(_text(message.get("content")))
    return "\n".join(t for t in texts if t)


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def parse_diff(text: str) -> list[FileDiff]:
    """The FILE blocks of every ``<<<DIFF-nonce ... DIFF-nonce>>>`` section in ``text``."""
    files: list[FileDiff] = []
    for _, block in DIFF_BLOCK.findall(text):
        for raw in block.splitlines():
            if header := FILE_HEADER.match(raw):
                files.append(FileDiff(header[1], header[2], []))
            elif not files:
                continue
            elif raw.startswith("@@"):
                files[-1].hunks.append([])
            elif (m := DIFF_LINE.match(raw)) and files[-1].hunks:
                old, new = (int(n) if n.strip() else None for n in (m[1], m[2]))
                files[-1].hunks[-1].append(Line(old, new, m[3], m[4] or ""))
    return files


def _first_run(hunk: list[Line], tag: str) -> list[Line]:
    """The first contiguous run of ``tag`` lines in ``hunk``."""
    return next((list(run) for t, run in groupby(hunk, key=lambda ln: ln.tag) if t == tag), [])


def _count(f: FileDiff, tag: str) -> int:
    return sum(line.tag == tag for hunk in f.hunks for line in hunk)


def _walkthrough(f: FileDiff) -> str:
    added, removed = _count(f, "+"), _count(f, "-")
    return (
        f"{f.path} is {f.status}: {added} line(s) added, {removed} removed, {len(f.hunks)} hunk(s)."
    )


def _question(index: int, path: str, hunk: list[Line]) -> JSON | None:
    """A question on the hunk's first run of added lines, else of removed lines."""
    side, run = "new", _first_run(hunk, "+")
    if not run:
        side, run = "old", _first_run(hunk, "-")
    if not run:
        return None
    start, end = (getattr(line, side) or 0 for line in (run[0], run[-1]))
    category = CATEGORIES[index % len(CATEGORIES)]
    where = f"line {start}" if start == end else f"lines {start}-{end}"
    return {
        "question": TEMPLATES[category].format(q=run[0].text.strip()[:60] or "(blank)", path=path),
        "category": category,
        "path": path,
        "side": side,
        "start_line": start,
        "end_line": end,
        "why_it_matters": f"The change at {side} {where} of {path} alters what the code does.",
        "priority": PRIORITIES[index % len(PRIORITIES)],
    }


def chunk_review(text: str, bad_anchor: bool = False) -> JSON:
    files = parse_diff(text)
    questions: list[JSON] = []
    for f in files:
        asked = 0
        for hunk in f.hunks:
            if asked < 3 and (question := _question(len(questions), f.path, hunk)):
                questions.append(question)
                asked += 1
    if bad_anchor:
        for question in questions:
            question["start_line"], question["end_line"] = 99990, 99995
        if questions:
            questions[0]["path"] = "does/not/exist.py"
    added, removed = (sum(_count(f, tag) for f in files) for tag in "+-")
    changed = added + removed
    risk = "high" if changed > 50 else "medium" if changed > 10 else "low"
    paths = ", ".join(f.path for f in files) or "no files"
    summary = f"Reviewed {len(files)} file(s) ({paths}): {added} line(s) added, {removed} removed."
    return {
        "summary": summary,
        "files": [{"path": f.path, "walkthrough": _walkthrough(f)} for f in files],
        "risk": risk,
        "risk_reasons": [f"{changed} changed line(s) in {len(files)} file(s) ({risk} threshold)."],
        "questions": questions,
    }


def synthesis(text: str) -> JSON:
    lines: dict[int, str] = {}
    for m in QUESTION_LINE.finditer(text):
        lines.setdefault(int(m[1]), m[0])
    urgent = {n for n, line in lines.items() if "security" in line or "failure_mode" in line}
    order = sorted(lines, key=lambda n: (n not in urgent, n))
    risks = [r.lower() for r in RISK_WORD.findall(text)]
    risk = next((r for r in ("high", "medium", "low") if r in risks), "low")
    return {
        "summary": f"Synthesised {len(order)} candidate question(s); "
        f"{len(urgent)} about security or failure modes come first.",
        "risk": risk,
        "risk_reasons": [f"{len(urgent)} of {len(order)} question(s) concern security or failure."],
        "question_order": order,
    }


def model_output(raw: bytes, body: JSON) -> JSON | str:
    """What the fake model says: the object, or text for the garbage/fenced switches."""
    user_text, raw_text = _messages_text(body, roles=("user",)), raw.decode("utf-8", "replace")
    titles = re.findall(r'"title":\s*"(ChunkReview|Synthesis)"', raw_text)
    if titles or "Synthesis" in raw_text or "ChunkReview" in raw_text:
        is_synthesis = "Synthesis" in (titles or raw_text)  # a schema title wins over prose
    else:
        is_synthesis = bool(QUESTION_LINE.search(user_text)) and not DIFF_BLOCK.search(user_text)
    model = str(body.get("model", ""))
    obj = synthesis(user_text) if is_synthesis else chunk_review(user_text, "badanchor" in model)
    if "garbage" in model:
        return GARBAGE
    if "fenced" in model:
        return f"Here is the review:\n```json\n{json.dumps(obj, indent=2)}\n```\nHope this helps."
    return obj


def _token(raw: bytes, salt: str, size: int) -> str:
    """``size`` alphanumerics derived from the request body, for ids that re-record stably."""
    digest = base64.b64encode(hashlib.sha512(salt.encode() + raw).digest()).decode()
    return "".join(c for c in digest if c.isalnum())[:size]


def _created(raw: bytes) -> int:
    return 1_750_000_000 + int.from_bytes(hashlib.sha256(raw).digest()[:4], "big") % 10**7


def _as_text(out: JSON | str) -> str:
    return out if isinstance(out, str) else json.dumps(out, separators=(",", ":"))


def error_reply(anthropic: bool, raw: bytes, status: int, kind: str, msg: str) -> tuple[int, JSON]:
    """An error in the vendor's format: Anthropic's carries a request_id, OpenAI's param/code."""
    if anthropic:
        request_id = "req_011C" + _token(raw, "req", 22)
        error = {"type": kind, "message": msg}
        return status, {"type": "error", "error": error, "request_id": request_id}
    return status, {"error": {"message": msg, "type": kind, "param": None, "code": None}}


def openai_reply(raw: bytes, body: JSON) -> tuple[int, JSON]:
    content = _as_text(model_output(raw, body))
    prompt, completion = _tokens(_messages_text(body)), _tokens(content)
    return 200, {
        "id": "chatcmpl-" + _token(raw, "chatcmpl", 29),
        "object": "chat.completion",
        "created": _created(raw),
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "message": dict(role="assistant", content=content, refusal=None, annotations=[]),
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": dict.fromkeys(COMPLETION_DETAILS, 0),
        },
        "service_tier": "default",
        "system_fingerprint": "fp_" + _token(raw, "fp", 10).lower(),
    }


def _forced_tool(body: JSON) -> str | None:
    """The tool a real Claude would call for this request, if any."""
    names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    choice: JSON = body["tool_choice"] if isinstance(body.get("tool_choice"), dict) else {}
    if choice.get("type") == "tool":
        return choice.get("name")
    if "json_tool_call" in names:
        return "json_tool_call"
    return names[0] if choice.get("type") == "any" and names else None


def anthropic_reply(raw: bytes, body: JSON) -> tuple[int, JSON]:
    out, tool = model_output(raw, body), _forced_tool(body)
    block: JSON = {"type": "text", "text": _as_text(out)}
    if tool and not isinstance(out, str):  # like Claude under a forced tool (garbage/fenced: text)
        block = {"type": "tool_use", "id": "toolu_01" + _token(raw, "toolu", 22)}
        block |= {"name": tool, "input": out}
    return 200, {
        "id": "msg_01" + _token(raw, "msg", 22),
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [block],
        "stop_reason": "tool_use" if block["type"] == "tool_use" else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": _tokens(_messages_text(body)),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": _tokens(_as_text(out)),
            "service_tier": "standard",
        },
    }


def route(path: str, raw: bytes, body: Any) -> tuple[int, JSON]:
    """(HTTP status, JSON payload) for one POST, in the wire format its path implies."""
    anthropic = path.endswith("/v1/messages")
    if not anthropic and not path.endswith("/chat/completions"):
        return error_reply(False, raw, 404, "invalid_request_error", f"Invalid URL (POST {path})")
    if not isinstance(body, dict) or body.get("stream"):
        message = "Request body must be a non-streaming JSON object."
        return error_reply(anthropic, raw, 400, "invalid_request_error", message)
    for switch, (openai_error, anthropic_error) in ERRORS.items():
        if switch in str(body.get("model", "")):
            status, kind = anthropic_error if anthropic else openai_error
            return error_reply(anthropic, raw, status, kind, ERROR_MESSAGES[status, kind])
    return anthropic_reply(raw, body) if anthropic else openai_reply(raw, body)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    raw = b""

    def do_POST(self) -> None:
        self.raw = raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self.server.lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.server.received.append(Request(path, body, headers))
        if isinstance(body, dict) and (delay := LATENCY.search(str(body.get("model", "")))):
            time.sleep(int(delay[1]) / 1000)
        status, payload = route(path, raw, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if path.endswith("/v1/messages"):
            self.send_header("request-id", "req_011C" + _token(raw, "req", 22))
        else:
            self.send_header("x-request-id", "req_" + _token(raw, "req", 32))
            self.send_header("openai-version", "2020-10-01")
        self.end_headers()
        self.wfile.write(data)

    def version_string(self) -> str:
        return "llm-server"  # the Server header, the same on every Python

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(_created(self.raw), usegmt=True)  # the Date header, stable too

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections when 8+ clients connect at once.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.lock = threading.Lock()
        self.received: list[Request] = []


class LLMServer(str):
    """The base URL ``http://HOST:PORT`` (a str) plus ``.requests``: every Request received."""

    requests: list[Request]

    def __new__(cls, url: str, requests: list[Request]) -> LLMServer:
        self = super().__new__(cls, url)
        self.requests = requests
        return self

    @property
    def url(self) -> str:
        return str(self)


@contextmanager
def serve(host: str = "127.0.0.1", port: int = 0) -> Iterator[LLMServer]:
    """Run the server on a background thread; yields its base URL; shuts it down on exit."""
    server = _Server((host, port))
    thread = threading.Thread(target=server.serve_forever, name="llm-server", daemon=True)
    thread.start()
    try:
        yield LLMServer(f"http://{host}:{server.server_address[1]}", server.received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description="Deterministic fake OpenAI + Anthropic server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with serve(args.host, args.port) as srv:
        print(srv.url, flush=True)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
