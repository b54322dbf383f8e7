"""The cost ledger: one row per model call, grouped into runs."""

from agent.ledger.models import Call, Run
from agent.ledger.store import LedgerStore, Recorder, default_ledger_url, read_rows

__all__ = ["Call", "LedgerStore", "Recorder", "Run", "default_ledger_url", "read_rows"]
