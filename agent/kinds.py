"""What a changed file is (code, tests, docs, config, generated) and how risky its path looks.

Read from the path alone (and, for generated files, the settings' patterns and markers): no
model has seen the diff when these are asked, and a person can check every answer by eye.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath

from agent.config import FileKind, ReviewSettings, RiskLevel
from agent.diff import FileDiff
from agent.triage import generated_reason

SENSITIVE = re.compile(
    r"auth|login|session|token|secret|password|passwd|crypt|permission|acl|policy|"
    r"payment|billing|charge|invoice|refund|ledger|migration|schema|sql",
    re.IGNORECASE,
)
INFRA = re.compile(r"(^|/)(\.github/workflows|deploy|k8s|helm|terraform|infra)(/|$)|Dockerfile")
TESTS = re.compile(r"(^|/)(tests?|spec|__tests__)/|(^|/)test_[^/]*$|_test\.\w+$|\.spec\.\w+$")
DOCS = re.compile(r"\.(md|rst|txt|adoc)$|(^|/)docs?/", re.IGNORECASE)
CONFIG = re.compile(
    r"\.(ya?ml|toml|ini|cfg|conf|json|properties|env\.example)$|(^|/)(Dockerfile|Makefile)$",
    re.IGNORECASE,
)


def kind_of(file: FileDiff, settings: ReviewSettings) -> FileKind:
    path = file.path
    if generated_reason(file, settings):
        return "generated"
    if TESTS.search(path):
        return "tests"
    if DOCS.search(path):
        return "docs"
    if CONFIG.search(PurePosixPath(path).name) or INFRA.search(path):
        return "config"
    return "code"


def risk_score(file: FileDiff) -> float:
    """Higher is riskier: money, credentials, permissions and persisted data first, then
    infrastructure, then code over tests and docs, then the larger change."""
    path = file.path
    score = 0.0
    if SENSITIVE.search(path):
        score += 3
    if INFRA.search(path):
        score += 2
    if TESTS.search(path):
        score -= 2
    if DOCS.search(PurePosixPath(path).name) or DOCS.search(path):
        score -= 3
    return score + math.log2(file.added + file.removed + 1) / 2


def risk_level(file: FileDiff) -> RiskLevel:
    """The path's risk as a level routing rules match on: a sensitive or infrastructure path
    is high, tests and docs are low, the rest medium."""
    path = file.path
    if TESTS.search(path) or DOCS.search(path):
        return "low"
    if SENSITIVE.search(path) or INFRA.search(path):
        return "high"
    return "medium"
