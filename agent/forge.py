"""The code hosts: GitHub and GitLab, through their REST APIs (GitHub Enterprise and self-hosted
GitLab the same way, by base URL).

What ownit needs from a host: a pull request's metadata and diff (``ownit review --pr URL``, or
CI on a shallow clone), and one sticky comment per pull request, found by a hidden marker and
updated in place. Tokens come from the environment and are sent in headers only.

    Forge            the protocol the reporters and sources use
    ├── GitHubForge  REST v3: /repos/{owner}/{repo}/pulls/{n}, issue comments
    └── GitLabForge  REST v4: /projects/{id}/merge_requests/{iid}, its diffs and notes
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote, urlsplit

import httpx

from agent.errors import InputError, OwnitError

if TYPE_CHECKING:
    from agent.sources.ci import CIRun

Host = Literal["github", "gitlab"]


class ForgeError(OwnitError):
    """The code host refused or failed a request; ``status`` is its HTTP status, if any."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None):
        super().__init__(message, hint=hint)
        self.status = status


@dataclass(frozen=True)
class PullRequest:
    host: Host
    repo: str  # owner/name, or group/subgroup/project
    number: int
    title: str
    description: str
    author: str | None
    base_sha: str
    head_sha: str
    url: str


@dataclass(frozen=True)
class FetchedDiff:
    data: bytes
    # Files whose diff the host left out (GitLab collapses very large ones).
    withheld: tuple[str, ...] = ()


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    author: str | None
    created_at: datetime | None = None


class Forge(Protocol):
    host: Host

    def pull(self) -> PullRequest: ...
    def diff(self) -> FetchedDiff: ...
    def comments(self) -> list[Comment]: ...
    def create_comment(self, body: str) -> Comment: ...
    def update_comment(self, comment_id: int, body: str) -> Comment: ...
    def set_status(self, sha: str, passed: bool | None, description: str) -> None: ...


# The commit status ``ownit check`` sets; a required status check names it.
STATUS_CONTEXT = "ownit/ownership"

# The largest comment the host takes, in characters.
MAX_COMMENT = {"github": 65_536, "gitlab": 1_000_000}


def _client(
    base_url: str, headers: dict[str, str], transport: httpx.BaseTransport | None
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        headers={"User-Agent": "ownit", **headers},
        timeout=httpx.Timeout(30.0, connect=10.0),
        transport=transport,
        follow_redirects=True,
    )


def _check(response: httpx.Response, what: str, token_var: str) -> httpx.Response:
    if response.is_success:
        return response
    try:
        data = response.json()
        detail = str(data.get("message") or data.get("error") or response.text[:200])
        # GitHub puts the reason for a 422 in errors[].message ("body is too long ...").
        reasons = [e.get("message") for e in data.get("errors") or [] if isinstance(e, dict)]
        if reasons := [r for r in reasons if r]:
            detail += ": " + "; ".join(reasons)
    except (ValueError, AttributeError):
        detail = response.text[:200]
    status = response.status_code
    if status in (401, 403):
        hint = f"set {token_var} to a token that can read the repository and write comments"
    elif status == 404:
        hint = "check the URL, and that the token can see the repository"
    else:
        hint = "the host may be down or rate limiting; run again later"
    raise ForgeError(f"{what}: {status} {detail}", hint=hint, status=status)


def _request(
    client: httpx.Client, method: str, url: str, what: str, token_var: str, **kw: Any
) -> httpx.Response:
    try:
        response = client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        raise ForgeError(
            f"{what}: {type(exc).__name__}: {exc}",
            hint="check the network and the host's API URL",
        ) from exc
    return _check(response, what, token_var)


class GitHubForge:
    host: Host = "github"

    def __init__(
        self,
        api_url: str,
        repo: str,
        number: int,
        token: str | None,
        *,
        token_var: str = "GITHUB_TOKEN",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = _client(api_url, headers, transport)
        self.repo, self.number, self.token_var = repo, number, token_var

    def _get(self, url: str, what: str, **kw: Any) -> httpx.Response:
        return _request(self.client, "GET", url, what, self.token_var, **kw)

    def pull(self) -> PullRequest:
        data = self._get(
            f"/repos/{self.repo}/pulls/{self.number}", "reading the pull request"
        ).json()
        return PullRequest(
            host="github",
            repo=self.repo,
            number=self.number,
            title=data.get("title") or "",
            description=data.get("body") or "",
            author=(data.get("user") or {}).get("login"),
            base_sha=data["base"]["sha"],
            head_sha=data["head"]["sha"],
            url=data.get("html_url") or "",
        )

    def diff(self) -> FetchedDiff:
        url = f"/repos/{self.repo}/pulls/{self.number}"
        try:
            response = self.client.get(url, headers={"Accept": "application/vnd.github.v3.diff"})
        except httpx.HTTPError as exc:
            raise ForgeError(f"reading the pull request's diff: {exc}") from exc
        if response.status_code == 406:
            # Over 300 files or 20,000 lines GitHub refuses the diff; its file list still has
            # each file's patch (but the largest ones and binaries).
            return self._diff_from_files()
        _check(response, "reading the pull request's diff", self.token_var)
        return FetchedDiff(response.content)

    def _diff_from_files(self) -> FetchedDiff:
        files: list[dict[str, Any]] = []
        url: str | None = f"/repos/{self.repo}/pulls/{self.number}/files?per_page=100"
        while url:
            response = self._get(url, "listing the pull request's files")
            files += response.json()
            url = response.links.get("next", {}).get("url")
        rows = [
            {
                "old_path": f.get("previous_filename") or f["filename"],
                "new_path": f["filename"],
                "new_file": f.get("status") == "added",
                "deleted_file": f.get("status") == "removed",
                "renamed_file": f.get("status") == "renamed",
                "diff": (f["patch"] + "\n") if f.get("patch") else "",
            }
            for f in files
        ]
        withheld = tuple(
            f["filename"] for f in files if not f.get("patch") and f.get("changes", 0) > 0
        )
        return FetchedDiff(gitlab_diff(rows).encode(), withheld)

    def comments(self) -> list[Comment]:
        out: list[Comment] = []
        url: str | None = f"/repos/{self.repo}/issues/{self.number}/comments?per_page=100"
        while url:
            response = self._get(url, "listing the pull request's comments")
            out += [_github_comment(c) for c in response.json()]
            url = response.links.get("next", {}).get("url")
        return out

    def create_comment(self, body: str) -> Comment:
        response = _request(
            self.client,
            "POST",
            f"/repos/{self.repo}/issues/{self.number}/comments",
            "commenting on the pull request",
            self.token_var,
            json={"body": body},
        )
        return _github_comment(response.json())

    def update_comment(self, comment_id: int, body: str) -> Comment:
        response = _request(
            self.client,
            "PATCH",
            f"/repos/{self.repo}/issues/comments/{comment_id}",
            "updating ownit's comment",
            self.token_var,
            json={"body": body},
        )
        return _github_comment(response.json())

    def set_status(self, sha: str, passed: bool | None, description: str) -> None:
        """The commit status ``ownit/ownership``: a branch protection rule can require it."""
        state = "pending" if passed is None else "success" if passed else "failure"
        _request(
            self.client,
            "POST",
            f"/repos/{self.repo}/statuses/{sha}",
            "setting the commit status",
            self.token_var,
            json={"state": state, "context": STATUS_CONTEXT, "description": description[:140]},
        )


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _github_comment(data: dict[str, Any]) -> Comment:
    user = (data.get("user") or {}).get("login")
    return Comment(int(data["id"]), data.get("body") or "", user, _when(data.get("created_at")))


class GitLabForge:
    host: Host = "gitlab"

    def __init__(
        self,
        api_url: str,
        project: str,
        iid: int,
        token: str | None,
        *,
        token_var: str = "GITLAB_TOKEN",
        job_token: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers: dict[str, str] = {}
        if token:
            headers["JOB-TOKEN" if job_token else "PRIVATE-TOKEN"] = token
        self.client = _client(api_url, headers, transport)
        self.project = quote(project, safe="") if not project.isdigit() else project
        self.project_path, self.iid, self.token_var = project, iid, token_var

    def _mr(self) -> str:
        return f"/projects/{self.project}/merge_requests/{self.iid}"

    def _pages(self, url: str, what: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page: str | None = "1"
        while page:
            sep = "&" if "?" in url else "?"
            response = _request(
                self.client, "GET", f"{url}{sep}per_page=100&page={page}", what, self.token_var
            )
            out += response.json()
            page = response.headers.get("x-next-page") or None
        return out

    def pull(self) -> PullRequest:
        response = _request(
            self.client, "GET", self._mr(), "reading the merge request", self.token_var
        )
        data = response.json()
        refs = data.get("diff_refs") or {}
        return PullRequest(
            host="gitlab",
            repo=self.project_path,
            number=self.iid,
            title=data.get("title") or "",
            description=data.get("description") or "",
            author=(data.get("author") or {}).get("username"),
            base_sha=refs.get("base_sha") or "",
            head_sha=refs.get("head_sha") or data.get("sha") or "",
            url=data.get("web_url") or "",
        )

    def diff(self) -> FetchedDiff:
        files = self._pages(f"{self._mr()}/diffs", "reading the merge request's diff")
        withheld = tuple(f["new_path"] for f in files if f.get("too_large") or f.get("collapsed"))
        return FetchedDiff(gitlab_diff(files).encode(), withheld)

    def comments(self) -> list[Comment]:
        notes = self._pages(f"{self._mr()}/notes?sort=asc", "listing the merge request's notes")
        return [_gitlab_note(n) for n in notes if not n.get("system")]

    def create_comment(self, body: str) -> Comment:
        response = _request(
            self.client,
            "POST",
            f"{self._mr()}/notes",
            "commenting on the merge request",
            self.token_var,
            json={"body": body},
        )
        return _gitlab_note(response.json())

    def update_comment(self, comment_id: int, body: str) -> Comment:
        response = _request(
            self.client,
            "PUT",
            f"{self._mr()}/notes/{comment_id}",
            "updating ownit's note",
            self.token_var,
            json={"body": body},
        )
        return _gitlab_note(response.json())

    def set_status(self, sha: str, passed: bool | None, description: str) -> None:
        """The commit status ``ownit/ownership`` on the merge request's head."""
        state = "pending" if passed is None else "success" if passed else "failed"
        _request(
            self.client,
            "POST",
            f"/projects/{self.project}/statuses/{sha}",
            "setting the commit status",
            self.token_var,
            json={"state": state, "name": STATUS_CONTEXT, "description": description[:255]},
        )


def _gitlab_note(data: dict[str, Any]) -> Comment:
    user = (data.get("author") or {}).get("username")
    return Comment(int(data["id"]), data.get("body") or "", user, _when(data.get("created_at")))


def gitlab_diff(files: list[dict[str, Any]]) -> str:
    """Per-file diffs (hunks without file headers: GitLab's MR diffs, GitHub's file patches)
    as one git-style unified diff."""
    out: list[str] = []
    for f in files:
        old, new = f.get("old_path") or f["new_path"], f["new_path"]
        out.append(f"diff --git a/{old} b/{new}")
        if f.get("new_file"):
            out.append(f"new file mode {f.get('b_mode') or '100644'}")
        elif f.get("deleted_file"):
            out.append(f"deleted file mode {f.get('a_mode') or '100644'}")
        elif f.get("a_mode") and f.get("b_mode") and f["a_mode"] != f["b_mode"]:
            out += [f"old mode {f['a_mode']}", f"new mode {f['b_mode']}"]
        if f.get("renamed_file"):
            out += [f"rename from {old}", f"rename to {new}"]
        body = f.get("diff") or ""
        if body.startswith("Binary files"):
            out.append(body.rstrip("\n"))
            continue
        if not body:
            continue  # a pure rename or mode change, or a diff the host withheld
        out.append("--- /dev/null" if f.get("new_file") else f"--- a/{old}")
        out.append("+++ /dev/null" if f.get("deleted_file") else f"+++ b/{new}")
        out.append(body.rstrip("\n"))
    return "\n".join(out) + "\n" if out else ""


# --- pull request URLs ------------------------------------------------------------------------

_GITHUB_PR = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/pull/(?P<n>\d+)(?:/.*)?$")
_GITLAB_MR = re.compile(r"^/(?P<repo>.+?)/-/merge_requests/(?P<n>\d+)(?:/.*)?$")


@dataclass(frozen=True)
class PullRef:
    host: Host
    api_url: str
    repo: str
    number: int


def parse_pull_url(url: str) -> PullRef:
    """``https://github.com/o/r/pull/7``, a GitHub Enterprise one, or
    ``https://gitlab.example.com/group/sub/p/-/merge_requests/7``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(
            f"--pr {url!r} is not a pull request URL",
            hint="give the URL of a GitHub pull request (…/owner/repo/pull/N) or a GitLab merge "
            "request (…/group/project/-/merge_requests/N)",
        )
    origin = f"{parts.scheme}://{parts.netloc}"
    if match := _GITLAB_MR.match(parts.path):
        return PullRef("gitlab", f"{origin}/api/v4", match["repo"], int(match["n"]))
    if match := _GITHUB_PR.match(parts.path):
        api = "https://api.github.com" if parts.netloc == "github.com" else f"{origin}/api/v3"
        return PullRef("github", api, match["repo"], int(match["n"]))
    raise InputError(
        f"--pr {url!r}: not a GitHub pull request or GitLab merge request URL",
        hint="…/owner/repo/pull/N for GitHub, …/group/project/-/merge_requests/N for GitLab",
    )


def forge_for(ref: PullRef, environ: Mapping[str, str]) -> Forge:
    """The client for a pull request URL, with the token from the host's usual variable."""
    if ref.host == "github":
        var = "GITHUB_TOKEN" if environ.get("GITHUB_TOKEN") else "GH_TOKEN"
        return GitHubForge(ref.api_url, ref.repo, ref.number, environ.get(var), token_var=var)
    return GitLabForge(
        ref.api_url, ref.repo, ref.number, environ.get("GITLAB_TOKEN"), token_var="GITLAB_TOKEN"
    )


def forge_to_post(pr_url: str | None, ci: CIRun | None, environ: Mapping[str, str]) -> Forge:
    """Where ``--post`` comments, checked before any model is called."""
    if pr_url:
        ref = parse_pull_url(pr_url)
        forge = forge_for(ref, environ)
        if ref.host == "github":
            var, has_token = (
                "GITHUB_TOKEN",
                bool(environ.get("GITHUB_TOKEN") or environ.get("GH_TOKEN")),
            )
        else:
            var, has_token = "GITLAB_TOKEN", bool(environ.get("GITLAB_TOKEN"))
    elif ci is not None and ci.for_pull_request:
        forge = ci.forge()
        var, has_token = ci.token_var, bool(ci.token) and not ci.job_token
    else:
        raise InputError(
            "--post needs a pull request: run it in a pull request's CI job, or give --pr URL",
            hint="without --post the review is printed and written to --out as usual",
        )
    if not has_token:
        raise InputError(
            f"--post needs a token that can comment: set {var}",
            hint="GitHub Actions: env: GITHUB_TOKEN: ${{ github.token }} with permissions: "
            "pull-requests: write; GitLab: a project access token with the api scope in "
            "GITLAB_TOKEN (CI_JOB_TOKEN cannot write notes)",
        )
    return forge
