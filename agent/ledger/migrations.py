"""Ordered, named schema migrations, recorded in ``ownit_migrations``.

Written as SQLAlchemy DDL so they run on SQLite and PostgreSQL alike. A released migration is
never edited: change the schema by appending a new one (``tests/test_migrations.py`` checks that
the migrated schema matches the models in ``records.py``).

Several processes may open a new ledger at once (parallel CI jobs on one shared database, or
reviews started together on a laptop): ``migrate`` holds a lock while it looks and applies, so
exactly one of them creates the tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

Migration = Callable[[Connection], None]
_TZ = sa.DateTime(timezone=True)


def m001_initial(conn: Connection) -> None:
    meta = sa.MetaData()
    sa.Table(
        "runs",
        meta,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("started_at", _TZ, nullable=False),
        sa.Column("finished_at", _TZ),
        sa.Column("team", sa.String),
        sa.Column("repo", sa.String),
        sa.Column("pr_number", sa.Integer),
        sa.Column("head_sha", sa.String),
        sa.Column("base", sa.String),
        sa.Column("author", sa.String),
        sa.Column("model_name", sa.String),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("files_total", sa.Integer, nullable=False),
        sa.Column("files_reviewed", sa.Integer, nullable=False),
        sa.Column("hunks_total", sa.Integer, nullable=False),
        sa.Column("hunks_reviewed", sa.Integer, nullable=False),
        sa.Column("prompt_version", sa.String),
        sa.Column("ownit_version", sa.String),
    )
    calls = sa.Table(
        "calls",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String, nullable=False, unique=True),
        sa.Column("run_id", sa.String, sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("team", sa.String),
        sa.Column("repo", sa.String),
        sa.Column("pr_number", sa.Integer),
        sa.Column("head_sha", sa.String),
        sa.Column("author", sa.String),
        sa.Column("purpose", sa.String, nullable=False),
        sa.Column("model_name", sa.String, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("error", sa.String),
        sa.Column("raw_usage", sa.JSON),
    )
    # Spend reports group by these; a covering index keeps them fast on large ledgers.
    sa.Index("ix_calls_team_repo_created", calls.c.team, calls.c.repo, calls.c.created_at)
    meta.create_all(conn)


def _add_columns(conn: Connection, table: str, *columns: sa.Column[object]) -> None:
    """ALTER TABLE ... ADD COLUMN, rendered for the connection's dialect."""
    preparer = conn.dialect.identifier_preparer
    for column in columns:
        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {ddl}")


_KEY_ATTEMPT = re.compile(r":([0-9]{1,10})$")
_MAX_INT = 2**31 - 1  # an INTEGER column's largest value


def m002_write_ahead_and_prices(conn: Connection) -> None:
    """Write-ahead call rows (pending → answered → ok), the process that owns a run, attempts
    and fallbacks, and the unit prices each call was priced with."""
    _add_columns(
        conn,
        "runs",
        sa.Column("host", sa.String),
        sa.Column("pid", sa.Integer),
    )
    zero = sa.text("0")
    _add_columns(
        conn,
        "calls",
        sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("fallback_from", sa.String),
        sa.Column("estimated_prompt_tokens", sa.Integer, nullable=False, server_default=zero),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False, server_default=zero),
        sa.Column("input_cost_per_token", sa.Float),
        sa.Column("output_cost_per_token", sa.Float),
        sa.Column("cache_read_input_token_cost", sa.Float),
        sa.Column("price_source", sa.String),
    )
    runs = sa.Table("runs", sa.MetaData(), sa.Column("status", sa.String))
    sa.Index("ix_runs_status", runs.c.status).create(conn)
    # m001 keys end in the attempt (retries were numbered attempt * 100 + try): keep them true.
    # Most keys end in ":1", the default; a number that is no valid attempt keeps it too.
    calls = sa.table("calls", sa.column("id"), sa.column("idempotency_key"), sa.column("attempt"))
    retried = sa.select(calls.c.id, calls.c.idempotency_key).where(
        sa.not_(calls.c.idempotency_key.like("%:1"))
    )
    attempts = [
        {"row_id": row_id, "new_attempt": int(found[1])}
        for row_id, key in conn.execute(retried).all()
        if (found := _KEY_ATTEMPT.search(key)) and 1 < int(found[1]) <= _MAX_INT
    ]
    if attempts:
        update = (
            calls.update()
            .where(calls.c.id == sa.bindparam("row_id"))
            .values(attempt=sa.bindparam("new_attempt"))
        )
        conn.execute(update, attempts)


def m003_secret_masking(conn: Connection) -> None:
    """Whether a run masked credentials before sending, and what it masked (kinds and places,
    never values)."""
    _add_columns(
        conn,
        "runs",
        sa.Column("masking", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("secrets_masked", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("secret_findings", sa.JSON),
    )


def m004_finance(conn: Connection) -> None:
    """The finance ledger: budgets, the chunk cache, the daily spend rollup every report reads
    (filled by m007), and what each call's price was made of."""
    _add_columns(
        conn,
        "calls",
        sa.Column("cache_creation_input_token_cost", sa.Float),
        sa.Column("cache_savings_usd", sa.Float),
        sa.Column("usage_estimated", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    # Reports read the rollup now; exports and repairs read calls in time order.
    meta = sa.MetaData()
    calls = sa.Table("calls", meta, sa.Column("team"), sa.Column("repo"), sa.Column("created_at"))
    sa.Index("ix_calls_team_repo_created", calls.c.team, calls.c.repo, calls.c.created_at).drop(
        conn
    )
    sa.Index("ix_calls_created_at", calls.c.created_at).create(conn)
    sa.Table(
        "budgets",
        meta,
        sa.Column("team", sa.String, primary_key=True),
        sa.Column("starts", sa.Date, primary_key=True),
        sa.Column("monthly_usd", sa.Float),
        sa.Column("warn_at", sa.Float, nullable=False),
        sa.Column("on_exceed", sa.String, nullable=False),
        sa.Column("downgrade_to", sa.String),
        sa.Column("set_at", _TZ, nullable=False),
        sa.Column("set_by", sa.String),
    )
    cache = sa.Table(
        "chunk_cache",
        meta,
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("prompt_version", sa.String, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("last_used_at", _TZ, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
    )
    sa.Index("ix_chunk_cache_last_used_at", cache.c.last_used_at)
    key = [
        sa.Column(name, sa.String, primary_key=True, nullable=False) for name in ("team", "repo")
    ]
    sums = [
        sa.Column(name, sa.BigInteger, nullable=False, server_default=sa.text("0"))
        for name in (
            "calls", "errors", "unknown_calls", "unpriced_calls", "estimated_calls",
            "prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
            "reasoning_tokens", "cost_nusd", "cache_savings_nusd",
        )
    ]  # fmt: skip
    sa.Table(
        "spend_daily",
        meta,
        sa.Column("day", sa.Date, primary_key=True),
        *key,
        sa.Column("pr_number", sa.Integer, primary_key=True, autoincrement=False),
        *(
            sa.Column(name, sa.String, primary_key=True)
            for name in ("author", "model_name", "model", "provider")
        ),
        *(sa.Column(name, sa.String, nullable=False) for name in ("week", "month", "quarter")),
        *sums,
        sqlite_with_rowid=False,
    )
    meta.create_all(
        conn, tables=[meta.tables[n] for n in ("budgets", "chunk_cache", "spend_daily")]
    )
    # The rollup is derived data: m007 fills it from the calls, with the rollup's own code (run
    # here, that code would write m007's column before it exists).


def m005_routing(conn: Connection) -> None:
    """Why a call went to its model, when routing rules or a budget policy chose it."""
    _add_columns(conn, "calls", sa.Column("route", sa.String))


def m006_ownership(conn: Connection) -> None:
    """The ownership loop: each ``ownit check`` and its verdicts per question."""
    meta = sa.MetaData()
    checks = sa.Table(
        "ownership_checks",
        meta,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("created_at", _TZ, nullable=False, index=True),
        *(sa.Column(n, sa.String) for n in ("team", "repo")),
        sa.Column("pr_number", sa.Integer),
        *(sa.Column(n, sa.String) for n in ("head_sha", "author")),
        *(sa.Column(n, sa.String, nullable=False) for n in ("require", "pass_on")),
        *(sa.Column(n, sa.Integer, nullable=False) for n in ("questions", "required", "shown")),
        *(sa.Column(n, sa.Boolean, nullable=False) for n in ("passed", "complete")),
        *(sa.Column(n, sa.String) for n in ("override_by", "override_reason", "model_name")),
        sa.Column("cost_usd", sa.Float),
    )
    sa.Index("ix_ownership_checks_repo_pr", checks.c.repo, checks.c.pr_number, checks.c.created_at)
    answers = sa.Table(
        "ownership_answers",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "check_id",
            sa.String,
            sa.ForeignKey("ownership_checks.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("question_id", sa.String, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        *(sa.Column(n, sa.String, nullable=False) for n in ("priority", "category")),
        sa.Column("question_fingerprint", sa.String, nullable=False),
        *(
            sa.Column(n, sa.String)
            for n in ("code_fingerprint", "answer_fingerprint", "answered_by")
        ),
        sa.Column("status", sa.String, nullable=False),
        *(sa.Column(n, sa.String) for n in ("screen", "feedback")),
        sa.Column("reused", sa.Boolean, nullable=False),
        sa.Column("grade_version", sa.String),
    )
    sa.Index(
        "ix_ownership_answers_reuse",
        answers.c.question_id,
        answers.c.code_fingerprint,
        answers.c.answer_fingerprint,
    )
    meta.create_all(conn)


def m007_pull_request_ids(conn: Connection) -> None:
    """Each pull request numbered once, and the rollup's rows marked with their PR's id:
    reports count distinct PRs as integers (a third of an 18-month report's time on SQLite
    went to building and comparing "repo#number" strings)."""
    meta = sa.MetaData()
    prs = sa.Table(
        "pull_requests",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("repo", sa.String, nullable=False),
        sa.Column("pr_number", sa.Integer, nullable=False),
        sa.UniqueConstraint("repo", "pr_number", name="uq_pull_requests_repo_pr"),
    )
    prs.create(conn)
    _add_columns(conn, "spend_daily", sa.Column("pr_id", sa.Integer))
    spend = sa.table("spend_daily", sa.column("repo"), sa.column("pr_number"), sa.column("pr_id"))
    if conn.execute(sa.select(spend.c.repo).limit(1)).first() is None:
        # A new ledger, or one from before m004 whose rollup m004 left empty: filled from the
        # calls (none, on a new ledger) by the rollup's own code, which numbers the PRs.
        from agent.ledger.rollup import rebuild

        rebuild(conn)
        return
    # A rollup kept since m004: number its PRs in place, in two statements.
    has_pr = spend.c.pr_number > 0
    conn.execute(
        prs.insert().from_select(
            ["repo", "pr_number"],
            sa.select(spend.c.repo, spend.c.pr_number)
            .where(has_pr)
            .distinct()
            .order_by(spend.c.repo, spend.c.pr_number),
        )
    )
    number = (
        sa.select(prs.c.id)
        .where(prs.c.repo == spend.c.repo, prs.c.pr_number == spend.c.pr_number)
        .scalar_subquery()
    )
    conn.execute(spend.update().where(has_pr).values(pr_id=number))


MIGRATIONS: list[tuple[str, Migration]] = [
    ("m001_initial", m001_initial),
    ("m002_write_ahead_and_prices", m002_write_ahead_and_prices),
    ("m003_secret_masking", m003_secret_masking),
    ("m004_finance", m004_finance),
    ("m005_routing", m005_routing),
    ("m006_ownership", m006_ownership),
    ("m007_pull_request_ids", m007_pull_request_ids),
]

_applied = sa.Table(
    "ownit_migrations",
    sa.MetaData(),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("applied_at", _TZ, nullable=False),
)
# Any constant will do: every ownit process asks PostgreSQL for the same advisory lock.
_PG_LOCK_ID = 0x6F776E6974  # "ownit"


def _pending(conn: Connection) -> list[tuple[str, Migration]]:
    done = {row[0] for row in conn.execute(sa.select(_applied.c.name))}
    return [(name, step) for name, step in MIGRATIONS if name not in done]


def _no_table(exc: sa.exc.DBAPIError) -> bool:
    """The error of reading a table that does not exist (SQLite; PostgreSQL's 42P01)."""
    return "no such table" in str(exc.orig) or getattr(exc.orig, "sqlstate", None) == "42P01"


def migrate(engine: Engine) -> list[str]:
    """Apply the migrations not yet recorded, under a lock; returns the names applied."""
    with engine.connect() as conn:
        try:  # the common case: one cheap read, no lock (every report, every review)
            if not _pending(conn):
                return []
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            if not _no_table(exc):  # a new ledger has none: it is created below
                raise
    with engine.connect().execution_options(ownit_write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        # SQLite: the write transaction (BEGIN IMMEDIATE, see store.py) is the lock.
        _applied.create(conn, checkfirst=True)  # a new ledger: then every migration is pending
        applied = []
        for name, step in _pending(conn):
            step(conn)
            conn.execute(_applied.insert().values(name=name, applied_at=datetime.now(UTC)))
            applied.append(name)
    if engine.dialect.name == "postgresql":
        _vacuum(engine, {t for name in applied for t in _REWRITES.get(name, ())})
    return applied


# Tables a migration rewrote every row of: PostgreSQL keeps the old copy of each row until it is
# vacuumed, and every report would scan both until autovacuum (when it is on) gets there.
_REWRITES = {"m007_pull_request_ids": ("spend_daily",)}


def _vacuum(engine: Engine, tables: set[str]) -> None:
    if not tables:
        return
    try:  # VACUUM runs outside a transaction
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in sorted(tables):
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    except sa.exc.DBAPIError:
        pass  # e.g. a role that may write the table but not vacuum it: reports are only slower
