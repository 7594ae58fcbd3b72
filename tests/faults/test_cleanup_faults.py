"""discard / purge when things go wrong: signals, held table locks, a dropped connection."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from dlqctl.core.cleanup import PurgeRequest
from dlqctl.core.filters import EntryFilter
from dlqctl.usecases.cleanup import purge
from tests.cli_helpers import CliEnv, start_dlqctl
from tests.factories import audit_rows, entry, insert_entries, make_settings
from tests.fakes import TerminateAfterFirstBatch

OLD = datetime.now(UTC) - timedelta(days=60)


def wait_for(conn: Any, query: str, params: tuple[Any, ...], what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = conn.execute(query, params).fetchone()
        if row:
            return row
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigterm_finishes_the_batch_records_it_and_exits_130(
    conn: Any, db_url: str, cli_env: CliEnv
) -> None:
    insert_entries(conn, [entry(status="replayed", failed_at=OLD) for _ in range(100)])
    # Hold the table so the first batch waits; the signal arrives while it waits.
    locker = psycopg.connect(db_url)
    locker.execute("LOCK TABLE dlq IN SHARE MODE")
    proc = start_dlqctl(
        "purge", "--older-than", "30d", "--yes", "-o", "json", "--batch-size", "10", env=cli_env()
    )
    try:
        wait_for(
            conn,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'dlqctl purge'"
            " AND wait_event_type = 'Lock'",
            (),
            "the purge to wait for the table lock",
        )
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # ordering slack only: let the handler run before the batch completes
    finally:
        locker.rollback()
        locker.close()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    data = json.loads(stdout)
    assert 10 <= data["succeeded"] < 100
    assert data["matched"] == 100
    assert data["succeeded"] + data["skipped"] == 100
    remaining = conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"]
    assert remaining == 100 - data["succeeded"]
    [audit] = audit_rows(conn)
    assert (audit["outcome"], audit["counts"]["succeeded"]) == ("interrupted", data["succeeded"])


def test_a_held_table_lock_fails_the_run_instead_of_hanging(
    cli: Any, conn: Any, db_url: str, cli_env: CliEnv
) -> None:
    insert_entries(conn, [entry(status="discarded", failed_at=OLD) for _ in range(5)])
    locker = psycopg.connect(db_url)
    locker.execute("LOCK TABLE dlq IN SHARE MODE")
    try:
        r = cli("purge", "--older-than", "30d", "--yes", "-q", env=cli_env())
    finally:
        locker.rollback()
        locker.close()
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "could not lock" in lines[0] and "lock timeout" in lines[0]
    assert conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"] == 5
    [audit] = audit_rows(conn)
    assert audit["outcome"] == "failed"


def test_a_lost_connection_reports_what_was_deleted_and_is_audited(conn: Any, db_url: str) -> None:
    insert_entries(conn, [entry(status="replayed", failed_at=OLD) for _ in range(30)])
    settings = make_settings(db_url, actor="cron")
    request = PurgeRequest(EntryFilter(), timedelta(days=30), "30d", batch_size=10)
    result = purge(settings, request, listener=TerminateAfterFirstBatch(conn))
    # The run started: the use case returns its result, saying how and why it ended.
    write = result.write
    assert (result.exit_code, write.outcome) == (1, "failed")
    assert write.error is not None and write.error.startswith("lost the connection")
    assert "10 entries had been deleted before the error" in write.error
    assert (write.matched, write.succeeded, write.failed, write.skipped) == (30, 10, 10, 10)
    assert conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"] == 20
    [audit] = audit_rows(conn)
    assert (audit["outcome"], audit["actor"], audit["counts"]["succeeded"]) == (
        "failed",
        "cron",
        10,
    )
