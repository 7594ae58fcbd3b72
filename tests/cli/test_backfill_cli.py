"""`dlqctl backfill`: fingerprints of rows other writers stored, for fast stats."""

from __future__ import annotations

import json
from typing import Any

from dlqctl.core.fingerprint import fingerprint
from tests.cli_helpers import CliEnv
from tests.factories import audit_rows, entry, insert_entries


def _other_writers_rows(conn: Any, n: int) -> None:
    messages = ["TimeoutError: after 30s", "KeyError: 'customer_id'", "HTTP 503 from 10.0.0.7"]
    insert_entries(conn, [entry(error_message=f"{messages[i % 3]} #{i}") for i in range(n)])


def _missing(conn: Any) -> int:
    row = conn.execute("SELECT count(*) AS n FROM dlq WHERE error_fingerprint IS NULL").fetchone()
    return int(row["n"])


def test_dry_run_counts_and_changes_nothing(cli: Any, conn: Any, cli_env: CliEnv) -> None:
    _other_writers_rows(conn, 12)
    r = cli("backfill", "--dry-run", "-o", "json", env=cli_env())
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["action"] == "backfill"
    assert (summary["dry_run"], summary["matched"]) == (True, 12)
    assert _missing(conn) == 12
    assert audit_rows(conn) == []


def test_backfill_stores_every_fingerprint_and_one_audit_row(
    cli: Any, conn: Any, cli_env: CliEnv
) -> None:
    _other_writers_rows(conn, 25)
    r = cli("backfill", "--batch-size", "4", "-o", "json", env=cli_env())
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert (summary["matched"], summary["succeeded"], summary["skipped"]) == (25, 25, 0)
    assert (summary["outcome"], summary["error"]) == ("ok", None)
    assert _missing(conn) == 0
    rows = conn.execute("SELECT error_message, error_fingerprint FROM dlq").fetchall()
    assert all(r["error_fingerprint"] == fingerprint(r["error_message"]) for r in rows)
    [record] = audit_rows(conn)
    assert record["action"] == "backfill"
    assert record["counts"]["succeeded"] == 25
    again = cli("backfill", "-o", "json", env=cli_env())
    assert json.loads(again.stdout)["matched"] == 0


def test_quiet_prints_nothing(cli: Any, conn: Any, cli_env: CliEnv) -> None:
    _other_writers_rows(conn, 3)
    r = cli("backfill", "-q", env=cli_env())
    assert r.exit_code == 0, r.output
    assert (r.stdout, r.stderr) == ("", "")
    assert _missing(conn) == 0


def test_bad_batch_size_exits_2(cli: Any, cli_env: CliEnv) -> None:
    for value in ("0", "10001", "x"):
        r = cli("backfill", "--batch-size", value, env=cli_env())
        assert r.exit_code == 2, r.output
        assert "--batch-size" in r.stderr
