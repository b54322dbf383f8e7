"""A deterministic loopback stand-in for the parts of the GitHub REST API v3 and the GitLab REST
API v4 that ownit's CI integration uses: read a pull/merge request and its diff, and keep one
sticky comment (found by a hidden marker in its body) up to date. In-memory state, stdlib only.

    with serve() as srv:  # srv is the base URL (a str), plus .url, .requests and the helpers
        srv.add_github_pr("acme", "widgets", 42, title=..., body=..., author="dana-reyes",
                          base_sha=..., head_sha=..., diff=git_diff_text)
        srv.add_gitlab_mr("acme/platform/widgets", 7, project_id=4242, title=..., description=...,
                          author="dana.reyes", base_sha=..., head_sha=..., diff=git_diff_text)
        ...  # ownit talks to f"{srv}" (GitHub; f"{srv}/api/v3" works too) or f"{srv}/api/v4"
        srv.comments("acme", "widgets", 42)  # the issue comments as the API returns them
        srv.notes("acme/platform/widgets", 7)  # the MR notes, oldest first
        method, path, headers, body = srv.requests[-1]  # header names lower-cased

    python -m tests.forge_server --port 8766   # the demo PR acme/widgets#42 (#43 from a fork)
                                               # and MR acme/platform/widgets!7 seeded

``serve(prs=[GitHubPR(...), GitLabMR(...)])`` seeds at start; ``serve(prs=demo_prs())`` seeds
the demo, which ``tests/data/events/*.json`` describe. Tokens: ``github_token`` ("ghs_test"),
``gitlab_token`` ("glpat-test"). ``max_per_page`` (default 100, as both forges cap ``per_page``)
lowers the cap, so a client that asks for 100 per page still sees several pages.

Every new PR/MR gets unrelated comments first (``seed_comments``/``seed_notes``): the author, a
reviewer who mentions ownit in prose, codecov[bot], and another workflow's sticky comment by
github-actions[bot] (the very author of ownit's comments, ``github_user``) with its own marker;
on GitLab two system notes, a reviewer, and another bot's sticky note. Adding a PR/MR again with
the same number is a new push: title, SHAs and diff change, comments stay.

Deterministic: ids count up from fixed starts, other ids and node_ids hash the names, the clock
starts at 2025-01-06T09:00:00Z and advances 1 s per write (seeding included); the Date header,
request ids, ETags and rate-limit headers follow from the clock and the request count. Two
servers seeded and asked the same way answer byte for byte the same (URLs in bodies and Link
headers carry the server's own address, so use the same port, as the cassettes do).

GitHub, as documented at docs.github.com/rest and seen on the wire:

* ``GET /repos/{owner}/{repo}/pulls/{n}``: the pull request (``Accept:
  application/vnd.github+json``) or, with ``Accept: application/vnd.github.diff`` (or
  ``.v3.diff``), the three-dot diff (merge base..head) as ``Content-Type:
  application/vnd.github.v3.diff; charset=utf-8`` (not text/plain). Over 300 files or 20,000
  lines: 406 ``{"message": "Sorry, the diff exceeded the maximum number of files (300). ...",
  "errors": [{"resource": "PullRequest", "field": "diff", "code": "too_large"}]}``; then ``GET
  .../pulls/{n}/files`` (also served, up to 3,000 files; each ``patch`` is hunks without
  headers and without the final newline, absent for binaries) is the way.
* ``GET /repos/{o}/{r}/issues/{n}/comments``: oldest first, ``per_page`` default 30, max 100;
  ``Link: <.../repositories/{repo_id}/issues/{n}/comments?per_page=..&page=2>; rel="next",
  <...>; rel="last"`` (prev, next, last, first; no Link on a single page). The links go through
  ``/repositories/{id}``, as GitHub's do: follow them verbatim, do not rebuild them.
* ``POST .../issues/{n}/comments`` {"body"}: 201 + ``Location``; ``PATCH
  /repos/{o}/{r}/issues/comments/{id}``: 200. A body over 65,536 characters: 422 "Validation
  Failed", ``errors[0].message`` "body is too long (maximum is 65536 characters)".
* Auth ``Authorization: Bearer <t>`` or ``token <t>``. A wrong token: 401 "Bad credentials". No
  token: the repository is private, so reads give 404 "Not Found" and writes 401 "Requires
  authentication", as GitHub answers for a private repository.
* Every ``/repos/{o}/{r}/...`` path also works as ``/repositories/{repo_id}/...`` and under
  ``/api/v3`` (GitHub Enterprise Server). Comment and user ids exceed 32 bits, as on github.com.

GitLab, as documented at docs.gitlab.com/api and implemented in gitlab-org/gitlab
(lib/api/merge_requests.rb, notes.rb, entities/{diff,note}.rb, offset_header_builder.rb):

* ``{id}`` is the numeric project id or the URL-encoded path (``acme%2Fplatform%2Fwidgets``); an
  unencoded ``/`` is no route (404 ``{"error": "404 Not Found"}``).
* ``GET /projects/{id}/merge_requests/{iid}``: the MR (``sha`` = head, ``diff_refs`` {base_sha,
  head_sha, start_sha}, ``changes_count`` a *string*).
* ``GET .../diffs?page&per_page[&unidiff=true]``: per file {diff, collapsed, too_large, new_path,
  old_path, a_mode, b_mode, new_file, renamed_file, deleted_file, generated_file}; ``diff`` is
  the hunks from the first ``@@`` with no ``diff --git``/``index``/``---``/``+++`` header (those
  two come back with ``unidiff=true``), "Binary files a/x and b/x differ\\n" for a binary, ""
  for a pure rename or mode change, and "" with ``too_large: true`` over 200 KiB (the file
  changed: do not read "" as "unchanged"). New files have ``a_mode`` "0", deleted ``b_mode``
  "0". ``per_page`` default 20, max 100.
* Pagination headers: X-Per-Page, X-Page, X-Next-Page ("" on the last page), X-Prev-Page, Link
  (prev, next, first, last; query sorted, with the route params as GitLab's ``to_query``
  writes them), X-Total, X-Total-Pages.
* ``GET .../notes``: **newest first unless ``sort=asc``** (``order_by`` created_at|updated_at),
  system notes included (``system: true``: skip them). ``POST .../notes`` {"body"} (JSON, form or
  query): 201; ``PUT .../notes/{note_id}``: 200; someone else's or a system note: 403 ``{"message":
  "403 Forbidden"}``. A body over 1,000,000 characters: 400 ``{"message": "400 Bad request - Note
  {:note=>[\\"is too long (maximum is 1000000 characters)\\"]}"}``; no body: 400 ``{"error":
  "body is missing"}``.
* Auth ``PRIVATE-TOKEN``, ``Authorization: Bearer`` or ``JOB-TOKEN``; ``JOB-TOKEN`` (what
  ``CI_JOB_TOKEN`` is) only reads: a POST/PUT with it is 401. A wrong token: 401 ``{"message":
  "401 Unauthorized"}``; none: reads 404 ``{"message": "404 Project Not Found"}`` (a private
  project), writes 401. Unknown MR: 404 ``{"message": "404 Not found"}``.

Event fixtures in ``tests/data/events/`` are exactly what the runners write (no provenance key,
so the notes are here). ``github_pull_request.json``: the ``pull_request`` webhook payload GitHub
Actions writes to ``GITHUB_EVENT_PATH`` (action "synchronize", with ``before``/``after``), for
the demo PR acme/widgets#42; ``github_pull_request_target.json``: action "opened" for #43, whose
head is the fork dana-reyes/widgets (``head.repo.fork`` true); ``github_push.json``: a push to
main (no ``pull_request``; ``repository.created_at``/``pushed_at`` are Unix integers in push
payloads, ``owner`` has ``name``/``email``). Shapes follow GitHub's "Webhook events and
payloads" reference and recorded payloads. ``pull_request.base.sha`` is the base branch tip when the
event fired, not the merge base (equal in the demo, where main has not moved).
``gitlab_mr_env.json``: the predefined variables of a merge request pipeline
(docs.gitlab.com/ci/variables/predefined_variables), all strings. In a plain MR pipeline
``CI_MERGE_REQUEST_SOURCE_BRANCH_SHA`` and ``..._TARGET_BRANCH_SHA`` are "" (set only in merged
results pipelines), so the head is ``CI_COMMIT_SHA``; ``CI_COMMIT_BRANCH`` is absent;
``CI_COMMIT_BEFORE_SHA`` is all zeros; ``CI_JOB_TOKEN`` is left out (masked, and it cannot
comment anyway).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

JSON = dict[str, Any]

EPOCH = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)
GITHUB_COMMENT_LIMIT = 65536  # characters
GITLAB_NOTE_LIMIT = 1_000_000  # characters (Gitlab::Database::MAX_TEXT_SIZE_LIMIT)
GITHUB_DIFF_MAX_FILES = 300
GITHUB_DIFF_MAX_LINES = 20_000
GITHUB_FILES_MAX = 3000  # what GET .../pulls/{n}/files lists at most
GITLAB_MAX_PATCH_BYTES = 204_800  # diff_max_patch_bytes default: bigger files are too_large
GITHUB_PER_PAGE, GITLAB_PER_PAGE, MAX_PER_PAGE = 30, 20, 100
GITHUB_API_VERSION = "2022-11-28"
GITHUB_RATE_LIMIT = 5000
GITHUB_DOCS = "https://docs.github.com/rest"
ACTIONS_BOT, ACTIONS_BOT_ID = "github-actions[bot]", 41898282
GITLAB_BOT = "project_4242_bot_5e1f0c3a9d2b"  # a project access token's bot user
GITHUB_COMMENT_IDS = 2_570_000_001  # github.com issue comment ids are past 2**31
GITLAB_NOTE_IDS = 2_260_000_001
GITLAB_MR_IDS = 351_000_001
_REQUEST_ID_GROUPS = ((0, 4), (4, 8), (8, 14), (14, 20), (20, 28))  # "0402:1B88:64CE7E:..."


# ---------------------------------------------------------------------------------------------
# Seeds


@dataclass(frozen=True)
class GitHubPR:
    """A pull request to serve. ``base_sha`` is ``base.sha`` as GitHub reports it (the base
    branch tip), ``diff`` what the diff media type returns (``git diff base...head``)."""

    owner: str
    repo: str
    number: int
    title: str
    body: str | None
    author: str
    base_sha: str
    head_sha: str
    diff: str
    base_ref: str = "main"
    head_ref: str | None = None  # default f"feature/pr-{number}"
    head_repo: str | None = None  # "owner/name" of a fork the PR comes from
    draft: bool = False
    seed_comments: bool = True


@dataclass(frozen=True)
class GitLabMR:
    """A merge request to serve: ``diff`` (git diff text, split per file as GitLab stores it)
    or ``files`` (GitLab's per-file shape: old_path, new_path, diff, new_file, ...)."""

    project_path: str
    iid: int
    project_id: int
    title: str
    description: str
    author: str
    base_sha: str
    head_sha: str
    start_sha: str | None = None  # target branch tip; default base_sha
    files: Sequence[Mapping[str, Any]] | None = None
    diff: str | None = None
    source_branch: str | None = None  # default f"feature/mr-{iid}"
    target_branch: str = "main"
    draft: bool = False
    seed_notes: bool = True


class Request(NamedTuple):
    method: str
    path: str  # as sent, with the query string
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, else the text, else None


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()
    date: str = ""  # the Date header: the server's clock after this request


# ---------------------------------------------------------------------------------------------
# Unified diffs, split per file as GitLab stores them


@dataclass
class FileDiff:
    """One file of a git diff; ``diff`` is its hunks without the file header (GitLab's
    ``diff``), or git's "Binary files ... differ" line for a binary."""

    old_path: str
    new_path: str
    diff: str = ""
    a_mode: str = "100644"
    b_mode: str = "100644"
    new_file: bool = False
    renamed_file: bool = False
    deleted_file: bool = False
    binary: bool = False

    @property
    def additions(self) -> int:
        return sum(1 for line in _hunk_lines(self.diff) if line.startswith("+"))

    @property
    def deletions(self) -> int:
        return sum(1 for line in _hunk_lines(self.diff) if line.startswith("-"))

    @property
    def status(self) -> str:
        """GitHub's file status."""
        if self.new_file:
            return "added"
        if self.deleted_file:
            return "removed"
        if self.renamed_file:
            return "renamed"
        if self.a_mode != self.b_mode and not self.diff:
            return "changed"
        return "modified"

    def unidiff(self) -> str:
        """GitLab's ``unidiff=true`` form: ``---``/``+++`` lines, then the hunks."""
        if not self.diff or self.binary:
            return self.diff
        old = "/dev/null" if self.new_file else f"a/{self.old_path}"
        new = "/dev/null" if self.deleted_file else f"b/{self.new_path}"
        return f"--- {old}\n+++ {new}\n{self.diff}"

    @classmethod
    def from_gitlab(cls, data: Mapping[str, Any]) -> FileDiff:
        new_file, deleted = bool(data.get("new_file")), bool(data.get("deleted_file"))
        text = str(data.get("diff") or "")
        return cls(
            old_path=str(data.get("old_path") or data["new_path"]),
            new_path=str(data.get("new_path") or data["old_path"]),
            diff=text,
            a_mode=str(data.get("a_mode") or ("0" if new_file else "100644")),
            b_mode=str(data.get("b_mode") or ("0" if deleted else "100644")),
            new_file=new_file,
            renamed_file=bool(data.get("renamed_file")),
            deleted_file=deleted,
            binary=text.startswith("Binary files "),
        )


_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _hunk_lines(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        if not line.startswith(("@@", "Binary files ")):
            yield line


def _lines(text: str) -> list[str]:
    """Lines with their "\\n" (only "\\n" splits: a CR stays part of its line)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


def _read_quoted(text: str) -> tuple[str, str]:
    """Git's C-quoted path at the start of ``text`` (octal escapes are UTF-8 bytes), and the
    rest of ``text``."""
    out = bytearray()
    i = 1
    while i < len(text) and text[i] != '"':
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "01234567":
                out.append(int(text[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, ord(nxt)))
            i += 2
            continue
        out += char.encode()
        i += 1
    return out.decode("utf-8", "replace"), text[i + 1 :]


def _path(text: str, prefix: str) -> str:
    text = text.rstrip("\r\n")
    if text.startswith('"'):
        text = _read_quoted(text)[0]
    elif "\t" in text:  # GNU diff puts a tab and a date after the name
        text = text.split("\t", 1)[0]
    return text.removeprefix(prefix)


def _git_line_paths(rest: str) -> tuple[str, str]:
    """old and new path from what follows ``diff --git ``."""
    rest = rest.rstrip("\r\n")
    if rest.startswith('"'):
        old, tail = _read_quoted(rest)
        return old.removeprefix("a/"), _path(tail.lstrip(" "), "b/")
    if ' "' in rest:
        old, new = rest.split(' "', 1)
        return old.removeprefix("a/"), _path('"' + new, "b/")
    half = len(rest) // 2
    if len(rest) % 2 and rest[half] == " " and rest[2:half] == rest[half + 3 :]:
        return rest[2:half], rest[half + 3 :]
    old, _, new = rest.partition(" b/")
    return old.removeprefix("a/"), new or old.removeprefix("a/")


def _take_hunk(lines: list[str], i: int, out: list[str]) -> int:
    match = _HUNK.match(lines[i])
    assert match
    old = 1 if match[2] is None else int(match[2])
    new = 1 if match[4] is None else int(match[4])
    out.append(lines[i])
    i += 1
    while i < len(lines) and (old > 0 or new > 0):
        tag = lines[i][:1]
        if tag in (" ", "\n", "\r"):
            old, new = old - 1, new - 1
        elif tag == "-":
            old -= 1
        elif tag == "+":
            new -= 1
        elif tag != "\\":
            break
        out.append(lines[i])
        i += 1
    while i < len(lines) and lines[i].startswith("\\"):
        out.append(lines[i])
        i += 1
    return i


def split_diff(text: str) -> list[FileDiff]:
    """A ``git diff`` split into files, as GitLab's diffs endpoint lists them."""
    lines = _lines(text)
    files: list[FileDiff] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("diff --git "):
            i = _parse_file(lines, i, files)
        else:
            i += 1
    return files


def _parse_file(lines: list[str], i: int, files: list[FileDiff]) -> int:
    old_path, new_path = _git_line_paths(lines[i][len("diff --git ") :])
    f = FileDiff(old_path, new_path)
    modes: dict[str, str] = {}
    hunks: list[str] = []
    i += 1
    while i < len(lines) and not lines[i].startswith("diff --git "):
        line = lines[i]
        bare = line.rstrip("\r\n")
        if _HUNK.match(line):
            i = _take_hunk(lines, i, hunks)
            continue
        i += 1
        if hunks:  # after the hunks: a format-patch signature and the like
            continue
        if bare.startswith("old mode "):
            modes["old"] = bare[9:]
        elif bare.startswith("new mode "):
            modes["new"] = bare[9:]
        elif bare.startswith("new file mode "):
            f.new_file, modes["new"] = True, bare[14:]
        elif bare.startswith("deleted file mode "):
            f.deleted_file, modes["old"] = True, bare[18:]
        elif bare.startswith(("rename from ", "copy from ")):
            f.renamed_file = bare.startswith("rename")
            f.old_path = _path(bare.split(" ", 2)[2], "")
        elif bare.startswith(("rename to ", "copy to ")):
            f.new_path = _path(bare.split(" ", 2)[2], "")
        elif bare.startswith("index ") and " " in bare[6:]:
            modes.setdefault("both", bare.rsplit(" ", 1)[1])
        elif bare.startswith("--- ") and bare != "--- /dev/null":
            f.old_path = _path(bare[4:], "a/")
        elif bare.startswith("+++ ") and bare != "+++ /dev/null":
            f.new_path = _path(bare[4:], "b/")
        elif bare.startswith("Binary files ") or bare == "GIT binary patch":
            f.binary = True
    both = modes.get("both", "100644")
    f.a_mode = "0" if f.new_file else modes.get("old", both)
    f.b_mode = "0" if f.deleted_file else modes.get("new", both)
    if f.binary:
        old = "/dev/null" if f.new_file else f"a/{f.old_path}"
        new = "/dev/null" if f.deleted_file else f"b/{f.new_path}"
        f.diff = f"Binary files {old} and {new} differ\n"
    else:
        f.diff = "".join(hunks)
    files.append(f)
    return i


def join_diff(files: Iterable[FileDiff]) -> str:
    """A git diff from per-file diffs (headers rebuilt; blob ids left out)."""
    out: list[str] = []
    for f in files:
        out.append(f"diff --git a/{f.old_path} b/{f.new_path}\n")
        if f.new_file:
            out.append(f"new file mode {f.b_mode}\n")
        elif f.deleted_file:
            out.append(f"deleted file mode {f.a_mode}\n")
        elif f.a_mode != f.b_mode:
            out.append(f"old mode {f.a_mode}\nnew mode {f.b_mode}\n")
        if f.renamed_file:
            out.append(f"rename from {f.old_path}\nrename to {f.new_path}\n")
        out.append(f.unidiff())
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Small deterministic helpers


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()


def _number(*parts: object, low: int, span: int) -> int:
    return low + int.from_bytes(_digest(*parts)[:8], "big") % span


def _hex(*parts: object, length: int = 40) -> str:
    return _digest(*parts).hex()[:length]


def _node_id(prefix: str, *parts: object) -> str:
    return prefix + base64.urlsafe_b64encode(_digest(prefix, *parts)[:9]).decode()


def _gh_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _gl_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and re.fullmatch(r"[+-]?\d+", text.strip()) else None


# ---------------------------------------------------------------------------------------------
# State


@dataclass
class _Comment:
    """A GitHub issue comment or a GitLab note."""

    id: int
    key: tuple[str, ...]  # (owner, repo, number) as seeded, or (project_path, iid)
    body: str
    login: str
    bot: bool
    created: datetime
    updated: datetime
    system: bool = False
    name: str = ""  # GitLab display name


@dataclass
class _Pull:
    spec: GitHubPR
    repo_id: int
    id: int
    created: datetime
    updated: datetime
    files: list[FileDiff]


@dataclass
class _MergeRequest:
    spec: GitLabMR
    id: int
    created: datetime
    updated: datetime
    files: list[FileDiff]


@dataclass
class Forge:
    """All state of one server, and the answer to every request (``handle``)."""

    github_token: str = "ghs_test"
    gitlab_token: str = "glpat-test"
    github_user: str = ACTIONS_BOT  # whom github_token belongs to
    gitlab_user: str = GITLAB_BOT  # whom gitlab_token belongs to
    gitlab_user_name: str = "ownit"
    max_per_page: int = MAX_PER_PAGE
    url: str = "http://127.0.0.1"
    now: datetime = EPOCH
    lock: threading.RLock = field(default_factory=threading.RLock)
    requests: list[Request] = field(default_factory=list)
    pulls: dict[tuple[str, str, int], _Pull] = field(default_factory=dict)
    repos: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (owner, name)
    merge_requests: dict[tuple[int, int], _MergeRequest] = field(default_factory=dict)
    projects: dict[int, str] = field(default_factory=dict)  # id -> path
    comments: dict[int, _Comment] = field(default_factory=dict)
    # Commit statuses set (POST /repos/{o}/{r}/statuses/{sha}), in order: (owner/repo, sha, body).
    statuses: list[tuple[str, str, JSON]] = field(default_factory=list)
    notes: dict[int, _Comment] = field(default_factory=dict)
    next_comment: int = GITHUB_COMMENT_IDS
    next_note: int = GITLAB_NOTE_IDS
    next_mr: int = GITLAB_MR_IDS
    served: int = 0
    github_used: int = 0

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    # --- seeding ---------------------------------------------------------------------------

    def add(self, seed: GitHubPR | GitLabMR) -> None:
        with self.lock:
            if isinstance(seed, GitHubPR):
                self._add_pull(seed)
            else:
                self._add_merge_request(seed)

    def _add_pull(self, spec: GitHubPR) -> None:
        key = (spec.owner.lower(), spec.repo.lower(), spec.number)
        repo_id = _number("repo", key[0], key[1], low=800_000_000, span=100_000_000)
        self.repos[repo_id] = (spec.owner, spec.repo)
        moment = self.tick()
        if old := self.pulls.get(key):
            old.spec, old.updated, old.files = spec, moment, split_diff(spec.diff)
            return
        pr_id = _number("pull", *key, low=2_100_000_000, span=100_000_000)
        self.pulls[key] = _Pull(spec, repo_id, pr_id, moment, moment, split_diff(spec.diff))
        if spec.seed_comments:
            where = (spec.owner, spec.repo, str(spec.number))
            for login, bot, body in _github_chatter(spec):
                self._comment(where, body, login, bot)

    def _comment(self, key: tuple[str, ...], body: str, login: str, bot: bool) -> _Comment:
        moment = self.tick()
        comment = _Comment(self.next_comment, key, body, login, bot, moment, moment)
        self.comments[comment.id] = comment
        self.next_comment += 1
        if pull := self.pulls.get((key[0].lower(), key[1].lower(), int(key[2]))):
            pull.updated = moment
        return comment

    def _add_merge_request(self, spec: GitLabMR) -> None:
        if (spec.files is None) == (spec.diff is None):
            raise ValueError("give a GitLab MR exactly one of files= and diff=")
        files = (
            split_diff(spec.diff)
            if spec.diff is not None
            else [FileDiff.from_gitlab(f) for f in spec.files or ()]
        )
        known = self.projects.get(spec.project_id)
        if known is not None and known.lower() != spec.project_path.lower():
            raise ValueError(f"project id {spec.project_id} is already {known}")
        self.projects[spec.project_id] = spec.project_path
        key = (spec.project_id, spec.iid)
        moment = self.tick()
        if old := self.merge_requests.get(key):
            old.spec, old.updated, old.files = spec, moment, files
            return
        self.merge_requests[key] = _MergeRequest(spec, self.next_mr, moment, moment, files)
        self.next_mr += 1
        if spec.seed_notes:
            for login, name, system, body in _gitlab_chatter(spec):
                self._note(spec, body, login, name, system)

    def _note(self, spec: GitLabMR, body: str, login: str, name: str, system: bool) -> _Comment:
        moment = self.tick()
        key = (str(spec.project_id), str(spec.iid))
        note = _Comment(self.next_note, key, body, login, False, moment, moment, system, name)
        self.notes[note.id] = note
        self.next_note += 1
        self.merge_requests[spec.project_id, spec.iid].updated = moment
        return note

    def add_comment(
        self, owner: str, repo: str, number: int, body: str, *, user: str, bot: bool
    ) -> int:
        with self.lock:
            if (owner.lower(), repo.lower(), number) not in self.pulls:
                raise KeyError(f"no pull request {owner}/{repo}#{number}")
            return self._comment((owner, repo, str(number)), body, user, bot).id

    def add_note(
        self, project: str | int, iid: int, body: str, *, author: str, name: str, system: bool
    ) -> int:
        with self.lock:
            mr = self._find_mr(str(project), iid)
            if mr is None:
                raise KeyError(f"no merge request {project}!{iid}")
            return self._note(mr.spec, body, author, name or author, system).id

    # --- reading state back ------------------------------------------------------------------

    def issue_comments(self, owner: str, repo: str, number: int) -> list[JSON]:
        with self.lock:
            pull = self.pulls[owner.lower(), repo.lower(), number]
            return [self._gh_comment(c, self.url) for c in self._comments_of(pull)]

    def mr_notes(self, project: str | int, iid: int) -> list[JSON]:
        with self.lock:
            mr = self._find_mr(str(project), iid)
            if mr is None:
                raise KeyError(f"no merge request {project}!{iid}")
            return [self._gl_note(n, mr) for n in self._notes_of(mr)]

    def _comments_of(self, pull: _Pull) -> list[_Comment]:
        key = (pull.spec.owner.lower(), pull.spec.repo.lower(), str(pull.spec.number))
        found = [c for c in self.comments.values() if tuple(k.lower() for k in c.key) == key]
        return sorted(found, key=lambda c: c.id)

    def _notes_of(self, mr: _MergeRequest) -> list[_Comment]:
        key = (str(mr.spec.project_id), str(mr.spec.iid))
        return sorted((n for n in self.notes.values() if n.key == key), key=lambda n: n.id)

    def _find_project(self, ref: str) -> int | None:
        if ref.isdigit():
            return int(ref) if int(ref) in self.projects else None
        for project_id, path in self.projects.items():
            if path.lower() == ref.lower():
                return project_id
        return None

    def _find_mr(self, project: str, iid: int) -> _MergeRequest | None:
        project_id = self._find_project(project)
        return None if project_id is None else self.merge_requests.get((project_id, iid))

    # --- HTTP ----------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        """The reply to one request; ``headers`` lower-cased."""
        with self.lock:
            self.requests.append(Request(method, target, dict(headers), _parse_body(raw)))
            self.served += 1
            split = urlsplit(target)
            query = parse_qsl(split.query, keep_blank_values=True)
            if split.path.startswith("/api/v4/"):
                reply = self._gitlab(method, split.path, query, headers, raw)
            else:
                prefix = "/api/v3" if split.path.startswith("/api/v3/") else ""
                path = split.path[len(prefix) :]
                reply = self._github(method, path, prefix, query, headers, raw)
            return reply._replace(date=formatdate(self.now.timestamp(), usegmt=True))

    # --- GitHub --------------------------------------------------------------------------------

    def _github(
        self,
        method: str,
        path: str,
        prefix: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        raw: bytes,
    ) -> Reply:
        api = self.url + prefix
        scheme, _, token = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() in ("bearer", "token") and token.strip() == self.github_token:
            self.github_used += 1
        elif scheme:
            return self._gh_error(401, "Bad credentials", GITHUB_DOCS)
        elif method != "GET":
            return self._gh_error(401, "Requires authentication", _gh_doc(path, method))
        else:  # a private repository does not exist for an anonymous caller
            return self._gh_error(404, "Not Found", _gh_doc(path, method))
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "repos":
            owner, repo, rest = unquote(parts[1]), unquote(parts[2]), parts[3:]
        elif len(parts) >= 2 and parts[0] == "repositories" and parts[1].isdigit():
            owner, repo = self.repos.get(int(parts[1]), ("", ""))
            rest = parts[2:]
        else:
            return self._gh_error(404, "Not Found", GITHUB_DOCS)
        route = "/".join("{n}" if p.isdigit() else p for p in rest)
        number = next((int(p) for p in rest if p.isdigit()), 0)
        if method == "GET" and route == "pulls/{n}":
            return self._gh_pull(owner, repo, number, api, headers)
        if method == "GET" and route == "pulls/{n}/files":
            return self._gh_files(owner, repo, number, prefix, query)
        if method == "GET" and route == "issues/{n}/comments":
            return self._gh_list_comments(owner, repo, number, path, prefix, query, api)
        if method == "POST" and route == "issues/{n}/comments":
            return self._gh_create_comment(owner, repo, number, raw, api)
        if method in ("GET", "PATCH") and route == "issues/comments/{n}":
            return self._gh_comment_by_id(method, owner, repo, number, raw, api)
        if method == "POST" and len(rest) == 2 and rest[0] == "statuses":
            return self._gh_create_status(owner, repo, rest[1], raw, api)
        return self._gh_error(404, "Not Found", GITHUB_DOCS)

    def _gh_create_status(self, owner: str, repo: str, sha: str, raw: bytes, api: str) -> Reply:
        """POST /repos/{o}/{r}/statuses/{sha}: state must be error, failure, pending or success."""
        docs = f"{GITHUB_DOCS}/commits/statuses#create-a-commit-status"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._gh_error(400, "Problems parsing JSON", docs)
        if body.get("state") not in ("error", "failure", "pending", "success"):
            errors = [{"resource": "Status", "field": "state", "code": "custom"}]
            return self._gh_error(422, "Validation Failed", docs, errors)
        self.statuses.append((f"{owner}/{repo}", sha, body))
        moment = _gh_time(self.tick())
        payload = {
            "url": f"{api}/repos/{owner}/{repo}/statuses/{sha}",
            "id": len(self.statuses),
            "state": body["state"],
            "description": body.get("description"),
            "context": body.get("context", "default"),
            "created_at": moment,
            "updated_at": moment,
        }
        return self._gh_json(201, payload)

    def _gh_headers(self, media: str = "github.v3; format=json") -> list[tuple[str, str]]:
        request_id = _hex("github", self.served, length=28).upper()
        reset = int((EPOCH + timedelta(hours=1)).timestamp())
        return [
            ("Cache-Control", "private, max-age=60, s-maxage=60"),
            ("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP,Accept-Encoding, Accept"),
            ("X-GitHub-Media-Type", media),
            ("X-GitHub-Api-Version-Selected", GITHUB_API_VERSION),
            ("X-RateLimit-Limit", str(GITHUB_RATE_LIMIT)),
            ("X-RateLimit-Remaining", str(GITHUB_RATE_LIMIT - self.github_used)),
            ("X-RateLimit-Reset", str(reset)),
            ("X-RateLimit-Used", str(self.github_used)),
            ("X-RateLimit-Resource", "core"),
            ("X-GitHub-Request-Id", ":".join(request_id[a:b] for a, b in _REQUEST_ID_GROUPS)),
        ]

    def _gh_json(self, status: int, payload: Any, extra: Sequence[tuple[str, str]] = ()) -> Reply:
        body = _dumps(payload)
        headers = self._gh_headers()
        if status == 200:
            headers.insert(2, ("ETag", f'W/"{hashlib.sha256(body).hexdigest()}"'))
        return Reply(status, body, "application/json; charset=utf-8", (*headers, *extra))

    def _gh_error(self, status: int, message: str, docs: str, errors: Any = None) -> Reply:
        payload: JSON = {"message": message}
        if errors is not None:
            payload["errors"] = errors
        payload |= {"documentation_url": docs, "status": str(status)}
        return self._gh_json(status, payload)

    def _gh_find(self, owner: str, repo: str, number: int) -> _Pull | None:
        return self.pulls.get((owner.lower(), repo.lower(), number))

    def _gh_pull(
        self, owner: str, repo: str, number: int, api: str, headers: Mapping[str, str]
    ) -> Reply:
        pull = self._gh_find(owner, repo, number)
        if pull is None:
            return self._gh_error(404, "Not Found", f"{GITHUB_DOCS}/pulls/pulls#get-a-pull-request")
        accept = headers.get("accept", "").lower()
        if "application/vnd.github.diff" in accept or "application/vnd.github.v3.diff" in accept:
            lines = len(_lines(pull.spec.diff))
            limit = None
            if len(pull.files) > GITHUB_DIFF_MAX_FILES:
                limit = (
                    f"Sorry, the diff exceeded the maximum number of files "
                    f"({GITHUB_DIFF_MAX_FILES}). Consider using 'List pull requests files' "
                    "API or locally cloning the repository instead."
                )
            elif lines > GITHUB_DIFF_MAX_LINES:
                limit = (
                    "Sorry, the diff exceeded the maximum number of lines "
                    f"({GITHUB_DIFF_MAX_LINES})"
                )
            if limit:
                error = [{"resource": "PullRequest", "field": "diff", "code": "too_large"}]
                docs = f"{GITHUB_DOCS}/pulls/pulls#list-pull-requests-files"
                return self._gh_error(406, limit, docs, error)
            body = pull.spec.diff.encode()
            headers_out = self._gh_headers("github.v3; param=diff")
            headers_out.insert(2, ("ETag", f'"{hashlib.sha256(body).hexdigest()}"'))
            return Reply(
                200, body, "application/vnd.github.v3.diff; charset=utf-8", tuple(headers_out)
            )
        return self._gh_json(200, self._gh_pull_json(pull, api))

    def _gh_files(
        self, owner: str, repo: str, number: int, prefix: str, query: list[tuple[str, str]]
    ) -> Reply:
        pull = self._gh_find(owner, repo, number)
        if pull is None:
            docs = f"{GITHUB_DOCS}/pulls/pulls#list-pull-requests-files"
            return self._gh_error(404, "Not Found", docs)
        spec = pull.spec
        web = f"{self.url}/{spec.owner}/{spec.repo}"
        rows: list[JSON] = []
        for f in pull.files[:GITHUB_FILES_MAX]:
            path = f.old_path if f.deleted_file else f.new_path
            ref = spec.base_sha if f.deleted_file else spec.head_sha
            row: JSON = {
                "sha": _hex("blob", ref, path),
                "filename": path,
                "status": f.status,
                "additions": f.additions,
                "deletions": f.deletions,
                "changes": f.additions + f.deletions,
                "blob_url": f"{web}/blob/{ref}/{quote(path)}",
                "raw_url": f"{web}/raw/{ref}/{quote(path)}",
                "contents_url": f"{self.url}{prefix}/repos/{spec.owner}/{spec.repo}/contents/"
                f"{quote(path)}?ref={ref}",
            }
            if f.diff and not f.binary:
                row["patch"] = f.diff.removesuffix("\n")
            if f.renamed_file:
                row["previous_filename"] = f.old_path
            rows.append(row)
        page, per_page = _gh_page(query, self.max_per_page)
        last = max(1, math.ceil(len(rows) / per_page))
        base = f"{self.url}{prefix}/repositories/{pull.repo_id}/pulls/{number}/files"
        link = _github_link(base, query, page, last)
        chunk = rows[(page - 1) * per_page : page * per_page]
        return self._gh_json(200, chunk, [("Link", link)] if link else [])

    def _gh_list_comments(
        self,
        owner: str,
        repo: str,
        number: int,
        path: str,
        prefix: str,
        query: list[tuple[str, str]],
        api: str,
    ) -> Reply:
        pull = self._gh_find(owner, repo, number)
        if pull is None:
            docs = f"{GITHUB_DOCS}/issues/comments#list-issue-comments"
            return self._gh_error(404, "Not Found", docs)
        comments = self._comments_of(pull)
        page, per_page = _gh_page(query, self.max_per_page)
        last = max(1, math.ceil(len(comments) / per_page))
        base = f"{self.url}{prefix}/repositories/{pull.repo_id}/issues/{number}/comments"
        link = _github_link(base, query, page, last)
        chunk = comments[(page - 1) * per_page : page * per_page]
        payload = [self._gh_comment(c, api) for c in chunk]
        return self._gh_json(200, payload, [("Link", link)] if link else [])

    def _gh_body(self, raw: bytes, docs: str) -> str | Reply:
        """The comment body of a POST/PATCH, or the error reply."""
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return self._gh_error(400, "Problems parsing JSON", docs)
        if not isinstance(data, dict):
            return self._gh_error(400, "Problems parsing JSON", docs)
        if "body" not in data:
            return self._gh_error(422, 'Invalid request.\n\n"body" wasn\'t supplied.', docs)
        body = data["body"]
        if not isinstance(body, str):
            shown = "nil" if body is None else json.dumps(body)
            message = f"Invalid request.\n\nFor 'properties/body', {shown} is not a string."
            return self._gh_error(422, message, docs)
        if len(body) > GITHUB_COMMENT_LIMIT:
            error = {
                "resource": "IssueComment",
                "code": "custom",
                "field": "body",
                "message": f"body is too long (maximum is {GITHUB_COMMENT_LIMIT} characters)",
            }
            return self._gh_error(422, "Validation Failed", docs, [error])
        return body

    def _gh_create_comment(self, owner: str, repo: str, number: int, raw: bytes, api: str) -> Reply:
        docs = f"{GITHUB_DOCS}/issues/comments#create-an-issue-comment"
        pull = self._gh_find(owner, repo, number)
        if pull is None:
            return self._gh_error(404, "Not Found", docs)
        body = self._gh_body(raw, docs)
        if isinstance(body, Reply):
            return body
        spec = pull.spec
        where = (spec.owner, spec.repo, str(spec.number))
        comment = self._comment(where, body, self.github_user, self.github_user.endswith("[bot]"))
        payload = self._gh_comment(comment, api)
        return self._gh_json(201, payload, [("Location", payload["url"])])

    def _gh_comment_by_id(
        self, method: str, owner: str, repo: str, comment_id: int, raw: bytes, api: str
    ) -> Reply:
        docs = f"{GITHUB_DOCS}/issues/comments#" + (
            "update-an-issue-comment" if method == "PATCH" else "get-an-issue-comment"
        )
        comment = self.comments.get(comment_id)
        if comment is None or (comment.key[0].lower(), comment.key[1].lower()) != (
            owner.lower(),
            repo.lower(),
        ):
            return self._gh_error(404, "Not Found", docs)
        if method == "PATCH":
            body = self._gh_body(raw, docs)
            if isinstance(body, Reply):
                return body
            comment.body, comment.updated = body, self.tick()
        return self._gh_json(200, self._gh_comment(comment, api))

    # --- GitHub payloads -----------------------------------------------------------------------

    def _gh_user(self, login: str, kind: str, api: str) -> JSON:
        if login == ACTIONS_BOT:
            user_id, avatar = ACTIONS_BOT_ID, "https://avatars.githubusercontent.com/in/15368?v=4"
        else:
            user_id = _number("user", login.lower(), low=1_000_000, span=190_000_000)
            avatar = f"https://avatars.githubusercontent.com/u/{user_id}?v=4"
        escaped = quote(login, safe="")
        url = f"{api}/users/{escaped}"
        html = f"{self.url}/apps/{login.removesuffix('[bot]')}" if kind == "Bot" else None
        prefix = {"Bot": "BOT_kgDO", "Organization": "O_kgDO"}.get(kind, "U_kgDO")
        return {
            "login": login,
            "id": user_id,
            "node_id": _node_id(prefix, user_id),
            "avatar_url": avatar,
            "gravatar_id": "",
            "url": url,
            "html_url": html or f"{self.url}/{login}",
            "followers_url": f"{url}/followers",
            "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}",
            "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions",
            "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events",
            "type": kind,
            "user_view_type": "public",
            "site_admin": False,
        }

    def _gh_repo(self, full_name: str, api: str, fork: bool = False) -> JSON:
        owner, name = full_name.split("/", 1)
        repo_id = _number("repo", owner.lower(), name.lower(), low=800_000_000, span=100_000_000)
        url = f"{api}/repos/{owner}/{name}"
        html = f"{self.url}/{owner}/{name}"
        host = urlsplit(self.url).netloc
        created = EPOCH - timedelta(days=400)
        kind = "User" if fork else "Organization"
        return {
            "id": repo_id,
            "node_id": _node_id("R_kgDO", repo_id),
            "name": name,
            "full_name": full_name,
            "private": True,
            "owner": self._gh_user(owner, kind, api),
            "html_url": html,
            "description": None,
            "fork": fork,
            "url": url,
            **{f"{k}_url": f"{url}/{k}" for k in ("forks", "teams", "hooks", "events")},
            "issue_events_url": f"{url}/issues/events{{/number}}",
            "assignees_url": f"{url}/assignees{{/user}}",
            "branches_url": f"{url}/branches{{/branch}}",
            "tags_url": f"{url}/tags",
            "blobs_url": f"{url}/git/blobs{{/sha}}",
            "git_tags_url": f"{url}/git/tags{{/sha}}",
            "git_refs_url": f"{url}/git/refs{{/sha}}",
            "trees_url": f"{url}/git/trees{{/sha}}",
            "statuses_url": f"{url}/statuses/{{sha}}",
            "languages_url": f"{url}/languages",
            "stargazers_url": f"{url}/stargazers",
            "contributors_url": f"{url}/contributors",
            "subscribers_url": f"{url}/subscribers",
            "subscription_url": f"{url}/subscription",
            "commits_url": f"{url}/commits{{/sha}}",
            "git_commits_url": f"{url}/git/commits{{/sha}}",
            "comments_url": f"{url}/comments{{/number}}",
            "issue_comment_url": f"{url}/issues/comments{{/number}}",
            "contents_url": f"{url}/contents/{{+path}}",
            "compare_url": f"{url}/compare/{{base}}...{{head}}",
            "merges_url": f"{url}/merges",
            "archive_url": f"{url}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{url}/downloads",
            "issues_url": f"{url}/issues{{/number}}",
            "pulls_url": f"{url}/pulls{{/number}}",
            "milestones_url": f"{url}/milestones{{/number}}",
            "notifications_url": f"{url}/notifications{{?since,all,participating}}",
            "labels_url": f"{url}/labels{{/name}}",
            "releases_url": f"{url}/releases{{/id}}",
            "deployments_url": f"{url}/deployments",
            "created_at": _gh_time(created),
            "updated_at": _gh_time(EPOCH - timedelta(days=1)),
            "pushed_at": _gh_time(EPOCH),
            "git_url": f"git://{host}/{full_name}.git",
            "ssh_url": f"git@{host}:{full_name}.git",
            "clone_url": f"{html}.git",
            "svn_url": html,
            "homepage": None,
            "size": 184,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": "Python",
            "has_issues": not fork,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0 if fork else 1,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": 2,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private",
            "forks": 0 if fork else 1,
            "open_issues": 2,
            "watchers": 0,
            "default_branch": "main",
        }

    def _gh_pull_json(self, pull: _Pull, api: str) -> JSON:
        spec = pull.spec
        full = f"{spec.owner}/{spec.repo}"
        url = f"{api}/repos/{full}/pulls/{spec.number}"
        issue = f"{api}/repos/{full}/issues/{spec.number}"
        html = f"{self.url}/{full}/pull/{spec.number}"
        head_full = spec.head_repo or full
        head_ref = spec.head_ref or f"feature/pr-{spec.number}"
        fork = head_full.lower() != full.lower()
        comments = self._comments_of(pull)

        def side(ref: str, sha: str, repo: str, is_fork: bool) -> JSON:
            owner = repo.split("/", 1)[0]
            kind = "User" if is_fork else "Organization"
            return {
                "label": f"{owner}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": self._gh_user(owner, kind, api),
                "repo": self._gh_repo(repo, api, fork=is_fork),
            }

        return {
            "url": url,
            "id": pull.id,
            "node_id": _node_id("PR_kwDO", pull.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue,
            "number": spec.number,
            "state": "open",
            "locked": False,
            "title": spec.title,
            "user": self._gh_user(spec.author, "User", api),
            "body": spec.body,
            "created_at": _gh_time(pull.created),
            "updated_at": _gh_time(pull.updated),
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": _hex("merge", spec.base_sha, spec.head_sha),
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "labels": [],
            "milestone": None,
            "draft": spec.draft,
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{api}/repos/{full}/pulls/comments{{/number}}",
            "comments_url": f"{issue}/comments",
            "statuses_url": f"{api}/repos/{full}/statuses/{spec.head_sha}",
            "head": side(head_ref, spec.head_sha, head_full, fork),
            "base": side(spec.base_ref, spec.base_sha, full, False),
            "_links": {
                "self": {"href": url},
                "html": {"href": html},
                "issue": {"href": issue},
                "comments": {"href": f"{issue}/comments"},
                "review_comments": {"href": f"{url}/comments"},
                "review_comment": {"href": f"{api}/repos/{full}/pulls/comments{{/number}}"},
                "commits": {"href": f"{url}/commits"},
                "statuses": {"href": f"{api}/repos/{full}/statuses/{spec.head_sha}"},
            },
            "author_association": "CONTRIBUTOR" if fork else "MEMBER",
            "auto_merge": None,
            "active_lock_reason": None,
            "merged": False,
            "mergeable": True,
            "rebaseable": True,
            "mergeable_state": "clean",
            "merged_by": None,
            "comments": len(comments),
            "review_comments": 0,
            "maintainer_can_modify": fork,
            "commits": 1,
            "additions": sum(f.additions for f in pull.files),
            "deletions": sum(f.deletions for f in pull.files),
            "changed_files": len(pull.files),
        }

    def _gh_comment(self, comment: _Comment, api: str) -> JSON:
        owner, repo, number = comment.key
        issue = f"{api}/repos/{owner}/{repo}/issues"
        return {
            "url": f"{issue}/comments/{comment.id}",
            "html_url": f"{self.url}/{owner}/{repo}/pull/{number}#issuecomment-{comment.id}",
            "issue_url": f"{issue}/{number}",
            "id": comment.id,
            "node_id": _node_id("IC_kwDO", comment.id),
            "user": self._gh_user(comment.login, "Bot" if comment.bot else "User", api),
            "created_at": _gh_time(comment.created),
            "updated_at": _gh_time(comment.updated),
            "author_association": "NONE" if comment.bot else "MEMBER",
            "body": comment.body,
            "reactions": {
                "url": f"{issue}/comments/{comment.id}/reactions",
                "total_count": 0,
                **dict.fromkeys(
                    ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes"), 0
                ),
            },
            "performed_via_github_app": None,
        }

    # --- GitLab --------------------------------------------------------------------------------

    def _gl_create_status(
        self, project_ref: str, sha: str, method: str, headers: Mapping[str, str], raw: bytes
    ) -> Reply:
        """POST /projects/:id/statuses/:sha: state pending, running, success, failed or
        canceled (GitLab's words: "failed", not "failure")."""
        if method != "POST":
            return self._gl_json(405, {"error": "405 Not Allowed"})
        if denied := self._gl_auth(method, headers):
            return denied
        project_id = self._find_project(project_ref)
        if project_id is None:
            return self._gl_json(404, {"message": "404 Project Not Found"})
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._gl_json(400, {"error": "invalid JSON"})
        if body.get("state") not in ("pending", "running", "success", "failed", "canceled"):
            return self._gl_json(400, {"error": "state does not have a valid value"})
        self.statuses.append((project_ref, sha, body))
        moment = _gl_time(self.tick())
        payload = {
            "id": len(self.statuses),
            "sha": sha,
            "status": body["state"],
            "name": body.get("name", "default"),
            "description": body.get("description"),
            "created_at": moment,
        }
        return self._gl_json(201, payload)

    def _gitlab(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        raw: bytes,
    ) -> Reply:
        parts = path[len("/api/v4/") :].split("/")
        if len(parts) == 4 and parts[0] == "projects" and parts[2] == "statuses":
            return self._gl_create_status(unquote(parts[1]), parts[3], method, headers, raw)
        if len(parts) < 4 or parts[0] != "projects" or parts[2] != "merge_requests":
            return self._gl_json(404, {"error": "404 Not Found"})
        project_ref, iid_text, rest = unquote(parts[1]), parts[3], parts[4:]
        route = "/".join("{n}" if p.isdigit() else p for p in rest)
        allowed = {"": ("GET",), "diffs": ("GET",), "notes": ("GET", "POST")}
        allowed["notes/{n}"] = ("GET", "PUT")
        if route not in allowed or (rest and rest[-1] == ""):
            return self._gl_json(404, {"error": "404 Not Found"})
        if method not in allowed[route]:
            return self._gl_json(405, {"error": "405 Not Allowed"})
        iid = _int(iid_text)
        if iid is None:
            return self._gl_json(400, {"error": "merge_request_iid is invalid"})
        if denied := self._gl_auth(method, headers):
            return denied
        project_id = self._find_project(project_ref)
        if project_id is None:
            return self._gl_json(404, {"message": "404 Project Not Found"})
        mr = self.merge_requests.get((project_id, iid))
        if mr is None:
            what = "404 MergeRequest Not Found" if route.startswith("notes") else "404 Not found"
            return self._gl_json(404, {"message": what})
        params = dict(query)
        if route == "":
            return self._gl_json(200, self._gl_mr_json(mr))
        if route == "diffs":
            link = {"id": project_ref, "merge_request_iid": str(iid), "unidiff": "false"}
            unidiff = params.get("unidiff", "false").lower() in ("true", "1", "t", "yes")
            rows = [_gl_diff(f, unidiff) for f in mr.files]
            return self._gl_page(rows, path, params, link)
        if route == "notes" and method == "GET":
            return self._gl_list_notes(mr, path, params, project_ref)
        if route == "notes":
            return self._gl_create_note(mr, query, headers, raw)
        note = self.notes.get(int(rest[1]))
        if note is None or note.key != (str(project_id), str(iid)):
            return self._gl_json(404, {"message": "404 Not found"})
        if method == "GET":
            return self._gl_json(200, self._gl_note(note, mr))
        return self._gl_update_note(mr, note, query, headers, raw)

    def _gl_auth(self, method: str, headers: Mapping[str, str]) -> Reply | None:
        """None when the request may go on, else the 401/404 GitLab answers."""
        unauthorized = self._gl_json(401, {"message": "401 Unauthorized"})
        scheme, _, bearer = headers.get("authorization", "").strip().partition(" ")
        if "private-token" in headers:
            return None if headers["private-token"].strip() == self.gitlab_token else unauthorized
        if scheme.lower() == "bearer":
            return None if bearer.strip() == self.gitlab_token else unauthorized
        if "job-token" in headers:
            if headers["job-token"].strip() != self.gitlab_token or method != "GET":
                return unauthorized  # a job token reads; these routes do not take it to write
            return None
        if method != "GET":
            return unauthorized
        return self._gl_json(404, {"message": "404 Project Not Found"})  # private project

    def _gl_headers(self, status: int) -> list[tuple[str, str]]:
        correlation = _hex("gitlab", self.served, length=26).upper()
        meta = json.dumps({"correlation_id": correlation, "version": "1"}, separators=(",", ":"))
        cache = "max-age=0, private, must-revalidate" if status < 300 else "no-cache"
        return [
            ("Cache-Control", cache),
            ("Vary", "Origin, Accept-Encoding"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "SAMEORIGIN"),
            ("X-Gitlab-Meta", meta),
            ("X-Request-Id", correlation),
            ("X-Runtime", "0.042000"),
        ]

    def _gl_json(self, status: int, payload: Any, extra: Sequence[tuple[str, str]] = ()) -> Reply:
        body = _dumps(payload)
        headers = self._gl_headers(status)
        if status == 200:
            headers.insert(0, ("ETag", f'W/"{hashlib.md5(body).hexdigest()}"'))
        return Reply(status, body, "application/json", (*headers, *extra))

    def _gl_page(
        self, rows: list[JSON], path: str, params: dict[str, str], route_params: dict[str, str]
    ) -> Reply:
        """One page of ``rows`` with GitLab's offset pagination headers."""
        numbers: dict[str, int] = {}
        for name, default in (("page", 1), ("per_page", GITLAB_PER_PAGE)):
            text = params.get(name)
            value = default if text is None or text == "" else _int(text)
            if value is None:
                return self._gl_json(400, {"error": f"{name} is invalid"})
            numbers[name] = value
        page = max(1, numbers["page"])
        asked = numbers["per_page"] if numbers["per_page"] > 0 else GITLAB_PER_PAGE
        per_page = min(asked, MAX_PER_PAGE, self.max_per_page)
        total = len(rows)
        pages = max(1, math.ceil(total / per_page))
        next_page = page + 1 if page < pages else None
        prev_page = page - 1 if 1 < page <= pages else None
        base = {**route_params, **params, "per_page": str(numbers["per_page"])}

        def href(number: int) -> str:
            query = urlencode(sorted({**base, "page": str(number)}.items()))
            return f"<{self.url}{path}?{query}>"

        links = [f'{href(prev_page)}; rel="prev"'] if prev_page else []
        links += [f'{href(next_page)}; rel="next"'] if next_page else []
        links += [f'{href(1)}; rel="first"', f'{href(pages)}; rel="last"']
        headers = [
            ("X-Per-Page", str(per_page)),
            ("X-Page", str(page)),
            ("X-Next-Page", str(next_page or "")),
            ("X-Prev-Page", str(prev_page or "")),
            ("Link", ", ".join(links)),
            ("X-Total", str(total)),
            ("X-Total-Pages", str(pages)),
        ]
        return self._gl_json(200, rows[(page - 1) * per_page : page * per_page], headers)

    def _gl_list_notes(
        self, mr: _MergeRequest, path: str, params: dict[str, str], project_ref: str
    ) -> Reply:
        order_by = params.get("order_by", "created_at")
        sort = params.get("sort", "desc")
        if order_by not in ("created_at", "updated_at"):
            return self._gl_json(400, {"error": "order_by does not have a valid value"})
        if sort not in ("asc", "desc"):
            return self._gl_json(400, {"error": "sort does not have a valid value"})
        notes = self._notes_of(mr)
        if order_by == "updated_at":
            notes.sort(key=lambda n: (n.updated, n.id))
        else:
            notes.sort(key=lambda n: (n.created, n.id))
        if sort == "desc":
            notes.reverse()
        link = {
            "activity_filter": "all_notes",
            "id": project_ref,
            "noteable_id": str(mr.spec.iid),
            "order_by": order_by,
            "sort": sort,
        }
        return self._gl_page([self._gl_note(n, mr) for n in notes], path, params, link)

    def _gl_body(
        self, query: list[tuple[str, str]], headers: Mapping[str, str], raw: bytes, update: bool
    ) -> str | Reply | None:
        """The note body sent (JSON, form or query string; None if absent), or the error."""
        params: dict[str, Any] = dict(query)
        content_type = headers.get("content-type", "").lower()
        if "json" in content_type or (raw.lstrip()[:1] == b"{" and "form" not in content_type):
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                return self._gl_json(400, {"error": "message body does not match declared format"})
            if isinstance(data, dict):
                params.update(data)
        elif raw:
            params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        body = params.get("body")
        if body is None:
            return None if update else self._gl_json(400, {"error": "body is missing"})
        if isinstance(body, bool | int | float):
            body = json.dumps(body)
        if not isinstance(body, str):
            return self._gl_json(400, {"error": "body is invalid"})
        if update and not body.strip():
            return self._gl_json(400, {"error": "body is empty"})
        problem = None
        if not body.strip():
            problem = "can't be blank"
        elif len(body) > GITLAB_NOTE_LIMIT:
            problem = f"is too long (maximum is {GITLAB_NOTE_LIMIT} characters)"
        if problem:
            message = f'400 Bad request - Note {{:note=>["{problem}"]}}'
            return self._gl_json(400, {"message": message})
        return body

    def _gl_create_note(
        self,
        mr: _MergeRequest,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        raw: bytes,
    ) -> Reply:
        body = self._gl_body(query, headers, raw, update=False)
        if isinstance(body, Reply):
            return body
        note = self._note(mr.spec, body or "", self.gitlab_user, self.gitlab_user_name, False)
        return self._gl_json(201, self._gl_note(note, mr))

    def _gl_update_note(
        self,
        mr: _MergeRequest,
        note: _Comment,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        raw: bytes,
    ) -> Reply:
        if note.system or note.login != self.gitlab_user:
            return self._gl_json(403, {"message": "403 Forbidden"})
        body = self._gl_body(query, headers, raw, update=True)
        if isinstance(body, Reply):
            return body
        if body is not None:
            note.body, note.updated = body, self.tick()
            mr.updated = note.updated
        return self._gl_json(200, self._gl_note(note, mr))

    # --- GitLab payloads -----------------------------------------------------------------------

    def _gl_user(self, username: str, name: str = "") -> JSON:
        user_id = _number("gitlab-user", username.lower(), low=100_000, span=20_000_000)
        avatar = _hex("avatar", username.lower(), length=64)
        return {
            "id": user_id,
            "username": username,
            "name": name or _display_name(username),
            "state": "active",
            "locked": False,
            "avatar_url": f"https://secure.gravatar.com/avatar/{avatar}?s=80&d=identicon",
            "web_url": f"{self.url}/{username}",
        }

    def _gl_note(self, note: _Comment, mr: _MergeRequest) -> JSON:
        return {
            "id": note.id,
            "type": None,
            "body": note.body,
            "attachment": None,
            "author": self._gl_user(note.login, note.name),
            "created_at": _gl_time(note.created),
            "updated_at": _gl_time(note.updated),
            "system": note.system,
            "noteable_id": mr.id,
            "noteable_type": "MergeRequest",
            "project_id": mr.spec.project_id,
            "resolvable": False,
            "confidential": False,
            "internal": False,
            "imported": False,
            "imported_from": "none",
            "noteable_iid": mr.spec.iid,
            "commands_changes": {},
        }

    def _gl_mr_json(self, mr: _MergeRequest) -> JSON:
        spec = mr.spec
        path, iid = spec.project_path, spec.iid
        user_notes = sum(1 for n in self._notes_of(mr) if not n.system)
        return {
            "id": mr.id,
            "iid": iid,
            "project_id": spec.project_id,
            "title": spec.title,
            "description": spec.description,
            "state": "opened",
            "created_at": _gl_time(mr.created),
            "updated_at": _gl_time(mr.updated),
            "merged_by": None,
            "merge_user": None,
            "merged_at": None,
            "closed_by": None,
            "closed_at": None,
            "target_branch": spec.target_branch,
            "source_branch": spec.source_branch or f"feature/mr-{iid}",
            "user_notes_count": user_notes,
            "upvotes": 0,
            "downvotes": 0,
            "author": self._gl_user(spec.author),
            "assignees": [],
            "assignee": None,
            "reviewers": [],
            "source_project_id": spec.project_id,
            "target_project_id": spec.project_id,
            "labels": [],
            "draft": spec.draft,
            "imported": False,
            "imported_from": "none",
            "work_in_progress": spec.draft,
            "milestone": None,
            "merge_when_pipeline_succeeds": False,
            "merge_status": "can_be_merged",
            "detailed_merge_status": "draft_status" if spec.draft else "mergeable",
            "merge_after": None,
            "sha": spec.head_sha,
            "merge_commit_sha": None,
            "squash_commit_sha": None,
            "discussion_locked": None,
            "should_remove_source_branch": None,
            "force_remove_source_branch": True,
            "prepared_at": _gl_time(mr.created),
            "reference": f"!{iid}",
            "references": {"short": f"!{iid}", "relative": f"!{iid}", "full": f"{path}!{iid}"},
            "web_url": f"{self.url}/{path}/-/merge_requests/{iid}",
            "time_stats": {
                "time_estimate": 0,
                "total_time_spent": 0,
                "human_time_estimate": None,
                "human_total_time_spent": None,
            },
            "squash": False,
            "squash_on_merge": False,
            "task_completion_status": {"count": 0, "completed_count": 0},
            "has_conflicts": False,
            "blocking_discussions_resolved": True,
            "subscribed": False,
            "changes_count": str(len(mr.files)),
            "latest_build_started_at": None,
            "latest_build_finished_at": None,
            "first_deployed_to_production_at": None,
            "pipeline": None,
            "head_pipeline": None,
            "diff_refs": {
                "base_sha": spec.base_sha,
                "head_sha": spec.head_sha,
                "start_sha": spec.start_sha or spec.base_sha,
            },
            "merge_error": None,
            "first_contribution": False,
            "user": {"can_merge": False},
        }


def _gl_diff(f: FileDiff, unidiff: bool) -> JSON:
    too_large = len(f.diff.encode()) > GITLAB_MAX_PATCH_BYTES
    return {
        "diff": "" if too_large else (f.unidiff() if unidiff else f.diff),
        "collapsed": False,
        "too_large": too_large,
        "new_path": f.new_path,
        "old_path": f.old_path,
        "a_mode": f.a_mode,
        "b_mode": f.b_mode,
        "new_file": f.new_file,
        "renamed_file": f.renamed_file,
        "deleted_file": f.deleted_file,
        "generated_file": False,
    }


def _display_name(username: str) -> str:
    return " ".join(word.capitalize() for word in re.split(r"[._-]+", username) if word)


def _gh_page(query: list[tuple[str, str]], cap: int) -> tuple[int, int]:
    """(page, per_page) as GitHub reads them: bad values fall back to the defaults."""
    params = dict(query)
    per_page = _int(params.get("per_page"))
    per_page = GITHUB_PER_PAGE if per_page is None or per_page < 1 else per_page
    page = _int(params.get("page"))
    return max(1, page or 1), min(per_page, MAX_PER_PAGE, cap)


def _github_link(base: str, query: list[tuple[str, str]], page: int, last: int) -> str | None:
    """GitHub's Link header (prev, next, last, first), None on a lone page."""
    if page == 1 and last <= 1:
        return None

    def href(number: int) -> str:
        pairs = [(k, str(number) if k == "page" else v) for k, v in query]
        if all(k != "page" for k, _ in query):
            pairs.append(("page", str(number)))
        return f"<{base}?{urlencode(pairs)}>"

    links = [f'{href(page - 1)}; rel="prev"'] if page > 1 else []
    if page < last:
        links += [f'{href(page + 1)}; rel="next"', f'{href(last)}; rel="last"']
    if page > 1:
        links.append(f'{href(1)}; rel="first"')
    return ", ".join(links)


def _gh_doc(path: str, method: str) -> str:
    if "/comments" in path:
        action = {"POST": "create", "PATCH": "update"}.get(method, "list")
        noun = "issue-comments" if action == "list" else "an-issue-comment"
        return f"{GITHUB_DOCS}/issues/comments#{action}-{noun}"
    if "/pulls/" in path:
        return f"{GITHUB_DOCS}/pulls/pulls#get-a-pull-request"
    return GITHUB_DOCS


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _github_chatter(spec: GitHubPR) -> list[tuple[str, bool, str]]:
    """Comments a PR has before ownit arrives: (login, is a bot, body)."""
    full = f"{spec.owner}/{spec.repo}"
    return [
        (
            spec.author,
            False,
            "Ready for review. The retry loop is the interesting part; happy to split it.",
        ),
        (
            "codecov[bot]",
            True,
            f"## [Codecov](https://app.codecov.io/gh/{full}/pull/{spec.number}?dropdown="
            "coverage&src=pr&el=h1) Report\nAll modified and coverable lines are covered by "
            "tests :white_check_mark:\n",
        ),
        (
            ACTIONS_BOT,
            True,
            "<!-- coverage-summary -->\n### Coverage\n\n| Total | 91.4% |\n|---|---|\n\n"
            "_Updated by the coverage workflow; this comment is edited in place._",
        ),
        (
            "sam-okafor",
            False,
            "Left a few notes. Will the ownit summary show up here once CI runs? "
            "I don't see it yet.",
        ),
    ]


def _gitlab_chatter(spec: GitLabMR) -> list[tuple[str, str, bool, str]]:
    """Notes an MR has before ownit arrives: (username, name, system, body)."""
    path, iid = spec.project_path, spec.iid
    compare = (
        f"[Compare with previous version](/{path}/-/merge_requests/{iid}/diffs?"
        f"diff_id={_number('diff', path, iid, low=900_000_000, span=99_999_999)}"
        f"&start_sha={spec.start_sha or spec.base_sha})"
    )
    return [
        (
            spec.author,
            "",
            True,
            f"added 1 commit\n\n<ul><li>{spec.head_sha[:8]} - {spec.title}</li></ul>\n\n{compare}",
        ),
        ("sam.okafor", "Sam Okafor", False, "Should the backoff cap be configurable per client?"),
        (
            f"project_{spec.project_id}_bot_0c7d2a91e4f6",
            "danger-review",
            False,
            "<!-- danger-id-default; -->\n### Danger\n\n:white_check_mark: All checks passed. "
            "This note is updated on every push.",
        ),
        (spec.author, "", True, "requested review from @sam.okafor"),
    ]


# ---------------------------------------------------------------------------------------------
# The demo: a real `git diff` of a small repository (merge base 152b6d2, head eaff3eb).

DEMO_BASE_SHA = "152b6d2926593bb8ae9bfaf5b4a9866cc477cf36"
DEMO_HEAD_SHA = "eaff3ebae132d5514ba01b4363f006552de54129"
DEMO_TITLE = "Jittered exponential backoff for retries"
DEMO_BODY = (
    "Retries used to sleep a flat second, so every client retried in lockstep after an "
    "outage.\n\nThis waits a full-jitter exponential delay instead (capped at 30 s), retries "
    "429s, and drops the old `retry_forever` helper.\n\nCloses #37."
)
DEMO_DIFF = """\
diff --git a/assets/logo.png b/assets/logo.png
index 553a99f..6e7a1d4 100644
Binary files a/assets/logo.png and b/assets/logo.png differ
diff --git a/docs/usage.md b/docs/retries.md
similarity index 69%
rename from docs/usage.md
rename to docs/retries.md
index aa0a833..2ecbd5a 100644
--- a/docs/usage.md
+++ b/docs/retries.md
@@ -1,7 +1,7 @@
 # Retries
\x20
 Call `call_with_retry(fn)` to retry a flaky call.
-It sleeps one second between attempts.
+It waits a jittered, exponentially growing delay between attempts.
\x20
 The default is three attempts; pass `attempts=` to change it.
 Errors other than the last one are dropped.
diff --git a/scripts/release.sh b/scripts/release.sh
old mode 100644
new mode 100755
diff --git a/widgets/backoff.py b/widgets/backoff.py
new file mode 100644
index 0000000..8bf9fc4
--- /dev/null
+++ b/widgets/backoff.py
@@ -0,0 +1,9 @@
+\"\"\"Exponential backoff with full jitter.\"\"\"
+
+BASE_SECONDS = 0.5
+CAP_SECONDS = 30.0
+
+
+def jittered_delay(attempt, rng):
+    \"\"\"Seconds to wait before retry number attempt + 1 (full jitter, capped).\"\"\"
+    return rng() * min(CAP_SECONDS, BASE_SECONDS * 2**attempt)
diff --git a/widgets/legacy.py b/widgets/legacy.py
deleted file mode 100644
index 2a8683a..0000000
--- a/widgets/legacy.py
+++ /dev/null
@@ -1,9 +0,0 @@
-\"\"\"Old retry loop, replaced by widgets.retry.\"\"\"
-
-
-def retry_forever(fn):
-    while True:
-        try:
-            return fn()
-        except Exception:
-            pass
diff --git a/widgets/retry.py b/widgets/retry.py
index 2356c36..b6bdb88 100644
--- a/widgets/retry.py
+++ b/widgets/retry.py
@@ -1,19 +1,23 @@
 \"\"\"Retry helpers for the widgets API client.\"\"\"
\x20
+import random
 import time
\x20
+from widgets.backoff import jittered_delay
+
 DEFAULT_ATTEMPTS = 3
\x20
\x20
 def call_with_retry(fn, attempts=DEFAULT_ATTEMPTS):
     \"\"\"Call fn until it succeeds or attempts run out.\"\"\"
     last_error = None
-    for _ in range(attempts):
+    for attempt in range(attempts):
         try:
             return fn()
         except Exception as error:
             last_error = error
-            time.sleep(1)
+            if attempt + 1 < attempts:
+                time.sleep(jittered_delay(attempt, rng=random.random))
     raise last_error
\x20
\x20
@@ -24,4 +28,4 @@ def describe(error):
\x20
\x20
 def is_retryable(status):
-    return status >= 500
+    return status == 429 or status >= 500
"""


def demo_prs() -> list[GitHubPR | GitLabMR]:
    """What ``python -m tests.forge_server`` serves, and what tests/data/events/ describe."""
    common: dict[str, Any] = {
        "title": DEMO_TITLE,
        "base_sha": DEMO_BASE_SHA,
        "head_sha": DEMO_HEAD_SHA,
        "diff": DEMO_DIFF,
    }
    return [
        GitHubPR(
            "acme",
            "widgets",
            42,
            body=DEMO_BODY,
            author="dana-reyes",
            head_ref="feature/jittered-backoff",
            **common,
        ),
        GitHubPR(
            "acme",
            "widgets",
            43,
            body=DEMO_BODY,
            author="dana-reyes",
            head_ref="jittered-backoff",
            head_repo="dana-reyes/widgets",
            **common,
        ),
        GitLabMR(
            "acme/platform/widgets",
            7,
            project_id=4242,
            description=DEMO_BODY,
            author="dana.reyes",
            source_branch="feature/jittered-backoff",
            **common,
        ),
    ]


# ---------------------------------------------------------------------------------------------
# HTTP


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    date = ""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.forge.handle(self.command, self.path, headers, raw)
        self.date = reply.date
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def version_string(self) -> str:  # the Server header
        return "nginx" if self.path.startswith("/api/v4/") else "GitHub.com"

    def date_time_string(self, timestamp: float | None = None) -> str:
        return self.date  # the Date header: the server's fixed clock

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], forge: Forge) -> None:
        super().__init__(address, _Handler)
        self.forge = forge


class ForgeServer(str):
    """The base URL ``http://HOST:PORT`` (a str), the seeding helpers and ``.requests``."""

    forge: Forge

    def __new__(cls, url: str, forge: Forge) -> ForgeServer:
        self = super().__new__(cls, url)
        self.forge = forge
        return self

    @property
    def url(self) -> str:
        return str(self)

    @property
    def requests(self) -> list[Request]:
        """Every request received, oldest first (header names lower-cased)."""
        return self.forge.requests

    def add(self, seed: GitHubPR | GitLabMR) -> None:
        self.forge.add(seed)

    def add_github_pr(
        self,
        owner: str,
        repo: str,
        number: int,
        *,
        title: str,
        body: str | None,
        author: str,
        base_sha: str,
        head_sha: str,
        diff: str,
        base_ref: str = "main",
        head_ref: str | None = None,
        head_repo: str | None = None,
        draft: bool = False,
        seed_comments: bool = True,
    ) -> None:
        """Serve a PR (again: a new push, comments kept). ``seed_comments``: add the unrelated
        comments of other people and bots first."""
        self.forge.add(
            GitHubPR(
                owner,
                repo,
                number,
                title,
                body,
                author,
                base_sha,
                head_sha,
                diff,
                base_ref,
                head_ref,
                head_repo,
                draft,
                seed_comments,
            )
        )

    def add_github_comment(
        self, owner: str, repo: str, number: int, body: str, *, user: str, bot: bool | None = None
    ) -> int:
        """Post a comment as ``user`` (a Bot when the login ends in [bot]); its id."""
        is_bot = user.endswith("[bot]") if bot is None else bot
        return self.forge.add_comment(owner, repo, number, body, user=user, bot=is_bot)

    def add_gitlab_mr(
        self,
        project_path: str,
        iid: int,
        *,
        project_id: int,
        title: str,
        description: str,
        author: str,
        base_sha: str,
        head_sha: str,
        start_sha: str | None = None,
        files: Sequence[Mapping[str, Any]] | None = None,
        diff: str | None = None,
        source_branch: str | None = None,
        target_branch: str = "main",
        draft: bool = False,
        seed_notes: bool = True,
    ) -> None:
        """Serve an MR from ``diff`` (git diff text) or ``files`` (GitLab's per-file shape)."""
        self.forge.add(
            GitLabMR(
                project_path,
                iid,
                project_id,
                title,
                description,
                author,
                base_sha,
                head_sha,
                start_sha,
                files,
                diff,
                source_branch,
                target_branch,
                draft,
                seed_notes,
            )
        )

    def add_gitlab_note(
        self,
        project: str | int,
        iid: int,
        body: str,
        *,
        author: str,
        name: str | None = None,
        system: bool = False,
    ) -> int:
        """Add a note by ``author`` (``project`` a path or id); its id."""
        return self.forge.add_note(
            project, iid, body, author=author, name=name or "", system=system
        )

    def comments(self, owner: str, repo: str, number: int) -> list[JSON]:
        """The PR's issue comments as the API lists them, oldest first."""
        return self.forge.issue_comments(owner, repo, number)

    def notes(self, project: str | int, iid: int) -> list[JSON]:
        """The MR's notes (system ones too) as the API shows them, oldest first."""
        return self.forge.mr_notes(project, iid)


@contextmanager
def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    github_token: str = "ghs_test",
    gitlab_token: str = "glpat-test",
    prs: Iterable[GitHubPR | GitLabMR] = (),
    max_per_page: int = MAX_PER_PAGE,
    github_user: str = ACTIONS_BOT,
    gitlab_user: str = GITLAB_BOT,
) -> Iterator[ForgeServer]:
    """Run the server on a background thread; yields it; shuts it down on exit. ``prs`` are
    seeded first; ``max_per_page`` caps every page below the forges' 100; ``github_user`` /
    ``gitlab_user``: who the tokens belong to (and so who ownit's comments are by)."""
    forge = Forge(
        github_token=github_token,
        gitlab_token=gitlab_token,
        github_user=github_user,
        gitlab_user=gitlab_user,
        max_per_page=max_per_page,
    )
    server = _Server((host, port), forge)
    forge.url = f"http://{host}:{server.server_address[1]}"
    for seed in prs:
        forge.add(seed)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="forge-server", daemon=True
    )
    thread.start()
    try:
        yield ForgeServer(forge.url, forge)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description="Deterministic fake GitHub + GitLab API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--github-token", default="ghs_test")
    parser.add_argument("--gitlab-token", default="glpat-test")
    parser.add_argument("--max-per-page", type=int, default=MAX_PER_PAGE)
    args = parser.parse_args()
    with serve(
        host=args.host,
        port=args.port,
        github_token=args.github_token,
        gitlab_token=args.gitlab_token,
        max_per_page=args.max_per_page,
        prs=demo_prs(),
    ) as srv:
        print(srv.url, flush=True)
        print(f"  GitHub: {srv}/repos/acme/widgets/pulls/42 (and 43, from a fork)", flush=True)
        print(f"  GitLab: {srv}/api/v4/projects/acme%2Fplatform%2Fwidgets/merge_requests/7")
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
