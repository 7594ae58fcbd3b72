"""`dlqctl discard` and `dlqctl purge` at the CLI edge: confirmation, output, exit codes."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dlqctl.embedded.process import free_port
from tests.cli_helpers import run_dlqctl_process
from tests.factories import entry, insert_entries

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=45)
RECENT = NOW - timedelta(days=2)
WRITE_KEYS = {
    "action",
    "dry_run",
    "matched",
    "succeeded",
    "failed",
    "skipped",
    "ineligible",
    "failures",
}


def env(db_url: str, **extra: str) -> dict[str, str]:
    return {"DLQCTL_DATABASE_URL": db_url, **extra}


def count(conn: Any, condition: str = "true") -> int:
    return int(conn.execute(f"SELECT count(*) AS n FROM dlq WHERE {condition}").fetchone()["n"])


def actions(conn: Any) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM dlq_actions ORDER BY id").fetchall()


def mixed(conn: Any) -> None:
    rows = [
        entry(consumer=c, status=s, failed_at=at, error_message=e)
        for c in ("orders", "payments")
        for s in ("pending", "replayed", "discarded")
        for at in (OLD, OLD - timedelta(days=20), RECENT)
        for e in ("TimeoutError: after 30s", "ValueError: unknown currency 'XYZ'")
    ]
    insert_entries(conn, rows)


# --- purge -------------------------------------------------------------------------------


def test_purge_refuses_without_yes_off_a_terminal(cli: Any, conn: Any, db_url: str) -> None:
    mixed(conn)
    before = count(conn)
    r = cli("purge", "--older-than", "30d", env=env(db_url))
    assert r.exit_code == 2
    assert "--yes" in r.stderr
    assert count(conn) == before
    assert actions(conn) == []


def test_purge_json_deletes_exactly_what_sql_counts(cli: Any, conn: Any, db_url: str) -> None:
    mixed(conn)
    condition = (
        "consumer = 'orders' AND status IN ('replayed', 'discarded')"
        " AND failed_at < now() - interval '30 days' AND error_message ILIKE '%currency%'"
    )
    expected = count(conn, condition)
    others = count(conn) - expected
    r = cli(
        "purge",
        "--older-than",
        "30d",
        "-c",
        "orders",
        "--error",
        "CURRENCY",
        "--yes",
        "--batch-size",
        "3",
        "-o",
        "json",
        env=env(db_url),
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert set(data) >= WRITE_KEYS
    assert (data["action"], data["dry_run"], data["matched"], data["succeeded"]) == (
        "purge",
        False,
        expected,
        expected,
    )
    assert (data["failed"], data["skipped"], data["ineligible"], data["failures"]) == (0, 0, 0, [])
    assert data["older_than"] == "30d"
    assert count(conn, condition) == 0
    assert count(conn) == others
    [audit] = actions(conn)
    assert (audit["action"], audit["outcome"]) == ("purge", "ok")
    assert audit["counts"]["succeeded"] == expected
    assert audit["filter"]["status"] == ["replayed", "discarded"]


def test_purge_dry_run_reports_and_writes_nothing(cli: Any, conn: Any, db_url: str) -> None:
    mixed(conn)
    before = conn.execute("SELECT * FROM dlq ORDER BY dlq_id").fetchall()
    r = cli("purge", "--older-than", "30d", "--dry-run", "-o", "json", env=env(db_url))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["dry_run"] is True
    assert data["matched"] == data["succeeded"] == 16
    assert data["by_consumer_status"] == [
        {"consumer": c, "status": s, "count": 4}
        for c in ("orders", "payments")
        for s in ("discarded", "replayed")
    ]
    oldest = OLD - timedelta(days=20)
    assert data["oldest_failed_at"] == oldest.isoformat().replace("+00:00", "Z")
    assert data["newest_failed_at"] == OLD.isoformat().replace("+00:00", "Z")
    assert conn.execute("SELECT * FROM dlq ORDER BY dlq_id").fetchall() == before
    assert actions(conn) == []
    table = cli("purge", "--older-than", "30d", "--dry-run", env=env(db_url))
    assert table.exit_code == 0, table.output
    assert "would be deleted" in table.stdout
    assert "payments" in table.stdout


def test_purge_never_deletes_pending_unless_spelled_out(cli: Any, conn: Any, db_url: str) -> None:
    mixed(conn)
    old_pending = count(conn, "status = 'pending' AND failed_at < now() - interval '30 days'")
    r = cli("purge", "--older-than", "1s", "--yes", env=env(db_url))
    assert r.exit_code == 0, r.output
    assert count(conn, "status <> 'pending'") == 0
    assert count(conn, "status = 'pending'") == 12
    r = cli("purge", "--older-than", "30d", "-s", "PENDING", "--yes", "-o", "json", env=env(db_url))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["succeeded"] == old_pending
    assert count(conn) == 12 - old_pending


@pytest.mark.parametrize("duration", ["7", "7x", "0d", "-1d", "1.5h", "", "99999999d"])
def test_purge_bad_duration_exits_2(cli: Any, db_url: str, duration: str) -> None:
    r = cli("purge", "--older-than", duration, "--yes", env=env(db_url))
    assert r.exit_code == 2
    error_lines = [line for line in r.stderr.splitlines() if "Error" in line]
    assert len(error_lines) == 1, r.stderr
    assert "--older-than" in error_lines[0]
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--older-than", "30d", "-s", "done"], "--status"),
        (["--older-than", "30d", "--batch-size", "0"], "--batch-size"),
        (["--older-than", "30d", "--since", "yesterday"], "--since"),
        ([], "--older-than"),
    ],
)
def test_purge_bad_options_exit_2(cli: Any, db_url: str, args: list[str], option: str) -> None:
    r = cli("purge", *args, "--yes", env=env(db_url))
    assert r.exit_code == 2
    assert option in r.stderr
    assert "Traceback" not in r.output


def test_purge_quiet_prints_nothing_on_success(cli: Any, conn: Any, db_url: str) -> None:
    mixed(conn)
    r = cli("purge", "--older-than", "30d", "--yes", "-q", env=env(db_url))
    assert r.exit_code == 0, r.output
    assert (r.stdout, r.stderr) == ("", "")
    assert count(conn, "status <> 'pending' AND failed_at < now() - interval '30 days'") == 0
    assert len(actions(conn)) == 1


def test_purge_quiet_failure_is_one_line_and_exit_1() -> None:
    url = f"postgresql://cron:n0t-shown@127.0.0.1:{free_port()}/events"
    r = run_dlqctl_process(
        "purge", "--older-than", "30d", "--yes", "-q", env={"DLQCTL_DATABASE_URL": url}
    )
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: cannot connect to PostgreSQL")
    assert "n0t-shown" not in r.stderr


def test_purge_table_output(cli: Any, conn: Any, db_url: str) -> None:
    mixed(conn)
    r = cli("purge", "--older-than", "30d", "--yes", env=env(db_url))
    assert r.exit_code == 0, r.output
    assert re.search(r"deleted\s+.\s+16", r.stdout), r.stdout
    assert "older than 30d: failed_at before" in r.stdout


# --- discard -----------------------------------------------------------------------------


def test_discard_explicit_ids_need_no_prompt_and_report_ineligible(
    cli: Any, conn: Any, db_url: str
) -> None:
    pending, replayed, other = insert_entries(
        conn, [entry(), entry(status="replayed"), entry(consumer="billing")]
    )
    prefix = str(pending).replace("-", "")[:12]
    r = cli("discard", prefix, str(replayed), "--reason", "junk", "-o", "json", env=env(db_url))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["matched"], data["succeeded"], data["ineligible"]) == (1, 1, 1)
    assert data["ineligible_ids"] == [str(replayed)]
    rows = {r["dlq_id"]: r for r in conn.execute("SELECT * FROM dlq").fetchall()}
    assert rows[pending]["status"] == "discarded"
    assert rows[replayed]["status"] == "replayed"
    assert rows[other]["status"] == "pending"
    table = cli("discard", str(replayed), env=env(db_url))
    assert table.exit_code == 0, table.output
    assert str(replayed) in table.stderr


def test_discard_by_filter_refuses_without_yes(cli: Any, conn: Any, db_url: str) -> None:
    insert_entries(conn, [entry() for _ in range(3)])
    r = cli("discard", "-c", "orders", env=env(db_url))
    assert r.exit_code == 2
    assert "--yes" in r.stderr
    assert count(conn, "status = 'pending'") == 3


def test_discard_filters_exact_counts(cli: Any, conn: Any, db_url: str) -> None:
    mixed(conn)
    condition = "status = 'pending' AND error_message ILIKE '%%timeout%%' AND failed_at >= %s"
    since = NOW - timedelta(days=50)
    expected = {
        r["dlq_id"]
        for r in conn.execute(f"SELECT dlq_id FROM dlq WHERE {condition}", (since,)).fetchall()
    }
    r = cli(
        "discard",
        "--error",
        "timeout",
        "--since",
        since.isoformat(),
        "--yes",
        "-o",
        "json",
        env=env(db_url),
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["succeeded"] == len(expected) == 4
    discarded_now = {
        r["dlq_id"]
        for r in conn.execute("SELECT dlq_id FROM dlq WHERE status_changed_at IS NOT NULL")
    }
    assert discarded_now == expected


def test_discard_history_shows_actor_and_reason(cli: Any, conn: Any, db_url: str) -> None:
    [dlq_id] = insert_entries(conn, [entry()])
    r = cli(
        "discard",
        str(dlq_id),
        "--reason",
        "poisoned by deploy 1.4.2",
        env=env(db_url, DLQCTL_ACTOR="alice"),
    )
    assert r.exit_code == 0, r.output
    row = conn.execute("SELECT * FROM dlq WHERE dlq_id = %s", (dlq_id,)).fetchone()
    assert (row["status"], row["status_reason"], row["status_changed_by"]) == (
        "discarded",
        "poisoned by deploy 1.4.2",
        "alice",
    )
    history = cli("history", "-o", "json", env=env(db_url))
    assert history.exit_code == 0, history.output
    [item] = json.loads(history.stdout)["items"]
    assert (item["action"], item["actor"], item["reason"]) == (
        "discard",
        "alice",
        "poisoned by deploy 1.4.2",
    )
    assert item["counts"]["succeeded"] == 1
    table = cli("history", env=env(db_url, COLUMNS="200"))
    assert "alice" in table.stdout
    assert "poisoned by deploy" in table.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-s", "replayed", "-c", "orders"], 2, "only pending"),
        ([], 2, "at least one filter"),
        (["ffffffff"], 3, "no entry with id"),
        (["abc"], 2, "too short"),
        (["-c", "orders", "--reason", ""], 2, "--reason"),
    ],
)
def test_discard_usage_errors(
    cli: Any, conn: Any, db_url: str, args: list[str], code: int, message: str
) -> None:
    insert_entries(conn, [entry()])
    r = cli("discard", *args, "--yes", env=env(db_url))
    assert r.exit_code == code, r.output
    assert message in r.stderr
    assert "Traceback" not in r.output
    assert count(conn, "status = 'pending'") == 1


def test_discard_dry_run_writes_nothing(cli: Any, conn: Any, db_url: str) -> None:
    mixed(conn)
    before = conn.execute("SELECT * FROM dlq ORDER BY dlq_id").fetchall()
    r = cli("discard", "-c", "payments", "--dry-run", "-o", "json", env=env(db_url))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["matched"] == 6
    assert data["by_consumer_status"] == [{"consumer": "payments", "status": "pending", "count": 6}]
    assert conn.execute("SELECT * FROM dlq ORDER BY dlq_id").fetchall() == before
    assert actions(conn) == []


# --- on a terminal -----------------------------------------------------------------------


def run_on_terminal(args: list[str], db_url: str, answer: str) -> tuple[int, str, str]:
    """Run dlqctl with stdin and stderr on a pseudo-terminal; answer its prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlqctl", *args],
        stdin=slave,
        stderr=slave,
        stdout=subprocess.PIPE,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("DLQCTL_", "PG"))},
            "DLQCTL_DATABASE_URL": db_url,
            "COLUMNS": "120",
        },
    )
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(master, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    assert proc.stdout is not None
    with proc.stdout:
        stdout = proc.stdout.read().decode()
    proc.wait(30)
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    return proc.returncode, stdout, text


def test_purge_prompt_says_pending_in_words_and_declining_changes_nothing(
    conn: Any, db_url: str
) -> None:
    mixed(conn)
    before = count(conn)
    code, _, terminal = run_on_terminal(
        ["purge", "--older-than", "30d", "-s", "pending"], db_url, "n"
    )
    assert code == 1, terminal
    assert "PENDING" in terminal and "never replayed" in terminal
    assert "Delete 8 entries?" in terminal
    assert count(conn) == before
    code, stdout, terminal = run_on_terminal(
        ["purge", "--older-than", "30d", "-s", "pending"], db_url, "y"
    )
    assert code == 0, terminal
    assert count(conn) == before - 8
    assert "deleted" in stdout
    assert "deleting" in terminal  # the progress bar, on stderr because it is a terminal


def test_discard_prompt_shows_counts(conn: Any, db_url: str) -> None:
    ids = insert_entries(conn, [entry(consumer="orders") for _ in range(3)])
    code, _, terminal = run_on_terminal(["discard", "-c", "orders"], db_url, "y")
    assert code == 0, terminal
    assert "Discard 3 entries?" in terminal
    assert "orders" in terminal
    assert "discarding" in terminal  # the progress bar
    assert count(conn, "status = 'discarded'") == len(ids)


def test_json_ids_are_strings(cli: Any, conn: Any, db_url: str) -> None:
    [dlq_id] = insert_entries(conn, [entry(status="discarded")])
    r = cli("discard", str(dlq_id), "-o", "json", env=env(db_url))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ineligible_ids"] == [str(uuid.UUID(str(dlq_id)))]
