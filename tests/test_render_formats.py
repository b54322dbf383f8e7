"""The machine-readable artifacts: SARIF 2.1.0 for GitHub code scanning, GitLab's code quality
report, and the JSON artifact against its committed schema.

tests/data/schemas/sarif-2.1.0.json is the SARIF 2.1.0 JSON schema that GitHub's upload action
validates uploads against, copied byte for byte from github/codeql-action,
src/sarif-schema-2.1.0.json at commit 9824588133570daa5317a5d985c3c181c80c4354 (112,788 bytes,
sha256 46d4203e43b978a433943881354db1e40e81437d4b46c00f05016110c6b14693), a vendored copy of
oasis-tcs/sarif-spec Schemata/sarif-schema-2.1.0.json (3 characters apart in length at
85971b3e). Two quirks of that file, both upstream:
its "region" puts "anyOf: [required startLine | charOffset | byteOffset]" inside "properties",
so the schema fails the 2020-12 meta-schema check and does not enforce it (checked here
instead); and its "format" keywords are only checked with a format checker, so the one below
checks "uri", "uri-reference" and "date-time" without extra packages.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from agent.ledger import CallRecord, RunInfo
from agent.masking import Finding
from agent.render.artifacts import render_json
from agent.render.codequality import render_codequality
from agent.render.sarif import (
    AUTOMATION_ID,
    CREDENTIAL_FINGERPRINT,
    CREDENTIAL_RULE,
    QUESTION_FINGERPRINT,
    RULES,
    artifact_uri,
    render_sarif,
)
from agent.render.schema import SCHEMA_FILE, SCHEMA_ID, review_schema, review_schema_json
from agent.result import (
    SCHEMA_VERSION,
    Coverage,
    FileNote,
    NotReviewed,
    Question,
    Review,
    Usage,
)

DATA = Path(__file__).parent / "data" / "schemas"
SARIF_SCHEMA = DATA / "sarif-2.1.0.json"
COMMITTED_SCHEMA = Path(__file__).parents[1] / "agent" / "_data" / "schemas" / SCHEMA_FILE
REGENERATE = f".venv/bin/python -m agent.render.schema > agent/_data/schemas/{SCHEMA_FILE}"

# ---- format checks the schemas ask for ---------------------------------------------------------

FORMATS = FormatChecker()
# RFC 3986: a relative reference of path segments (pchar = unreserved / pct-encoded /
# sub-delims / ":" / "@"); no query or fragment is ever written.
_PCHARS = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_RELATIVE = re.compile(rf"(?:{_PCHARS}|/)*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def _uri_reference(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if _SCHEME.match(value):
        return _uri(value)
    # A relative path's first segment cannot hold ":" (it would read as a scheme).
    return bool(_RELATIVE.fullmatch(value)) and ":" not in value.split("/", 1)[0]


def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc) and not re.search(r"[\s<>\"{}|\\^`]", value)


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value)
    return parsed.tzinfo is not None


FORMATS.checks("uri-reference")(_uri_reference)
FORMATS.checks("uri")(_uri)
FORMATS.checks("date-time", raises=ValueError)(_date_time)


def sarif_validator() -> Draft202012Validator:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=FORMATS)


def ownit_validator() -> Draft202012Validator:
    schema = json.loads(COMMITTED_SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMATS)


def errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


# ---- reviews ---------------------------------------------------------------------------------

CATEGORIES = ("intent", "mechanism", "failure_mode", "edge_case", "tests", "security")
PRIORITIES = ("high", "medium", "low")
PATHS = (
    "src/payments/retry.py",
    "docs/my notes/ünïcødé 文件.md",
    "src/a:b#c?d%e [x] (1)+y.py",
    "lib/ok.ts",
)
ESC = "\x1b[2J\x1b]0;pwned\x07"
API_KEY = "sk-live0123456789abcdefXYZ"


def run_info(**fields: Any) -> RunInfo:
    base: dict[str, Any] = {
        "id": "0123456789abcdef",
        "started_at": datetime(2025, 11, 26, 9, 0, tzinfo=UTC),
        "ownit_version": "0.1.0",
    }
    return RunInfo(**{**base, **fields})


def usage(**fields: Any) -> Usage:
    base: dict[str, Any] = {
        "models": ["openai/gpt-local"],
        "calls": 1,
        "failed_calls": 0,
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cost_usd": 0.0012,
        "cost_complete": True,
    }
    return Usage(**{**base, **fields})


def question(
    rank: int,
    text: str,
    *,
    path: str = PATHS[0],
    side: str = "new",
    start: int = 10,
    end: int = 12,
    category: str = "failure_mode",
    priority: str = "high",
) -> Question:
    return Question.model_validate(
        {
            "rank": rank,
            "question": text,
            "category": category,
            "priority": priority,
            "why_it_matters": f"Because rank {rank} matters.\nSecond line.",
            "anchor": {"path": path, "side": side, "start_line": start, "end_line": end},
        }
    )


def rich_questions() -> list[Question]:
    """Every category at every priority, on both sides, across awkward paths."""
    out: list[Question] = []
    for i, category in enumerate(CATEGORIES):
        for j, priority in enumerate(PRIORITIES):
            rank = len(out) + 1
            out.append(
                question(
                    rank,
                    f"What happens to charge {rank} when the {category} is {priority}?",
                    path=PATHS[(i + j) % len(PATHS)],
                    side="old" if (i + j) % 3 == 2 else "new",
                    start=rank,
                    end=rank + j,
                    category=category,
                    priority=priority,
                )
            )
    out.append(
        question(
            len(out) + 1,
            f"Does {ESC}\u202e this leak {API_KEY} or `code` **bold**?",
            path=PATHS[1],
        )
    )
    return out


SECRETS = [
    Finding(
        kind="aws-access-key",
        path=PATHS[0],
        side="new",
        line=40,
        end_line=40,
        placeholder="«secret:aws-access-key#1»",
    ),
    # The same value again further down: the same placeholder.
    Finding(
        kind="aws-access-key",
        path=PATHS[0],
        side="new",
        line=90,
        end_line=90,
        placeholder="«secret:aws-access-key#1»",
    ),
    Finding(
        kind="private-key",
        path=PATHS[1],
        side="old",
        line=3,
        end_line=7,
        placeholder="«secret:private-key#1»",
    ),
    Finding(
        kind="github-token",
        path="(title)",
        side="new",
        line=1,
        end_line=1,
        placeholder="«secret:github-token#1»",
    ),
]


def rich_review(questions: list[Question] | None = None) -> Review:
    return Review(
        run=run_info(team="payments", repo="acme/payments", pr_number=42, head_sha="abc123"),
        summary="Retries failed charges.",
        risk="high",
        risk_reasons=["touches money"],
        files=[FileNote(path=p, status="modified", walkthrough="Changed.") for p in PATHS],
        questions=rich_questions() if questions is None else questions,
        secrets=SECRETS,
        coverage=Coverage(
            files_total=5,
            files_reviewed=4,
            hunks_total=9,
            hunks_reviewed=7,
            not_reviewed=[NotReviewed(path="vendor/big.js", hunks=2, reason="too large")],
        ),
        usage=usage(failed_calls=1),
        complete=False,
        problems=[f"chunk 3 failed: {ESC}timeout", "synthesis was skipped"],
        notes=["uncommitted changes were not included"],
        calls=[
            CallRecord(
                run_id="0123456789abcdef",
                created_at=datetime(2025, 11, 26, 9, 1, tzinfo=UTC),
                purpose="chunk-1",
                model_name="gpt",
                model="openai/gpt-local",
                provider="openai",
                outcome="ok",
                prompt_tokens=100,
                completion_tokens=20,
                cost_usd=0.0012,
            )
        ],
    )


def empty_review() -> Review:
    return Review(
        run=run_info(ownit_version=None),
        summary="Nothing to ask.",
        risk=None,
        risk_reasons=[],
        files=[],
        questions=[],
        coverage=Coverage(
            files_total=0, files_reviewed=0, hunks_total=0, hunks_reviewed=0, not_reviewed=[]
        ),
        usage=usage(calls=0, prompt_tokens=0, completion_tokens=0, cost_usd=0.0),
        complete=True,
        problems=[],
    )


REVIEWS = {"rich": rich_review, "empty": empty_review}


def sarif(review: Review) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(render_sarif(review))
    return log


def raw_controls(text: str) -> list[str]:
    return [
        c
        for c in text
        if (unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") and c not in "\n\t")
    ]


# ---- SARIF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REVIEWS)
def test_sarif_matches_the_sarif_2_1_0_schema(name: str) -> None:
    text = render_sarif(REVIEWS[name]())
    assert text.endswith("\n")
    log = json.loads(text)
    assert errors(sarif_validator(), log) == []
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    # What the schema states but does not enforce (see the header), and what GitHub needs to
    # show a result in a file: a location with a URI and a start line.
    for result in log["runs"][0]["results"]:
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"]
        assert physical["region"]["startLine"] >= 1
        assert physical["region"].get("endLine", 1) >= physical["region"]["startLine"]


def test_sarif_rules_results_and_invocation() -> None:
    review = rich_review()
    (run,) = sarif(review)["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "ownit"
    assert driver["version"] == "0.1.0"
    assert driver["informationUri"].startswith("https://")
    rules = driver["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    assert "ownit/failure-mode" in RULES and "ownit/edge-case" in RULES
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["help"]["text"]
        assert "ownit" in rule["properties"]["tags"]
    assert run["automationDetails"] == {"id": AUTOMATION_ID} == {"id": "ownit/review/"}

    results = run["results"]
    file_secrets = [s for s in review.secrets if s.path != "(title)"]
    assert len(results) == len(review.questions) + len(file_secrets)
    levels = {"high": "warning", "medium": "note", "low": "note"}
    for q, result in zip(review.questions, results, strict=False):
        assert result["ruleId"] == "ownit/" + q.category.replace("_", "-")
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == levels[q.priority]
        assert result["partialFingerprints"] == {QUESTION_FINGERPRINT: q.id}
        assert result["properties"]["category"] == q.category
        assert result["properties"]["priority"] == q.priority
        assert result["properties"]["rank"] == q.rank
        assert "\n\nWhy it matters: Because rank" in result["message"]["text"]
    assert {r["ruleId"] for r in results} == set(RULES)  # every rule is used by the rich one

    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    notes = [n["message"]["text"] for n in invocation["toolExecutionNotifications"]]
    assert notes == ["chunk 3 failed: \\x1b[2J\\x1b]0;pwned\\x07timeout", "synthesis was skipped"]
    assert run["properties"]["prNumber"] == 42


def test_sarif_of_an_empty_complete_review() -> None:
    (run,) = sarif(empty_review())["runs"]
    assert run["results"] == []
    assert run["invocations"] == [{"executionSuccessful": True}]
    assert "version" not in run["tool"]["driver"]  # no ownit_version on the run
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(RULES)


def test_sarif_uris_are_relative_percent_encoded_paths() -> None:
    assert artifact_uri("src/payments/retry.py") == "src/payments/retry.py"
    assert artifact_uri("docs/my notes/ü.md") == "docs/my%20notes/%C3%BC.md"
    assert artifact_uri("a:b#c?d%e.py") == "a%3Ab%23c%3Fd%25e.py"
    assert artifact_uri("/abs/x.py") == "abs/x.py"
    assert artifact_uri("bad\udcff.py") == "bad%FF.py"  # an undecodable byte, as it was
    for path in PATHS:
        uri = artifact_uri(path)
        assert _uri_reference(uri), uri
        assert unquote_to_bytes(uri).decode() == path
    (run,) = sarif(rich_review())["runs"]
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]
    }
    assert uris == {artifact_uri(p) for p in PATHS}


def test_sarif_removed_lines_sit_on_the_file_with_a_note() -> None:
    old = question(1, "Why was the old retry loop removed?", side="old", start=30, end=33)
    new = question(2, "Is the new loop bounded?", side="new", start=30, end=33)
    (run,) = sarif(rich_review([old, new]))["runs"]
    removed, added = run["results"][:2]
    assert removed["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    assert removed["message"]["text"].startswith(
        "(About removed lines 30-33 of the previous version of this file.) Why was the old"
    )
    assert removed["properties"]["side"] == "old"
    assert removed["properties"]["removedLines"] == {"startLine": 30, "endLine": 33}
    assert added["locations"][0]["physicalLocation"]["region"] == {"startLine": 30, "endLine": 33}
    assert added["message"]["text"].startswith("Is the new loop bounded?")
    assert "removedLines" not in added["properties"]


def test_sarif_credentials_name_the_kind_never_a_value() -> None:
    text = render_sarif(rich_review())
    (run,) = json.loads(text)["runs"]
    found = [r for r in run["results"] if r["ruleId"] == CREDENTIAL_RULE]
    assert len(found) == 3  # the one in the title has no file
    assert {r["level"] for r in found} == {"error"}
    aws, aws_again, key = found
    # The same value twice in one file: one placeholder, two places, two fingerprints.
    assert aws_again["locations"][0]["physicalLocation"]["region"]["startLine"] == 90
    assert "(aws-access-key)" in aws["message"]["text"]
    assert "masked" in aws["message"]["text"]
    assert aws["locations"][0]["physicalLocation"]["region"] == {"startLine": 40, "endLine": 40}
    assert key["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    assert key["properties"]["removedLines"] == {"startLine": 3, "endLine": 7}
    assert key["message"]["text"].startswith(
        "(About removed lines 3-7 of the previous version of this file.) A credential "
        "(private-key) was in the removed lines."
    )
    assert "still in the history: rotate it" in key["message"]["text"]
    prints = [r["partialFingerprints"][CREDENTIAL_FINGERPRINT] for r in found]
    assert len(set(prints)) == 3
    # A credential's identity does not move with its line.
    moved = rich_review()
    moved.secrets = [s.model_copy(update={"line": s.line + 10}) for s in SECRETS]
    (moved_run,) = sarif(moved)["runs"]
    assert [
        r["partialFingerprints"][CREDENTIAL_FINGERPRINT]
        for r in moved_run["results"]
        if r["ruleId"] == CREDENTIAL_RULE
    ] == prints
    # A credential a question quoted is redacted; no hostile character survives.
    assert API_KEY not in text
    assert raw_controls(text) == []
    assert "\\x1b[2J" in text and "\\u202e" in text


def test_partial_fingerprints_survive_line_shifts() -> None:
    base = question(1, "What if the charge is retried twice?", start=10, end=12)
    shifted = question(1, "What if the charge is retried twice?", start=20, end=22)
    reworded = question(1, "What if the refund is retried twice?", start=10, end=12)
    other_file = question(1, "What if the charge is retried twice?", path=PATHS[3])

    def fingerprint(q: Question) -> str:
        (run,) = sarif(rich_review([q]))["runs"]
        value: str = run["results"][0]["partialFingerprints"][QUESTION_FINGERPRINT]
        return value

    assert fingerprint(shifted) == fingerprint(base) == base.id
    assert fingerprint(reworded) != fingerprint(base)
    assert fingerprint(other_file) != fingerprint(base)
    prints = [fingerprint(q) for q in rich_questions()]
    assert len(set(prints)) == len(prints)


# ---- the JSON artifact and its schema ---------------------------------------------------------


@pytest.mark.parametrize("name", REVIEWS)
def test_json_artifact_matches_the_committed_schema(name: str) -> None:
    document = json.loads(render_json(REVIEWS[name]()))
    assert errors(ownit_validator(), document) == []
    assert document["schema_version"] == SCHEMA_VERSION


def test_the_schema_rejects_what_is_not_a_review() -> None:
    validator = ownit_validator()
    document = json.loads(render_json(rich_review()))
    document["questions"][0]["priority"] = "urgent"
    document["schema_version"] = SCHEMA_VERSION + 1
    del document["coverage"]
    found = errors(validator, document)
    assert any("urgent" in e for e in found)
    assert any(e.startswith("schema_version") for e in found)
    assert any("'coverage' is a required property" in e for e in found)


def test_the_committed_schema_is_current() -> None:
    committed = COMMITTED_SCHEMA.read_text(encoding="utf-8")
    assert committed == review_schema_json(), (
        f"agent/_data/schemas/{SCHEMA_FILE} is not the schema of the Review model; if the "
        f"change is intended, regenerate it with `{REGENERATE}` (and bump SCHEMA_VERSION in "
        "agent/result.py when a field changes meaning or goes away)"
    )
    assert json.loads(committed) == review_schema()


def test_the_schema_names_itself() -> None:
    schema = review_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert (
        schema["$id"]
        == f"https://github.com/ownit/ownit/schemas/ownit-review.v{SCHEMA_VERSION}.json"
    )
    assert schema["title"] == "ownit review" and schema["description"]
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    Draft202012Validator.check_schema(schema)


def test_the_schema_module_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agent.render.schema"],
        capture_output=True,
        check=True,
        cwd=Path(__file__).parents[1],
    ).stdout
    assert out.decode("utf-8") == review_schema_json()


# ---- GitLab code quality ---------------------------------------------------------------------

# The fields GitLab documents for a code quality report entry.
CODE_QUALITY = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["description", "check_name", "fingerprint", "severity", "location"],
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "check_name": {"type": "string", "minLength": 1},
            "fingerprint": {"type": "string", "minLength": 1},
            "severity": {"enum": ["info", "minor", "major", "critical", "blocker"]},
            "location": {
                "type": "object",
                "required": ["path", "lines"],
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "lines": {
                        "type": "object",
                        "required": ["begin"],
                        "properties": {
                            "begin": {"type": "integer", "minimum": 1},
                            "end": {"type": "integer", "minimum": 1},
                        },
                    },
                },
            },
        },
    },
}


def codequality(review: Review) -> list[dict[str, Any]]:
    text = render_codequality(review)
    assert text.endswith("\n")
    issues: list[dict[str, Any]] = json.loads(text)
    assert errors(Draft202012Validator(CODE_QUALITY), issues) == []
    return issues


def test_codequality_shape_and_severities() -> None:
    review = rich_review()
    issues = codequality(review)
    file_secrets = [s for s in review.secrets if s.path != "(title)"]
    assert len(issues) == len(review.questions) + len(file_secrets)
    severity = {"high": "major", "medium": "minor", "low": "info"}
    for q, issue in zip(review.questions, issues, strict=False):
        assert issue["check_name"] == "ownit/" + q.category.replace("_", "-")
        assert issue["severity"] == severity[q.priority]
        assert issue["fingerprint"] == q.id
        assert issue["location"]["path"] == q.anchor.path  # a plain path, not a URI
        assert "\n" not in issue["description"]
        assert " Why it matters: Because rank" in issue["description"]
        if q.anchor.side == "new":
            assert issue["location"]["lines"] == {
                "begin": q.anchor.start_line,
                "end": q.anchor.end_line,
            }
    credentials = issues[len(review.questions) :]
    assert {i["severity"] for i in credentials} == {"critical"}
    assert {i["check_name"] for i in credentials} == {"ownit/credential"}
    assert "(aws-access-key)" in credentials[0]["description"]
    fingerprints = [i["fingerprint"] for i in issues]
    assert len(set(fingerprints)) == len(fingerprints)
    text = render_codequality(review)
    assert API_KEY not in text and raw_controls(text) == []
    assert codequality(empty_review()) == []


def test_codequality_removed_lines_sit_at_line_1_with_a_note() -> None:
    old = question(1, "Why was the old retry loop removed?", side="old", start=30, end=30)
    (issue,) = codequality(rich_review([old]))[:1]
    assert issue["location"] == {"path": PATHS[0], "lines": {"begin": 1, "end": 1}}
    assert issue["description"].startswith(
        "(About removed line 30 of the previous version.) Why was the old retry loop removed?"
    )


def test_codequality_fingerprints_are_stable_and_unique() -> None:
    base = question(1, "What if the charge is retried twice?", start=10, end=12)
    shifted = question(1, "What if the charge is retried twice?", start=20, end=22)
    (a,) = codequality(rich_review([base]))[:1]
    (b,) = codequality(rich_review([shifted]))[:1]
    assert a["fingerprint"] == b["fingerprint"]
    # The same question twice in one report still gives two fingerprints (GitLab shows only
    # the first entry of a fingerprint).
    twice = codequality(rich_review([base, shifted]))
    assert twice[0]["fingerprint"] != twice[1]["fingerprint"]
    moved = rich_review()
    moved.secrets = [s.model_copy(update={"line": s.line + 10}) for s in SECRETS]
    assert [i["fingerprint"] for i in codequality(moved)] == [
        i["fingerprint"] for i in codequality(rich_review())
    ]
