"""show / list / stats with later failures and edits, on real PostgreSQL: the attempts the
consumer's writer links back, an edit made with `dlqctl edit`, in table and machine output."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from typer.testing import CliRunner

from dlqctl.cli.app import app
from dlqctl.db.writer import DlqWriter
from tests.cli_helpers import CliEnv, run_dlqctl_process, run_on_terminal
from tests.factories import ACTOR, entry, insert_entries
from tests.fakes import FakeMessage

CONSUMER = "orders-projector"
RAW = b'{"event_id": "3f2c9a6e-1b7d-4c1e-9a57-0d2b8e6f4a10", "amount": 12.50, "currency": "XXX"}'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _replay_marked(conn: Any, dlq_id: uuid.UUID) -> None:
    """What a replay leaves (the message itself is what the writer reads back below)."""
    conn.execute(
        "UPDATE dlq SET status = 'replayed', retry_count = retry_count + 1,"
        " status_changed_at = now() WHERE dlq_id = %s",
        (dlq_id,),
    )


def _fails_again(writer: DlqWriter, dlq_id: uuid.UUID, offset: int, error: str) -> None:
    """The consumer reads the replayed message back and fails on it again."""
    headers = [
        ("dlq-id", str(dlq_id).encode()),
        ("dlq-consumer", CONSUMER.encode()),
        ("dlq-retry-count", b"1"),
    ]
    message = FakeMessage(RAW, "orders.v1", 1, offset, headers_=headers)
    writer.write(CONSUMER, RAW, ValueError(error), message)


@pytest.fixture
def refailed(conn: Any, db_url: str, cli_env: CliEnv) -> dict[str, uuid.UUID]:
    """An entry that failed again after each of two replays and was then edited, one that
    was replayed and stayed so, and a plain pending one of another consumer."""
    with DlqWriter(db_url) as writer:
        stored = writer.write(CONSUMER, RAW, ValueError("unknown currency 'XXX'"), FakeMessage(RAW))
        dlq_id = stored.dlq_id
        for n, offset in ((1, 40), (2, 41)):
            _replay_marked(conn, dlq_id)
            _fails_again(writer, dlq_id, offset, f"unknown currency 'XXX' (try {n})")
    replayed, plain = insert_entries(
        conn,
        [
            entry(consumer=CONSUMER, status="replayed", retry_count=1),
            entry(consumer="billing", error_message="KeyError: 'customer'"),
        ],
    )
    fixed = RAW.replace(b"XXX", b"EUR")
    args = ["edit", str(dlq_id), "--from-file", "-", "--set-header", "currency=EUR"]
    result = CliRunner().invoke(app, args, env=cli_env(), input=fixed)
    assert result.exit_code == 0, result.output
    return {"refailed": dlq_id, "replayed": replayed, "plain": plain}


def test_show_json_has_attempts_oldest_first_and_the_edit(
    refailed: dict[str, uuid.UUID], cli: Any, cli_env: CliEnv
) -> None:
    result = cli("show", str(refailed["refailed"]), "-o", "json", env=cli_env())
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["status"], data["retry_count"]) == ("pending", 2)
    assert data["status_reason"] == "failed again after replay 2"
    assert data["event_payload"]["currency"] == "XXX"  # the original stays
    assert data["attempts"] == [
        {
            "attempt": 1,
            "failed_at": data["attempts"][0]["failed_at"],
            "error_message": "ValueError: unknown currency 'XXX' (try 1)",
            "source_topic": "orders.v1",
            "source_partition": 1,
            "source_offset": 40,
        },
        {
            "attempt": 2,
            "failed_at": data["attempts"][1]["failed_at"],
            "error_message": "ValueError: unknown currency 'XXX' (try 2)",
            "source_topic": "orders.v1",
            "source_partition": 1,
            "source_offset": 41,
        },
    ]
    assert data["attempts"][0]["failed_at"] <= data["attempts"][1]["failed_at"]
    edited = data["edited"]
    assert edited["by"] == ACTOR and edited["at"].endswith("Z")
    assert edited["value"] == json.loads(RAW.replace(b"XXX", b"EUR"))
    assert edited["headers"] == [["currency", "EUR"]]
    assert edited["parts"] == ["value", "headers"]

    plain = json.loads(cli("show", str(refailed["plain"]), "-o", "json", env=cli_env()).stdout)
    assert (plain["attempts"], plain["edited"]) == ([], None)


def test_show_table_diffs_the_edit_and_lists_attempts(
    refailed: dict[str, uuid.UUID], cli_env: CliEnv
) -> None:
    piped = run_dlqctl_process("show", str(refailed["refailed"]), env=cli_env())
    assert piped.returncode == 0, piped.stderr
    text = piped.stdout
    assert "\x1b" not in text
    assert f"edited by {ACTOR}" in text
    assert '-  "currency": "XXX"' in text and '+  "currency": "EUR"' in text
    assert "--- original value" in text and "+++ edited value" in text
    assert "+currency: EUR" in text
    assert "failed again after replay (2)" in text
    assert "unknown currency 'XXX' (try 2)" in text
    assert "orders.v1[1]@41" in text

    terminal = run_on_terminal(["show", str(refailed["refailed"])], cli_env(), stdout_too=True)
    assert terminal.exit_code == 0, terminal.text
    assert '+  "currency": "EUR"' in terminal.text
    added = terminal.screen.split('+  "currency": "EUR"')[0].rsplit("\n", 1)[-1]
    assert "\x1b[32m" in added  # the added line is green


def test_list_marks_edited_entries_and_shows_retries(
    refailed: dict[str, uuid.UUID], cli: Any, cli_env: CliEnv
) -> None:
    items = json.loads(cli("list", "-o", "json", env=cli_env()).stdout)["items"]
    edited = {i["dlq_id"]: i["edited"] for i in items}
    assert edited == {
        str(refailed["refailed"]): True,
        str(refailed["replayed"]): False,
        str(refailed["plain"]): False,
    }
    detailed = json.loads(cli("list", "--payload", "-o", "json", env=cli_env()).stdout)["items"]
    assert [i["edited"] for i in detailed if i["dlq_id"] == str(refailed["refailed"])] == [True]

    table = cli("list", env=cli_env())
    assert table.exit_code == 0, table.output
    line = next(row for row in table.stdout.splitlines() if str(refailed["refailed"]) in row)
    assert "pending ✎" in line and "  2  " in line
    assert "✎ edited: replay sends the edited version" in table.stderr

    again = json.loads(cli("list", "--failed-again", "-o", "json", env=cli_env()).stdout)
    assert [i["dlq_id"] for i in again["items"]] == [str(refailed["refailed"])]
    twice = json.loads(cli("list", "--min-retries", "2", "-o", "json", env=cli_env()).stdout)
    assert [i["dlq_id"] for i in twice["items"]] == [str(refailed["refailed"])]
    once = cli("list", "--min-retries", "1", "-s", "replayed", "-o", "ndjson", env=cli_env())
    assert [json.loads(x)["dlq_id"] for x in once.stdout.splitlines()] == [
        str(refailed["replayed"])
    ]


def test_list_pages_keep_the_retry_filters(conn: Any, cli: Any, cli_env: CliEnv) -> None:
    insert_entries(conn, [entry(consumer="c", retry_count=3) for _ in range(3)])
    insert_entries(conn, [entry(consumer="c", retry_count=0) for _ in range(2)])
    first = cli("list", "--min-retries", "3", "-n", "2", env=cli_env())
    assert first.exit_code == 0, first.output
    command = first.stderr.strip().splitlines()[-1].split("Next page: ", 1)[1]
    assert "--min-retries 3" in command
    args = command.split()[1:]
    rest = cli(*args, "-o", "json", env=cli_env())
    assert [i["retry_count"] for i in json.loads(rest.stdout)["items"]] == [3]


def test_stats_failed_again_filter_breakdown_and_metrics(
    refailed: dict[str, uuid.UUID], cli: Any, cli_env: CliEnv
) -> None:
    data = json.loads(cli("stats", "-o", "json", env=cli_env()).stdout)
    assert data["total"] == 3
    assert data["failed_again"] == {
        "entries": 1,
        "attempts": 2,
        "by_consumer": {CONSUMER: {"entries": 1, "attempts": 2}},
    }

    only = json.loads(cli("stats", "--failed-again", "-o", "json", env=cli_env()).stdout)
    assert only["by_consumer_status"] == [{"consumer": CONSUMER, "status": "pending", "count": 1}]
    assert only["error_groups"][0]["example"] == "ValueError: unknown currency 'XXX' (try 2)"
    none = json.loads(
        cli("stats", "--failed-again", "-c", "billing", "-o", "json", env=cli_env()).stdout
    )
    assert (none["total"], none["failed_again"]["entries"]) == (0, 0)

    retries = json.loads(cli("stats", "--by", "retries", "-o", "json", env=cli_env()).stdout)
    assert retries["breakdown"] == [
        {"key": "0", "count": 1},
        {"key": "1", "count": 1},
        {"key": "2", "count": 1},
    ]
    at_least = json.loads(
        cli("stats", "--min-retries", "1", "--by", "retries", "-o", "json", env=cli_env()).stdout
    )
    assert [b["key"] for b in at_least["breakdown"]] == ["1", "2"]
    csv_rows = cli("stats", "--by", "retries", "-o", "csv", env=cli_env()).stdout.splitlines()
    assert csv_rows == ["retries,count", "0,1", "1,1", "2,1"]

    table = cli("stats", env=cli_env())
    assert table.exit_code == 0, table.output
    assert "failed again" in table.stdout
    assert "1 entry failed again after a replay (2 later failures)" in table.stderr

    metrics = cli("stats", "-o", "openmetrics", env=cli_env()).stdout.splitlines()
    assert "# TYPE dlq_refailures gauge" in metrics
    assert f'dlq_refailures{{consumer="{CONSUMER}"}} 2' in metrics
    assert 'dlq_refailures{consumer="billing"} 0' in metrics
    assert metrics[-1] == "# EOF"


def test_refailures_count_up_by_one_per_later_failure(
    refailed: dict[str, uuid.UUID], db_url: str, conn: Any, cli: Any, cli_env: CliEnv
) -> None:
    """What increase() sees: each failure after a replay adds one to dlq_refailures."""

    def gauge() -> int:
        lines = cli("stats", "-o", "openmetrics", env=cli_env()).stdout.splitlines()
        (line,) = [x for x in lines if x.startswith(f'dlq_refailures{{consumer="{CONSUMER}"}}')]
        return int(line.rsplit(" ", 1)[1])

    assert gauge() == 2
    with DlqWriter(db_url) as writer:
        _replay_marked(conn, refailed["refailed"])
        _fails_again(writer, refailed["refailed"], 42, "still XXX")
        _fails_again(writer, refailed["refailed"], 42, "still XXX")  # re-delivered: one
    assert gauge() == 3
