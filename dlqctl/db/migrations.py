"""Applying the plain-SQL migrations in file-name order, each recorded as it is applied.

A migration runs in one transaction together with its record in
``dlqctl_schema_migrations``, unless its first line is ``-- dlqctl:no-transaction``: then
each of its statements runs on its own (``CREATE INDEX CONCURRENTLY`` cannot run inside a
transaction) and the record is written after the last one succeeded.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from dlqctl.core.errors import MigrationError
from dlqctl.db.connection import Connection, session

NO_TRANSACTION_MARKER = "-- dlqctl:no-transaction"
# Serialises concurrent `dlqctl migrate` runs (an arbitrary constant: "dlqctl" in ASCII).
ADVISORY_LOCK_KEY = 0x646C71637460
LOCK_WAIT_SECONDS = 900

_CREATE_RECORDS = """
CREATE TABLE IF NOT EXISTS dlqctl_schema_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

_RECORDS_EXIST = """
SELECT to_regclass('dlqctl_schema_migrations') IS NOT NULL AS present
"""

_APPLIED = """
SELECT name FROM dlqctl_schema_migrations
"""

_RECORD = """
INSERT INTO dlqctl_schema_migrations (name) VALUES (%(name)s)
"""

_INDEX_STATE = """
SELECT i.indisvalid AS valid
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relname = %(name)s AND pg_table_is_visible(c.oid)
"""

_RESET_LOCK_TIMEOUT = """
RESET lock_timeout
"""

_DROP_INDEX = sql.SQL("""
DROP INDEX CONCURRENTLY IF EXISTS {index}
""")

_CURRENT_ROLE = """
SELECT current_user AS role
"""

_TRY_LOCK = """
SELECT pg_try_advisory_lock(%(key)s) AS got
"""

_UNLOCK = """
SELECT pg_advisory_unlock(%(key)s)
"""

log = logging.getLogger(__name__)

_CONCURRENT_INDEX = re.compile(
    r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE
)


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    name: str
    sql: str

    @property
    def transactional(self) -> bool:
        return not self.sql.lstrip().startswith(NO_TRANSACTION_MARKER)

    def statements(self) -> list[str]:
        """The statements of a non-transactional file: each ends with ``;`` at a line end."""
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [s.strip() for s in re.split(r";[ \t]*$", body, flags=re.MULTILINE) if s.strip()]


@dataclass(frozen=True)
class MigrationResult:
    """What one `migrate` run applied and what is still pending."""

    applied: list[str]
    pending: list[str]


def migrations_dir() -> Traversable:
    """Inside an installed package, else the source checkout's top-level ``migrations/``."""
    packaged = resources.files("dlqctl") / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def available_migrations() -> list[Migration]:
    folder = migrations_dir()
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")), key=lambda e: e.name
    )
    if not files:
        raise MigrationError(f"no migration files found in {folder}")
    return [Migration(name=f.name.removesuffix(".sql"), sql=f.read_text("utf-8")) for f in files]


def _applied_names(conn: Connection) -> set[str]:
    row = conn.execute(_RECORDS_EXIST).fetchone()
    if not row or not row["present"]:
        return set()
    return {r["name"] for r in conn.execute(_APPLIED)}


def pending_migrations(conn: Connection) -> list[Migration]:
    applied = _applied_names(conn)
    return [m for m in available_migrations() if m.name not in applied]


def _record(conn: Connection, migration: Migration) -> None:
    conn.execute(_RECORD, {"name": migration.name})


def _index_exists(conn: Connection, name: str) -> bool:
    """Whether a valid index ``name`` exists. An interrupted CREATE INDEX CONCURRENTLY leaves
    an invalid one, which IF NOT EXISTS would keep forever: it is dropped, so the build is
    retried."""
    row = conn.execute(_INDEX_STATE, {"name": name}).fetchone()
    if row is None:
        return False
    if row["valid"]:
        return True
    conn.execute(_DROP_INDEX.format(index=sql.Identifier(name)))
    return False


def _apply(conn: Connection, migration: Migration) -> None:
    if migration.transactional:
        with conn.transaction():
            conn.execute(migration.sql.encode())
            _record(conn, migration)
        return
    try:
        for statement in migration.statements():
            match = _CONCURRENT_INDEX.search(statement)
            # An index that exists is skipped: not even the (harmless) SHARE UPDATE
            # EXCLUSIVE lock that CREATE INDEX CONCURRENTLY IF NOT EXISTS takes first.
            if match and _index_exists(conn, match.group(1)):
                continue
            conn.execute(statement.encode())
        _record(conn, migration)
    finally:
        if not conn.closed:
            conn.execute(_RESET_LOCK_TIMEOUT)  # the file's SET lasts for the session


def _ensure_migrations_table(conn: Connection) -> None:
    conn.execute(_CREATE_RECORDS)


def _explain_failure(conn: Connection, migration: Migration, exc: psycopg.Error) -> MigrationError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        role = conn.execute(_CURRENT_ROLE).fetchone()
        who = role["role"] if role else "?"
        return MigrationError(
            f"migration {migration.name} failed: {detail}; run `dlqctl migrate` as a role that"
            f" owns table dlq (connected as {who})"
        )
    if isinstance(exc, pg_errors.LockNotAvailable):
        return MigrationError(
            f"migration {migration.name} gave up waiting for a lock ({detail}): a long"
            " transaction holds table dlq, and waiting longer would hold up the services'"
            " inserts — re-run `dlqctl migrate` (when that transaction has finished)"
        )
    return MigrationError(f"migration {migration.name} failed: {detail}")


def _take_migration_lock(conn: Connection) -> None:
    """Wait for other `dlqctl migrate` runs without sitting in an open transaction: a
    session blocked in pg_advisory_lock() would make their CREATE INDEX CONCURRENTLY wait
    for it, a deadlock."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    announced = False
    while True:
        row = conn.execute(_TRY_LOCK, {"key": ADVISORY_LOCK_KEY}).fetchone()
        if row and row["got"]:
            return
        if time.monotonic() > deadline:
            raise MigrationError(
                f"another `dlqctl migrate` has held the migration lock for {LOCK_WAIT_SECONDS}s;"
                " try again when it has finished"
            )
        if not announced:
            log.info("waiting for another `dlqctl migrate` to finish")
            announced = True
        time.sleep(0.2)


def migrate(dsn: str, *, dry_run: bool = False) -> MigrationResult:
    """Apply every pending migration (or, with ``dry_run``, only list them)."""
    with session(dsn, autocommit=True, application_name="dlqctl migrate") as conn:
        if dry_run:
            return MigrationResult(applied=[], pending=[m.name for m in pending_migrations(conn)])
        _take_migration_lock(conn)
        try:
            _ensure_migrations_table(conn)
            applied: list[str] = []
            for migration in pending_migrations(conn):
                try:
                    _apply(conn, migration)
                except pg_errors.LockNotAvailable as exc:  # an OperationalError too
                    raise _explain_failure(conn, migration, exc) from None
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    raise _explain_failure(conn, migration, exc) from None
                applied.append(migration.name)
            return MigrationResult(applied=applied, pending=[])
        finally:
            if not conn.closed:
                conn.execute(_UNLOCK, {"key": ADVISORY_LOCK_KEY})
