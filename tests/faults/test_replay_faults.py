"""Replay under faults: dead and failing brokers, a restarted broker, kill -9, signals.

Invariant checked throughout: every entry marked replayed is on the topic; entries whose
delivery failed stay as they were and are reported with the broker's reason.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from dlqctl.core.filters import EntryFilter
from dlqctl.core.replay import ReplayRequest
from dlqctl.embedded.process import free_port
from dlqctl.embedded.tansu import EmbeddedBroker
from dlqctl.usecases.replay import replay
from tests.cli_helpers import CliEnv, run_dlqctl_process, start_dlqctl
from tests.factories import audit_rows, entry, insert_entries, make_settings
from tests.fakes import AfterFirstBatch, AtConfirm
from tests.faults.mock_cluster import API_PRODUCE, ERR_INVALID_RECORD, MockCluster
from tests.kafka_helpers import create_topic, unique_name
from tests.replay_helpers import (
    dlq_ids_on,
    parse_json,
    replayed_ids,
    rows_by_id,
)

# Short, so that failure paths finish quickly; the guards around them are generous.
DELIVERY_TIMEOUT = 2


def wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"dlqctl exited {proc.returncode} early: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def assert_every_replayed_entry_is_on_the_topic(conn: Any, bootstrap: str, topic: str) -> None:
    marked = replayed_ids(conn)
    published = set(dlq_ids_on(bootstrap, topic, len(marked)))
    assert marked <= published, f"marked but not published: {marked - published}"


def test_broker_down_before_start_exits_1_within_the_timeout_and_marks_nothing(
    conn: Any, cli_env: CliEnv
) -> None:
    insert_entries(conn, [entry(source_topic="orders") for _ in range(5)])
    before = rows_by_id(conn)
    bootstrap = f"127.0.0.1:{free_port()}"
    env = cli_env(bootstrap, DLQCTL_KAFKA_DELIVERY_TIMEOUT=str(DELIVERY_TIMEOUT))

    result = run_dlqctl_process("replay", "--yes", env=env, timeout=60)

    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot reach Kafka at {bootstrap} within {DELIVERY_TIMEOUT}s: Failed to get"
        " metadata: Local: Broker transport failure (check DLQCTL_KAFKA_BOOTSTRAP_SERVERS and"
        " that the brokers are up)"
    ]
    assert rows_by_id(conn) == before


def test_invalid_record_on_one_batch_fails_it_and_delivers_the_rest(
    conn: Any, cli_env: CliEnv, cli: Any
) -> None:
    with MockCluster() as cluster:
        topic = cluster.create_topic(unique_name())
        ids = insert_entries(conn, [entry(source_topic=topic) for _ in range(30)])
        cluster.fail_requests(API_PRODUCE, [ERR_INVALID_RECORD])

        result = cli(
            "replay",
            "--yes",
            "--batch-size",
            "10",
            "-o",
            "json",
            env=cli_env(cluster.bootstrap_servers),
        )

        assert result.exit_code == 1, result.output
        summary = parse_json(result.stdout)
        assert (summary["succeeded"], summary["failed"], summary["skipped"]) == (20, 10, 0)
        failed = {uuid.UUID(f["dlq_id"]) for f in summary["failures"]}
        assert failed == set(ids[:10])  # the first batch, one produce request
        assert {f["error"] for f in summary["failures"]} == {
            "Broker: Broker failed to validate record (INVALID_RECORD)"
        }
        assert "10 of 30 entries were not replayed" in result.stderr
        rows = rows_by_id(conn)
        for dlq_id in ids:
            expected = ("pending", 0) if dlq_id in failed else ("replayed", 1)
            assert (rows[dlq_id]["status"], rows[dlq_id]["retry_count"]) == expected
        assert sorted(dlq_ids_on(cluster.bootstrap_servers, topic, 20)) == sorted(ids[10:])
        assert audit_rows(conn)[0]["outcome"] == "failed"


def test_broker_going_down_mid_run_stops_the_run_and_keeps_undelivered_entries(
    conn: Any, db_url: str
) -> None:
    with MockCluster() as cluster:
        topic = cluster.create_topic(unique_name())
        ids = insert_entries(conn, [entry(source_topic=topic) for _ in range(50)])
        settings = make_settings(
            db_url, cluster.bootstrap_servers, kafka_delivery_timeout=DELIVERY_TIMEOUT
        )

        started = time.monotonic()
        report = replay(
            settings,
            ReplayRequest(EntryFilter(), batch_size=10),
            listener=AfterFirstBatch(cluster.broker_down),
        )

        assert time.monotonic() - started < 60  # a generous guard, not a timing assertion
        result = report.result
        assert report.exit_code == 1 and result.outcome == "failed"
        assert (result.succeeded, result.failed, result.skipped) == (10, 10, 30)
        assert all("_MSG_TIMED_OUT" in reason for _, reason in result.failures)
        assert report.error is not None and report.error.startswith("Kafka stopped acknowledging")
        assert replayed_ids(conn) == set(ids[:10])
        pending = {i for i, r in rows_by_id(conn).items() if r["status"] == "pending"}
        assert pending == set(ids[10:])
        cluster.broker_up()
        assert sorted(dlq_ids_on(cluster.bootstrap_servers, topic, 10)) == sorted(ids[:10])


def test_tansu_killed_and_restarted_mid_run_ends_the_run_within_the_timeout(
    conn: Any, db_url: str
) -> None:
    # A restarted tansu is an empty cluster that forgot the producer's id, and the idempotent
    # producer is wedged on UNKNOWN_PRODUCER_ID: the run must still end, and report.
    with EmbeddedBroker() as broker:
        topic = create_topic(broker.bootstrap_servers)
        ids = insert_entries(conn, [entry(source_topic=topic) for _ in range(40)])
        settings = make_settings(
            db_url, broker.bootstrap_servers, kafka_delivery_timeout=DELIVERY_TIMEOUT
        )

        started = time.monotonic()
        report = replay(
            settings,
            ReplayRequest(EntryFilter(), batch_size=10),
            listener=AfterFirstBatch(broker.restart),
        )

        assert time.monotonic() - started < 60
        result = report.result
        assert report.exit_code == 1 and result.outcome == "failed"
        assert result.succeeded == 10 and result.failed >= 1
        assert result.succeeded + result.failed + result.skipped == 40
        assert replayed_ids(conn) == set(ids[:10])
        assert report.error is not None and "Kafka stopped acknowledging" in report.error


def test_kill_9_at_several_points_never_leaves_a_marked_entry_unpublished(
    conn: Any, cli_env: CliEnv, broker: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    ids = insert_entries(conn, [entry(source_topic=topic) for _ in range(600)])
    env = cli_env(bootstrap)
    kill_points: list[Callable[[], bool]] = [
        lambda: True,  # while it starts: before any batch
        lambda: len(replayed_ids(conn)) >= 1,  # right after a first commit
        lambda: len(replayed_ids(conn)) >= 200,  # in full flow
    ]
    for reached in kill_points:
        proc = start_dlqctl("replay", "--yes", "--batch-size", "25", "--rate", "500", env=env)
        wait_for(reached, proc)
        proc.kill()
        proc.communicate(timeout=30)
        assert_every_replayed_entry_is_on_the_topic(conn, bootstrap, topic)

    rerun = run_dlqctl_process("replay", "--yes", "-o", "json", env=env, timeout=120)

    assert rerun.returncode == 0, rerun.stderr
    assert replayed_ids(conn) == set(ids)
    assert {r["retry_count"] for r in rows_by_id(conn).values()} == {1}
    published = dlq_ids_on(bootstrap, topic, len(ids))
    assert set(published) == set(ids)  # at least once each (a kill may cause a re-publish)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_finishes_the_batch_in_flight_and_exits_130(
    conn: Any, cli_env: CliEnv, broker: Any, signum: signal.Signals
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    insert_entries(conn, [entry(source_topic=topic) for _ in range(400)])
    proc = start_dlqctl(
        "replay",
        "--yes",
        "--batch-size",
        "20",
        "--rate",
        "100",
        "-o",
        "json",
        env=cli_env(bootstrap),
    )
    wait_for(lambda: len(replayed_ids(conn)) >= 40, proc)

    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr
    summary = parse_json(stdout)
    marked = replayed_ids(conn)
    assert summary["succeeded"] == len(marked) < 400
    assert summary["failed"] == 0
    assert summary["skipped"] == 400 - len(marked)
    assert "interrupted:" in stderr
    assert_every_replayed_entry_is_on_the_topic(conn, bootstrap, topic)
    assert {r["status"] for r in rows_by_id(conn).values()} == {"pending", "replayed"}
    (audit,) = audit_rows(conn)
    assert audit["outcome"] == "interrupted"
    assert audit["counts"]["succeeded"] == len(marked)


def test_broker_down_after_the_preflight_fails_everything_and_marks_nothing(
    conn: Any, db_url: str
) -> None:
    with MockCluster() as cluster:
        topic = cluster.create_topic(unique_name())
        insert_entries(conn, [entry(source_topic=topic) for _ in range(15)])
        before = rows_by_id(conn)
        settings = make_settings(
            db_url, cluster.bootstrap_servers, kafka_delivery_timeout=DELIVERY_TIMEOUT
        )

        report = replay(
            settings,
            ReplayRequest(EntryFilter(), batch_size=10),
            listener=AtConfirm(cluster.broker_down),
        )

        assert report.exit_code == 1
        assert (report.result.succeeded, report.result.failed, report.result.skipped) == (0, 10, 5)
        assert rows_by_id(conn) == before


def test_database_failing_mid_run_reports_counts_and_records_the_run(
    conn: Any, cli_env: CliEnv, broker: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    insert_entries(conn, [entry(source_topic=topic) for _ in range(400)])
    proc = start_dlqctl(
        "replay",
        "--yes",
        "--batch-size",
        "20",
        "--rate",
        "200",
        "-o",
        "json",
        env=cli_env(bootstrap),
    )
    wait_for(lambda: len(replayed_ids(conn)) >= 40, proc)

    # A failover: the server drops the run's connections (the audit row still gets a new one).
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'dlqctl replay'"
    )
    stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert "the database failed during the run" in stderr
    summary = parse_json(stdout)  # the summary is printed even though the run failed
    marked = replayed_ids(conn)
    assert summary["succeeded"] == len(marked)
    assert summary["matched"] == summary["succeeded"] + summary["failed"] + summary["skipped"]
    assert summary["failed"] >= 1
    assert all("publishes it again" in f["error"] for f in summary["failures"])
    assert_every_replayed_entry_is_on_the_topic(conn, bootstrap, topic)
    (audit,) = audit_rows(conn)
    assert audit["outcome"] == "failed"
    assert audit["counts"]["succeeded"] == len(marked)

    rerun = run_dlqctl_process("replay", "--yes", "-o", "json", env=cli_env(bootstrap))
    assert rerun.returncode == 0, rerun.stderr
    assert {r["status"] for r in rows_by_id(conn).values()} == {"replayed"}


def test_interrupt_before_the_first_message_changes_nothing(
    conn: Any, db_url: str, broker: Any
) -> None:
    from dlqctl.core.errors import Interrupted

    topic = create_topic(broker.bootstrap_servers)
    insert_entries(conn, [entry(source_topic=topic) for _ in range(5)])
    stop = threading.Event()
    stop.set()  # Ctrl-C while the run was still planning
    with pytest.raises(Interrupted) as caught:
        replay(
            make_settings(db_url, broker.bootstrap_servers),
            ReplayRequest(EntryFilter()),
            stop=stop,
        )
    assert caught.value.exit_code == 130
    assert replayed_ids(conn) == set()
    assert audit_rows(conn) == []


def test_ctrl_c_during_the_canary_wait_exits_130_with_nothing_more_sent(
    conn: Any, cli_env: CliEnv, broker: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    ids = insert_entries(conn, [entry(source_topic=topic) for _ in range(6)])
    group = unique_name("nobody")
    proc = start_dlqctl(
        "replay",
        "--yes",
        "--canary",
        "2",
        "--canary-group",
        group,
        "--canary-wait",
        "10m",
        "-o",
        "json",
        env=cli_env(bootstrap),
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    with proc, proc.stdout, proc.stderr:
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")))
        reader.start()
        wait_for(lambda: any("waiting up to 10m" in line for line in lines), proc)

        proc.send_signal(signal.SIGINT)
        stdout = proc.stdout.read()
        proc.wait(60)
        reader.join(10)

    assert proc.returncode == 130, lines
    assert any(f"consumer group {group!r}" in line for line in lines)
    assert any(
        line.startswith("interrupted during the canary; nothing more was sent") for line in lines
    ), lines
    summary = parse_json(stdout)
    assert summary["canary"] == {"size": 2, "refailed": [], "outcome": "not-processed"}
    assert (summary["succeeded"], summary["skipped"]) == (2, 4)
    assert replayed_ids(conn) == set(ids[:2])
    assert sorted(dlq_ids_on(bootstrap, topic, 2)) == sorted(ids[:2])
    (audit,) = audit_rows(conn)
    assert audit["outcome"] == "interrupted"
    assert audit["details"]["canary"]["outcome"] == "not-processed"
