"""Masking credentials in a diff before any of it leaves the machine.

Every line that will be sent (added, removed and context, and the PR title) is scanned with
``detect-secrets``, Yelp's maintained detector set: cloud keys (AWS, Azure, IBM), service
tokens (GitHub, GitLab, Slack, Stripe, Twilio, SendGrid, npm, PyPI, Discord, Telegram, ...),
private keys, JWTs, passwords in URLs, secret-named assignments ("Secret Keyword") and
high-entropy base64 strings, with its false-positive filters (templated values, ids, lock
files). We chose it over hand-written rules because it is maintained, widely used, and filters
what would otherwise bury the real findings; over gitleaks/trufflehog because it is Python and
scans text in-process. Its gaps for the keys ownit's own users hold are filled by a few patterns
below (OpenAI ``sk-proj-``/``sk-``, Anthropic ``sk-ant-``, GitHub fine-grained PATs, Google API
keys, unquoted ``NAME=value`` assignments of secret-named variables). The hex-entropy detector is
off: it flags every git SHA and checksum, and secret-named hex values are caught by keyword.
detect-secrets' line scan runs through ``agent/secret_scan.py``: the same findings, with the
plugins and filters run only on lines that can hold something one of them reports (about 4 % of
the lines of LiteLLM's source; see that module).

Each finding is replaced, in place, by a stable placeholder (``«secret:aws-access-key#1»``: the
same value gets the same number everywhere in the run), so lines and their numbers stay as they
were and anchors still hold. A private-key block is masked from its BEGIN line to its END line.
The findings say what kind and where (path, side, line), never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from agent.diff import Diff, DiffLine, FileDiff, FileStatus, Hunk, LineKind, Side
from agent.secret_scan import LineScanner

# detect-secrets plugins used: all but the hex-entropy one (git SHAs, checksums) and public IPs
# (not credentials).
_OFF = {"HexHighEntropyString", "IPPublicDetector"}
_BASE64_LIMIT = 4.5  # detect-secrets' default

# Characters a token is made of: a finding is widened to the whole token around it (some
# detectors report only a prefix, e.g. "ghp" of a GitHub token).
_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.~]+")
_PLACEHOLDER = re.compile(r"«secret:[a-z0-9-]+#\d+»")

# detect-secrets drops a whole line its heuristics take for an indirect reference, such as
# ``require("stripe")("sk_live_...")``. Its vendor patterns that are precise enough to trust
# alone also run on every line without those filters.
_PRECISE = {
    "AWSKeyDetector": 1,  # its first pattern only (AKIA...); the second is keyword-like
    "AzureStorageKeyDetector": None,
    "BasicAuthDetector": None,
    "DiscordBotTokenDetector": None,
    "GitHubTokenDetector": None,
    "GitLabTokenDetector": None,
    "JwtTokenDetector": None,
    "NpmDetector": None,
    "OpenAIDetector": None,
    "PypiTokenDetector": None,
    "SendGridDetector": None,
    "SlackDetector": None,
    "SquareOAuthDetector": None,
    "StripeDetector": None,
}
# Patterns whose first group is the secret (the rest of the match is context).
_GROUP_IS_SECRET = {"BasicAuthDetector"}

# Keys detect-secrets 1.5 does not know, or knows only in an older form.
_EXTRA = (
    ("openai-api-key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,}")),
    ("anthropic-api-key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{32,}")),
    ("github-token", re.compile(r"\b(?:github_pat_[A-Za-z0-9_]{40,}|gh[pousr]_[A-Za-z0-9]{36,})")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    (
        "secret-keyword",
        # NAME=value / NAME: value, unquoted (dotenv, shell, YAML), NAME ending in a secret word.
        re.compile(
            r"(?i)\b[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY)"
            # A literal, not code or a number: no brackets, calls or ${refs}; letters and digits.
            r"\s*[:=]\s*[\"']?(?P<value>(?=[^\s\"'#]*\d)(?=[^\s\"'#]*[A-Za-z])"
            r"[A-Za-z0-9_\-+/=.~:@!%*^&]{8,})"
        ),
    ),
)
_PRIVATE_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PRIVATE_END = re.compile(r"-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")

# When several detectors flag one token, the most specific name wins.
_GENERIC = ("secret-keyword", "basic-auth-credentials", "base64-high-entropy-string")


def _slug(kind: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")


class Finding(BaseModel):
    """A credential that was masked: what kind and where, never the value."""

    model_config = ConfigDict(frozen=True)

    kind: str  # "aws-access-key", "github-token", "private-key", "secret-keyword", ...
    path: str  # "(title)" for the PR title
    side: Side
    line: int
    end_line: int  # a private-key block spans lines
    placeholder: str

    @property
    def lines(self) -> str:
        return f"{self.line}" if self.end_line == self.line else f"{self.line}-{self.end_line}"

    @property
    def where(self) -> str:
        side = " (removed lines)" if self.side == "old" else ""
        return f"{self.path}:{self.lines}{side}"


@dataclass(frozen=True)
class Masked:
    diff: Diff
    title: str | None
    findings: tuple[Finding, ...]


@dataclass
class _Placeholders:
    """The same value gets the same placeholder throughout a run."""

    by_value: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __call__(self, kind: str, value: str) -> str:
        if value not in self.by_value:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.by_value[value] = f"«secret:{kind}#{self.counts[kind]}»"
        return self.by_value[value]


def mask(diff: Diff, title: str | None = None) -> Masked:
    """The diff (and title) with every credential found replaced by a placeholder."""
    placeholders = _Placeholders()
    findings: list[Finding] = []
    with detect_secrets_settings():
        scanner = _scanner()
        files = tuple(_mask_file(f, scanner, placeholders, findings) for f in diff.files)
        masked_title = title
        if title:
            (masked_title,) = _mask_lines(
                "(title)", "new", [(1, title)], scanner, placeholders, findings
            )
    return Masked(replace(diff, files=files), masked_title, tuple(findings))


@contextmanager
def detect_secrets_settings() -> Iterator[None]:
    """detect-secrets configured as masking uses it: every plugin but those in ``_OFF``, its
    default filters."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import transient_settings

    detectors: Iterable[type] = get_mapping_from_secret_type_to_class().values()
    names = {cls.__name__ for cls in detectors}
    plugins: list[dict[str, Any]] = [{"name": n} for n in sorted(names - _OFF)]
    for plugin in plugins:
        if plugin["name"] == "Base64HighEntropyString":
            plugin["limit"] = _BASE64_LIMIT
    with transient_settings({"plugins_used": plugins}):
        yield


def is_clean(path: str, lines: tuple[tuple[int, str], ...]) -> bool:
    """Whether no credential is found in these lines of ``path`` (context shown around a
    change is sent only when none is: it is dropped, not masked)."""
    hunk = Hunk(
        1,
        len(lines),
        1,
        len(lines),
        "",
        tuple(DiffLine(LineKind.CONTEXT, text, n, n) for n, text in lines),
    )
    file = FileDiff(path, path, FileStatus.MODIFIED, (hunk,))
    return not mask(Diff((file,))).findings


def _scanner() -> LineScanner:
    """A scanner for the settings in force, which also gates ownit's own patterns."""
    return LineScanner([pattern for _, pattern, _ in _own_patterns()])


def _mask_file(
    file: FileDiff, scanner: LineScanner, placeholders: _Placeholders, found: list[Finding]
) -> FileDiff:
    if file.is_binary or not file.hunks:
        return file
    # Each side is scanned as the file reads on that side, so a detector sees neighbouring lines.
    sides: dict[Side, list[tuple[int, int, DiffLine]]] = {"new": [], "old": []}
    for h, hunk in enumerate(file.hunks):
        for i, line in enumerate(hunk.lines):
            side: Side = "new" if line.new_no is not None else "old"
            sides[side].append((h, i, line))
    texts: dict[tuple[int, int], str] = {}
    for side, entries in sides.items():
        numbered = [(_number(line, side), line.text) for _, _, line in entries]
        masked = _mask_lines(file.path, side, numbered, scanner, placeholders, found)
        for (h, i, _), text in zip(entries, masked, strict=True):
            texts[(h, i)] = text
    hunks: list[Hunk] = []
    for h, hunk in enumerate(file.hunks):
        lines = tuple(
            line if texts[(h, i)] == line.text else replace(line, text=texts[(h, i)])
            for i, line in enumerate(hunk.lines)
        )
        hunks.append(hunk if lines == hunk.lines else replace(hunk, lines=lines))
    return replace(file, hunks=tuple(hunks))


def _number(line: DiffLine, side: Side) -> int:
    n = line.new_no if side == "new" else line.old_no
    assert n is not None
    return n


def _mask_lines(
    path: str,
    side: Side,
    lines: list[tuple[int, str]],
    scanner: LineScanner,
    placeholders: _Placeholders,
    found: list[Finding],
) -> list[str]:
    """The lines with their secrets replaced; findings appended to ``found``."""
    spans = _spans(path, [text for _, text in lines], scanner)
    out: list[str] = []
    block: Finding | None = None  # the private-key block being masked
    for index, (number, text) in enumerate(lines):
        if block is None and (begin := _PRIVATE_BEGIN.search(text)):
            placeholder = placeholders("private-key", f"{path}:{side}:{number}:{begin.group(0)}")
            block = Finding(
                kind="private-key",
                path=path,
                side=side,
                line=number,
                end_line=number,
                placeholder=placeholder,
            )
            found.append(block)
        if block is not None:
            block = block.model_copy(update={"end_line": number})
            found[-1] = block
            out.append(block.placeholder)
            if _PRIVATE_END.search(text):
                block = None
            continue
        line_spans = spans.get(index)
        if not line_spans:
            out.append(text)
            continue
        masked = text
        replaced: list[tuple[str, str]] = []
        for start, end, kind in sorted(line_spans, reverse=True):  # right to left
            placeholder = placeholders(kind, text[start:end])
            masked = masked[:start] + placeholder + masked[end:]
            replaced.append((kind, placeholder))
        for kind, placeholder in reversed(replaced):
            found.append(
                Finding(
                    kind=kind,
                    path=path,
                    side=side,
                    line=number,
                    end_line=number,
                    placeholder=placeholder,
                )
            )
        out.append(masked)
    return out


def _spans(
    path: str, texts: list[str], scanner: LineScanner
) -> dict[int, list[tuple[int, int, str]]]:
    """Per line index, the merged (start, end, kind) spans of its secrets."""
    raw: dict[int, list[tuple[int, int, str]]] = {}
    # What detect-secrets finds, the lines numbered from 1 in the order given (it looks at
    # neighbours for context).
    for index, secret_type, value in scanner.findings(path, texts):
        if value:
            for span in _token_spans(texts[index], value):
                raw.setdefault(index, []).append((*span, _slug(secret_type)))
    # ownit's own patterns, unfiltered, on the lines their gates let through.
    own = _own_patterns()
    for index, text in enumerate(texts):
        for k in scanner.extra_candidates(text):
            kind, pattern, group = own[k]
            for match in pattern.finditer(text):
                start, end = match.span(group)
                if end > start:
                    raw.setdefault(index, []).append((start, end, kind))
    return {index: _merge(text_spans, texts[index]) for index, text_spans in raw.items()}


@cache
def _own_patterns() -> tuple[tuple[str, re.Pattern[str], int | str], ...]:
    """(kind, pattern, group of the secret) of the patterns run on every line unfiltered:
    detect-secrets' precise vendor patterns, then ``_EXTRA`` (an empty match is skipped; those
    of ``_EXTRA`` are at least 8 characters long)."""
    extra = tuple(
        (kind, pattern, "value" if "value" in pattern.groupindex else 0) for kind, pattern in _EXTRA
    )
    return (*_vendor_patterns(), *extra)


@cache
def _vendor_patterns() -> tuple[tuple[str, re.Pattern[str], int], ...]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    out: list[tuple[str, re.Pattern[str], int]] = []
    detectors: dict[str, Any] = get_mapping_from_secret_type_to_class()
    for kind, cls in detectors.items():
        name = cls.__name__
        if name not in _PRECISE:
            continue
        patterns = list(cls().denylist)[: _PRECISE[name]]
        group = 1 if name in _GROUP_IS_SECRET else 0
        out.extend((_slug(kind), pattern, group) for pattern in patterns)
    return tuple(out)


def _token_spans(text: str, value: str) -> Iterator[tuple[int, int]]:
    """Where ``value`` occurs in ``text``, widened to the whole token around it."""
    start = text.find(value)
    while start != -1:
        end = start + len(value)
        for token in _TOKEN.finditer(text):
            if token.start() <= start < token.end() or token.start() < end <= token.end():
                start, end = min(start, token.start()), max(end, token.end())
        yield start, end
        start = text.find(value, end)


def _merge(spans: Iterable[tuple[int, int, str]], text: str) -> list[tuple[int, int, str]]:
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(spans):
        if any(p.start() <= start < p.end() for p in _PLACEHOLDER.finditer(text)):
            continue  # already masked (a re-run on masked text)
        if merged and start < merged[-1][1]:
            last_start, last_end, last_kind = merged[-1]
            best = last_kind if _rank(last_kind) <= _rank(kind) else kind
            merged[-1] = (last_start, max(last_end, end), best)
        else:
            merged.append((start, end, kind))
    return merged


def _rank(kind: str) -> int:
    return _GENERIC.index(kind) + 1 if kind in _GENERIC else 0
