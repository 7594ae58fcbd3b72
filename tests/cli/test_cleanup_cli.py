"""`dlqctl discard` and `dlqctl purge` at the CLI edge: confirmation, output, exit codes."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dlqctl.embedded.process import free_port
from tests.cli_helpers import CliEnv, run_dlqctl_process, run_on_terminal
from tests.factories import audit_rows, entry, insert_entries

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


def count(conn: Any, condition: str = "true") -> int:
    return int(conn.execute(f"SELECT count(*) AS n FROM dlq WHERE {condition}").fetchone()["n"])


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


def test_purge_refuses_without_yes_off_a_terminal(cli: Any, conn: Any, cli_env: CliEnv) -> None:
    mixed(conn)
    before = count(conn)
    r = cli("purge", "--older-than", "30d", env=cli_env())
    assert r.exit_code == 2
    assert "--yes" in r.stderr
    assert count(conn) == before
    assert audit_rows(conn) == []


def test_purge_json_deletes_exactly_what_sql_counts(cli: Any, conn: Any, cli_env: CliEnv) -> None:
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
        env=cli_env(),
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
    [audit] = audit_rows(conn)
    assert (audit["action"], audit["outcome"]) == ("purge", "ok")
    assert audit["counts"]["succeeded"] == expected
    assert audit["filter"]["status"] == ["replayed", "discarded"]


def test_purge_dry_run_reports_and_writes_nothing(cli: Any, conn: Any, cli_env: CliEnv) -> None:
    mixed(conn)
    before = conn.execute("SELECT * FROM dlq ORDER BY dlq_id").fetchall()
    r = cli("purge", "--older-than", "30d", "--dry-run", "-o", "json", env=cli_env())
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
    assert audit_rows(conn) == []
    table = cli("purge", "--older-than", "30d", "--dry-run", env=cli_env())
    assert table.exit_code == 0, table.output
    assert "would be deleted" in table.stdout
    assert "payments" in table.stdout


def test_purge_never_deletes_pending_unless_spelled_out(
    cli: Any, conn: Any, cli_env: CliEnv
) -> None:
    mixed(conn)
    old_pending = count(conn, "status = 'pending' AND failed_at < now() - interval '30 days'")
    r = cli("purge", "--older-than", "1s", "--yes", env=cli_env())
    assert r.exit_code == 0, r.output
    assert count(conn, "status <> 'pending'") == 0
    assert count(conn, "status = 'pending'") == 12
    r = cli("purge", "--older-than", "30d", "-s", "PENDING", "--yes", "-o", "json", env=cli_env())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["succeeded"] == old_pending
    assert count(conn) == 12 - old_pending


@pytest.mark.parametrize("duration", ["7", "7x", "0d", "-1d", "1.5h", "", "99999999d"])
def test_purge_bad_duration_exits_2(cli: Any, cli_env: CliEnv, duration: str) -> None:
    r = cli("purge", "--older-than", duration, "--yes", env=cli_env())
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
def test_purge_bad_options_exit_2(cli: Any, cli_env: CliEnv, args: list[str], option: str) -> None:
    r = cli("purge", *args, "--yes", env=cli_env())
    assert r.exit_code == 2
    assert option in r.stderr
    assert "Traceback" not in r.output


def test_purge_quiet_prints_nothing_on_success(cli: Any, conn: Any, cli_env: CliEnv) -> None:
    mixed(conn)
    r = cli("purge", "--older-than", "30d", "--yes", "-q", env=cli_env())
    assert r.exit_code == 0, r.output
    assert (r.stdout, r.stderr) == ("", "")
    assert count(conn, "status <> 'pending' AND failed_at < now() - interval '30 days'") == 0
    assert len(audit_rows(conn)) == 1


def refuse_audit_rows(conn: Any) -> None:
    """Make every insert into dlq_actions fail (as for a role without the grants)."""
    conn.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN RAISE EXCEPTION 'permission denied for table dlq_actions'; END$$"
    )
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON dlq_actions FOR EACH ROW EXECUTE FUNCTION refuse()"
    )


@pytest.mark.parametrize("command", ["purge", "discard"])
def test_quiet_or_not_a_run_without_its_audit_row_says_so_once(
    cli: Any, conn: Any, cli_env: CliEnv, command: str
) -> None:
    mixed(conn)
    refuse_audit_rows(conn)
    if command == "purge":
        args = ["purge", "--older-than", "30d", "--yes", "-q"]
        done = "status <> 'pending' AND failed_at < now() - interval '30 days'"
    else:
        args = ["discard", "-c", "orders", "--yes"]
        done = "consumer = 'orders' AND status = 'pending'"
    r = cli(*args, env=cli_env())
    assert r.exit_code == 0, r.output
    assert r.stderr.strip().splitlines() == [
        "warning: the run could not be recorded in the audit log (dlq_actions)"
    ]
    assert count(conn, done) == 0  # the run did its work


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


def test_purge_table_output(cli: Any, conn: Any, cli_env: CliEnv) -> None:
    mixed(conn)
    r = cli("purge", "--older-than", "30d", "--yes", env=cli_env())
    assert r.exit_code == 0, r.output
    assert re.search(r"deleted\s+.\s+16", r.stdout), r.stdout
    assert "older than 30d: failed_at before" in r.stdout


# --- discard -----------------------------------------------------------------------------


def test_discard_explicit_ids_need_no_prompt_and_report_ineligible(
    cli: Any, conn: Any, cli_env: CliEnv
) -> None:
    pending, replayed, other = insert_entries(
        conn, [entry(), entry(status="replayed"), entry(consumer="billing")]
    )
    prefix = str(pending).replace("-", "")[:12]
    r = cli("discard", prefix, str(replayed), "--reason", "junk", "-o", "json", env=cli_env())
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["matched"], data["succeeded"], data["ineligible"]) == (1, 1, 1)
    assert data["ineligible_ids"] == [str(replayed)]
    rows = {r["dlq_id"]: r for r in conn.execute("SELECT * FROM dlq").fetchall()}
    assert rows[pending]["status"] == "discarded"
    assert rows[replayed]["status"] == "replayed"
    assert rows[other]["status"] == "pending"
    table = cli("discard", str(replayed), env=cli_env())
    assert table.exit_code == 0, table.output
    assert str(replayed) in table.stderr


def test_discard_by_filter_refuses_without_yes(cli: Any, conn: Any, cli_env: CliEnv) -> None:
    insert_entries(conn, [entry() for _ in range(3)])
    r = cli("discard", "-c", "orders", env=cli_env())
    assert r.exit_code == 2
    assert "--yes" in r.stderr
    assert count(conn, "status = 'pending'") == 3


def test_discard_filters_exact_counts(cli: Any, conn: Any, cli_env: CliEnv) -> None:
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
        env=cli_env(),
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["succeeded"] == len(expected) == 4
    discarded_now = {
        r["dlq_id"]
        for r in conn.execute("SELECT dlq_id FROM dlq WHERE status_changed_at IS NOT NULL")
    }
    assert discarded_now == expected


def test_discard_history_shows_actor_and_reason(cli: Any, conn: Any, cli_env: CliEnv) -> None:
    [dlq_id] = insert_entries(conn, [entry()])
    r = cli(
        "discard",
        str(dlq_id),
        "--reason",
        "poisoned by deploy 1.4.2",
        env=cli_env(DLQCTL_ACTOR="alice"),
    )
    assert r.exit_code == 0, r.output
    row = conn.execute("SELECT * FROM dlq WHERE dlq_id = %s", (dlq_id,)).fetchone()
    assert (row["status"], row["status_reason"], row["status_changed_by"]) == (
        "discarded",
        "poisoned by deploy 1.4.2",
        "alice",
    )
    history = cli("history", "-o", "json", env=cli_env())
    assert history.exit_code == 0, history.output
    [item] = json.loads(history.stdout)["items"]
    assert (item["action"], item["actor"], item["reason"]) == (
        "discard",
        "alice",
        "poisoned by deploy 1.4.2",
    )
    assert item["counts"]["succeeded"] == 1
    table = cli("history", env=cli_env(COLUMNS="200"))
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
    cli: Any, conn: Any, cli_env: CliEnv, args: list[str], code: int, message: str
) -> None:
    insert_entries(conn, [entry()])
    r = cli("discard", *args, "--yes", env=cli_env())
    assert r.exit_code == code, r.output
    assert message in r.stderr
    assert "Traceback" not in r.output
    assert count(conn, "status = 'pending'") == 1


def test_discard_dry_run_writes_nothing(cli: Any, conn: Any, cli_env: CliEnv) -> None:
    mixed(conn)
    before = conn.execute("SELECT * FROM dlq ORDER BY dlq_id").fetchall()
    r = cli("discard", "-c", "payments", "--dry-run", "-o", "json", env=cli_env())
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["matched"] == 6
    assert data["by_consumer_status"] == [{"consumer": "payments", "status": "pending", "count": 6}]
    assert conn.execute("SELECT * FROM dlq ORDER BY dlq_id").fetchall() == before
    assert audit_rows(conn) == []


# --- on a terminal -----------------------------------------------------------------------


def test_purge_prompt_says_pending_in_words_and_declining_changes_nothing(
    conn: Any, cli_env: CliEnv
) -> None:
    mixed(conn)
    before = count(conn)
    declined = run_on_terminal(["purge", "--older-than", "30d", "-s", "pending"], cli_env(), "n")
    assert declined.exit_code == 1, declined.text
    assert "PENDING" in declined.text and "never replayed" in declined.text
    assert "Delete 8 entries?" in declined.text
    assert count(conn) == before
    accepted = run_on_terminal(["purge", "--older-than", "30d", "-s", "pending"], cli_env(), "y")
    assert accepted.exit_code == 0, accepted.text
    assert count(conn) == before - 8
    assert "deleted" in accepted.stdout
    assert "deleting" in accepted.text  # the progress bar, on stderr because it is a terminal


def test_discard_prompt_shows_counts(conn: Any, cli_env: CliEnv) -> None:
    ids = insert_entries(conn, [entry(consumer="orders") for _ in range(3)])
    run = run_on_terminal(["discard", "-c", "orders"], cli_env(), "y")
    assert run.exit_code == 0, run.text
    assert "Discard 3 entries?" in run.text
    assert "orders" in run.text
    assert "discarding" in run.text  # the progress bar
    assert count(conn, "status = 'discarded'") == len(ids)


def test_json_ids_are_strings(cli: Any, conn: Any, cli_env: CliEnv) -> None:
    [dlq_id] = insert_entries(conn, [entry(status="discarded")])
    r = cli("discard", str(dlq_id), "-o", "json", env=cli_env())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ineligible_ids"] == [str(uuid.UUID(str(dlq_id)))]
