"""The cost ledger: one row per model call, grouped into runs.

Owns its records (``records.py``); nothing here imports the review's result types.

The names below load on first use (PEP 562): ``ownit ledger report`` reads the rollup through
``database.py`` and ``tables.py`` and never pays for SQLModel and the call models, which
``from agent.ledger import LedgerStore`` needs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.ledger.database import default_ledger_url
    from agent.ledger.recorder import Recorder
    from agent.ledger.records import Call, CallRecord, Run, RunInfo
    from agent.ledger.store import (
        ImportResult,
        LedgerStore,
        RepairResult,
        is_spool,
        read_records,
    )

_WHERE = {
    "Call": "records",
    "CallRecord": "records",
    "Run": "records",
    "RunInfo": "records",
    "Recorder": "recorder",
    "ImportResult": "store",
    "LedgerStore": "store",
    "RepairResult": "store",
    "is_spool": "store",
    "read_records": "store",
    "default_ledger_url": "database",
}

__all__ = [
    "Call",
    "CallRecord",
    "ImportResult",
    "LedgerStore",
    "Recorder",
    "RepairResult",
    "Run",
    "RunInfo",
    "default_ledger_url",
    "is_spool",
    "read_records",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
