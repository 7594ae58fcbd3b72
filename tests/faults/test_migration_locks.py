"""`dlqctl migrate` on the original system's live table while a writer holds it.

A migration that waits for a lock on dlq makes every later lock request on dlq (the
services' INSERTs) queue behind it. So each migration that locks dlq gives up after a short
lock_timeout (and one whose objects already exist takes no lock at all): the services'
inserts wait a few seconds at most, the migration exits 1 asking to be re-run, and the
re-run completes (docs/operations.md, "Migrating a live table").
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from dlqctl.db.migrations import available_migrations
from tests.cli_helpers import run_dlqctl_process, start_dlqctl
from tests.integration.test_migrations import ORIGINAL_DDL

# Generous: the migrations give up after a few seconds; this only catches "never".
GUARD = 90

INSERT = (
    "INSERT INTO dlq (consumer, event_id, event_payload, error_message)"
    " VALUES (%s, %s, '{}', 'service insert')"
)


def wait_for_lock_wait(conn: Any, timeout: float = GUARD) -> None:
    """Until `dlqctl migrate` waits for a lock (behind the open writer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'dlqctl migrate'"
            " AND wait_event_type = 'Lock'"
        ).fetchone()
        if row:
            return
        time.sleep(0.05)
    raise AssertionError("dlqctl migrate never waited for a lock")


def applied(conn: Any) -> list[str]:
    rows = conn.execute("SELECT name FROM dlqctl_schema_migrations ORDER BY name").fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("original_indexes", [True, False], ids=["indexes-exist", "no-indexes"])
def test_migrate_behind_an_open_writer_never_holds_up_the_services_inserts(
    empty_db_url: str, original_indexes: bool
) -> None:
    ddl = ORIGINAL_DDL.format(uuid_default="gen_random_uuid()")
    if not original_indexes:
        ddl = ddl.split("CREATE INDEX")[0]
    with psycopg.connect(empty_db_url, autocommit=True) as admin:
        admin.execute(ddl)
        admin.execute(INSERT, ("billing", uuid.uuid4()))
        # An open writer: a service transaction with an uncommitted INSERT.
        writer = psycopg.connect(empty_db_url)
        writer.execute(INSERT, ("orders", uuid.uuid4()))
        env = {"DLQCTL_DATABASE_URL": empty_db_url}
        proc = start_dlqctl("migrate", env=env)
        try:
            wait_for_lock_wait(admin)
            # Another service INSERT arrives while the migration waits for its lock.
            done = threading.Event()

            def service_insert() -> None:
                with psycopg.connect(empty_db_url, autocommit=True) as service:
                    service.execute(INSERT, ("orders", uuid.uuid4()))
                done.set()

            threading.Thread(target=service_insert, daemon=True).start()
            assert done.wait(GUARD), "the service INSERT queued behind the migration"
            _, stderr = proc.communicate(timeout=GUARD)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'dlqctl migrate'"
                )
            writer.rollback() if proc.returncode is None else writer.commit()
            writer.close()

        assert proc.returncode == 1, stderr
        [line] = stderr.strip().splitlines()
        assert "lock" in line and "re-run `dlqctl migrate`" in line, line
        assert "Traceback" not in stderr
        done_before = applied(admin)
        if original_indexes:
            # The indexes the original system created: 0001 took no lock and went through.
            assert "0001_original_dlq" in done_before

        rerun = run_dlqctl_process("migrate", env=env, timeout=GUARD)
        assert rerun.returncode == 0, rerun.stderr
        assert applied(admin) == [m.name for m in available_migrations()]
        rows = admin.execute("SELECT consumer FROM dlq ORDER BY consumer").fetchall()
        assert [r[0] for r in rows] == ["billing", "orders", "orders"]
        indexes = {
            r[0] for r in admin.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'dlq'")
        }
        assert {"idx_dlq_consumer", "idx_dlq_status", "idx_dlq_failed_at"} <= indexes


def test_where_everything_exists_migrate_takes_no_lock_behind_an_open_writer(
    db_url: str,
) -> None:
    # A migrated database whose records are gone (e.g. restored without them): every file
    # runs again, finds its objects, and must not wait for the open writer at all.
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("DELETE FROM dlqctl_schema_migrations")
        writer = psycopg.connect(db_url)
        try:
            writer.execute(INSERT, ("orders", uuid.uuid4()))
            result = run_dlqctl_process(
                "migrate", env={"DLQCTL_DATABASE_URL": db_url}, timeout=GUARD
            )
            assert result.returncode == 0, result.stderr
            assert applied(admin) == [m.name for m in available_migrations()]
        finally:
            writer.rollback()
            writer.close()


def test_a_concurrent_index_build_behind_a_long_transaction_gives_up_and_is_rebuilt(
    db_url: str,
) -> None:
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("DROP INDEX idx_dlq_event_id")
        admin.execute("DELETE FROM dlqctl_schema_migrations WHERE name >= '0004'")
        writer = psycopg.connect(db_url)
        env = {"DLQCTL_DATABASE_URL": db_url}
        try:
            writer.execute(INSERT, ("orders", uuid.uuid4()))
            first = run_dlqctl_process("migrate", env=env, timeout=GUARD)
            # Meanwhile the services kept writing: a concurrent build blocks no INSERT.
            admin.execute(INSERT, ("orders", uuid.uuid4()))
        finally:
            writer.commit()
            writer.close()
        assert first.returncode == 1, first.stderr
        [line] = first.stderr.strip().splitlines()
        assert "0004_dlq_indexes" in line and "re-run `dlqctl migrate`" in line, line
        rerun = run_dlqctl_process("migrate", env=env, timeout=GUARD)
        assert rerun.returncode == 0, rerun.stderr
        assert applied(admin) == [m.name for m in available_migrations()]
        valid = admin.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = 'idx_dlq_event_id'"
        ).fetchall()
        assert valid == [(True,)]
