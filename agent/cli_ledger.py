"""``ownit ledger ...``: reports, exports, budgets, and loading and checking the ledger.

None of these imports litellm or the review pipeline: a report on a laptop or in a scheduled job
starts at once. Exit codes: 0 done, 2 bad input, 4 the ledger cannot be read or written,
5 a team is over budget (``check``), 1 the rollup disagrees with the calls (``verify``).
"""

from __future__ import annotations

import gc
import re
import shutil
import sys
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from agent.errors import InputError
from agent.policy import EXIT_GATE
from agent.render.safe import visible
from agent.terminal import LedgerOpt, consoles, err, out, user_errors

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent.ledger.reports import ReportQuery

ledger_app = typer.Typer(
    help="Spend reports, exports and budgets; load and check the cost ledger.",
    no_args_is_help=True,
)
budget_app = typer.Typer(help="Set and list teams' monthly budgets.", no_args_is_help=True)
ledger_app.add_typer(budget_app, name="budget")
# The commands that load the ledger stack with the collector paused (``_importing``).
_PAUSED_START = ("report", "export")


@ledger_app.callback()
def _start(ctx: typer.Context) -> None:
    # ``agent.__main__`` pauses the collector for a ledger command's start-up: the commands
    # that do not end the pause in ``_importing`` end it here.
    if ctx.invoked_subcommand not in _PAUSED_START:
        gc.enable()


REPORT_FORMATS = ("table", "csv", "json", "markdown", "html")
# How far back a report looks when --since is not given: the current period and a few before
# (the HTML page charts a year of months).
DEFAULT_SPAN = {"day": 14, "week": 8, "month": 3, "quarter": 4}
HTML_SPAN = {"day": 31, "week": 13, "month": 12, "quarter": 4}


@contextmanager
def _importing() -> Iterator[None]:
    """The ledger stack (SQLAlchemy, SQLModel, pydantic) allocates objects that live as long as
    the process: a collection during its import is wasted work (~40 ms of the start-up)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.freeze()


def parse_day(value: str, *, end: bool = False, option: str = "--since") -> date:
    """YYYY-MM-DD, or YYYY-MM for a whole month (its first day, or its last with ``end``)."""
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}", text):
            first = date.fromisoformat(text + "-01")
            if not end:
                return first
            from agent.ledger.periods import end_of

            return end_of(first, "month")
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{option} {value!r} is not a date", hint="write it as YYYY-MM-DD, or YYYY-MM"
        ) from None


def parse_fraction(value: str, option: str) -> float:
    """80%, 80 or 0.8: a fraction of 1."""
    text = value.strip().rstrip("%").strip()
    try:
        number = float(text)
    except ValueError:
        raise InputError(f"{option} {value!r} is not a percentage", hint="e.g. 80%") from None
    fraction = number / 100 if value.strip().endswith("%") or number > 1 else number
    if not 0 < fraction <= 1:
        raise InputError(f"{option} {value!r} must be above 0% and at most 100%")
    return fraction


def _query(
    by: str,
    period: str,
    since: str | None,
    until: str | None,
    top: int | None,
    rising: str,
    span: dict[str, int] = DEFAULT_SPAN,
) -> ReportQuery:
    from agent.ledger.periods import start_of
    from agent.ledger.reports import DIMENSIONS, PERIODS, ReportQuery

    dims = tuple(d.strip().lower() for d in by.split(",") if d.strip())
    bad = [d for d in dims if d not in DIMENSIONS]
    if bad or not dims or len(set(dims)) != len(dims):
        raise InputError(
            f"--by {by!r}: group by {', '.join(DIMENSIONS)} (comma-separated, each once)"
        )
    chosen = period.strip().lower()
    if chosen not in (*PERIODS, "none"):
        raise InputError(f"--period {period!r}: choose {', '.join(PERIODS)} or none")
    first = parse_day(since) if since else None
    last = parse_day(until, end=True, option="--until") if until else None
    if first and last and first > last:
        raise InputError(f"--since {since} is after --until {until}")
    per = None if chosen == "none" else chosen
    if first is None and per is not None:
        # The current period and the few before it, the whole of each.
        day = start_of(last or datetime.now(UTC).date(), per)  # type: ignore[arg-type]
        for _ in range(span[per] - 1):
            day = start_of(day - timedelta(days=1), per)  # type: ignore[arg-type]
        first = day
    return ReportQuery(
        by=dims,  # type: ignore[arg-type]
        period=per,  # type: ignore[arg-type]
        since=first,
        until=last,
        top=top,
        rising_threshold=parse_fraction(rising, "--rising"),
    )


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    """The file to write (atomically: a half-written report never replaces a good one), or
    standard output."""
    if path is None:
        yield sys.stdout
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8", newline="") as stream:
            yield stream
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc


@ledger_app.command("report")
def ledger_report(
    by: Annotated[
        str,
        typer.Option(help="Group by team, repo, pr, author, model_name, model or provider."),
    ] = "team",
    period: Annotated[
        str, typer.Option(help="Rows per day, week, month or quarter (UTC), or none.")
    ] = "month",
    since: Annotated[
        str | None,
        typer.Option(
            help="First day, YYYY-MM-DD or YYYY-MM [default: this period and the 2 before "
            "(a year of months for html)]."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last day, YYYY-MM-DD or YYYY-MM [default: today].")
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(min=1, help="Per period, the N costliest groups and one row for the rest."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table, csv, json, markdown or html.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    rising: Annotated[
        str, typer.Option(help="Flag groups whose spend grew more than this.")
    ] = "25%",
    view: Annotated[
        str,
        typer.Option(
            help="spend, or ownership: the share of reviewed PRs whose author showed ownership "
            "(ownit check), time to ownership and its trend, per team or repo."
        ),
    ] = "spend",
    ledger: LedgerOpt = None,
) -> None:
    """Spend per team, repo, PR, author or model, per period: calls, PRs, tokens, cost, cost per
    PR, cache savings, change against the previous period, forecast, budget and burn."""
    with user_errors():
        chosen = fmt.strip().lower()
        if chosen not in REPORT_FORMATS:
            raise InputError(f"--format {fmt!r}: choose {', '.join(REPORT_FORMATS)}")
        with _importing():
            from agent.ledger import formats, spend
            from agent.ledger.database import Database
        span = HTML_SPAN if chosen == "html" else DEFAULT_SPAN
        query = _query(by, period, since, until, top, rising, span)
        if view.strip().lower() == "ownership":
            _ownership_report(query, chosen, output, ledger)
            return
        if view.strip().lower() != "spend":
            raise InputError(f"--view {view!r}: choose spend or ownership")

        store = Database(ledger)
        if chosen == "html":
            text = formats.render_html(
                spend.overview(store, query), ownership=_ownership_html(store, query)
            )
        elif chosen == "table":
            text = formats.render_table(spend.build(store, query), width=_width())
        else:
            text = formats.render(spend.build(store, query), chosen)
        with _output(output) as stream:
            # Names come from artifacts anyone can import: a terminal gets them escaped.
            # (Written directly: a console would take seconds over a 16,000-row table.)
            stream.write(visible(text) if _is_terminal(stream) or chosen == "table" else text)
    if output is not None:
        err(f"wrote {output}")


def _ownership_html(store: Any, query: Any) -> str:
    """The HTML page's ownership section, by team over the page's periods."""
    from agent.ledger import ownership

    report = ownership.build(
        store, ("team",), query.period, query.since, query.until, only_if_checked=True
    )
    return ownership.html_section(report)


def _ownership_report(query: Any, fmt: str, output: Path | None, ledger: str | None) -> None:
    from agent.ledger import ownership
    from agent.ledger.database import Database

    by = tuple(d for d in query.by if d in ("team", "repo"))
    if not by or len(by) != len(query.by):
        raise InputError("--view ownership groups by team and/or repo")
    if fmt == "html":
        raise InputError("--view ownership: choose table, csv, json or markdown")
    report = ownership.build(Database(ledger), by, query.period, query.since, query.until)
    text = ownership.render(report, fmt)
    with _output(output) as stream:
        stream.write(visible(text) if _is_terminal(stream) or fmt == "table" else text)
    if output is not None:
        err(f"wrote {output}")


def _width() -> int:
    """The terminal's width; 100 columns for a pipe or a file."""
    if sys.stdout.isatty():
        return max(60, shutil.get_terminal_size((100, 24)).columns)
    return 100


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@ledger_app.command("export")
def ledger_export(
    fmt: Annotated[
        str, typer.Option("--format", help="focus (FinOps FOCUS 1.2), csv or json (lines).")
    ] = "focus",
    granularity: Annotated[
        str | None,
        typer.Option(
            help="FOCUS rows per day and group (day, the default), or one per model call (call)."
        ),
    ] = None,
    since: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD or YYYY-MM.")] = None,
    until: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD or YYYY-MM.")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team's spend.")] = None,
    repo: Annotated[str | None, typer.Option(help="Only this repository's spend.")] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    ledger: LedgerOpt = None,
) -> None:
    """Export spend for finance tools: FOCUS, or every call as CSV or JSON lines."""
    with user_errors():
        with _importing():
            from agent.ledger import LedgerStore
            from agent.ledger.exports import FORMATS, GRANULARITIES, export

        chosen = fmt.strip().lower()
        if chosen not in FORMATS:
            raise InputError(f"--format {fmt!r}: choose {', '.join(FORMATS)}")
        if granularity is not None and granularity not in GRANULARITIES:
            raise InputError(f"--granularity {granularity!r}: choose {', '.join(GRANULARITIES)}")
        first = parse_day(since) if since else None
        last = parse_day(until, end=True, option="--until") if until else None
        store = LedgerStore(ledger)
        with _output(output) as stream:
            rows = export(
                store,
                chosen,
                stream,
                since=first,
                until=last,
                granularity=granularity,
                team=team,
                repo=repo,
            )
    if output is not None:
        err(f"wrote {rows} row(s) to {output}")


@ledger_app.command("import")
def ledger_import(
    files: Annotated[list[Path], typer.Argument(help="JSON artifacts or spool files.")],
    ledger: LedgerOpt = None,
) -> None:
    """Load calls from review JSON artifacts or spool files; importing twice counts once.

    A spool file ownit wrote is deleted once all its calls are in the ledger."""
    from agent.ledger import LedgerStore, is_spool, read_records

    with user_errors():
        records = {path: read_records(path) for path in files}  # validate all before writing
        store = LedgerStore(ledger)
        for path, rows in records.items():
            done = store.import_records(rows)
            line = f"{path}: {done.added} call(s) added, {done.present} already present"
            if done.updated:
                line += f", {done.updated} completed (known before as in flight)"
            if is_spool(path):
                path.unlink(missing_ok=True)
                line += "; spool file removed"
            out(line)


@ledger_app.command("repair")
def ledger_repair(
    stale_hours: Annotated[
        float,
        typer.Option(
            min=0, help="A run on another machine is over when nothing was recorded this long."
        ),
    ] = 6.0,
    ledger: LedgerOpt = None,
) -> None:
    """Close runs whose process is gone: the run becomes interrupted and its calls that were
    in flight "outcome unknown". Every review does this for the runs before it."""
    from agent.ledger import LedgerStore

    with user_errors():
        done = LedgerStore(ledger).repair(stale_after=timedelta(hours=stale_hours))
    if not done.runs:
        out("no interrupted runs")
        return
    out(
        f"{len(done.runs)} run(s) marked interrupted, {done.calls} call(s) in flight marked "
        "outcome unknown: " + ", ".join(r[:12] for r in done.runs)
    )


@ledger_app.command("verify")
def ledger_verify(
    fix: Annotated[
        bool, typer.Option("--fix", help="Rebuild the rollup from the calls if they differ.")
    ] = False,
    ledger: LedgerOpt = None,
) -> None:
    """Check that the daily rollup every report reads adds up exactly to the recorded calls
    (exit 1 when it does not, unless --fix rebuilt it)."""
    from agent.ledger import LedgerStore
    from agent.ledger.rollup import drift, rebuild

    with user_errors():
        store = LedgerStore(ledger)
        with store.reading("cannot read the ledger") as conn:
            differ = drift(conn)
        if not differ:
            out("the rollup matches the calls")
            return
        for key, delta in differ[:10]:
            out(f"differs at {', '.join(str(k) for k in key)}: {delta}")
        if not fix:
            err(f"{len(differ)} rollup row(s) differ from the calls; run again with --fix")
            raise typer.Exit(1)
        with store.writing("cannot rebuild the rollup") as conn:
            calls = rebuild(conn)
        out(f"rebuilt the rollup from {calls} call(s)")


@ledger_app.command("cache")
def ledger_cache(
    unused_days: Annotated[
        float | None,
        typer.Option(
            "--prune-unused-days", min=0, help="Delete reviews not reused for this many days."
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Delete every cached review.")] = False,
    ledger: LedgerOpt = None,
) -> None:
    """The content cache: reviews of files that a re-review of unchanged content reuses
    instead of paying for again. Shows what it holds and saved; prunes it."""
    from agent.ledger import LedgerStore
    from agent.ledger import cache as content_cache

    with user_errors():
        if clear and unused_days is not None:
            raise typer.BadParameter("give --clear or --prune-unused-days, not both")
        store = LedgerStore(ledger)
        if clear or unused_days is not None:
            since = None if clear else datetime.now(UTC) - timedelta(days=unused_days or 0)
            out(f"deleted {content_cache.prune(store, since)} cached review(s)")
        held = content_cache.stats(store)
    last = f"; least recently used {held.oldest_use:%Y-%m-%d}" if held.oldest_use else ""
    out(
        f"{held.entries} cached file review(s), reused {held.hits} time(s), "
        f"saving ${held.saved_usd:,.4f}{last}"
    )


# --- budgets ------------------------------------------------------------------------------------


@budget_app.command("set")
def budget_set(
    team: Annotated[str, typer.Option(help="The team, as the ledger records it.")],
    monthly: Annotated[float, typer.Option(min=0, help="USD per calendar month (UTC).")],
    warn_at: Annotated[
        str, typer.Option(help="Warn when this share of the budget is spent.")
    ] = "80%",
    on_exceed: Annotated[
        str,
        typer.Option(
            help="When a review's planned cost does not fit what is left: refuse (send "
            "nothing), downgrade (switch to a cheaper configured model that fits), or warn."
        ),
    ] = "refuse",
    downgrade_to: Annotated[
        str | None,
        typer.Option(help="The model to switch to [default: the best configured that fits]."),
    ] = None,
    starting: Annotated[
        str | None, typer.Option("--from", help="First month it applies, YYYY-MM [default: this].")
    ] = None,
    ledger: LedgerOpt = None,
) -> None:
    """Set a team's monthly budget, from this month (or --from) on."""
    from agent.ledger.budgets import set_budget
    from agent.ledger.database import Database

    with user_errors():
        if on_exceed not in ("refuse", "downgrade", "warn"):
            raise InputError(f"--on-exceed {on_exceed!r}: choose refuse, downgrade or warn")
        if downgrade_to and on_exceed != "downgrade":
            raise InputError("--downgrade-to needs --on-exceed downgrade")
        row = set_budget(
            Database(ledger),
            team,
            monthly,
            warn_at=parse_fraction(warn_at, "--warn-at"),
            on_exceed=on_exceed,  # type: ignore[arg-type]
            downgrade_to=downgrade_to,
            starts=parse_day(starting, option="--from") if starting else None,
        )
    out(
        f"{team}: ${monthly:,.2f} a month from {row.starts:%Y-%m}, warning at "
        f"{row.warn_at:.0%}; over budget a review will {_verb(row.on_exceed, downgrade_to)}"
    )


def _verb(on_exceed: str, downgrade_to: str | None) -> str:
    if on_exceed == "downgrade":
        return f"switch to {downgrade_to}" if downgrade_to else "switch to a cheaper model"
    return {"refuse": "send nothing", "warn": "warn and go on"}[on_exceed]


@budget_app.command("clear")
def budget_clear(
    team: Annotated[str, typer.Option(help="The team.")],
    starting: Annotated[
        str | None, typer.Option("--from", help="First month without one, YYYY-MM.")
    ] = None,
    ledger: LedgerOpt = None,
) -> None:
    """Remove a team's budget from this month (or --from) on; earlier months keep theirs."""
    from agent.ledger.budgets import set_budget
    from agent.ledger.database import Database

    with user_errors():
        row = set_budget(
            Database(ledger),
            team,
            None,
            starts=parse_day(starting, option="--from") if starting else None,
        )
    out(f"{team}: no budget from {row.starts:%Y-%m}")


@budget_app.command("list")
def budget_list(ledger: LedgerOpt = None) -> None:
    """Every budget this month: spent, forecast, burn and state."""
    _print_statuses(ledger, team=None)


@ledger_app.command("check")
def ledger_check(
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    fail_on: Annotated[
        str, typer.Option(help="Exit 5 when a team is over budget (over), or also at warning.")
    ] = "over",
    ledger: LedgerOpt = None,
) -> None:
    """For a scheduled job: where each team's budget stands this month; exits 5 when a team is
    over budget (or, with --fail-on warning, past its warning line or on course to overrun)."""
    with user_errors():
        if fail_on not in ("over", "warning"):
            raise InputError(f"--fail-on {fail_on!r}: choose over or warning")
    found = _print_statuses(ledger, team=team)
    failing = {"over"} if fail_on == "over" else {"over", "warning"}
    if any(s.state in failing for s in found):
        raise typer.Exit(EXIT_GATE)


def _print_statuses(ledger: str | None, team: str | None) -> list[Any]:
    from agent.ledger.budgets import statuses
    from agent.ledger.database import Database
    from agent.render.safe import one_line

    with user_errors():
        found = [
            s
            for s in statuses(Database(ledger), datetime.now(UTC).date())
            if team is None or s.team == team
        ]
    if not found:
        out(f"no budget set for {team}" if team else "no budgets set")
        return []
    for s in found:
        out(
            f"{s.state.upper():<8} {one_line(s.team):<20} ${s.spent_usd:,.2f} of "
            f"${s.amount_usd:,.2f} in {s.period} ({s.burn_pct:.0f}%), forecast "
            f"${s.forecast_usd:,.2f}"
        )
    consoles.out.file.flush()
    return found
