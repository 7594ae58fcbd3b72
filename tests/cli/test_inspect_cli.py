"""list / show / stats through the CLI on real PostgreSQL: every output format parses."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import uuid
from datetime import timedelta
from typing import Any

import pytest

from dlqctl.core.fingerprint import fingerprint
from tests.cli_helpers import CliEnv
from tests.factories import BASE_TIME, entry, insert_entries


@pytest.fixture
def rows(conn: Any) -> list[dict[str, Any]]:
    """35 entries, 20 of them failing at the same instant (pages end inside the tie)."""
    made = []
    for i in range(35):
        made.append(
            entry(
                consumer=("orders", "payments", 'we"ird\\con')[i % 3],
                status=("pending", "pending", "replayed", "discarded")[i % 4],
                failed_at=BASE_TIME + timedelta(seconds=0 if i < 20 else i),
                error_message=f"TimeoutError: call {i} took {i * 10}ms\n  at line {i}",
                error_fingerprint=None
                if i % 2
                else fingerprint(f"TimeoutError: call {i} took 5ms\n  at line 1"),
            )
        )
    insert_entries(conn, made)
    return made


def _newest_first(rows: list[dict[str, Any]]) -> list[str]:
    ordered = sorted(rows, key=lambda r: (r["failed_at"], r["dlq_id"]), reverse=True)
    return [str(r["dlq_id"]) for r in ordered]


def test_json_pages_follow_next_cursor(cli: Any, cli_env: CliEnv, rows: Any) -> None:
    seen: list[str] = []
    args = ["list", "-o", "json", "-n", "6"]
    for _ in range(20):
        result = cli(*args, env=cli_env())
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert set(data) == {"items", "next_cursor"}
        assert len(data["items"]) <= 6
        seen += [item["dlq_id"] for item in data["items"]]
        if data["next_cursor"] is None:
            break
        args = ["list", "-o", "json", "-n", "6", "--cursor", data["next_cursor"]]
    assert seen == _newest_first(rows)
    first = json.loads(cli("list", "-o", "json", "-n", "1", env=cli_env()).stdout)["items"][0]
    assert list(first) == [
        "dlq_id",
        "consumer",
        "event_id",
        "status",
        "retry_count",
        "failed_at",
        "error_message",
        "edited",
    ]
    assert first["edited"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", first["failed_at"])


def test_table_footer_prints_the_next_command(cli: Any, cli_env: CliEnv, rows: Any) -> None:
    result = cli("list", "-c", "orders", "--since", "2026-10-01", "-n", "4", env=cli_env())
    assert result.exit_code == 0, result.output
    expected = _newest_first([r for r in rows if r["consumer"] == "orders"])
    for dlq_id in expected[:4]:
        assert dlq_id in result.stdout
    assert expected[4] not in result.stdout
    footer = result.stderr.strip().splitlines()[-1]
    assert footer.startswith("4 entries, newest first. Next page: dlqctl list -c orders")
    command = shlex.split(footer.split("Next page: ", 1)[1])
    assert command[command.index("--since") + 1] == "2026-10-01T00:00:00Z"
    second = cli(*command[1:], env=cli_env())
    assert second.exit_code == 0, second.output
    for dlq_id in expected[4:8]:
        assert dlq_id in second.stdout


def test_table_shows_age_and_cuts_long_errors(cli: Any, cli_env: CliEnv, conn: Any) -> None:
    long_error = "ValueError: " + "x" * 500 + "\nTraceback line"
    # failed_at given: the factory's default moves on with every row other tests made.
    insert_entries(conn, [entry(error_message=long_error, failed_at=BASE_TIME)])
    result = cli("list", env=cli_env())
    assert result.exit_code == 0, result.output
    assert "2026-11-01 00:" in result.stdout
    assert " ago)" in result.stdout
    assert "x" * 500 not in result.stdout
    assert "Traceback line" not in result.stdout
    assert "…" in result.stdout
    assert result.stderr.strip() == "1 entry; no more"


def test_all_streams_every_match_in_each_format(cli: Any, cli_env: CliEnv, rows: Any) -> None:
    expected = _newest_first([r for r in rows if r["status"] == "pending"])
    as_json = cli("list", "--all", "-s", "pending", "-o", "json", env=cli_env())
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["next_cursor"] is None
    assert [i["dlq_id"] for i in data["items"]] == expected
    as_ndjson = cli("list", "--all", "-s", "pending", "-o", "ndjson", env=cli_env())
    assert [json.loads(line) for line in as_ndjson.stdout.splitlines()] == data["items"]
    as_csv = cli("list", "--all", "-s", "pending", "-o", "csv", env=cli_env())
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["dlq_id"] for r in parsed] == expected
    assert parsed[0]["error_message"] == data["items"][0]["error_message"]  # newlines kept
    table = cli("list", "--all", "-s", "pending", env=cli_env())
    assert table.exit_code == 0, table.output
    assert all(dlq_id in table.stdout for dlq_id in expected)
    assert table.stderr.strip() == f"{len(expected)} entries; no more"


def test_empty_results(cli: Any, cli_env: CliEnv) -> None:
    assert json.loads(cli("list", "-o", "json", env=cli_env()).stdout) == {
        "items": [],
        "next_cursor": None,
    }
    assert cli("list", "-o", "ndjson", env=cli_env()).stdout == ""
    header = cli("list", "-o", "csv", "--payload", env=cli_env()).stdout.splitlines()
    assert header == [
        "dlq_id,consumer,event_id,status,retry_count,failed_at,error_message,event_payload,"
        "source_topic,source_partition,source_offset,event_key,event_headers,"
        "status_changed_at,status_reason,edited"
    ]
    table = cli("list", env=cli_env())
    assert table.exit_code == 0 and table.stdout == ""
    assert table.stderr.strip() == "no matching entries"


def test_payload_is_a_json_value(cli: Any, cli_env: CliEnv, conn: Any) -> None:
    insert_entries(
        conn,
        [
            entry(
                event_payload={"order": {"id": 7, "tags": ["a"]}},
                source_topic="orders.v1",
                source_partition=1,
                source_offset=99,
                event_key=b"order-7",
                event_headers=[["trace", "dDE="], ["bin", "/w=="], ["empty", None]],
            )
        ],
    )
    result = cli("list", "--payload", "-o", "ndjson", env=cli_env())
    assert result.exit_code == 0, result.output
    item = json.loads(result.stdout)
    assert item["event_payload"] == {"order": {"id": 7, "tags": ["a"]}}
    assert item["source_topic"] == "orders.v1"
    assert (item["source_partition"], item["source_offset"]) == (1, 99)
    assert item["event_key"] == "order-7"
    assert item["event_headers"] == [["trace", "t1"], ["bin", "base64:/w=="], ["empty", None]]
    as_csv = list(
        csv.DictReader(io.StringIO(cli("list", "--payload", "-o", "csv", env=cli_env()).stdout))
    )
    assert json.loads(as_csv[0]["event_payload"]) == {"order": {"id": 7, "tags": ["a"]}}
    table = cli("list", "--payload", env=cli_env())
    assert '{"order":{"id":7,"tags":["a"]}}' in table.stdout


@pytest.mark.parametrize(
    ("option", "value", "matches"),
    [
        ("--consumer", "o'brien", ["o'brien"]),
        ("--consumer", 'say "hi"', ['say "hi"']),
        ("--consumer", "back\\slash", ["back\\slash"]),
        ("--consumer", "100%", ["100%"]),
        ("--consumer", "%", []),
        ("--consumer", "a_c", ["a_c"]),
        ("--consumer", "x'; DROP TABLE dlq; --", []),
        ("--error", "50%", ["50% done"]),
        ("--error", "%", ["100%", "50% done"]),
        ("--error", "_", ["a_c", "under_score"]),
        ("--error", "r_s", ["under_score"]),
        ("--error", "d_n", []),
        ("--error", "\\", ["back\\slash", "C:\\tmp"]),
        ("--error", "'q'", ["it's 'q'"]),
        ("--error", '"dq"', ['said "dq"']),
        ("--error", "UNDER", ["under_score"]),
    ],
)
def test_text_filters_are_literal_and_harmless(
    cli: Any, cli_env: CliEnv, conn: Any, option: str, value: str, matches: list[str]
) -> None:
    texts = [
        "o'brien",
        'say "hi"',
        "back\\slash",
        "100%",
        "a_c",
        "abc",
        "50% done",
        "under_score",
        "C:\\tmp",
        "it's 'q'",
        'said "dq"',
        "plain",
    ]
    insert_entries(conn, [entry(consumer=t, error_message=t) for t in texts])
    for command in ("list", "stats"):
        result = cli(command, option, value, "-o", "json", env=cli_env())
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        if command == "list":
            field = "consumer" if option == "--consumer" else "error_message"
            assert sorted(i[field] for i in data["items"]) == sorted(matches)
        else:
            assert data["total"] == len(matches)
    assert conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"] == len(texts)


def test_show_prints_every_column(cli: Any, cli_env: CliEnv, conn: Any) -> None:
    dlq_id = uuid.UUID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    error = "KeyError: 'sku'\nTraceback (most recent call last):\n  File \"h.py\", line 3"
    insert_entries(
        conn,
        [
            entry(
                dlq_id=dlq_id,
                consumer="orders",
                error_message=error,
                retry_count=2,
                event_payload={"sku": None, "items": [{"qty": 2}], "note": "[bold]x[/]"},
                source_topic="orders.v1",
                source_partition=0,
                source_offset=12,
                event_key=b"k",
                event_headers=[["dlq-id", "YWJj"]],
                event_raw=b'{"sku":null}',
                error_fingerprint="KeyError: <str>",
            )
        ],
    )
    conn.execute(
        "UPDATE dlq SET status_changed_at = %s, status_reason = 'fixed', status_changed_by = 'ann'",
        (BASE_TIME,),
    )
    as_json = cli("show", "0193A1B2C3D47E5F", "-o", "json", env=cli_env())
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["dlq_id"] == str(dlq_id)
    assert data["error_message"] == error
    assert data["event_payload"] == {"sku": None, "items": [{"qty": 2}], "note": "[bold]x[/]"}
    assert data["retry_count"] == 2
    assert data["source_topic"] == "orders.v1" and data["source_offset"] == 12
    assert data["event_key"] == "k"
    assert data["event_headers"] == [["dlq-id", "abc"]]
    assert data["status_changed_at"] == "2026-11-01T00:00:00Z"
    assert data["status_reason"] == "fixed"
    assert data["status_changed_by"] == "ann"
    assert data["event_raw"] == '{"sku":null}'
    assert data["error_fingerprint"] == "KeyError: <str>"
    as_ndjson = cli("show", str(dlq_id), "-o", "ndjson", env=cli_env())
    assert json.loads(as_ndjson.stdout) == data
    (as_csv,) = csv.DictReader(
        io.StringIO(cli("show", str(dlq_id), "-o", "csv", env=cli_env()).stdout)
    )
    assert list(as_csv) == list(data)
    assert json.loads(as_csv["event_payload"]) == data["event_payload"]
    assert as_csv["error_message"] == error
    table = cli("show", str(dlq_id), env=cli_env())
    assert table.exit_code == 0, table.output
    for text in (
        "orders.v1",
        "fixed",
        "ann",
        "dlq-id",
        "abc",
        "KeyError: <str>",
        'File "h.py", line 3',
        '"qty": 2',
        '"note": "[bold]x[/]"',
    ):
        assert text in table.stdout, text
    assert "\x1b" not in table.stdout


def test_show_ambiguous_and_unknown(cli: Any, cli_env: CliEnv, conn: Any) -> None:
    a = "0193a1b2-c3d4-7e5f-8a9b-000000000001"
    b = "0193a1b2-c3d4-7e5f-8a9b-000000000002"
    insert_entries(conn, [entry(dlq_id=uuid.UUID(a)), entry(dlq_id=uuid.UUID(b))])
    ambiguous = cli("show", "0193a1b2-c3d4", env=cli_env())
    assert ambiguous.exit_code == 2
    assert ambiguous.stdout == ""
    assert len(ambiguous.stderr.strip().splitlines()) == 1
    assert a in ambiguous.stderr and b in ambiguous.stderr
    unknown = cli("show", "ffffffff", env=cli_env())
    assert unknown.exit_code == 3
    assert unknown.stderr.strip() == "Error: no entry with id 'ffffffff'"


def test_stats_formats(cli: Any, cli_env: CliEnv, rows: list[dict[str, Any]]) -> None:
    as_json = cli("stats", "-o", "json", env=cli_env())
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["total"] == 35
    assert sum(c["count"] for c in data["by_consumer_status"]) == 35
    pending = [r for r in rows if r["status"] == "pending"]
    assert data["oldest_pending_failed_at"] == "2026-11-01T00:00:00Z"
    assert set(data["oldest_pending_by_consumer"]) == {r["consumer"] for r in pending}
    # Stored and computed fingerprints of the same shape form one group.
    assert data["error_groups"] == [
        {
            "fingerprint": "TimeoutError: call <n> took <n>ms\n  at line <n>",
            "count": 35,
            "example": "TimeoutError: call 0 took 0ms\n  at line 0",
        }
    ]
    metrics = cli("stats", "-o", "openmetrics", env=cli_env())
    assert metrics.exit_code == 0, metrics.output
    assert metrics.stdout.endswith("# EOF\n")
    assert 'dlq_entries{consumer="we\\"ird\\\\con",status="pending"}' in metrics.stdout
    as_csv = list(csv.reader(io.StringIO(cli("stats", "-o", "csv", env=cli_env()).stdout)))
    assert as_csv[0] == ["consumer", "status", "count"]
    assert sum(int(r[2]) for r in as_csv[1:]) == 35
    ndjson = [
        json.loads(line) for line in cli("stats", "-o", "ndjson", env=cli_env()).stdout.splitlines()
    ]
    assert ndjson == data["by_consumer_status"]
    table = cli("stats", "--top", "3", env=cli_env())
    assert table.exit_code == 0, table.output
    assert "orders" in table.stdout and "35" in table.stdout
    assert "top error groups" in table.stdout


@pytest.mark.parametrize("by", ["consumer", "status", "error", "hour", "day"])
def test_stats_by(cli: Any, cli_env: CliEnv, rows: Any, by: str) -> None:
    result = cli("stats", "--by", by, "-o", "json", env=cli_env())
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["by"] == by
    assert sum(b["count"] for b in data["breakdown"]) == 35
    table = cli("stats", "--by", by, env=cli_env())
    assert table.exit_code == 0, table.output
    if by in ("hour", "day"):
        assert "█" in table.stdout
        assert "2026-11-01" in table.stdout


def test_stats_on_an_empty_table(cli: Any, cli_env: CliEnv) -> None:
    result = cli("stats", env=cli_env())
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "no matching entries"
    metrics = cli("stats", "-o", "openmetrics", env=cli_env())
    assert metrics.stdout.splitlines()[-1] == "# EOF"
    assert "dlq_entries{" not in metrics.stdout


READS = [
    ["list"],
    ["list", "--all", "-o", "json"],
    ["list", "--all", "-o", "csv"],
    ["show", "01234567"],
    ["stats", "-o", "openmetrics"],
]


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_database_trouble_is_one_line_and_no_partial_output(
    cli: Any, empty_db_url: str, args: list[str]
) -> None:
    from dlqctl.embedded.process import free_port

    missing = cli(*args, env={"DLQCTL_DATABASE_URL": empty_db_url})
    assert missing.exit_code == 1
    assert missing.stdout == ""
    (line,) = missing.stderr.strip().splitlines()
    assert "dlqctl migrate" in line
    closed = f"postgresql://nobody:hunter2@127.0.0.1:{free_port()}/x"
    down = cli(*args, env={"DLQCTL_DATABASE_URL": closed})
    assert down.exit_code == 1
    assert down.stdout == ""
    (line,) = down.stderr.strip().splitlines()
    assert line.startswith("Error: cannot connect to PostgreSQL")
    assert "hunter2" not in line
