"""A write command whose run started prints its summary with ``-o json`` also when it fails:
``outcome`` says how it ended and ``error`` repeats the stderr line, so a runbook's
``jq .failed`` / ``jq .outcome`` read the run, not an empty file (docs/operations.md).
Errors before a run starts print nothing on stdout.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from dlqctl.embedded.postgres import EmbeddedPostgres
from dlqctl.embedded.process import free_port
from tests.cli_helpers import run_dlqctl_process, start_dlqctl
from tests.factories import ACTOR, entry, insert_entries
from tests.faults.mock_cluster import MockCluster
from tests.kafka_helpers import unique_name
from tests.replay_helpers import replayed_ids

GUARD = 90
OLD = datetime.now(UTC) - timedelta(days=60)

# Rows of consumer 'slow' make the UPDATE or DELETE that reaches them sleep: the run is
# caught inside a known batch when the database goes away.
SLOW_ROWS = """
CREATE FUNCTION dlqctl_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.consumer = 'slow' THEN
        PERFORM pg_sleep(600);
    END IF;
    RETURN COALESCE(NEW, OLD);
END
$$;
CREATE TRIGGER dlqctl_test_slow BEFORE UPDATE OR DELETE ON dlq
    FOR EACH ROW EXECUTE FUNCTION dlqctl_test_slow();
"""


def bulk(conn: Any, count: int, consumer: str, status: str, failed_at: datetime) -> None:
    """Rows by plain SQL (the factories' sequence, and so other tests' timestamps, stay put)."""
    conn.execute(
        "INSERT INTO dlq (consumer, event_id, event_payload, error_message, failed_at, status)"
        " SELECT %s, gen_random_uuid(), '{}', 'ValueError: ' || g, %s, %s"
        " FROM generate_series(1, %s) AS g",
        (consumer, failed_at, status, count),
    )


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"dlqctl exited {proc.returncode} early: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def summary_and_error_line(proc: subprocess.Popen[str]) -> tuple[dict[str, Any], str]:
    stdout, stderr = proc.communicate(timeout=GUARD)
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("Error: "), stderr
    summary = json.loads(stdout)  # printed although the run failed
    assert summary["outcome"] == "failed", summary
    assert summary["error"] == lines[-1].removeprefix("Error: ")
    assert summary["matched"] == summary["succeeded"] + summary["failed"] + summary["skipped"]
    return summary, lines[-1]


@pytest.fixture
def slow_pg(own_pg: EmbeddedPostgres) -> EmbeddedPostgres:
    with psycopg.connect(own_pg.dsn, autocommit=True) as conn:
        conn.execute(SLOW_ROWS)
    return own_pg


def sleeping_in(dsn: str, application: str) -> Callable[[], bool]:
    def check() -> bool:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                " AND wait_event = 'PgSleep'",
                (application,),
            ).fetchone()
        return row is not None

    return check


def count(dsn: str, where: str) -> int:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        row = conn.execute(f"SELECT count(*) AS n FROM dlq WHERE {where}").fetchone()
    assert row is not None
    return int(row["n"])


@pytest.mark.db  # its own PostgreSQL: run again on the PostgreSQL 15 lane
def test_database_killed_mid_discard_prints_the_summary_with_its_reason(
    slow_pg: EmbeddedPostgres,
) -> None:
    with psycopg.connect(slow_pg.dsn, autocommit=True) as conn:
        # One full batch (1000) that goes through, then a batch that sleeps on 'slow' rows.
        bulk(conn, 1000, "orders", "pending", OLD)
        bulk(conn, 5, "slow", "pending", OLD + timedelta(days=1))
    env = {"DLQCTL_DATABASE_URL": slow_pg.dsn, "DLQCTL_ACTOR": ACTOR}
    args = [
        "discard",
        "-c",
        "orders",
        "-c",
        "slow",
        "--yes",
        "-o",
        "json",
        "--reason",
        "bad deploy",
    ]
    proc = start_dlqctl(*args, env=env)
    try:
        wait_until(sleeping_in(slow_pg.dsn, "dlqctl discard"), proc, "the second batch")
        slow_pg.stop_server()  # the database goes away mid-run
        summary, line = summary_and_error_line(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        slow_pg.start_server()
    assert proc.returncode == 1
    assert (summary["matched"], summary["succeeded"], summary["failed"]) == (1005, 1000, 5)
    assert "1000 entries had been discarded before the error" in line
    assert "could not be recorded in the audit log" in line
    assert count(slow_pg.dsn, "status = 'discarded'") == 1000


@pytest.mark.db  # its own PostgreSQL: run again on the PostgreSQL 15 lane
def test_database_killed_mid_purge_prints_the_summary_with_its_reason(
    slow_pg: EmbeddedPostgres,
) -> None:
    with psycopg.connect(slow_pg.dsn, autocommit=True) as conn:
        bulk(conn, 30, "orders", "replayed", OLD)
        bulk(conn, 20, "slow", "replayed", OLD + timedelta(days=1))
    env = {"DLQCTL_DATABASE_URL": slow_pg.dsn, "DLQCTL_ACTOR": ACTOR}
    args = ["purge", "--older-than", "30d", "--batch-size", "10", "--yes", "-o", "json"]
    proc = start_dlqctl(*args, env=env)
    try:
        wait_until(sleeping_in(slow_pg.dsn, "dlqctl purge"), proc, "the fourth batch")
        slow_pg.stop_server()
        summary, line = summary_and_error_line(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        slow_pg.start_server()
    assert proc.returncode == 1
    # Three batches deleted; the fourth was in flight (failed), the fifth never reached.
    assert summary["succeeded"] == 30
    assert (summary["failed"], summary["skipped"], summary["matched"]) == (10, 10, 50)
    assert "30 entries had been deleted before the error" in line
    assert count(slow_pg.dsn, "true") == 20


def test_broker_frozen_mid_replay_prints_the_summary_with_its_reason(
    conn: Any, cli_env: Any
) -> None:
    with MockCluster() as cluster:
        topic = cluster.create_topic(unique_name())
        insert_entries(conn, [entry(source_topic=topic) for _ in range(100)])
        env = cli_env(cluster.bootstrap_servers, DLQCTL_KAFKA_DELIVERY_TIMEOUT="2")
        args = ["replay", "--yes", "--batch-size", "10", "--rate", "50", "-o", "json"]
        proc = start_dlqctl(*args, env=env)
        try:
            wait_until(lambda: len(replayed_ids(conn)) >= 10, proc, "a first batch replayed")
            cluster.broker_down()  # frozen: nothing is acknowledged any more
            summary, line = summary_and_error_line(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 1
    assert line.startswith("Error: Kafka stopped acknowledging")
    assert summary["failed"] >= 1
    assert summary["succeeded"] == len(replayed_ids(conn))
    assert summary["matched"] == 100


def test_errors_before_a_run_starts_print_nothing_on_stdout(cli_env: Any) -> None:
    env = cli_env()
    unreachable = {"DLQCTL_DATABASE_URL": f"postgresql://u@127.0.0.1:{free_port()}/x"}
    for args, extra in (
        (["discard", "-c", "orders", "-o", "json"], {}),  # refused: no --yes off a terminal
        (["purge", "--older-than", "30d", "--yes", "-o", "json"], unreachable),
        (["replay", "--yes", "-o", "json"], unreachable),
        (["discard", "0123456789abcdef", "-o", "json"], {}),  # no such id
    ):
        result = run_dlqctl_process(*args, env={**env, **extra})
        assert result.returncode in (1, 2, 3), result.stderr
        assert result.stdout == "", (args, result.stdout)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
