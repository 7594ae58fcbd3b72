"""`dlqctl replay` at the CLI edge on real PostgreSQL and tansu: output, marks, refusals, audit."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.cli_helpers import CliEnv
from tests.factories import ACTOR, BASE_TIME, audit_rows, entry, insert_entries
from tests.kafka_helpers import create_topic, read_topic, unique_name
from tests.replay_helpers import (
    dlq_ids_on,
    parse_json,
    rows_by_id,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_replay_by_filter_publishes_the_exact_messages_and_marks_them(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    plain = entry(
        consumer="orders",
        event_payload={"b": 2, "a": "x, y", "n": [1.50, None, "é"]},
        error_message="TimeoutError: payments-api timed out",
    )
    recorded = entry(
        consumer="orders",
        source_topic=topic,
        source_partition=0,
        source_offset=41,
        event_key=b"order-17",
        event_raw=b"\xff\x00not json \x80",
        event_headers=[
            ["trace", b64(b"t-1")],
            ["dlq-id", b64(b"older-id")],
            ["trace", b64(b"t-2")],
            ["nothing", None],
            ["dlq-retry-count", b64(b"9")],
        ],
        retry_count=2,
        error_message="TimeoutError: again",
    )
    already = entry(
        consumer="orders",
        status="replayed",
        retry_count=1,
        error_message="TimeoutError: done before",
    )
    discarded = entry(consumer="orders", status="discarded", error_message="TimeoutError: junk")
    other_consumer = entry(consumer="payments", error_message="TimeoutError: elsewhere")
    other_error = entry(consumer="orders", error_message="KeyError: customer_id")
    insert_entries(conn, [plain, recorded, already, discarded, other_consumer, other_error])
    before = rows_by_id(conn)

    result = cli(
        "replay",
        "-c",
        "orders",
        "--error",
        "TIMEOUTERROR",
        "-o",
        "json",
        "--yes",
        env=cli_env(bootstrap, DLQCTL_TOPIC_MAP=json.dumps({"orders": topic})),
    )

    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout) == {
        "action": "replay",
        "dry_run": False,
        "matched": 2,
        "succeeded": 2,
        "failed": 0,
        "skipped": 0,
        "ineligible": 0,
        "failures": [],
        "outcome": "ok",
        "error": None,
        "topics": {topic: 2},
    }
    first, second = sorted(read_topic(bootstrap, topic, 2), key=lambda m: m.offset)
    assert first.key == str(plain["event_id"]).encode()
    assert first.value == b'{"a":"x, y","b":2,"n":[1.5,null,"\xc3\xa9"]}'
    assert first.headers == [
        ("dlq-id", str(plain["dlq_id"]).encode()),
        ("dlq-consumer", b"orders"),
        ("dlq-retry-count", b"1"),
    ]
    assert second.key == b"order-17"
    assert second.value == b"\xff\x00not json \x80"
    assert second.headers == [
        ("trace", b"t-1"),
        ("trace", b"t-2"),
        ("nothing", None),
        ("dlq-id", str(recorded["dlq_id"]).encode()),
        ("dlq-consumer", b"orders"),
        ("dlq-retry-count", b"3"),
    ]

    after = rows_by_id(conn)
    for row, retry_count in ((plain, 1), (recorded, 3)):
        marked = after[row["dlq_id"]]
        assert marked["status"] == "replayed"
        assert marked["retry_count"] == retry_count
        assert marked["status_changed_at"] is not None
        assert marked["status_changed_by"] == ACTOR
    for untouched in (already, discarded, other_consumer, other_error):
        assert after[untouched["dlq_id"]] == before[untouched["dlq_id"]]

    (audit,) = audit_rows(conn)
    assert audit["actor"] == ACTOR and audit["action"] == "replay" and audit["outcome"] == "ok"
    assert audit["filter"] == {"consumer": ["orders"], "error": "TIMEOUTERROR"}
    assert audit["counts"]["succeeded"] == 2 and audit["counts"]["matched"] == 2
    assert audit["details"]["topics"] == {topic: 2}
    history = cli("history", "-o", "json", env=cli_env(bootstrap))
    assert history.exit_code == 0, history.output
    assert parse_json(history.stdout)["items"][0]["action"] == "replay"


def test_replay_by_id_prefixes_needs_no_confirmation_and_counts_ineligible_ids(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    pending, replayed, untouched = insert_entries(
        conn,
        [
            entry(source_topic=topic),
            entry(status="replayed", source_topic=topic),
            entry(source_topic=topic),
        ],
    )

    result = cli(
        "replay",
        str(pending).replace("-", "")[:12],
        str(replayed),
        "-o",
        "json",
        env=cli_env(bootstrap),
    )

    assert result.exit_code == 0, result.output
    summary = parse_json(result.stdout)
    assert (summary["matched"], summary["succeeded"], summary["ineligible"]) == (1, 1, 1)
    assert dlq_ids_on(bootstrap, topic, 1) == [pending]
    statuses = {i: r["status"] for i, r in rows_by_id(conn).items()}
    assert statuses == {pending: "replayed", replayed: "replayed", untouched: "pending"}
    assert audit_rows(conn)[0]["ids"] == [pending]


def test_unknown_id_exits_3(cli_env: CliEnv, broker: Any, cli: Any) -> None:
    result = cli("replay", "abcdef0123", env=cli_env(broker.bootstrap_servers))
    assert result.exit_code == 3, result.output
    assert "abcdef0123" in result.stderr


def test_topic_flag_beats_the_source_topic_and_limit_takes_the_oldest(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    source, forced = create_topic(bootstrap), create_topic(bootstrap)
    rows = [
        entry(source_topic=source, failed_at=BASE_TIME - timedelta(minutes=i)) for i in range(5)
    ]
    insert_entries(conn, rows)
    oldest = [r["dlq_id"] for r in sorted(rows, key=lambda r: r["failed_at"])[:3]]

    result = cli(
        "replay",
        "--topic",
        forced,
        "--limit",
        "3",
        "--batch-size",
        "2",
        "-o",
        "json",
        "--yes",
        env=cli_env(bootstrap),
    )

    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout)["topics"] == {forced: 3}
    assert dlq_ids_on(bootstrap, forced, 3) == oldest  # in (failed_at, dlq_id) order
    assert read_topic(bootstrap, source, 0) == []
    replayed = {i for i, r in rows_by_id(conn).items() if r["status"] == "replayed"}
    assert replayed == set(oldest)


def test_statuses_given_with_s_are_the_eligible_ones(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    pending, discarded = insert_entries(
        conn, [entry(source_topic=topic), entry(source_topic=topic, status="discarded")]
    )
    result = cli("replay", "-s", "discarded", "-o", "json", "--yes", env=cli_env(bootstrap))
    assert result.exit_code == 0, result.output
    assert dlq_ids_on(bootstrap, topic, 1) == [discarded]
    assert {i: r["status"] for i, r in rows_by_id(conn).items()} == {
        pending: "pending",
        discarded: "replayed",
    }


def test_missing_target_topic_is_refused_before_anything_is_sent(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    insert_entries(
        conn,
        [
            entry(consumer="orders", source_topic=topic),
            entry(consumer="payments"),
            entry(consumer="audit-log"),
        ],
    )
    before = rows_by_id(conn)

    result = cli("replay", "--yes", env=cli_env(bootstrap))

    assert result.exit_code == 2, result.output
    assert "audit-log, payments" in result.stderr and "--topic" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert rows_by_id(conn) == before
    assert read_topic(bootstrap, topic, 0) == []
    assert audit_rows(conn) == []


def test_entry_too_large_for_a_message_is_refused_with_its_id(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    small = entry(source_topic=topic)
    big_payload = entry(source_topic=topic, event_payload={"blob": "x" * 6000})
    big_raw = entry(source_topic=topic, event_raw=bytes(range(256)) * 30)
    insert_entries(conn, [small, big_payload, big_raw])
    before = rows_by_id(conn)

    result = cli(
        "replay",
        "--yes",
        env=cli_env(bootstrap, DLQCTL_KAFKA_PRODUCER_CONFIG='{"message.max.bytes": 5000}'),
    )

    assert result.exit_code == 2, result.output
    assert "2 selected entries do not fit" in result.stderr
    assert str(big_payload["dlq_id"]) in result.stderr and str(big_raw["dlq_id"]) in result.stderr
    assert str(small["dlq_id"]) not in result.stderr
    assert "message.max.bytes" in result.stderr
    assert rows_by_id(conn) == before
    assert read_topic(bootstrap, topic, 0) == []


def test_dry_run_reports_per_consumer_and_topic_and_changes_nothing(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic, mapped = unique_name(), unique_name()
    insert_entries(
        conn,
        [
            entry(consumer="orders", source_topic=topic),
            entry(consumer="orders"),
            entry(consumer="billing"),
            entry(consumer="billing", status="replayed"),
        ],
    )
    before = rows_by_id(conn)
    topic_map = json.dumps({"orders": mapped, "billing": mapped})
    env = cli_env(bootstrap, DLQCTL_TOPIC_MAP=topic_map)

    as_json = cli("replay", "--dry-run", "-o", "json", env=env)
    as_table = cli("replay", "--dry-run", env=env)

    assert as_json.exit_code == 0, as_json.output
    assert parse_json(as_json.stdout) == {
        "action": "replay",
        "dry_run": True,
        "matched": 3,
        "succeeded": 3,
        "failed": 0,
        "skipped": 0,
        "ineligible": 0,
        "failures": [],
        "outcome": "ok",
        "error": None,
        "topics": {mapped: 2, topic: 1},
    }
    assert as_table.exit_code == 0, as_table.output
    lines = [" ".join(line.replace("│", " ").split()) for line in as_table.stdout.splitlines()]
    assert f"billing {mapped} 1" in lines and f"orders {mapped} 1" in lines
    assert f"orders {topic} 1" in lines
    assert "dry run" in as_table.stderr
    assert rows_by_id(conn) == before
    assert audit_rows(conn) == []


def test_refused_without_yes_off_a_terminal(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    insert_entries(conn, [entry(source_topic="t")])
    before = rows_by_id(conn)
    result = cli("replay", "-c", "orders", env=cli_env(broker.bootstrap_servers))
    assert result.exit_code == 2, result.output
    assert "--yes" in result.stderr
    assert rows_by_id(conn) == before
    assert audit_rows(conn) == []


@pytest.mark.parametrize(
    "args",
    [
        ["--batch-size", "0"],
        ["--batch-size", "10001"],
        ["--batch-size", "many"],
        ["--rate", "0"],
        ["--rate", "-5"],
        ["--rate", "nan"],
        ["--rate", "fast"],
        ["--limit", "0"],
        ["--topic", "has space"],
        ["--topic", ""],
        ["--since", "yesterday"],
        ["--canary", "0"],
        ["--canary", "some"],
        ["--canary-group", "g"],
        ["--canary-wait", "1m"],
        ["--canary", "2", "--canary-wait", "soon"],
        ["--canary", "2", "--canary-wait", "0s"],
        ["--canary", "2", "--canary-group", " "],
    ],
)
def test_garbage_options_exit_2(args: list[str], cli: Any) -> None:
    result = cli("replay", "--dry-run", *args, env={"DLQCTL_DATABASE_URL": "postgresql://x@/y"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_no_bootstrap_servers_is_a_settings_error(cli: Any) -> None:
    result = cli("replay", "--yes", env={"DLQCTL_DATABASE_URL": "postgresql://x@/y"})
    assert result.exit_code == 2, result.output
    assert "DLQCTL_KAFKA_BOOTSTRAP_SERVERS" in result.stderr


def test_missing_topic_gets_a_note_and_is_created_by_the_cluster(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = unique_name("auto")
    (only,) = insert_entries(conn, [entry()])
    result = cli("replay", "--topic", topic, "--yes", env=cli_env(bootstrap))
    assert result.exit_code == 0, result.output
    assert f"topic(s) {topic} do not exist yet" in result.stderr
    assert dlq_ids_on(bootstrap, topic, 1) == [only]


def test_nothing_selected_is_a_successful_empty_run(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    insert_entries(conn, [entry(status="replayed")])
    result = cli("replay", "-o", "json", "--yes", env=cli_env(broker.bootstrap_servers))
    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout)["matched"] == 0
    assert [a["outcome"] for a in audit_rows(conn)] == ["ok"]


def test_entries_held_by_another_transaction_are_skipped_not_failed(
    conn: Any, db_url: str, broker: Any, cli: Any, cli_env: CliEnv
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    ids = insert_entries(conn, [entry(source_topic=topic) for _ in range(5)])
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT 1 FROM dlq WHERE dlq_id = %s FOR UPDATE", (ids[2],))
        result = cli("replay", "--yes", "-o", "json", env=cli_env(bootstrap))
    assert result.exit_code == 0, result.output
    summary = parse_json(result.stdout)
    assert (summary["matched"], summary["succeeded"], summary["skipped"]) == (5, 4, 1)
    assert sorted(dlq_ids_on(bootstrap, topic, 4)) == sorted(ids[:2] + ids[3:])
    assert rows_by_id(conn)[ids[2]]["status"] == "pending"


def test_canary_options_name_what_is_wrong(cli: Any) -> None:
    env = {"DLQCTL_DATABASE_URL": "postgresql://x@/y"}
    result = cli("replay", "--canary-group", "g", "--yes", env=env)
    assert result.exit_code == 2
    assert "'--canary-group': goes only with --canary N" in result.stderr
    result = cli("replay", "--canary", "3", "--canary-wait", "soon", "--yes", env=env)
    assert result.exit_code == 2
    assert "'--canary-wait': 'soon' is not a duration such as 30s" in result.stderr


def test_a_canary_run_shows_the_canary_in_its_summary_table(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    insert_entries(conn, [entry(source_topic=topic) for _ in range(3)])

    result = cli("replay", "--canary", "1", "--canary-wait", "1s", "--yes", env=cli_env(bootstrap))

    assert result.exit_code == 0, result.output
    assert "canary: replaying the first 1 entries" in result.stderr
    assert "waiting 1s (no --canary-group)" in result.stderr
    assert "canary passed: none of the 1 entries failed again; replaying the rest" in result.stderr
    assert "outcome" in result.stdout and "passed" in result.stdout
    assert {r["status"] for r in rows_by_id(conn).values()} == {"replayed"}


def test_a_replay_without_its_audit_row_says_so_once(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    insert_entries(conn, [entry(consumer="orders", source_topic=topic)])
    conn.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN RAISE EXCEPTION 'permission denied for table dlq_actions'; END$$"
    )
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON dlq_actions FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
    r = cli("replay", "-c", "orders", "--yes", "-o", "json", env=cli_env(bootstrap))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["succeeded"] == 1
    assert r.stderr.strip().splitlines() == [
        "warning: the run could not be recorded in the audit log (dlq_actions)"
    ]
