"""Finding the pull request a CI job runs for: GitHub Actions and GitLab CI.

GitHub Actions writes the triggering event to ``GITHUB_EVENT_PATH``; for ``pull_request`` and
``pull_request_target`` it holds the PR (number, title, body, author, base and head SHAs). The
API base comes from ``GITHUB_API_URL`` (GitHub Enterprise works unchanged), the token from
``GITHUB_TOKEN`` (or ``GH_TOKEN``), which the workflow passes to the step.

GitLab CI describes a merge request pipeline in ``CI_MERGE_REQUEST_*`` variables; the API base
is ``CI_API_V4_URL`` (self-hosted GitLab works unchanged). ``GITLAB_TOKEN`` (a project or
personal access token with the ``api`` scope) can read the MR and write its note;
``CI_JOB_TOKEN`` can read, not comment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import InputError
from agent.forge import Forge, GitHubForge, GitLabForge, Host


@dataclass(frozen=True)
class CIRun:
    host: Host
    event: str  # "pull_request", "pull_request_target", "merge_request_event", "push", ...
    repo: str
    number: int | None  # None when the job does not run for a pull request
    base_sha: str | None
    head_sha: str | None
    title: str | None
    description: str | None
    author: str | None
    api_url: str
    token: str | None
    token_var: str
    job_token: bool = False
    summary_path: Path | None = None  # GITHUB_STEP_SUMMARY

    @property
    def for_pull_request(self) -> bool:
        return self.number is not None

    def forge(self) -> Forge:
        assert self.number is not None
        if self.host == "github":
            return GitHubForge(
                self.api_url, self.repo, self.number, self.token, token_var=self.token_var
            )
        return GitLabForge(
            self.api_url,
            self.repo,
            self.number,
            self.token,
            token_var=self.token_var,
            job_token=self.job_token,
        )


def detect(environ: Mapping[str, str]) -> CIRun | None:
    """The CI run this process is part of, or None on a laptop."""
    if environ.get("GITHUB_ACTIONS") == "true":
        return _github(environ)
    if environ.get("GITLAB_CI") == "true":
        return _gitlab(environ)
    return None


def _github(env: Mapping[str, str]) -> CIRun:
    event_name = env.get("GITHUB_EVENT_NAME", "")
    payload: dict[str, Any] = {}
    if path := env.get("GITHUB_EVENT_PATH"):
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"GITHUB_EVENT_PATH {path} cannot be read as the event's JSON: {exc}",
                hint="run ownit in a GitHub Actions step of a pull_request workflow",
            ) from exc
    pr = payload.get("pull_request") if isinstance(payload, dict) else None
    issue = payload.get("issue") if isinstance(payload, dict) else None
    if pr is None and isinstance(issue, dict) and issue.get("pull_request"):
        # A comment on a pull request (issue_comment): the PR's number and author; its SHAs
        # come from the API (``ownit check`` reads the PR through it).
        pr = {"number": issue.get("number"), "title": issue.get("title"), "user": issue.get("user")}
        pr["body"] = issue.get("body")
    token_var = "GITHUB_TOKEN" if env.get("GITHUB_TOKEN") else "GH_TOKEN"
    summary = env.get("GITHUB_STEP_SUMMARY")
    common: dict[str, Any] = {
        "host": "github",
        "event": event_name,
        "repo": env.get("GITHUB_REPOSITORY", ""),
        "api_url": env.get("GITHUB_API_URL", "https://api.github.com"),
        "token": env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or None,
        "token_var": token_var,
        "summary_path": Path(summary) if summary else None,
    }
    if not isinstance(pr, dict):
        return CIRun(
            **common,
            number=None,
            base_sha=None,
            head_sha=env.get("GITHUB_SHA"),
            title=None,
            description=None,
            author=env.get("GITHUB_ACTOR"),
        )
    base, head = pr.get("base") or {}, pr.get("head") or {}
    return CIRun(
        **{**common, "repo": (base.get("repo") or {}).get("full_name") or common["repo"]},
        number=int(pr.get("number") or payload.get("number") or 0) or None,
        base_sha=base.get("sha"),
        head_sha=head.get("sha"),
        title=pr.get("title"),
        description=pr.get("body") or "",
        author=(pr.get("user") or {}).get("login"),
    )


def _gitlab(env: Mapping[str, str]) -> CIRun:
    iid = env.get("CI_MERGE_REQUEST_IID")
    token = env.get("GITLAB_TOKEN") or None
    return CIRun(
        host="gitlab",
        event=env.get("CI_PIPELINE_SOURCE", ""),
        repo=env.get("CI_MERGE_REQUEST_PROJECT_PATH") or env.get("CI_PROJECT_PATH", ""),
        number=int(iid) if iid and iid.isdigit() else None,
        base_sha=env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA") or None,
        head_sha=env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA") or env.get("CI_COMMIT_SHA"),
        title=env.get("CI_MERGE_REQUEST_TITLE"),
        description=env.get("CI_MERGE_REQUEST_DESCRIPTION") or "",
        author=env.get("GITLAB_USER_LOGIN"),
        api_url=env.get("CI_API_V4_URL", ""),
        token=token or env.get("CI_JOB_TOKEN") or None,
        token_var="GITLAB_TOKEN",
        job_token=token is None and bool(env.get("CI_JOB_TOKEN")),
    )
