"""The stand-in model server's switches, over raw HTTP (no LiteLLM, so these stay fast)."""

from __future__ import annotations

import copy
import http.client
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.llm_server import ECHO_TEXT, GATEWAY_RATES, LLMServer, route, serve

ROOT = Path(__file__).resolve().parent.parent
OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
KEY = "sk-test-0123456789abcdefghij1234"
ANTHROPIC_KEY = "sk-ant-api03-secretsecretsecret-9876"
SUMMARY = "what this part of the change does and why it matters"
SCHEMA: dict[str, Any] = {
    "title": "ChunkReview",
    "type": "object",
    "properties": {
        "summary": {"description": SUMMARY, "title": "Summary", "type": "string"},
        "files": {"type": "array", "items": {"type": "object"}},
        "risk": {"enum": ["low", "medium", "high"], "type": "string"},
        "risk_reasons": {"type": "array", "items": {"type": "string"}},
        "questions": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["summary", "files", "risk", "risk_reasons", "questions"],
    "additionalProperties": False,
}
SYSTEM = "Review the diff. Reply with JSON matching this schema:\n\n" + json.dumps(SCHEMA, indent=1)


def _lines(start: int, *tags: str) -> list[str]:
    out, old, new = [], start, start
    for i, tag in enumerate(tags):
        out.append(f"{old if tag == '-' else new} {tag} line_{start}_{i} = compute({i})")
        old += tag != "+"
        new += tag != "-"
    return out


DIFF = "\n".join(
    [
        "<<<DIFF-0123abcd",
        "=== FILE src/app.py (modified) ===",
        "@@ -10,3 +10,4 @@",
        *_lines(10, " ", "-", "+", "+"),
        "@@ -40,2 +41,3 @@",
        *_lines(40, " ", "+", " "),
        "@@ -80,2 +82,2 @@",
        *_lines(80, "-", "+"),
        "=== FILE src/util.py (added) ===",
        "@@ -0,0 +1,3 @@",
        *_lines(1, "+", "+", "+"),
        "=== FILE docs/notes.md (modified) ===",
        "@@ -5,2 +5,3 @@",
        *_lines(5, " ", "+", " "),
        "DIFF-0123abcd>>>",
    ]
)


def user_text(title: str = "Tidy the retries") -> str:
    return f"Pull request: {title}\n\n{DIFF}"


def openai_body(
    model: str, schema: bool = True, max_tokens: int | None = 4096, title: str = "Tidy the retries"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": user_text(title)},
        ],
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if schema:
        json_schema = {"name": "ChunkReview", "schema": SCHEMA, "strict": True}
        body["response_format"] = {"type": "json_schema", "json_schema": json_schema}
    return body


def anthropic_body(model: str, mode: str = "tool", max_tokens: int = 4096) -> dict[str, Any]:
    """mode: "tool" (LiteLLM's json_tool_call), "output_format" (native) or "" (prompt only)."""
    body: dict[str, Any] = {
        "model": model,
        "system": [{"type": "text", "text": SYSTEM}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": user_text()}]}],
        "max_tokens": max_tokens,
    }
    if mode == "tool":
        body["tools"] = [{"name": "json_tool_call", "input_schema": SCHEMA}]
        body["tool_choice"] = {"name": "json_tool_call", "type": "tool"}
    elif mode == "output_format":
        body["output_format"] = {"type": "json_schema", "schema": SCHEMA}
    return body


class Answer:
    def __init__(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.status, self.headers, self.data = status, headers, data

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = self.json()["error"]
        return error

    @property
    def content(self) -> Any:
        """The reply text (OpenAI) or the Anthropic content block."""
        payload = self.json()
        if "choices" in payload:
            return payload["choices"][0]["message"]["content"]
        [block] = payload["content"]
        return block


def send(
    srv: str,
    path: str,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Answer:
    url = urlsplit(srv)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
    auth = {"x-api-key": ANTHROPIC_KEY} if path == ANTHROPIC else {"Authorization": f"Bearer {KEY}"}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        conn.request(
            "POST", path, raw, {"Content-Type": "application/json", **auth, **(headers or {})}
        )
        response = conn.getresponse()
        data = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def review(answer: Answer) -> dict[str, Any]:
    """The ChunkReview in a 200 reply (OpenAI text or an Anthropic tool_use/text block)."""
    assert answer.status == 200, answer.data
    content = answer.content
    if isinstance(content, str):
        return dict(json.loads(content))
    if content["type"] == "tool_use":
        return dict(content["input"])
    return dict(json.loads(content["text"]))


@pytest.fixture
def srv() -> Iterator[LLMServer]:
    with serve(flaky_hang_ms=1) as server:
        yield server


def prompt_of(srv: LLMServer, body: dict[str, Any], path: str = OPENAI) -> int:
    """The prompt tokens the server counts for ``body`` under a plain model name."""
    plain = dict(body, model="gpt-local")
    usage = send(srv, path, plain).json()["usage"]
    return int(usage.get("prompt_tokens", usage.get("input_tokens", 0)))


# Existing behaviour ---------------------------------------------------------------------------


def test_recorded_replies_are_unchanged(srv: LLMServer) -> None:
    """Every recorded interaction, replayed against the server: same status, headers and bytes."""
    from tests.conftest import KEY_PLACEHOLDER, SECRET

    interactions = 0
    for cassette in sorted((ROOT / "cassettes").rglob("*.yaml")):
        # Recordings were made with the tests' dummy key, kept on disk as a placeholder.
        text = cassette.read_text().replace(KEY_PLACEHOLDER, SECRET)
        for it in yaml.safe_load(text)["interactions"]:
            request, recorded = it["request"], it["response"]
            path = urlsplit(request["uri"]).path
            if not path.endswith(("/chat/completions", "/v1/messages", ":generateContent")):
                continue  # a code host's traffic (tests/forge_server.py), not a model's
            auth = (
                {"x-api-key": SECRET}
                if path.endswith(ANTHROPIC)
                else {"x-goog-api-key": SECRET}
                if path.endswith(":generateContent")
                else {"Authorization": f"Bearer {SECRET}"}
            )
            got = send(srv, path, request["body"].encode(), auth)
            want_headers = {k.lower(): v[0] for k, v in recorded["headers"].items()}
            assert got.status == recorded["status"]["code"], cassette.name
            assert got.data.decode() == recorded["body"]["string"], cassette.name
            assert got.headers == want_headers, cassette.name
            interactions += 1
    assert interactions >= 10


def test_normal_replies_and_accounting(srv: LLMServer) -> None:
    chunk = review(send(srv, OPENAI, openai_body("gpt-local")))
    assert [f["path"] for f in chunk["files"]] == ["src/app.py", "src/util.py", "docs/notes.md"]
    assert all(q["start_line"] >= 1 for q in chunk["questions"])
    assert len(chunk["questions"]) == 5
    assert review(send(srv, ANTHROPIC, anthropic_body("claude-local"))) == chunk
    assert send(srv, OPENAI, openai_body("notfound-model")).status == 404
    assert srv.stats == {"ok": 2, "notfound": 1}
    assert [(m, p > 0, c > 0) for m, p, c in srv.billed] == [
        ("gpt-local", True, True),
        ("claude-local", True, True),
    ]
    assert len(srv.requests) == 3


def test_usage_switches_shape_each_vendors_usage_block(srv: LLMServer) -> None:
    """/usage/<switches>/ before the API path: cached, cache-write and reasoning tokens as each
    vendor reports them, the prompt's total unchanged."""
    prompt = prompt_of(srv, openai_body("gpt-4.1-mini"))
    openai = send(srv, "/usage/cached1024-think300" + OPENAI, openai_body("gpt-4.1-mini"))
    usage = openai.json()["usage"]
    assert usage["prompt_tokens"] == prompt
    assert usage["prompt_tokens_details"]["cached_tokens"] == min(1024, prompt)
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 300
    plain = send(srv, OPENAI, openai_body("gpt-4.1-mini")).json()["usage"]
    assert usage["completion_tokens"] == plain["completion_tokens"] + 300
    assert review(openai)  # the reply itself is unchanged

    body = anthropic_body("claude-sonnet-4-5")
    total = prompt_of(srv, body, ANTHROPIC)
    claude = send(srv, "/usage/cached100-write60-hour20-think5" + ANTHROPIC, body).json()["usage"]
    assert (claude["cache_read_input_tokens"], claude["cache_creation_input_tokens"]) == (100, 60)
    assert claude["input_tokens"] == total - 160  # Anthropic's input_tokens is the uncached rest
    assert claude["cache_creation"] == {
        "ephemeral_5m_input_tokens": 40,
        "ephemeral_1h_input_tokens": 20,
    }

    bare = send(srv, "/usage/nousage" + OPENAI, openai_body("gpt-local")).json()
    assert "usage" not in bare and review(Answer(200, {}, json.dumps(bare).encode()))


def test_the_gateway_switch_reports_the_cost_of_the_usage_even_when_it_hides_it(
    srv: LLMServer,
) -> None:
    plain = send(srv, OPENAI, openai_body("gpt-local"))
    assert "x-litellm-response-cost" not in plain.headers
    usage = plain.json()["usage"]
    shown = send(srv, "/usage/gateway" + OPENAI, openai_body("gpt-local"))
    hidden = send(srv, "/usage/gateway-nousage" + OPENAI, openai_body("gpt-local"))
    cost = usage["prompt_tokens"] * GATEWAY_RATES[0] + usage["completion_tokens"] * GATEWAY_RATES[1]
    for answer in (shown, hidden):
        assert float(answer.headers["x-litellm-response-cost"]) == pytest.approx(cost)
    assert shown.json()["usage"] == usage and "usage" not in hidden.json()
    assert srv.charged == [pytest.approx(cost)] * 2


def test_gemini_generate_content(srv: LLMServer) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": user_text()}]}],
        "system_instruction": {"parts": [{"text": SYSTEM}]},
        "generationConfig": {
            "max_output_tokens": 4096,
            "response_mime_type": "application/json",
            "response_json_schema": SCHEMA,
        },
    }
    path = "/usage/cached64-think40/v1beta/models/gemini-2.5-flash:generateContent"
    answer = send(srv, path, body, {"x-goog-api-key": KEY})
    assert answer.status == 200, answer.data
    payload = answer.json()
    [candidate] = payload["candidates"]
    assert candidate["finishReason"] == "STOP" and candidate["content"]["role"] == "model"
    chunk = json.loads(candidate["content"]["parts"][0]["text"])
    assert chunk == review(send(srv, OPENAI, openai_body("gpt-local")))
    meta = payload["usageMetadata"]
    assert (meta["cachedContentTokenCount"], meta["thoughtsTokenCount"]) == (64, 40)
    # Thoughts are outside candidatesTokenCount and inside the total, as Gemini counts them.
    assert meta["totalTokenCount"] == meta["promptTokenCount"] + meta["candidatesTokenCount"] + 40
    assert srv.billed[0][0] == "gemini-2.5-flash"


def test_main_still_serves_on_a_port() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.llm_server", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert send(url, OPENAI, openai_body("gpt-local")).status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# Context window and tokenizer ------------------------------------------------------------------


def test_ctx_openai_refuses_like_openai(srv: LLMServer) -> None:
    body = openai_body("x")
    prompt = prompt_of(srv, body)
    assert send(srv, OPENAI, dict(body, model=f"ctx{prompt + 4096}-model")).status == 200
    answer = send(srv, OPENAI, dict(body, model=f"ctx{prompt + 4095}-model"))
    assert answer.status == 400
    assert answer.error == {
        "message": f"This model's maximum context length is {prompt + 4095} tokens. However, you "
        f"requested {prompt + 4096} tokens ({prompt} in the messages, 4096 in the completion). "
        "Please reduce the length of the messages or completion.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    # max_completion_tokens counts too
    newer = dict(openai_body("ctx1000-model", max_tokens=None), max_completion_tokens=4096)
    assert send(srv, OPENAI, newer).error["code"] == "context_length_exceeded"
    assert srv.stats["ctx"] == 2


def test_ctx_anthropic_refuses_like_anthropic(srv: LLMServer) -> None:
    body = anthropic_body("x")
    prompt = prompt_of(srv, body, ANTHROPIC)
    answer = send(srv, ANTHROPIC, dict(body, model=f"claude-ctx{prompt - 1}"))
    assert answer.status == 400
    payload = answer.json()
    assert payload["type"] == "error" and payload["request_id"].startswith("req_011C")
    assert payload["error"] == {
        "type": "invalid_request_error",
        "message": f"prompt is too long: {prompt} tokens > {prompt - 1} maximum",
    }
    # the prompt fits, prompt + max_tokens does not: Anthropic's other wording
    answer = send(srv, ANTHROPIC, dict(body, model=f"claude-ctx{prompt + 10}"))
    assert answer.error["message"] == (
        f"input length and `max_tokens` exceed context limit: {prompt} + 4096 > {prompt + 10}, "
        "decrease input length or `max_tokens` and try again"
    )


def test_llamactx_refuses_like_llama_cpp_and_cuts_off_at_a_full_context(srv: LLMServer) -> None:
    body = openai_body("x")
    prompt = prompt_of(srv, body)
    answer = send(srv, OPENAI, dict(body, model=f"llamactx{prompt}-model"))
    assert answer.status == 400
    assert answer.json() == {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": prompt,
            "n_ctx": prompt,
        }
    }
    # Room for the prompt but not for the whole reply: llama.cpp stops when its context is full.
    answer = send(srv, OPENAI, dict(body, model=f"llamactx{prompt + 50}-model"))
    payload = answer.json()
    assert payload["choices"][0]["finish_reason"] == "length"
    assert payload["usage"]["completion_tokens"] == 50
    assert len(payload["choices"][0]["message"]["content"]) == 200
    assert srv.stats["llamactx"] == 1 and srv.stats["truncated"] == 1


def test_tok_scales_the_servers_count(srv: LLMServer) -> None:
    body = openai_body("x")
    prompt = prompt_of(srv, body)
    scaled = math.ceil(prompt * 1.3)
    usage = send(srv, OPENAI, dict(body, model="tok130-model")).json()["usage"]
    assert usage["prompt_tokens"] == scaled
    assert usage["total_tokens"] == scaled + usage["completion_tokens"]
    # a window the client's count fits in, the server's does not
    answer = send(srv, OPENAI, dict(body, model=f"tok130-ctx{prompt + 4096}-model"))
    assert answer.status == 400
    assert f"({scaled} in the messages, 4096 in the completion)" in answer.error["message"]
    claude = send(srv, ANTHROPIC, anthropic_body("claude-tok150")).json()
    assert claude["usage"]["input_tokens"] == math.ceil(
        prompt_of(srv, anthropic_body("x"), ANTHROPIC) * 1.5
    )


# Vendor errors ---------------------------------------------------------------------------------


def test_notfound(srv: LLMServer) -> None:
    answer = send(srv, OPENAI, openai_body("notfound-model"))
    assert answer.status == 404
    assert answer.error == {
        "message": "The model `notfound-model` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
    answer = send(srv, ANTHROPIC, anthropic_body("claude-notfound"))
    assert answer.status == 404
    assert answer.error == {"type": "not_found_error", "message": "model: claude-notfound"}


def test_unauthorized_masks_the_key(srv: LLMServer) -> None:
    answer = send(srv, OPENAI, openai_body("unauthorized-model"))
    assert answer.status == 401
    masked = "sk-test-" + "*" * (len(KEY) - 12) + "1234"
    assert answer.error == {
        "message": f"Incorrect API key provided: {masked}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert KEY.encode() not in answer.data
    answer = send(srv, ANTHROPIC, anthropic_body("claude-unauthorized"))
    assert answer.status == 401
    assert answer.error == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert ANTHROPIC_KEY.encode() not in answer.data


def test_forbidden(srv: LLMServer) -> None:
    answer = send(srv, OPENAI, openai_body("forbidden-model"))
    assert answer.status == 403
    error = answer.error
    assert error["message"].startswith("Project `proj_")
    assert error["message"].endswith("` does not have access to model `forbidden-model`")
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        None,
        "model_not_found",
    )
    answer = send(srv, ANTHROPIC, anthropic_body("claude-forbidden"))
    assert answer.status == 403
    assert answer.error["type"] == "permission_error"


def test_echokey_echoes_the_credential_in_every_error(srv: LLMServer) -> None:
    alone = send(srv, OPENAI, openai_body("echokey-model"))
    assert alone.status == 401
    assert alone.error["message"].endswith(f"(request had Authorization: Bearer {KEY})")
    for model, status in [
        ("echokey-notfound", 404),
        ("echokey-error500", 500),
        ("echokey-unauthorized", 401),
        ("echokey-ratelimit", 429),
        ("echokey-policy", 400),
    ]:
        answer = send(srv, OPENAI, openai_body(model))
        assert answer.status == status, model
        assert KEY in answer.error["message"], model
    answer = send(srv, ANTHROPIC, anthropic_body("claude-echokey-overloaded"))
    assert answer.status == 529
    assert answer.error["message"] == f"Overloaded (request had x-api-key: {ANTHROPIC_KEY})"
    # with a window that fits, echokey-ctx answers normally; "echo" is not part of "echokey"
    assert review(send(srv, OPENAI, openai_body("echokey-ctx100000")))["questions"]
    assert srv.stats["echokey"] == 1


def test_ratelimit(srv: LLMServer) -> None:
    answer = send(srv, OPENAI, openai_body("ratelimit-model"))
    assert answer.status == 429
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["x-ratelimit-remaining-requests"] == "0"
    assert {"x-ratelimit-limit-requests", "x-ratelimit-reset-requests"} <= set(answer.headers)
    assert (answer.error["type"], answer.error["code"]) == ("requests", "rate_limit_exceeded")
    assert answer.error["message"].startswith("Rate limit reached for ratelimit-model")
    assert send(srv, OPENAI, openai_body("ratelimit5-model")).headers["retry-after"] == "5"
    answer = send(srv, ANTHROPIC, anthropic_body("claude-ratelimit2"))
    assert answer.status == 429
    assert answer.headers["retry-after"] == "2"
    assert answer.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert answer.error["type"] == "rate_limit_error"
    assert srv.stats["ratelimit"] == 3


def test_policy(srv: LLMServer) -> None:
    answer = send(srv, OPENAI, openai_body("policy-model"))
    assert answer.status == 400
    assert (answer.error["type"], answer.error["code"]) == (
        "invalid_request_error",
        "content_policy_violation",
    )
    answer = send(srv, ANTHROPIC, anthropic_body("claude-policy"))
    assert answer.status == 400
    assert answer.error == {
        "type": "invalid_request_error",
        "message": "Output blocked by content filtering policy",
    }


def test_noschema(srv: LLMServer) -> None:
    answer = send(srv, OPENAI, openai_body("noschema-model"))
    assert answer.status == 400
    assert answer.error == {
        "message": "response_format is not supported by this model",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": None,
    }
    assert review(send(srv, OPENAI, openai_body("noschema-model", schema=False)))["questions"]
    for mode in ("tool", "output_format"):
        answer = send(srv, ANTHROPIC, anthropic_body("claude-noschema", mode))
        assert answer.status == 400
        assert answer.error["type"] == "invalid_request_error"
        assert "not supported by this model" in answer.error["message"]
    assert review(send(srv, ANTHROPIC, anthropic_body("claude-noschema", "")))["questions"]


# Weak-model replies ----------------------------------------------------------------------------


def test_truncated(srv: LLMServer) -> None:
    full = send(srv, OPENAI, openai_body("gpt-local")).content
    answer = send(srv, OPENAI, openai_body("truncated-model", max_tokens=3000))
    payload = answer.json()
    content = payload["choices"][0]["message"]["content"]
    assert payload["choices"][0]["finish_reason"] == "length"
    assert payload["usage"]["completion_tokens"] == 3000
    assert full.startswith(content) and len(content) == int(len(full) * 0.6)
    with pytest.raises(ValueError):
        json.loads(content)
    claude = send(srv, ANTHROPIC, anthropic_body("claude-truncated", max_tokens=2000)).json()
    assert claude["stop_reason"] == "max_tokens"
    assert claude["content"][0]["type"] == "text"
    assert claude["usage"]["output_tokens"] == 2000


def test_line0(srv: LLMServer) -> None:
    normal = review(send(srv, OPENAI, openai_body("gpt-local")))["questions"]
    for answer in (
        send(srv, OPENAI, openai_body("line0-model")),
        send(srv, ANTHROPIC, anthropic_body("claude-line0")),
    ):
        questions = review(answer)["questions"]
        assert questions[0] == normal[0]
        assert [(q["start_line"], q["end_line"]) for q in questions[1:-1]] == [(0, 0)] * 4
        assert questions[-1]["start_line"] == -10374
    assert srv.stats["line0"] == 2


def test_badcategory_and_halfbad(srv: LLMServer) -> None:
    normal = review(send(srv, OPENAI, openai_body("gpt-local")))["questions"]
    bad = review(send(srv, OPENAI, openai_body("badcategory-model")))["questions"]
    assert [q["category"] for q in bad] == [
        "intent",
        "performance",
        "failure_mode",
        "style",
        "tests",
    ]
    half = review(send(srv, OPENAI, openai_body("halfbad-model")))["questions"]
    assert half[0::2] == normal[0::2]
    assert {(q["start_line"], q["end_line"]) for q in half[1::2]} == {(99990, 99995)}
    both = review(send(srv, ANTHROPIC, anthropic_body("claude-badcategory-halfbad")))
    assert both["questions"][1]["category"] == "performance"
    assert both["questions"][1]["start_line"] == 99990
    assert srv.stats["badcategory+halfbad"] == 1


def test_empty(srv: LLMServer) -> None:
    expected = {"summary": SUMMARY, "files": [], "risk": "low", "risk_reasons": [], "questions": []}
    assert review(send(srv, OPENAI, openai_body("empty-model"))) == expected
    assert review(send(srv, ANTHROPIC, anthropic_body("claude-empty"))) == expected
    assert review(send(srv, OPENAI, openai_body("empty-model", schema=False))) == expected


def test_echo_replies_with_the_schema(srv: LLMServer) -> None:
    assert review(send(srv, OPENAI, openai_body("echo-model"))) == SCHEMA
    assert review(send(srv, ANTHROPIC, anthropic_body("claude-echo"))) == SCHEMA
    # prompt-only: the schema written into the prompt, else a schema-shaped fragment
    assert review(send(srv, OPENAI, openai_body("echo-model", schema=False))) == SCHEMA
    bare = openai_body("echo-model", schema=False)
    bare["messages"][0]["content"] = "Reply with a ChunkReview."
    assert send(srv, OPENAI, bare).content == ECHO_TEXT


def test_blank(srv: LLMServer) -> None:
    answer = send(srv, OPENAI, openai_body("blank-model")).json()
    assert answer["choices"][0]["message"]["content"] == ""
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] == 0
    claude = send(srv, ANTHROPIC, anthropic_body("claude-blank")).json()
    assert claude["content"] == [{"type": "text", "text": ""}]
    assert claude["stop_reason"] == "end_turn"


def test_missingfile_and_strayrisk(srv: LLMServer) -> None:
    normal = review(send(srv, OPENAI, openai_body("gpt-local")))
    missing = review(send(srv, OPENAI, openai_body("missingfile-model")))
    assert missing["files"] == normal["files"][:1]
    assert missing["questions"] == normal["questions"]
    stray = review(send(srv, ANTHROPIC, anthropic_body("claude-strayrisk")))
    assert stray["risk_reasons"][-1] == "Also changes src/not_in_diff.py in a risky way."
    assert stray["files"][:-1] == normal["files"]
    assert stray["files"][-1]["path"] == "src/not_in_diff.py"


def test_weak_switches_leave_synthesis_replies_alone(srv: LLMServer) -> None:
    body = {
        "model": "line0-badcategory-empty-echo-blank-truncated-model",
        "messages": [{"role": "user", "content": "[Q1] security: a\n[Q2] intent: b\nrisk: high"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Synthesis", "schema": {"title": "Synthesis"}},
        },
    }
    answer = send(srv, OPENAI, body).json()
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert json.loads(answer["choices"][0]["message"]["content"])["question_order"] == [1, 2]
    assert srv.stats == {"ok": 1}


# Transport faults ------------------------------------------------------------------------------


def test_hang_outlasts_a_client_timeout(srv: LLMServer) -> None:
    with pytest.raises(TimeoutError):
        send(srv, OPENAI, openai_body("hang400-model"), timeout=0.1)
    assert send(srv, OPENAI, openai_body("hang50-model")).status == 200
    assert srv.stats["hang"] == 2
    assert len(srv.billed) == 2  # the vendor bills the reply the client gave up on


def test_reset_malformed_cutbody(srv: LLMServer) -> None:
    with pytest.raises(ConnectionError):
        send(srv, OPENAI, openai_body("reset-model"))
    with pytest.raises(ConnectionError):
        send(srv, ANTHROPIC, anthropic_body("claude-reset"))
    answer = send(srv, OPENAI, openai_body("malformed-model"))
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.data.startswith(b"<html>")
    with pytest.raises(ValueError):
        answer.json()
    with pytest.raises(http.client.IncompleteRead) as cut:
        send(srv, OPENAI, openai_body("cutbody-model"))
    raw = json.dumps(openai_body("cutbody-model")).encode()
    full = json.dumps(route(OPENAI, raw, json.loads(raw))[1]).encode()
    assert cut.value.partial == full[: len(full) // 2]
    assert cut.value.expected == len(full) - len(full) // 2
    usage = json.loads(full)["usage"]
    billed = usage["prompt_tokens"], usage["completion_tokens"]
    assert srv.stats["reset"] == 2 and srv.stats["malformed"] == 1 and srv.stats["cutbody"] == 1
    assert srv.billed == [("cutbody-model", *billed)]  # the vendor bills the cut reply


# Flaky -----------------------------------------------------------------------------------------


def outcome(srv: str, body: dict[str, Any]) -> tuple[Any, ...]:
    """What a client sees, comparable across servers."""
    try:
        answer = send(srv, OPENAI, body)
    except http.client.IncompleteRead as exc:
        return ("cut", exc.partial)
    except ConnectionError as exc:
        return ("connection", type(exc).__name__)
    return (answer.status, answer.data)


def succeeded(result: tuple[Any, ...]) -> bool:
    if result[0] != 200:
        return False
    try:
        choice = json.loads(result[1])["choices"][0]
        questions = json.loads(choice["message"]["content"])["questions"]
    except ValueError:
        return False
    return choice["finish_reason"] == "stop" and all(q["start_line"] >= 1 for q in questions)


def test_flaky_is_deterministic_fails_about_p_percent_and_retries_succeed() -> None:
    bodies = [openai_body("flaky30-model", title=f"change {i}") for i in range(200)]
    sequence = bodies + bodies[:20]  # resends draw again
    with serve(flaky_hang_ms=1) as first:
        seen = [outcome(first, body) for body in sequence]
        stats = dict(first.stats)
    with serve(flaky_hang_ms=1) as second:
        assert [outcome(second, body) for body in sequence] == seen
        assert dict(second.stats) == stats
    failures = sum(n for name, n in stats.items() if name != "ok")
    assert 35 <= failures <= 85, stats  # ~30% of 220
    assert set(stats) - {"ok"} <= {
        "429",
        "500",
        "503",
        "hang",
        "reset",
        "malformed",
        "cutbody",
        "truncated",
        "line0",
    }  # these prompts are under 2000 tokens: no overflow
    assert len(set(stats) - {"ok"}) >= 6
    with serve(flaky_hang_ms=1) as third:
        failing = next(body for body in bodies if not succeeded(outcome(third, body)))
        for _ in range(30):
            if succeeded(outcome(third, failing)):
                break
        else:
            pytest.fail("a flaky body never succeeded")


def test_flaky_failures_have_the_vendors_shapes() -> None:
    """One of each failure the flaky menu has, found by trying distinct bodies."""
    big = openai_body("flaky100-model")
    big["messages"][1]["content"] += "\n" + "x" * 9000  # > 2000 tokens: overflow is possible
    found: dict[str, Answer | str] = {}
    with serve(flaky_hang_ms=1) as srv:
        for i in range(120):
            body = copy.deepcopy(big)
            body["messages"][0]["content"] += f" #{i}"
            before = dict(srv.stats)
            try:
                result: Answer | str = send(srv, OPENAI, body)
            except (ConnectionError, http.client.HTTPException) as exc:
                result = type(exc).__name__
            [name] = [k for k, v in srv.stats.items() if v != before.get(k, 0)]
            found.setdefault(name, result)
    assert set(found) == {
        "429",
        "500",
        "503",
        "overflow",
        "hang",
        "reset",
        "malformed",
        "cutbody",
        "truncated",
        "line0",
    }
    limited = found["429"]
    assert isinstance(limited, Answer) and limited.headers["retry-after"] == "0"
    overflow = found["overflow"]
    assert isinstance(overflow, Answer) and overflow.error["code"] == "context_length_exceeded"
    assert "maximum context length is 2000 tokens" in overflow.error["message"]
    assert found["reset"] in ("ConnectionResetError", "RemoteDisconnected")
    assert found["cutbody"] == "IncompleteRead"
    truncated = found["truncated"]
    assert isinstance(truncated, Answer)
    assert truncated.json()["choices"][0]["finish_reason"] == "length"
    line0 = found["line0"]
    assert isinstance(line0, Answer) and review(line0)["questions"][-1]["start_line"] == -10374


# pr-agent's review prompt and request timing (for benchmarks/bench_large_pr.py) ---------------

PR_AGENT_DIFF = """--PR Info--

The PR code diff:
======
## File: 'src/app.py'

@@ -10,3 +10,4 @@
__new hunk__
10  keep = 1
11 +added = compute(1)
12 +more = compute(2)
13  keep = 2
__old hunk__
 keep = 1
-removed = compute(0)
 keep = 2

## File: 'docs/notes.md'

@@ -1,1 +1,2 @@
__new hunk__
1  # Notes
2 +A new line.
======
"""


def test_pr_agent_review_prompt_gets_a_yaml_review(srv: LLMServer) -> None:
    body = {
        "model": "gpt-local",
        "messages": [
            {"role": "system", "content": "You are PR-Reviewer, a language model ..."},
            {"role": "user", "content": PR_AGENT_DIFF},
        ],
    }
    answer = send(srv, OPENAI, body)
    assert answer.status == 200, answer.data
    data = yaml.safe_load(answer.content)
    issues = data["review"]["key_issues_to_review"]
    assert [(i["relevant_file"].strip(), i["start_line"], i["end_line"]) for i in issues] == [
        ("src/app.py", 11, 12),
        ("docs/notes.md", 2, 2),
    ]
    assert data["review"]["security_concerns"].strip() == "No"
    assert answer.json()["usage"]["prompt_tokens"] == prompt_of(srv, body)


def test_intervals_cover_each_request_and_its_latency(srv: LLMServer) -> None:
    send(srv, OPENAI, openai_body("latency50-model"))
    send(srv, OPENAI, openai_body("gpt-local"))
    # An interval is appended just after its reply is written, so the client may be first.
    deadline = time.monotonic() + 5
    while len(srv.intervals) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(srv.intervals) == len(srv.requests) == 2
    slow, fast = sorted(srv.intervals, key=lambda iv: iv[1] - iv[0], reverse=True)
    assert slow[1] - slow[0] >= 0.05 > fast[1] - fast[0]


def test_a_server_in_its_own_process_reports_what_it_saw() -> None:
    from tests.llm_server import serve_apart

    with serve_apart() as srv:
        assert srv.counts() == (0, 0, 0)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        conn = http.client.HTTPConnection(urlsplit(srv.url).netloc, timeout=30)
        conn.request("POST", "/v1/chat/completions", json.dumps(body))
        conn.getresponse().read()
        seen = srv.records()
        deadline = time.monotonic() + 10
        while seen.counts[1] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # an interval is added just after its reply is written
            seen = srv.records()
        assert seen.counts == (1, 1, 1)
        assert seen.requests[0].path == "/v1/chat/completions"
        assert seen.requests[0].body == body
        assert seen.billed[0][0] == "m"
        start, end = seen.intervals[0]
        assert start <= end <= time.perf_counter()  # the same clock as this process's
        assert srv.records((1, 1, 1)).requests == []
