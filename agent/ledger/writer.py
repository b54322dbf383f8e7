"""The thread a run's ledger writes go through, so that their commits leave the event loop.

A commit is an fsync (SQLite) or a round trip (PostgreSQL): ~13 ms here, three per model call.
On the event loop that is time no other call's request is sent or reply read. One thread, in
order, so a call's later state is never written before its first; each call still awaits its
own write before it goes on (``Recorder.begin_async``), so the write-ahead order holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Writer:
    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ownit-ledger")

    async def run(self, write: Callable[[], T]) -> T:
        """``write`` on the writer's thread, after every write submitted before it."""
        return await asyncio.wrap_future(self._thread.submit(write))

    def wait(self, write: Callable[[], T]) -> T:
        """The same, from code that is not a coroutine: it blocks until written."""
        return self._thread.submit(write).result()

    def close(self) -> None:
        """Finish what was submitted (a cancelled run's writes too), then stop the thread."""
        self._thread.shutdown(wait=True)
