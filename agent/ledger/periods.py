"""Calendar periods in UTC: where a day's day, ISO week, month and quarter start and end, and
their labels ("2026-11-26", "2026-W48", "2026-11", "2026-Q4"). The rollup stores the labels;
reports walk the periods of a range with these. And ``utc``: every stored time is UTC."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from agent.ledger.reports import Period

ONE_DAY = timedelta(days=1)


def utc(value: datetime) -> datetime:
    """The same instant in UTC. A naive time is taken as UTC (SQLite hands them back so).

    Stored times are UTC: SQLite keeps a time's wall clock and drops its offset, so 14:00+02:00
    stored as is would read back as 14:00 UTC, two hours off in every report and repair."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def start_of(day: date, period: Period) -> date:
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)


def next_start(day: date, period: Period) -> date:
    """The first day of the period after the one holding ``day``."""
    start = start_of(day, period)
    if period == "day":
        return start + ONE_DAY
    if period == "week":
        return start + timedelta(days=7)
    months = 1 if period == "month" else 3
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def end_of(day: date, period: Period) -> date:
    """The last day of the period holding ``day``."""
    return next_start(day, period) - ONE_DAY


def label(day: date, period: Period) -> str:
    if period == "day":
        return day.isoformat()
    if period == "week":
        iso = day.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def walk(first: date, last: date, period: Period) -> Iterator[date]:
    """The start of every period from the one holding ``first`` to the one holding ``last``."""
    day = start_of(first, period)
    while day <= last:
        yield day
        day = next_start(day, period)


def month_start(day: date) -> date:
    return day.replace(day=1)
