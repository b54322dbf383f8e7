"""The ownership record: writing each ``ownit check``, reusing verdicts, and the report a lead
reads (``ownit ledger report --view ownership``).

A pull request counts in the period of its first review. It is *owned* once a check passed
(on its answers or on a maintainer's override); *time to ownership* runs from its first review
to that check. Check runs (whose grading calls are in ``calls``) are not reviews.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING

import sqlalchemy as sa

from agent.ledger.periods import label, start_of, utc
from agent.ledger.reports import Period

if TYPE_CHECKING:  # the report path imports no ORM (a lead's report starts quickly)
    from agent.ledger.database import Database
    from agent.ledger.records import OwnershipAnswer, OwnershipCheck
    from agent.ledger.store import LedgerStore

# Read through lightweight tables: the report needs no ORM.
_TZ = sa.DateTime(timezone=True)
_checks = sa.table(
    "ownership_checks",
    *(sa.column(n) for n in ("id", "team", "repo", "pr_number", "override_by")),
    sa.column("created_at", _TZ),
    sa.column("passed", sa.Boolean),
)
_answers = sa.table(
    "ownership_answers",
    *(
        sa.column(n)
        for n in (
            "check_id",
            "question_id",
            "code_fingerprint",
            "answer_fingerprint",
            "status",
            "feedback",
            "screen",
            "grade_version",
            "reused",
        )
    ),
)
_runs = sa.table("runs", *(sa.column(n) for n in ("id", "started_at", "team", "repo", "pr_number")))

ReuseKey = tuple[str, str | None, str]


def record_check(
    store: LedgerStore, check: OwnershipCheck, answers: Sequence[OwnershipAnswer]
) -> None:
    """The check and its verdicts, in one transaction."""
    from agent.ledger.records import OwnershipAnswer, OwnershipCheck

    with store.writing("recording the ownership check") as conn:
        conn.execute(sa.insert(OwnershipCheck).values(check.model_dump()))
        if answers:
            conn.execute(
                sa.insert(OwnershipAnswer),
                [a.model_dump(exclude={"id"}) for a in answers],
            )


def earlier_verdicts(
    store: LedgerStore, keys: Iterable[ReuseKey], grade_version: str
) -> dict[ReuseKey, tuple[str, str]]:
    """Verdicts a grader already gave the same answer to the same question about the same
    code, with the same rubric: (status, feedback) by (question id, code, answer)."""
    wanted = set(keys)
    if not wanted:
        return {}
    a = _answers.c
    query = sa.select(
        a.question_id, a.code_fingerprint, a.answer_fingerprint, a.status, a.feedback
    ).where(
        a.question_id.in_({k[0] for k in wanted}),
        a.grade_version == grade_version,
        a.screen.is_(None),
        a.status.in_(("understood", "partly", "not_shown")),
    )
    out: dict[ReuseKey, tuple[str, str]] = {}
    with store.reading("reading earlier verdicts") as conn:
        for qid, code, answer, status, feedback in conn.execute(query):
            if (qid, code, answer) in wanted:
                out[(qid, code, answer)] = (status, feedback or "")
    return out


@dataclass
class OwnershipRow:
    period: str  # "" for the whole range
    key: tuple[str | None, ...]
    reviewed: int = 0  # PRs first reviewed in the period
    owned: int = 0  # of them, owned since
    overridden: int = 0  # of the owned, on a maintainer's override
    hours: list[float] = field(default_factory=list)  # time to ownership, per owned PR
    change_pts: float | None = None  # owned share against the previous period, in points

    @property
    def share(self) -> float | None:
        return self.owned / self.reviewed if self.reviewed else None

    @property
    def median_hours(self) -> float | None:
        return statistics.median(self.hours) if self.hours else None


@dataclass(frozen=True)
class OwnershipReport:
    by: tuple[str, ...]
    period: Period | None
    since: date | None
    until: date | None
    rows: list[OwnershipRow]
    totals: list[OwnershipRow]
    # Whether the ledger holds any ownership check at all.
    checked: bool = True


def build(
    store: Database,
    by: Sequence[str],
    period: Period | None,
    since: date | None,
    until: date | None,
    *,
    only_if_checked: bool = False,
) -> OwnershipReport:
    """Per group (team, repo) and period: PRs reviewed, owned, the share, time to ownership.
    ``only_if_checked``: a ledger without any check is not scanned (the HTML page leaves the
    section out rather than read every run of a million-call ledger for nothing)."""
    checks = sa.select(_checks.c.id)
    r, c = _runs.c, _checks.c
    reviews = (
        sa.select(r.team, r.repo, r.pr_number, sa.func.min(r.started_at))
        .where(r.pr_number.is_not(None), r.id.not_in(checks))
        .group_by(r.team, r.repo, r.pr_number)
    )
    owned = (
        sa.select(c.repo, c.pr_number, c.created_at, c.override_by)
        .where(c.passed.is_(True), c.pr_number.is_not(None))
        .order_by(c.created_at)
    )
    if since is not None:
        reviews = reviews.having(sa.func.min(r.started_at) >= datetime.combine(since, time(), UTC))
    with store.reading("reading the ownership record") as conn:
        if only_if_checked and conn.execute(sa.select(c.id).limit(1)).first() is None:
            return OwnershipReport(tuple(by), period, since, until, [], [], checked=False)
        first_review = list(conn.execute(reviews))
        first_owned: dict[tuple[str | None, int], tuple[datetime, bool]] = {}
        for repo, pr, at, override_by in conn.execute(owned):
            first_owned.setdefault((repo, pr), (_moment(at), override_by is not None))

    groups: dict[tuple[str, tuple[str | None, ...]], OwnershipRow] = {}
    totals: dict[str, OwnershipRow] = {}
    for team, repo, pr, started in first_review:
        started = _moment(started)
        day = started.date()
        if (since and day < since) or (until and day > until):
            continue
        per = label(start_of(day, period), period) if period else ""
        key = tuple({"team": team, "repo": repo}[d] for d in by)
        for row in (
            groups.setdefault((per, key), OwnershipRow(per, key)),
            totals.setdefault(per, OwnershipRow(per, ())),
        ):
            row.reviewed += 1
            if (repo, pr) in first_owned:
                at, overridden = first_owned[(repo, pr)]
                row.owned += 1
                row.overridden += overridden
                row.hours.append(max(0.0, (at - started).total_seconds() / 3600))
    rows = sorted(groups.values(), key=lambda g: (g.period, [k or "" for k in g.key]))
    _changes(rows)
    ordered_totals = sorted(totals.values(), key=lambda t: t.period)
    _changes(ordered_totals)
    return OwnershipReport(tuple(by), period, since, until, rows, ordered_totals)


def _moment(value: datetime | str) -> datetime:
    """An aggregate's time in UTC: SQLite hands MIN() of a timestamp back as its text, and
    naive (stored as UTC)."""
    return utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _changes(rows: list[OwnershipRow]) -> None:
    """Each row's owned share against its group's previous period, in percentage points."""
    last: dict[tuple[str | None, ...], OwnershipRow] = {}
    for row in rows:
        before = last.get(row.key)
        if before is not None and before.share is not None and row.share is not None:
            row.change_pts = 100 * (row.share - before.share)
        last[row.key] = row


def render(report: OwnershipReport, fmt: str) -> str:
    """table, csv, json or markdown: per group and period, PRs reviewed and owned, the owned
    share and its change in points, median hours to ownership, overrides."""
    import csv
    import io
    import json

    head = ["period", *report.by, "prs_reviewed", "prs_owned", "owned_pct", "change_pts"]
    head += ["median_hours_to_ownership", "overridden"]

    def cells(row: OwnershipRow, total: bool) -> list[object]:
        keys = ["(all)" if total else (k or "") for k in row.key] or (["(all)"] * len(report.by))
        pct = None if row.share is None else round(100 * row.share, 1)
        change = None if row.change_pts is None else round(row.change_pts, 1)
        hours = None if row.median_hours is None else round(row.median_hours, 1)
        return [row.period, *keys, row.reviewed, row.owned, pct, change, hours, row.overridden]

    lines = [cells(r, False) for r in report.rows] + [cells(t, True) for t in report.totals]
    if fmt == "json":
        return (
            json.dumps(
                {
                    "schema": "ownit.ledger.ownership/1",
                    "rows": [dict(zip(head, r, strict=True)) for r in lines],
                },
                ensure_ascii=True,
            )
            + "\n"
        )
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(head)
        writer.writerows([["" if c is None else c for c in r] for r in lines])
        return buffer.getvalue()
    shown = [[("—" if c is None else str(c)) for c in r] for r in lines]
    if fmt == "markdown":
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(out + ["| " + " | ".join(r) + " |" for r in shown]) + "\n"
    widths = [
        max(len(h), *(len(r[i]) for r in shown)) if shown else len(h) for i, h in enumerate(head)
    ]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in shown]
    if not shown:
        out.append("no reviewed pull requests in this range")
    return "\n".join(out) + "\n"


def html_section(report: OwnershipReport) -> str:
    """The HTML report's ownership section: the owned share per group over the range (bars),
    and per period the reviewed and owned PRs with the share's trend."""
    from agent.ledger.charts import Bar, esc, hbars

    if not report.checked:
        return ""
    if not report.totals:
        return (
            '<section id="ownership"><h2>Ownership</h2><p class="note">No reviewed pull '
            "request has an ownership check in this range (<code>ownit check</code>).</p>"
            "</section>"
        )
    whole: dict[tuple[str | None, ...], OwnershipRow] = {}
    for row in report.rows:
        acc = whole.setdefault(row.key, OwnershipRow("", row.key))
        acc.reviewed += row.reviewed
        acc.owned += row.owned
    bars = [
        Bar(
            " / ".join(k or "(not recorded)" for k in key),
            100 * (acc.share or 0.0),
            f"{100 * (acc.share or 0.0):.0f}% of {acc.reviewed}",
            " / ".join(k or "" for k in key),
        )
        for key, acc in sorted(whole.items(), key=lambda kv: -(kv[1].share or 0.0))
    ]
    chart = hbars(bars, "Share of reviewed PRs whose author showed ownership", "owned", "owned")
    head = "".join(
        f'<th scope="col"{" class=n" if i else ""}>{h}</th>'
        for i, h in enumerate(
            ["Period", "PRs reviewed", "Owned", "Share", "Change", "Median hours to ownership"]
        )
    )
    body = []
    for t in report.totals:
        share = "—" if t.share is None else f"{100 * t.share:.0f}%"
        change = "—" if t.change_pts is None else f"{t.change_pts:+.0f} pts"
        hours = "—" if t.median_hours is None else f"{t.median_hours:.1f}"
        cols = [esc(t.period or "whole range"), str(t.reviewed), str(t.owned), share, change, hours]
        tds = "".join(f"<td{' class=n' if i else ''}>{c}</td>" for i, c in enumerate(cols))
        body.append(f"<tr>{tds}</tr>")
    return (
        '<section id="ownership"><h2>Ownership</h2>'
        '<p class="note">A pull request counts in the period of its first review; it is owned '
        "once an <code>ownit check</code> passed (or a maintainer overrode the gate).</p>"
        f"{chart}"
        '<div class="scroll"><table><caption>Ownership over time, all teams</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></section>"
    )
