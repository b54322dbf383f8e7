"""The ``ownit`` console script and ``python -m agent``.

A ledger command is a short process whose imports (typer, pydantic, SQLAlchemy) allocate objects
that live as long as it does: collecting garbage while they load is wasted work, about a sixth
of ``ownit ledger report``. So for ``ownit ledger ...`` the collector starts paused, and
``cli_ledger`` turns it back on: once the ledger stack is loaded (``report``, ``export``), or
before any other ledger command runs. Every other command starts as Python does.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    if sys.argv[1:2] == ["ledger"]:
        gc.disable()
    from agent.cli import main as run

    run()


if __name__ == "__main__":
    main()
