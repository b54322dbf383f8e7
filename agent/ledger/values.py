"""How ledger values are written as text in exports: UTC times in ISO 8601, dollar amounts
exact to the nano-dollar, and text a spreadsheet will not run as a formula."""

from __future__ import annotations

from datetime import date, datetime

from agent.ledger.periods import utc
from agent.ledger.tables import NANO

# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# (OWASP "CSV injection"), also after leading blanks; tab and carriage return hide one.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def text(value: str) -> str:
    """Text from the ledger as a CSV cell: teams, repos, authors and errors come from artifacts
    anyone can import, so a leading formula character is quoted away with an apostrophe."""
    return "'" + value if value.lstrip(" ").startswith(FORMULA_START) else value


def utc_iso(value: datetime) -> str:
    """2025-03-01T12:00:00Z, with microseconds when there are any."""
    return utc(value).replace(tzinfo=None).isoformat() + "Z"


def midnight_iso(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def usd(nano: int) -> str:
    """Integer nano-dollars as an exact decimal ("0.0105", "0", "-0.000002"): never a binary
    float, so a column of these sums to the ledger's total to the last digit."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")


def flag(value: bool) -> str:
    return "true" if value else "false"
