"""Recording a run's calls as they happen, so that no billed call is ever lost.

Write-ahead: a call is written as ``pending`` before its request is sent and updated the moment
the response arrives, before the reply is even parsed. A process killed at any point leaves each
call it sent either complete or pending; ``LedgerStore.repair`` turns the pending ones of a dead
run into "outcome unknown".

When the ledger cannot be written, the recorder switches to a spool file (JSON lines, one line
per state change; the last state of a call wins on import) in the first writable place of the
data directory, the artifact directory and the temp directory, and writes every call of the run
there, including those the ledger already took: importing is idempotent.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from agent.errors import LedgerError
from agent.ledger.records import CallRecord, RunInfo
from agent.ledger.store import LedgerStore, live_runs, spool_dir
from agent.ledger.writer import Writer
from agent.redact import redact


def spool_name(run_id: str) -> str:
    return f"ownit-spool-{run_id}.jsonl"


class Recorder:
    def __init__(
        self,
        run: RunInfo,
        store: LedgerStore | None,
        *,
        error: LedgerError | None = None,
        spool_dirs: Sequence[Path] = (),
    ) -> None:
        self.run = run
        self.store = store
        # Why the ledger is not being written, once it is not.
        self.error = error
        self.spool: Path | None = None
        self._spool_dirs = [spool_dir(), *spool_dirs, Path(tempfile.gettempdir())]
        self._spool_file: IO[str] | None = None
        self._spool_failed: str | None = None
        self._calls: dict[str, CallRecord] = {}
        self._attempts: dict[str, int] = {}
        self._started = False
        self._thread: Writer | None = None  # started by the first write from a coroutine
        if store is None and error is None:
            self.error = LedgerError("no ledger was opened")

    @property
    def rows(self) -> list[CallRecord]:
        """Every call of the run, in its latest state, in the order they were made."""
        return list(self._calls.values())

    @property
    def writing_ledger(self) -> bool:
        return self.store is not None and self.error is None

    # --- the run ------------------------------------------------------------------------------

    # The run's row is written with its first call, or when it ends: a run that stops before
    # (a diff that does not parse) leaves nothing behind.

    def update_run(self, **values: Any) -> None:
        self._run_op(lambda s: s.update_run(self.run.id, **values))

    def finish(self, **values: Any) -> None:
        self._run_op(lambda s: s.finish_run(self.run.id, **values))

    def _run_op(self, op: Any) -> None:
        if self.store is not None and self.error is None:
            try:
                if not self._started:
                    self.store.start_run(self.run)
                    self._started = True
                    live_runs[self.run.id] = self
                store = self.store
                self._in_order(lambda: op(store))
            except LedgerError as exc:
                self._fail(exc)

    # --- calls --------------------------------------------------------------------------------

    def begin(
        self,
        *,
        purpose: str,
        model_name: str,
        model: str,
        provider: str,
        estimated_prompt_tokens: int,
        fallback_from: str | None = None,
        route: str | None = None,
    ) -> CallRecord:
        """Write a call as pending; call this before its request is sent."""
        record = self._pending(
            purpose, model_name, model, provider, estimated_prompt_tokens, fallback_from, route
        )
        self._save(record, first=True)
        return record

    async def begin_async(
        self,
        *,
        purpose: str,
        model_name: str,
        model: str,
        provider: str,
        estimated_prompt_tokens: int,
        fallback_from: str | None = None,
        route: str | None = None,
    ) -> CallRecord:
        """``begin``, its write on the writer thread: the event loop goes on with other calls
        while it commits, and the caller sends its request only once it is written."""
        record = self._pending(
            purpose, model_name, model, provider, estimated_prompt_tokens, fallback_from, route
        )
        await self._save_async(record, first=True)
        return record

    def _pending(
        self,
        purpose: str,
        model_name: str,
        model: str,
        provider: str,
        estimated_prompt_tokens: int,
        fallback_from: str | None,
        route: str | None,
    ) -> CallRecord:
        attempt = self._attempts.get(purpose, 0) + 1
        self._attempts[purpose] = attempt
        run = self.run
        record = CallRecord(
            run_id=run.id,
            created_at=datetime.now(UTC),
            team=run.team,
            repo=run.repo,
            pr_number=run.pr_number,
            head_sha=run.head_sha,
            author=run.author,
            purpose=purpose,
            attempt=attempt,
            model_name=model_name,
            model=model,
            provider=provider,
            fallback_from=fallback_from,
            route=route,
            outcome="pending",
            estimated_prompt_tokens=estimated_prompt_tokens,
        )
        if not self._started:
            self._run_op(lambda s: None)
        return record

    def update(self, record: CallRecord, **changes: Any) -> CallRecord:
        """Write a later state of a call (answered, ok, invalid_output, error).

        The new state is validated like an imported one (a ``ValidationError`` is a bug in the
        caller): a state the ledger took but a spool could not give back would be lost."""
        new = CallRecord.model_validate({**record.model_dump(), **changes})
        self._save(new, first=False)
        return new

    async def update_async(self, record: CallRecord, **changes: Any) -> CallRecord:
        """``update``, its write on the writer thread; it returns once the state is written."""
        new = CallRecord.model_validate({**record.model_dump(), **changes})
        await self._save_async(new, first=False)
        return new

    async def in_writer(self, write: Callable[[], None]) -> None:
        """Another write to the run's ledger (the content cache's) on the writer thread, in
        order with the calls'; ``write`` handles its own errors."""
        if self.store is None:
            write()
        else:
            await self._writer().run(write)

    def _in_order(self, write: Callable[[], None]) -> None:
        """``write`` now, behind the writes already queued when there is a writer thread."""
        if self._thread is not None:
            self._thread.wait(write)
        else:
            write()

    def _writer(self) -> Writer:
        if self._thread is None:
            self._thread = Writer()
        return self._thread

    def _kept(self, record: CallRecord) -> CallRecord:
        if record.error:  # provider text: the ledger and the spool get it without credentials
            record = record.model_copy(update={"error": redact(record.error)})
        self._calls[record.idempotency_key] = record
        return record

    def _write(self, record: CallRecord, first: bool) -> Callable[[], None]:
        assert self.store is not None
        store = self.store
        if first:
            return lambda: store.insert_call(record)
        return lambda: store.update_call(record)

    def _save(self, record: CallRecord, *, first: bool) -> None:
        record = self._kept(record)
        if self.store is not None and self.error is None:
            write = self._write(record, first)
            try:
                self._in_order(write)
                return
            except LedgerError as exc:
                self._failed(exc, record)
                return
        self._append(record)

    async def _save_async(self, record: CallRecord, *, first: bool) -> None:
        record = self._kept(record)
        if self.store is not None and self.error is None:
            try:
                await self._writer().run(self._write(record, first))
                return
            except LedgerError as exc:
                self._failed(exc, record)
                return
        self._append(record)

    def _failed(self, exc: LedgerError, record: CallRecord) -> None:
        if self.error is None:
            self._fail(exc)  # spools every call so far, this one included
        else:  # a write queued before the ledger failed, failing in turn: the spool has the rest
            self._append(record)

    def _fail(self, exc: LedgerError) -> None:
        """The ledger stopped working: from now on everything goes to the spool, starting with
        every call so far (a deleted ledger lost the ones it had taken)."""
        self.error = exc
        for record in self._calls.values():
            self._append(record)

    # --- the spool ----------------------------------------------------------------------------

    def _append(self, record: CallRecord) -> None:
        handle = self._open_spool()
        if handle is None:
            return  # nowhere writable: the calls live in the JSON artifact only
        try:
            handle.write(record.model_dump_json() + "\n")
            handle.flush()  # in the OS's hands: survives a kill of this process
        except OSError as exc:
            # A full disk must not stop the review: its calls are still in ``rows`` (and the
            # JSON artifact), and ``spool_problem`` says the spool is incomplete.
            self._spool_failed = f"{self.spool}: {exc.strerror or exc} (it is incomplete)"
            self._spool_file = None
            self.spool = None  # no longer a place that holds every call
            with contextlib.suppress(OSError):
                handle.close()

    def _open_spool(self) -> IO[str] | None:
        if self._spool_file is not None or self._spool_failed is not None:
            return self._spool_file
        problems = []
        for folder in self._spool_dirs:
            path = folder / spool_name(self.run.id)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                self._spool_file = path.open("a", encoding="utf-8")
            except OSError as exc:
                problems.append(f"{folder}: {exc.strerror or exc}")
                continue
            self.spool = path
            return self._spool_file
        self._spool_failed = "; ".join(problems)
        return None

    @property
    def spool_problem(self) -> str | None:
        """Why no spool file could be written, when none could."""
        return self._spool_failed

    def close(self) -> None:
        if self._thread is not None:
            self._thread.close()
            self._thread = None
        if live_runs.get(self.run.id) is self:
            del live_runs[self.run.id]
        if self._spool_file is not None:
            self._spool_file.close()
            self._spool_file = None
        if self.store is not None:
            self.store.close()
