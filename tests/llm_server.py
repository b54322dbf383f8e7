"""A deterministic local model server speaking the real OpenAI Chat Completions and Anthropic
Messages wire formats, for recording vcrpy cassettes of ownit's LiteLLM traffic offline, and for
exercising the client against the ways real vendors and weak small models misbehave.

    with serve() as srv:  # srv is the base URL (a str), plus .url, .requests, .stats, .billed
        await litellm.acompletion(model="openai/gpt-local", api_base=f"{srv}/v1", ...)
        await litellm.acompletion(model="anthropic/claude-local", api_base=srv.url, ...)
        path, body, headers = srv.requests[-1]  # a Request; header names lower-cased
        srv.stats["ok"], srv.billed[-1]  # outcome counter; (model, prompt, completion) billed

    python -m tests.llm_server --port 8765 [--flaky-hang-ms 3000]

Switches are substrings of the request's ``model`` (``openai/<model>`` reaches the server as
``<model>``); several combine, e.g. ``openai/ctx8000-tok130-line0-model``. "Chunk only": applied
to ChunkReview replies, Synthesis replies stay normal. Precedence: reset, malformed, then the
first error in table order, then flaky, then ctx/llamactx, then the reply and its chunk-only
changes; cutbody and hang/latency wrap whatever reply results.

=============  ===========================================================================
switch         behaviour (OpenAI path / Anthropic path)
=============  ===========================================================================
garbage        200, prose instead of JSON (text even when a tool is forced)
fenced         200, the JSON inside a Markdown ```json fence with chatter around it
badanchor      200, every anchor at lines 99990-99995, the first path does/not/exist.py
latency<N>     sleep N ms before answering
unauthorized   401 invalid_api_key "Incorrect API key provided: sk-test-****...1234. ..."
               (key masked as OpenAI does) / 401 authentication_error "invalid x-api-key"
echokey        every error body echoes the caller's full credential in its message
               ("... (request had Authorization: Bearer <key>)" / x-api-key); alone (no
               other error switch): 401 with the echo
forbidden      403 "Project `proj_...` does not have access to model `<m>`" (code
               model_not_found, as OpenAI sends it) / 403 permission_error
notfound       404 model_not_found "The model `<m>` does not exist or you do not have access
               to it." / 404 not_found_error "model: <m>"
ratelimit[S]   429, retry-after S (default 1); OpenAI type "requests", code
               rate_limit_exceeded, x-ratelimit-* headers / rate_limit_error,
               anthropic-ratelimit-* headers (what Anthropic really sends)
error500       500 server_error / 500 api_error
overloaded     503 server_error / 529 overloaded_error
badrequest     400 invalid_request_error on every request
policy         400 content_policy_violation / 400 invalid_request_error "Output blocked by
               content filtering policy"
noschema       400 param response_format "response_format is not supported by this model"
               when a json_schema response_format is sent / 400 invalid_request_error
               "<output_format|output_config|tools>: structured output is not supported by
               this model" for a native schema or a forced tool; without one: normal replies
flaky<P>       fails ~P% of requests, see below
ctx<N>         context window N: prompt + max_tokens (or max_completion_tokens) > N gives 400
               context_length_exceeded "This model's maximum context length is N tokens.
               However, you requested T tokens (P in the messages, M in the completion). ..."
               / 400 "prompt is too long: P tokens > N maximum" when P > N, else "input
               length and `max_tokens` exceed context limit: P + M > N, ..." (both real)
llamactx<N>    llama.cpp: prompt >= N gives 400 {"error": {"code": 400, "message": "the
               request exceeds the available context size, try increasing it", "type":
               "exceed_context_size_error", "n_prompt_tokens": P, "n_ctx": N}}; a prompt
               that fits but leaves less than the reply needs is cut off at N (200,
               finish_reason "length"), as llama.cpp stops when its context is full
tok<P>         the server's tokenizer counts P% of ceil(chars/4): usage prompt tokens and
               the ctx checks (tok130 counts 30% more, as on code and CJK text)
truncated      chunk only: the JSON cut at 60%, finish_reason "length" (Anthropic: a text
               block, stop_reason "max_tokens"), completion tokens = the request's max_tokens
line0          chunk only: every question but the first at lines 0-0, plus one more
               question starting at line -10374
badcategory    chunk only: every second question's category is "performance" or "style"
halfbad        chunk only: every second question anchored at lines 99990-99995
empty          chunk only: no files, no questions, no risk_reasons, risk "low", and the
               schema's description of ``summary`` as the summary
echo           chunk only: the JSON schema it was sent (prompt-only: the schema found in the
               prompt, else ``{"title": "ChunkReview", "type": "object", ...}``) as the reply
blank          chunk only: 200 with empty content ("" / one empty text block)
missingfile    chunk only: only the first file's walkthrough in ``files``
strayrisk      chunk only: a risk reason and a walkthrough about src/not_in_diff.py
hang<MS>       sleep MS ms before answering (meant to outlast client timeouts)
reset          close the TCP connection with an RST, no HTTP response at all
malformed      200, Content-Type application/json, body an nginx HTML error page
cutbody        the reply's headers with its full Content-Length, half the body, then close
=============  ===========================================================================

``flaky<P>``: request k+1 with a given body (k = how often this server instance has seen that
exact body) fails when sha256(body + str(k)) says so, for about P% of requests; a retried body
gets a fresh draw. A failure is, also by the hash: 429 (retry-after 0), 500, 503 (Anthropic 529),
overflow (a context-length 400 for a 2000-token window when the prompt is larger, else a 500),
hang (``serve(flaky_hang_ms=3000)`` then a normal answer), reset, malformed, cutbody, truncated
(200, finish_reason length) or line0 (truncated for a Synthesis request).

``srv.stats`` counts one outcome per request: "ok", a switch name ("line0", "notfound",
"hang+line0" when several apply), a flaky failure ("429", "500", "503"/"529", "overflow",
"hang", "reset", "malformed", "cutbody", "truncated", "line0"), or "404"/"400" for a bad path or
body. ``srv.billed`` holds (model, prompt_tokens, completion_tokens) for every 200 reply carrying
a usage block, as a vendor bills it: also when the client timed out on a hang or got a cut body.
``srv.intervals`` holds (start, end) ``time.perf_counter()`` per request, from the moment its
headers were read to the moment its reply was written (or the connection reset): the time a
client spent waiting on this server, latency included, for benchmarks.

ownit's triage prompt (files in a ``<<<FILES-nonce`` block, or a ``TriageReply`` schema) is
answered with a rating per file shown, by its changed lines: high when one runs a shell, eval or
unpickling or turns off TLS checks, whatever the path; low for tests and docs; else medium. The
chunk-only switches leave it alone; garbage, fenced and the error switches apply.

pr-agent's review prompt (a system prompt starting "You are PR-Reviewer", the diff as ``## File:
'path'`` sections with numbered ``__new hunk__`` lines) is answered the way its parser wants: a
YAML ``review:`` mapping (estimated effort, relevant tests, up to three key issues on the first
added lines of the first files, security concerns), in the message content, whatever the model
name's chunk-only switches say.
ids, ``created``, Date and token counts derive from the request body, so re-recording is stable.

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
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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

# Switches that are plain substrings of the model name ("echo" must not be part of "echokey").
WEAK: tuple[str, ...] = (
    "truncated",
    "line0",
    "badcategory",
    "halfbad",
    "empty",
    "echo",
    "blank",
    "missingfile",
)
WEAK += ("strayrisk",)
FLAGS: tuple[str, ...] = (
    *WEAK,
    "unauthorized",
    "echokey",
    "forbidden",
    "notfound",
    "policy",
    "noschema",
)
FLAGS += ("reset", "malformed", "cutbody", *ERRORS, "garbage", "fenced", "badanchor")
# Switches that make a request fail; echokey alone answers 401 when none of them is present.
FAILING = ("unauthorized", "forbidden", "notfound", "policy", "noschema", *ERRORS)
ECHO = re.compile(r"echo(?!key)")
CTX = re.compile(r"(?<!llama)ctx(\d+)")
LLAMACTX = re.compile(r"llamactx(\d+)")
TOK = re.compile(r"tok(\d+)")
RATELIMIT = re.compile(r"ratelimit(\d*)")
HANG = re.compile(r"hang(\d+)")
FLAKY = re.compile(r"flaky(\d+)")
LATENCY = re.compile(r"latency(\d+)")

FLAKY_MENU: tuple[str, ...] = (
    "429",
    "500",
    "503",
    "overflow",
    "hang",
    "reset",
    "malformed",
    "cutbody",
)
FLAKY_MENU += ("truncated", "line0")
FLAKY_WINDOW = 2000  # the context window of a flaky "overflow" refusal
TRUNCATE_AT = 0.6
STRAY_PATH = "src/not_in_diff.py"
SUMMARY_DESCRIPTION = "what this part of the change does and why it matters"
ECHO_TEXT = '{"title": "ChunkReview", "type": "object", ...}'
MALFORMED = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
OPENAI_KEYS_URL = "https://platform.openai.com/account/api-keys"
OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    f"username. You can obtain an API key from {OPENAI_KEYS_URL}."
)
LLAMA_CTX_MESSAGE = "the request exceeds the available context size, try increasing it"
OPENAI_POLICY = (
    "Your request was rejected as a result of our safety system. Your prompt may contain text "
    "that is not allowed by our safety system."
)

DIFF_BLOCK = re.compile(r"<<<DIFF-(\S+)\n(.*?)DIFF-\1>>>", re.S)
FILE_HEADER = re.compile(r"^=== FILE (.+) \((\w+|new file: [^)]*)\) ===$")
# One number per line: the old side's for a removed line, the new side's for the rest.
DIFF_LINE = re.compile(r"^(\d+) ([ +-])(?: (.*))?$")
# A line of a new file ("new file" in its header): every one added, shown without its "+".
NEW_FILE_LINE = re.compile(r"^(\d+)(?: (.*))?$")
QUESTION_LINE = re.compile(r"^\s*\[Q(\d+)\].*$", re.M)
RISK_WORD = re.compile(r"\brisk\W{0,4}(high|medium|low)\b", re.I)
JSON_START = re.compile(r"^\{", re.M)
# ownit's triage prompt: files in a fenced block, each a header and its first changed lines.
FILES_BLOCK = re.compile(r"<<<FILES-(\S+)\n(.*?)FILES-\1>>>", re.S)
TRIAGE_FILE = re.compile(r"^=== FILE (.+) \((\w+), (\w+), \+(\d+) -(\d+)\) ===$")
# What a triage stand-in rates high in a changed line, wherever the file is.
RISKY_CALL = re.compile(
    r"subprocess|os\.system|shell=True|\beval\(|\bexec\(|pickle\.loads|verify=False"
)
PR_AGENT_REVIEW = re.compile(r"You are PR-Reviewer\b")
PR_AGENT_FILE = re.compile(r"^## File: '(.+)'$", re.M)
PR_AGENT_ADDED = re.compile(r"^(\d+) \+(.*)$", re.M)


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


@dataclass(frozen=True)
class Switches:
    """The behaviours a model name asks for."""

    flags: frozenset[str]
    ctx: int | None = None
    llamactx: int | None = None
    tok: int = 100
    ratelimit: int | None = None  # retry-after seconds
    hang: int = 0  # milliseconds
    flaky: int | None = None  # percent

    @classmethod
    def parse(cls, model: str) -> Switches:
        flags = {name for name in FLAGS if name in model}
        if not ECHO.search(model):
            flags.discard("echo")

        def number(pattern: re.Pattern[str]) -> int | None:
            return int(m[1]) if (m := pattern.search(model)) else None

        rate = RATELIMIT.search(model)
        tok = number(TOK)
        return cls(
            frozenset(flags),
            ctx=number(CTX),
            llamactx=number(LLAMACTX),
            tok=100 if tok is None else tok,
            ratelimit=(int(rate[1]) if rate[1] else 1) if rate else None,
            hang=number(HANG) or 0,
            flaky=number(FLAKY),
        )


class Reply(NamedTuple):
    """What the server does with one request."""

    status: int
    payload: JSON | None  # the JSON body; None for the malformed and reset faults
    outcome: str = "ok"  # the srv.stats key
    headers: tuple[tuple[str, str], ...] = ()  # extra headers, after the standard ones
    fault: str = ""  # "", "reset", "malformed" or "cutbody"
    delay_ms: int = 0


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


def prompt_tokens(body: JSON, percent: int = 100) -> int:
    """The server's count of the prompt: ``percent``% of ceil(chars / 4), rounded up."""
    return -(-_tokens(_messages_text(body)) * percent // 100)


def requested_tokens(body: JSON, anthropic: bool) -> int:
    """The completion budget the request asks for (0 when it names none)."""
    names = ("max_tokens",) if anthropic else ("max_tokens", "max_completion_tokens")
    return next((v for n in names if isinstance(v := body.get(n), int) and v > 0), 0)


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
            elif files[-1].status.startswith("new file") and files[-1].hunks:
                if m := NEW_FILE_LINE.match(raw):
                    files[-1].hunks[-1].append(Line(None, int(m[1]), "+", m[2] or ""))
            elif (m := DIFF_LINE.match(raw)) and files[-1].hunks:
                n, tag = int(m[1]), m[2]
                old, new = (n, None) if tag == "-" else (None, n)
                files[-1].hunks[-1].append(Line(old, new, tag, m[3] or ""))
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


_GRADE_BLOCK = re.compile(
    r"## Answer (\d+):.*?<<<CODE-(\w+)\n(.*?)\nCODE-\2>>>.*?<<<ANSWER-\2\n(.*?)\nANSWER-\2>>>",
    re.S,
)


def is_grading(body: JSON) -> bool:
    """Whether the request asks to grade answers (ownit check's rubric prompt)."""
    return '"grades"' in _messages_text(body, roles=("system",))


def grades(text: str, gullible: bool = False) -> JSON:
    """A grader: an answer naming two or more of the code's identifiers in eight words or more
    is understood, one of them partly, none not shown. ``gullible``: every answer understood,
    as a grader talked round by an answer would say."""
    out = []
    for m in _GRADE_BLOCK.finditer(text):
        n, code, answer = int(m[1]), m[3], m[4]
        names = {w.lower() for w in re.findall(r"[A-Za-z_]\w{3,}", code)}
        said = {w.lower() for w in re.findall(r"[A-Za-z_]\w{3,}", answer)}
        shared = len(names & said)
        words = len(answer.split())
        verdict = (
            "understood" if shared >= 2 and words >= 8 else "partly" if shared else "not_shown"
        )
        if gullible:
            verdict = "understood"
        feedback = {
            "understood": "Names the mechanism in the code.",
            "partly": "Say what the code does in the failing case.",
            "not_shown": "Point at what in this code answers the question.",
        }[verdict]
        out.append({"n": n, "verdict": verdict, "feedback": feedback})
    return {"grades": out}


def is_triage(raw: bytes, body: JSON) -> bool:
    """Whether the request is ownit's triage (a risk rating per file, a TriageReply)."""
    if "TriageReply" in raw.decode("utf-8", "replace"):
        return True
    return bool(FILES_BLOCK.search(_messages_text(body, roles=("user",))))


def triage(text: str) -> JSON:
    """Each file of the triage prompt rated by its changed lines: high when one runs a shell,
    eval or unpickling or turns off TLS checks (whatever its path says), low for tests and
    docs, else medium."""
    rated: list[JSON] = []
    for _, block in FILES_BLOCK.findall(text):
        for raw in block.splitlines():
            if header := TRIAGE_FILE.match(raw):
                kind = header[3]
                risk = "low" if kind in ("tests", "docs") else "medium"
                rated.append({"path": header[1], "risk": risk, "reason": f"{kind} change"})
            elif rated and raw[:2] in ("+ ", "- ") and (call := RISKY_CALL.search(raw)):
                rated[-1] |= {"risk": "high", "reason": f"a changed line uses {call[0]}"}
    return {"files": rated}


def is_synthesis(raw: bytes, body: JSON) -> bool:
    """Whether the request asks for a Synthesis (else a ChunkReview)."""
    user_text, raw_text = _messages_text(body, roles=("user",)), raw.decode("utf-8", "replace")
    titles = re.findall(r'"title":\s*"(ChunkReview|Synthesis)"', raw_text)
    if titles or "Synthesis" in raw_text or "ChunkReview" in raw_text:
        return "Synthesis" in (titles or raw_text)  # a schema title wins over prose
    if '"question_order"' in raw_text:  # the reply's shape, as the prompt shows it
        return True
    return bool(QUESTION_LINE.search(user_text)) and not DIFF_BLOCK.search(user_text)


def sent_schema(body: JSON) -> JSON | None:
    """The JSON schema the request forces: response_format, output_format/config or a tool."""
    candidates: list[Any] = []
    if isinstance(rf := body.get("response_format"), dict) and rf.get("type") == "json_schema":
        candidates.append((rf.get("json_schema") or {}).get("schema"))
    if isinstance(of := body.get("output_format"), dict):
        candidates.append(of.get("schema"))
    if isinstance(oc := body.get("output_config"), dict) and isinstance(oc.get("format"), dict):
        candidates.append(oc["format"].get("schema"))
    if tool := _forced_tool(body):
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        candidates += [t.get("input_schema") for t in tools if t.get("name") == tool]
    return next((c for c in candidates if isinstance(c, dict)), None)


def _prompt_schema(text: str) -> JSON | None:
    """A ChunkReview JSON schema written into the prompt (prompt-only structured output)."""
    decoder = json.JSONDecoder()
    for m in JSON_START.finditer(text):
        with suppress(ValueError):
            obj, _ = decoder.raw_decode(text, m.start())
            if isinstance(obj, dict) and obj.get("title") == "ChunkReview":
                return obj
    return None


def weaken(review: JSON, weak: Collection[str], body: JSON) -> JSON | str:
    """A ChunkReview as a weak model writes it, for the chunk-only switches in ``weak``."""
    schema = sent_schema(body) or _prompt_schema(_messages_text(body))
    if "echo" in weak:
        return schema if schema is not None else ECHO_TEXT
    if "empty" in weak:
        summary = ((schema or {}).get("properties") or {}).get("summary") or {}
        return {
            "summary": summary.get("description") or SUMMARY_DESCRIPTION,
            "files": [],
            "risk": "low",
            "risk_reasons": [],
            "questions": [],
        }
    questions: list[JSON] = review["questions"]
    for i, question in enumerate(questions):
        if "line0" in weak and i > 0:
            question["start_line"], question["end_line"] = 0, 0
        if "halfbad" in weak and i % 2:
            question["start_line"], question["end_line"] = 99990, 99995
        if "badcategory" in weak and i % 2:
            question["category"] = ("performance", "style")[i // 2 % 2]
    if "line0" in weak and questions:
        questions.append(questions[0] | {"start_line": -10374})
    if "missingfile" in weak:
        del review["files"][1:]
    if "strayrisk" in weak:
        review["risk_reasons"].append(f"Also changes {STRAY_PATH} in a risky way.")
        walkthrough = f"{STRAY_PATH} is modified: its error handling changes."
        review["files"].append({"path": STRAY_PATH, "walkthrough": walkthrough})
    return review


def is_pr_agent_review(body: JSON) -> bool:
    """Whether the request is pr-agent's /review prompt (answered in YAML, not JSON)."""
    return bool(PR_AGENT_REVIEW.search(_messages_text(body)))


def _pr_agent_issue(section: str) -> str | None:
    """One key issue in pr-agent's YAML on the first run of added lines of a file section."""
    path = PR_AGENT_FILE.search(section)
    added = [(int(m[1]), m[2]) for m in PR_AGENT_ADDED.finditer(section)]
    if path is None or not added:
        return None
    start = end = added[0][0]
    for number, _ in added[1:]:
        if number != end + 1:
            break
        end = number
    quoted = added[0][1].strip()[:60].replace("`", "'") or "(blank)"
    return (
        f"    - relevant_file: |\n        {path[1]}\n"
        "      issue_header: |\n        Possible Bug\n"
        f"      issue_content: |\n        The new code `{quoted}` changes behaviour callers rely "
        "on; check the inputs that reach it.\n"
        f"      start_line: {start}\n      end_line: {end}\n"
    )


def pr_agent_review(user_text: str) -> str:
    """pr-agent's review as YAML: effort from the diff's size, up to three key issues."""
    starts = [m.start() for m in PR_AGENT_FILE.finditer(user_text)]
    sections = [user_text[a:b] for a, b in zip(starts, [*starts[1:], len(user_text)], strict=True)]
    issues = [i for s in sections if (i := _pr_agent_issue(s))][:3]
    added = len(PR_AGENT_ADDED.findall(user_text))
    effort = 1 if added < 20 else 2 if added < 100 else 3 if added < 500 else 4
    return (
        "review:\n"
        f"  estimated_effort_to_review_[1-5]: {effort}\n"
        "  relevant_tests: |\n    No\n"
        + (
            "  key_issues_to_review:\n" + "".join(issues)
            if issues
            else "  key_issues_to_review: []\n"
        )
        + "  security_concerns: |\n    No\n"
    )


def model_output(raw: bytes, body: JSON, weak: Collection[str] = ()) -> JSON | str:
    """What the fake model says: the object, or text for the garbage/fenced switches; ``weak``
    names the chunk-only switches that change a ChunkReview's content. pr-agent's review
    prompt gets its YAML review."""
    user_text = _messages_text(body, roles=("user",))
    if is_pr_agent_review(body):
        return GARBAGE if "garbage" in str(body.get("model", "")) else pr_agent_review(user_text)
    if is_grading(body):
        model = str(body.get("model", ""))
        return GARBAGE if "garbage" in model else grades(user_text, "gullible" in model)
    synth = is_synthesis(raw, body)
    model = str(body.get("model", ""))
    obj = synthesis(user_text) if synth else chunk_review(user_text, "badanchor" in model)
    if is_triage(raw, body):
        synth, obj = True, triage(user_text)  # as a Synthesis: no chunk-only changes
    if "garbage" in model:
        return GARBAGE
    if "fenced" in model:
        return f"Here is the review:\n```json\n{json.dumps(obj, indent=2)}\n```\nHope this helps."
    return weaken(obj, weak, body) if weak and not synth else obj


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


def openai_error(
    status: int, msg: str, kind: str, param: str | None = None, code: str | None = None
) -> tuple[int, JSON]:
    return status, {"error": {"message": msg, "type": kind, "param": param, "code": code}}


def openai_reply(
    raw: bytes,
    body: JSON,
    out: JSON | str | None = None,
    *,
    finish: str = "stop",
    prompt: int | None = None,
    completion: int | None = None,
) -> tuple[int, JSON]:
    content = _as_text(model_output(raw, body) if out is None else out)
    prompt = _tokens(_messages_text(body)) if prompt is None else prompt
    completion = _tokens(content) if completion is None else completion
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
                "finish_reason": finish,
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


def anthropic_reply(
    raw: bytes,
    body: JSON,
    out: JSON | str | None = None,
    *,
    finish: str = "end_turn",
    prompt: int | None = None,
    completion: int | None = None,
) -> tuple[int, JSON]:
    out, tool = model_output(raw, body) if out is None else out, _forced_tool(body)
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
        "stop_reason": "tool_use" if block["type"] == "tool_use" else finish,
        "stop_sequence": None,
        "usage": {
            "input_tokens": _tokens(_messages_text(body)) if prompt is None else prompt,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": _tokens(_as_text(out)) if completion is None else completion,
            "service_tier": "standard",
        },
    }


def mask_key(key: str) -> str:
    """An API key as OpenAI prints it in a 401: the first 8 and last 4 characters."""
    if len(key) > 12:
        return key[:8] + "*" * (len(key) - 12) + key[-4:]
    return key[:3] + "***" + key[-2:] if len(key) >= 8 else "***"


def credential(headers: dict[str, str], anthropic: bool) -> tuple[str, str]:
    """(header as the caller sent it, the key in it); ("", "") when there is none."""
    bearer = headers.get("authorization", "")
    key = bearer.removeprefix("Bearer ").removeprefix("bearer ").strip()
    if anthropic and headers.get("x-api-key"):
        return f"x-api-key: {headers['x-api-key']}", headers["x-api-key"]
    return (f"Authorization: {bearer}", key) if bearer else ("", "")


def _context_error(
    anthropic: bool, raw: bytes, window: int, prompt: int, completion: int, llama: bool
) -> tuple[int, JSON]:
    if llama:
        error = {"code": 400, "message": LLAMA_CTX_MESSAGE, "type": "exceed_context_size_error"}
        return 400, {"error": error | {"n_prompt_tokens": prompt, "n_ctx": window}}
    if anthropic:
        if prompt > window:
            msg = f"prompt is too long: {prompt} tokens > {window} maximum"
        else:
            msg = (
                f"input length and `max_tokens` exceed context limit: {prompt} + {completion} > "
                f"{window}, decrease input length or `max_tokens` and try again"
            )
        return error_reply(True, raw, 400, "invalid_request_error", msg)
    msg = f"This model's maximum context length is {window} tokens. However, " + (
        f"you requested {prompt + completion} tokens ({prompt} in the messages, {completion} in "
        "the completion). Please reduce the length of the messages or completion."
        if completion
        else f"your messages resulted in {prompt} tokens. Please reduce the length of the messages."
    )
    return openai_error(400, msg, "invalid_request_error", "messages", "context_length_exceeded")


def _rate_limited(anthropic: bool, raw: bytes, model: str, seconds: int) -> Reply:
    if anthropic:
        msg = (
            "This request would exceed the rate limit for your organization of 50 requests per "
            "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
            "see the response headers for current usage. Please reduce the prompt length or the "
            "maximum tokens requested, or try again later."
        )
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_created(raw) + seconds))
        headers: tuple[tuple[str, str], ...] = (
            ("retry-after", str(seconds)),
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", reset),
        )
        status, payload = error_reply(True, raw, 429, "rate_limit_error", msg)
        return Reply(status, payload, headers=headers)
    msg = (
        f"Rate limit reached for {model} in organization org-{_token(raw, 'org', 24)} on "
        f"requests per min (RPM): Limit 60, Used 60, Requested 1. Please try again in "
        f"{seconds}s. Visit https://platform.openai.com/account/rate-limits to learn more."
    )
    headers = (
        ("retry-after", str(seconds)),
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", f"{seconds}s"),
        ("x-ratelimit-limit-tokens", "150000"),
        ("x-ratelimit-remaining-tokens", "150000"),
        ("x-ratelimit-reset-tokens", "0s"),
    )
    status, payload = openai_error(429, msg, "requests", None, "rate_limit_exceeded")
    return Reply(status, payload, headers=headers)


def _refusal(
    anthropic: bool, raw: bytes, body: JSON, sw: Switches, headers: dict[str, str]
) -> Reply | None:
    """The error a switch makes the request fail with, if any (before flaky and ctx)."""
    model = str(body.get("model", ""))
    flags = sw.flags
    if "unauthorized" in flags or (
        "echokey" in flags
        and not flags.intersection(FAILING)
        and all(n is None for n in (sw.ratelimit, sw.flaky, sw.ctx, sw.llamactx))
    ):
        outcome = "unauthorized" if "unauthorized" in flags else "echokey"
        if anthropic:
            status, payload = error_reply(
                True, raw, 401, "authentication_error", "invalid x-api-key"
            )
            return Reply(status, payload, outcome)
        _, key = credential(headers, anthropic=False)
        if not key:
            return Reply(*openai_error(401, OPENAI_NO_KEY, "invalid_request_error"), outcome)
        msg = f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
        msg += f"{OPENAI_KEYS_URL}."
        return Reply(
            *openai_error(401, msg, "invalid_request_error", None, "invalid_api_key"), outcome
        )
    if "forbidden" in flags:
        if anthropic:
            msg = "Your API key does not have permission to use the specified resource."
            return Reply(*error_reply(True, raw, 403, "permission_error", msg), "forbidden")
        msg = f"Project `proj_{_token(raw, 'proj', 24)}` does not have access to model `{model}`"
        return Reply(
            *openai_error(403, msg, "invalid_request_error", None, "model_not_found"), "forbidden"
        )
    if "notfound" in flags:
        if anthropic:
            return Reply(
                *error_reply(True, raw, 404, "not_found_error", f"model: {model}"), "notfound"
            )
        msg = f"The model `{model}` does not exist or you do not have access to it."
        return Reply(
            *openai_error(404, msg, "invalid_request_error", None, "model_not_found"), "notfound"
        )
    if sw.ratelimit is not None:
        return _rate_limited(anthropic, raw, model, sw.ratelimit)._replace(outcome="ratelimit")
    for switch, (openai_err, anthropic_err) in ERRORS.items():
        if switch in flags:
            status, kind = anthropic_err if anthropic else openai_err
            return Reply(
                *error_reply(anthropic, raw, status, kind, ERROR_MESSAGES[status, kind]), switch
            )
    if "policy" in flags:
        if anthropic:
            msg = "Output blocked by content filtering policy"
            return Reply(*error_reply(True, raw, 400, "invalid_request_error", msg), "policy")
        return Reply(
            *openai_error(
                400, OPENAI_POLICY, "invalid_request_error", None, "content_policy_violation"
            ),
            "policy",
        )
    if "noschema" in flags and sent_schema(body) is not None:
        if anthropic:
            field = next((f for f in ("output_format", "output_config") if f in body), "tools")
            msg = f"{field}: structured output is not supported by this model"
            return Reply(*error_reply(True, raw, 400, "invalid_request_error", msg), "noschema")
        msg = "response_format is not supported by this model"
        return Reply(
            *openai_error(400, msg, "invalid_request_error", "response_format"), "noschema"
        )
    return None


def flaky_failure(raw: bytes, attempt: int, percent: int) -> str | None:
    """The failure (a FLAKY_MENU name) for this body's ``attempt``-th sending, or None."""
    digest = hashlib.sha256(raw + str(attempt).encode()).digest()
    if int.from_bytes(digest[:8], "big") % 10_000 >= percent * 100:
        return None
    return FLAKY_MENU[int.from_bytes(digest[8:16], "big") % len(FLAKY_MENU)]


def _answer(
    raw: bytes,
    body: JSON,
    anthropic: bool,
    sw: Switches,
    forced: str = "",
    window: int | None = None,
) -> Reply:
    """A 200 reply: the model's output with the model name's chunk-only changes applied, plus
    ``forced`` (a flaky "truncated" or "line0", on any reply), and with a llama.cpp ``window``
    cut off where that context is full."""
    model = str(body.get("model", ""))
    chunk = not is_synthesis(raw, body) and "garbage" not in model and "fenced" not in model
    chunk = chunk and not is_triage(raw, body) and not is_grading(body)
    if forced == "line0" and not chunk:  # a flaky line0 on a Synthesis: cut off instead
        forced = "truncated"
    wanted = sw.flags | {forced} if chunk else {forced}
    applied = [name for name in WEAK if name in wanted]
    out = model_output(raw, body, [n for n in applied if n not in ("truncated", "blank")])
    prompt = prompt_tokens(body, sw.tok)
    options: dict[str, Any] = {"prompt": prompt}
    text = _as_text(out)
    if "blank" in applied:
        out = ""
    elif "truncated" in applied:
        out = text[: int(len(text) * TRUNCATE_AT)]
        options["completion"] = requested_tokens(body, anthropic) or _tokens(out)
        options["finish"] = "max_tokens" if anthropic else "length"
    elif window is not None and prompt + _tokens(text) > window:
        options["completion"] = completion = max(window - prompt, 0)
        options["finish"] = "max_tokens" if anthropic else "length"
        out = text[: completion * 4]
        applied.append("truncated")
    build = anthropic_reply if anthropic else openai_reply
    status, payload = build(raw, body, out, **options)
    return Reply(status, payload, "+".join(applied) or "ok")


def respond(
    path: str,
    raw: bytes,
    body: Any,
    headers: dict[str, str] | None = None,
    attempt: int = 0,
    flaky_hang_ms: int = 3000,
) -> Reply:
    """What to answer one POST: ``attempt`` is how often this server saw ``raw`` before."""
    path, usage = UsageSwitches.parse(path)
    if gemini := GEMINI_PATH.search(path):
        return _gemini(gemini[1], raw, body, headers or {}, attempt, flaky_hang_ms, usage)
    reply = _respond_chat(path, raw, body, headers, attempt, flaky_hang_ms)
    return usage.apply(reply, anthropic=path.endswith("/v1/messages"))


def _respond_chat(
    path: str,
    raw: bytes,
    body: Any,
    headers: dict[str, str] | None,
    attempt: int,
    flaky_hang_ms: int,
) -> Reply:
    headers = headers or {}
    anthropic = path.endswith("/v1/messages")
    if not anthropic and not path.endswith("/chat/completions"):
        message = f"Invalid URL (POST {path})"
        return Reply(*error_reply(False, raw, 404, "invalid_request_error", message), "404")
    if not isinstance(body, dict) or body.get("stream"):
        message = "Request body must be a non-streaming JSON object."
        return Reply(*error_reply(anthropic, raw, 400, "invalid_request_error", message), "400")
    sw = Switches.parse(str(body.get("model", "")))
    reply = _respond(anthropic, raw, body, sw, headers, attempt, flaky_hang_ms)
    if "echokey" in sw.flags and reply.status >= 400 and reply.payload:
        sent, _ = credential(headers, anthropic)
        echo = f" (request had {sent})" if sent else " (request had no credentials)"
        error = dict(reply.payload["error"])
        error["message"] = f"{error['message']}{echo}"
        reply = reply._replace(payload=reply.payload | {"error": error})
    if "cutbody" in sw.flags and not reply.fault:
        reply = reply._replace(fault="cutbody", outcome=_join("cutbody", reply.outcome))
    if sw.hang:
        reply = reply._replace(
            delay_ms=reply.delay_ms + sw.hang, outcome=_join("hang", reply.outcome)
        )
    return reply


# --- usage blocks as the vendors report cached, cache-write and reasoning tokens ---------------

USAGE_PREFIX = re.compile(r"^/usage/([^/]+)(/.*)$")
USAGE_COUNT = re.compile(r"(cached|write|hour|think)(\d+)")


@dataclass(frozen=True)
class UsageSwitches:
    """Usage switches, from a path prefix ``/usage/<switches>/``: the model name must stay the
    real one for the model to be priced. ``cached<N>``: N prompt tokens read from the cache;
    ``write<N>``: N written to it (Anthropic), ``hour<N>`` of them for an hour; ``think<N>``: N
    reasoning tokens, billed as output but not in the reply; ``nousage``: no usage block at all
    (as some streams and local servers answer); ``gateway``: answer as a LiteLLM proxy does, with
    the call's cost in the ``x-litellm-response-cost`` header (its usage at ``GATEWAY_RATES``,
    also when ``nousage`` hides the block). Joined with ``-``: ``/usage/cached1024-think300``.
    """

    cached: int = 0
    write: int = 0
    hour: int = 0
    think: int = 0
    nousage: bool = False
    gateway: bool = False

    @classmethod
    def parse(cls, path: str) -> tuple[str, UsageSwitches]:
        found = USAGE_PREFIX.match(path)
        if not found:
            return path, cls()
        counts = {name: int(n) for name, n in USAGE_COUNT.findall(found[1])}
        flags = found[1].split("-")
        return found[2], cls(**counts, nousage="nousage" in flags, gateway="gateway" in flags)

    def apply(self, reply: Reply, *, anthropic: bool) -> Reply:
        usage = (reply.payload or {}).get("usage")
        if reply.status != 200 or not isinstance(usage, dict) or self == UsageSwitches():
            return reply
        reply = self._counted(reply, anthropic=anthropic)
        payload = dict(reply.payload or {})
        if self.gateway:
            reply = reply._replace(headers=(*reply.headers, _gateway_cost(payload["usage"])))
        if self.nousage:
            del payload["usage"]
        return reply._replace(payload=payload)

    def _counted(self, reply: Reply, *, anthropic: bool) -> Reply:
        payload = dict(reply.payload or {})
        usage = dict(payload["usage"])
        if anthropic:
            # input_tokens is the uncached rest; thinking is inside output_tokens.
            total = usage["input_tokens"]
            read = min(self.cached, total)
            write = min(self.write, total - read)
            hour = min(self.hour, write)
            usage["input_tokens"] = total - read - write
            usage["cache_read_input_tokens"] = read
            usage["cache_creation_input_tokens"] = write
            usage["cache_creation"] = {
                "ephemeral_5m_input_tokens": write - hour,
                "ephemeral_1h_input_tokens": hour,
            }
            usage["output_tokens"] += self.think
        else:
            # prompt_tokens counts the cached ones; completion_tokens the reasoning ones.
            details = dict(usage.get("prompt_tokens_details") or {})
            details["cached_tokens"] = min(self.cached, usage["prompt_tokens"])
            usage["prompt_tokens_details"] = details
            reasoning = dict(usage.get("completion_tokens_details") or {})
            reasoning["reasoning_tokens"] = self.think
            usage["completion_tokens_details"] = reasoning
            usage["completion_tokens"] += self.think
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        payload["usage"] = usage
        return reply._replace(payload=payload)


# What the stand-in gateway charges, USD per token (prompt, completion): not any vendor's price,
# so that a test can tell the gateway's cost from one ownit computed.
GATEWAY_RATES = (3e-6, 7e-6)
GATEWAY_COST = "x-litellm-response-cost"


def _gateway_cost(usage: dict[str, Any]) -> tuple[str, str]:
    prompt = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    usd = prompt * GATEWAY_RATES[0] + completion * GATEWAY_RATES[1]
    return GATEWAY_COST, repr(usd)


# --- Gemini (generateContent) -----------------------------------------------------------------

GEMINI_PATH = re.compile(r"/models/([^/:]+):generateContent$")
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
GEMINI_STATUS |= {404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def _gemini_text(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    return "\n".join(str(p.get("text", "")) for p in parts or [] if isinstance(p, dict))


def _gemini(
    model: str,
    raw: bytes,
    body: Any,
    headers: dict[str, str],
    attempt: int,
    flaky_hang_ms: int,
    usage: UsageSwitches,
) -> Reply:
    """A generateContent request answered as Gemini does, by way of the chat path: the same
    model output, in ``candidates`` with a ``usageMetadata`` block (thoughts counted apart from
    the candidates, cached tokens inside the prompt count)."""
    if not isinstance(body, dict):
        body = {}

    def field(data: JSON, camel: str) -> Any:  # the API takes camelCase and snake_case alike
        snake = re.sub(r"([A-Z])", lambda m: "_" + m[1].lower(), camel)
        return data.get(camel, data.get(snake))

    config = field(body, "generationConfig")
    config = config if isinstance(config, dict) else {}
    schema = field(config, "responseJsonSchema") or field(config, "responseSchema")
    chat: JSON = {
        "model": model,
        "system": _gemini_text(field(body, "systemInstruction")),
        "messages": [
            {
                "role": "assistant" if c.get("role") == "model" else "user",
                "content": _gemini_text(c),
            }
            for c in body.get("contents") or []
            if isinstance(c, dict)
        ],
    }
    if isinstance(schema, dict):
        chat["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
    if isinstance(limit := field(config, "maxOutputTokens"), int):
        chat["max_tokens"] = limit
    reply = _respond_chat("/v1/chat/completions", raw, chat, headers, attempt, flaky_hang_ms)
    if reply.status != 200 or not reply.payload:
        error = (reply.payload or {}).get("error") or {}
        status = GEMINI_STATUS.get(reply.status, "UNKNOWN")
        payload = {
            "error": {"code": reply.status, "message": error.get("message"), "status": status}
        }
        return reply._replace(payload=payload if reply.payload else None)
    choice = reply.payload["choices"][0]
    counts = reply.payload["usage"]
    prompt, visible = counts["prompt_tokens"], counts["completion_tokens"]
    cached = min(usage.cached, prompt)
    meta: JSON = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": visible,
        "totalTokenCount": prompt + visible + usage.think,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if cached:
        meta["cachedContentTokenCount"] = cached
        meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if usage.think:
        meta["thoughtsTokenCount"] = usage.think
    payload = {
        "candidates": [
            {
                "content": {"parts": [{"text": choice["message"]["content"]}], "role": "model"},
                "finishReason": "MAX_TOKENS" if choice["finish_reason"] == "length" else "STOP",
                "index": 0,
            }
        ],
        "modelVersion": model,
        "responseId": _token(raw, "gemini", 22),
    }
    if not usage.nousage:
        payload["usageMetadata"] = meta
    return reply._replace(payload=payload)


def _join(name: str, outcome: str) -> str:
    return name if outcome == "ok" else f"{name}+{outcome}"


def _respond(
    anthropic: bool,
    raw: bytes,
    body: JSON,
    sw: Switches,
    headers: dict[str, str],
    attempt: int,
    flaky_hang_ms: int,
) -> Reply:
    if "reset" in sw.flags:
        return Reply(0, None, "reset", fault="reset")
    if "malformed" in sw.flags:
        return Reply(200, None, "malformed", fault="malformed")
    if refusal := _refusal(anthropic, raw, body, sw, headers):
        return refusal
    prompt, completion = prompt_tokens(body, sw.tok), requested_tokens(body, anthropic)
    if sw.flaky and (failure := flaky_failure(raw, attempt, sw.flaky)):
        if failure == "overflow" and prompt <= FLAKY_WINDOW:
            failure = "500"
        if failure == "429":
            return _rate_limited(anthropic, raw, str(body.get("model", "")), 0)._replace(
                outcome="429"
            )
        if failure in ("500", "503"):
            status, kind = ERRORS["error500" if failure == "500" else "overloaded"][anthropic]
            reply = error_reply(anthropic, raw, status, kind, ERROR_MESSAGES[status, kind])
            return Reply(*reply, str(status))
        if failure == "overflow":
            llama = sw.llamactx is not None
            window = FLAKY_WINDOW
            return Reply(
                *_context_error(anthropic, raw, window, prompt, completion, llama), "overflow"
            )
        if failure in ("reset", "malformed"):
            return Reply(0 if failure == "reset" else 200, None, failure, fault=failure)
        if failure == "cutbody":
            return _answer(raw, body, anthropic, sw)._replace(fault="cutbody", outcome="cutbody")
        if failure == "hang":
            return _answer(raw, body, anthropic, sw)._replace(
                delay_ms=flaky_hang_ms, outcome="hang"
            )
        return _answer(raw, body, anthropic, sw, forced=failure)._replace(outcome=failure)
    if sw.ctx is not None and prompt + completion > sw.ctx:
        return Reply(*_context_error(anthropic, raw, sw.ctx, prompt, completion, False), "ctx")
    if sw.llamactx is not None:
        if prompt >= sw.llamactx:
            error = _context_error(anthropic, raw, sw.llamactx, prompt, completion, True)
            return Reply(*error, "llamactx")
        if prompt + completion > sw.llamactx:
            return _answer(raw, body, anthropic, sw, window=sw.llamactx)
    return _answer(raw, body, anthropic, sw)


def route(path: str, raw: bytes, body: Any) -> tuple[int, JSON]:
    """(HTTP status, JSON payload) for one POST, in the wire format its path implies (a
    transport fault, which has no JSON payload, gives ``{}``)."""
    reply = respond(path, raw, body)
    return reply.status, reply.payload or {}


def billed_usage(reply: Reply, body: Any) -> tuple[str, int, int] | None:
    """(model, prompt tokens, completion tokens) a vendor bills for this reply, if any."""
    if reply.status != 200 or not reply.payload or not isinstance(body, dict):
        return None
    usage = reply.payload.get("usage") or reply.payload.get("usageMetadata")
    if not isinstance(usage, dict):
        return None
    prompt: int = (
        usage.get("prompt_tokens", usage.get("input_tokens", usage.get("promptTokenCount"))) or 0
    )
    completion: int = (
        usage.get(
            "completion_tokens", usage.get("output_tokens", usage.get("candidatesTokenCount"))
        )
        or 0
    )
    model = body.get("model") or reply.payload.get("modelVersion", "")  # Gemini: in the path
    return str(model), prompt, completion


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    raw = b""

    def do_POST(self) -> None:
        start = time.perf_counter()
        try:
            self._post()
        finally:
            with self.server.lock:
                self.server.intervals.append((start, time.perf_counter()))

    def _post(self) -> None:
        self.raw = raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        digest = hashlib.sha256(raw).hexdigest()
        with self.server.lock:
            self.server.received.append(Request(path, body, headers))
            attempt = self.server.seen[digest]
            self.server.seen[digest] += 1
        if isinstance(body, dict) and (delay := LATENCY.search(str(body.get("model", "")))):
            time.sleep(int(delay[1]) / 1000)
        reply = respond(path, raw, body, headers, attempt, self.server.flaky_hang_ms)
        with self.server.lock:
            self.server.stats[reply.outcome] += 1
            if bill := billed_usage(reply, body):
                self.server.billed.append(bill)
            if charged := dict(reply.headers).get(GATEWAY_COST):
                self.server.charged.append(float(charged))
        if reply.delay_ms:
            time.sleep(reply.delay_ms / 1000)
        if reply.fault == "reset":
            self._reset()
            return
        data = MALFORMED if reply.fault == "malformed" else json.dumps(reply.payload).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if path.endswith("/v1/messages"):
            self.send_header("request-id", "req_011C" + _token(raw, "req", 22))
        else:
            self.send_header("x-request-id", "req_" + _token(raw, "req", 32))
            self.send_header("openai-version", "2020-10-01")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if reply.fault == "cutbody":
            self.close_connection = True
            data = data[: len(data) // 2]
        self.wfile.write(data)

    def do_GET(self) -> None:
        """``GET /_records?since=R,I,B``: what the server has seen, for a client in another
        process (``serve_apart``): the requests, intervals and billed replies from those
        offsets on, with the stats and the totals. Not a request it records."""
        parts = urlsplit(self.path)
        if parts.path != "/_records":
            self.send_error(404)
            return
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        since = [int(n) for n in query.get("since", "0,0,0").split(",")]
        server = self.server
        with server.lock:
            records = {
                "counts": [len(server.received), len(server.intervals), len(server.billed)],
                "requests": [list(r) for r in server.received[since[0] :]],
                "intervals": server.intervals[since[1] :],
                "billed": server.billed[since[2] :],
                "stats": dict(server.stats),
            }
        data = json.dumps(records).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        """Close the connection with an RST (SO_LINGER 0), sending no HTTP response."""
        self.close_connection = True
        with suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

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

    def __init__(self, address: tuple[str, int], flaky_hang_ms: int = 3000) -> None:
        super().__init__(address, _Handler)
        self.lock = threading.Lock()
        self.received: list[Request] = []
        self.seen: Counter[str] = Counter()  # request body sha256 -> times received
        self.stats: Counter[str] = Counter()
        self.billed: list[tuple[str, int, int]] = []
        self.charged: list[float] = []
        self.intervals: list[tuple[float, float]] = []  # (start, end) perf_counter per request
        self.flaky_hang_ms = flaky_hang_ms

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout on a hang, a reset) is expected here, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LLMServer(str):
    """The base URL ``http://HOST:PORT`` (a str) plus ``.requests``: every Request received,
    ``.stats``: outcome -> count, ``.billed``: (model, prompt, completion) per billed reply,
    ``.charged``: the cost each ``gateway`` reply reported in its header,
    ``.intervals``: (start, end) perf_counter of each request, arrival to reply written."""

    requests: list[Request]
    stats: Counter[str]
    billed: list[tuple[str, int, int]]
    charged: list[float]
    intervals: list[tuple[float, float]]

    def __new__(
        cls,
        url: str,
        requests: list[Request],
        stats: Counter[str] | None = None,
        billed: list[tuple[str, int, int]] | None = None,
        intervals: list[tuple[float, float]] | None = None,
        charged: list[float] | None = None,
    ) -> LLMServer:
        self = super().__new__(cls, url)
        self.requests = requests
        self.stats = Counter() if stats is None else stats
        self.billed = [] if billed is None else billed
        self.intervals = [] if intervals is None else intervals
        self.charged = [] if charged is None else charged
        return self

    @property
    def url(self) -> str:
        return str(self)


@contextmanager
def serve(
    host: str = "127.0.0.1", port: int = 0, *, flaky_hang_ms: int = 3000
) -> Iterator[LLMServer]:
    """Run the server on a background thread; yields its base URL; shuts it down on exit.
    ``flaky_hang_ms``: how long a flaky<P> "hang" failure waits before answering."""
    server = _Server((host, port), flaky_hang_ms=flaky_hang_ms)
    # Poll for shutdown every 50 ms, not socketserver's 500 ms: leaving serve() is that fast.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="llm-server", daemon=True
    )
    thread.start()
    try:
        url = f"http://{host}:{server.server_address[1]}"
        yield LLMServer(
            url, server.received, server.stats, server.billed, server.intervals, server.charged
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass(frozen=True)
class Records:
    """What a server in another process had seen (``GET /_records``): from given offsets on."""

    counts: tuple[int, int, int]  # requests, intervals, billed: all of them so far
    requests: list[Request]
    intervals: list[tuple[float, float]]
    billed: list[tuple[str, int, int]]
    stats: dict[str, int]


class ApartServer(str):
    """The base URL of a server running in its own process (``serve_apart``), and ``records``:
    what it has seen. Its intervals are ``time.perf_counter()`` values of that process, which
    on Linux and macOS is the system's monotonic clock: comparable with this process's."""

    @property
    def url(self) -> str:
        return str(self)

    def counts(self) -> tuple[int, int, int]:
        """How many requests, intervals and billed replies it has seen so far."""
        return self.records((2**62,) * 3).counts

    def records(self, since: tuple[int, int, int] = (0, 0, 0)) -> Records:
        from urllib.request import urlopen

        with urlopen(f"{self}/_records?since={','.join(map(str, since))}", timeout=30) as r:
            data = json.loads(r.read())
        return Records(
            counts=tuple(data["counts"]),  # type: ignore[arg-type]
            requests=[Request(*r) for r in data["requests"]],
            intervals=[tuple(i) for i in data["intervals"]],  # type: ignore[misc]
            billed=[tuple(b) for b in data["billed"]],  # type: ignore[misc]
            stats=data["stats"],
        )


@contextmanager
def serve_apart(host: str = "127.0.0.1") -> Iterator[ApartServer]:
    """The server in a process of its own, so that its work (parsing each request, counting
    its tokens, writing the reply) does not compete with the client's for this process's
    interpreter; a benchmark reads what it saw through ``records``."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.llm_server", "--host", host, "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the stand-in server did not start (said {url!r})")
        yield ApartServer(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description="Deterministic fake OpenAI + Anthropic server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--flaky-hang-ms", type=int, default=3000)
    args = parser.parse_args()
    with serve(args.host, args.port, flaky_hang_ms=args.flaky_hang_ms) as srv:
        print(srv.url, flush=True)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
