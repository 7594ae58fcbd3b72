"""Migrations on real PostgreSQL: from empty, on top of the original table, re-runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dlqctl.db.migrations import available_migrations, migrate
from tests.integration.schema import dump_schema

SNAPSHOT = Path(__file__).with_name("schema_snapshot.txt")
ROOT = Path(__file__).resolve().parents[2]

# The table as the original system created it, verbatim, before any dlqctl migration
# (uuidv7() exists on 18+ only).
ORIGINAL_DDL = """
CREATE TABLE IF NOT EXISTS dlq (
  dlq_id        UUID PRIMARY KEY DEFAULT {uuid_default},
  consumer      VARCHAR(255) NOT NULL,
  event_id      UUID NOT NULL,
  event_payload JSONB NOT NULL,
  error_message TEXT NOT NULL,
  failed_at     TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  retry_count   INTEGER NOT NULL DEFAULT 0,
  status        VARCHAR(50) NOT NULL DEFAULT 'pending',
  CONSTRAINT dlq_status_check CHECK (status IN ('pending', 'replayed', 'discarded'))
);
CREATE INDEX IF NOT EXISTS idx_dlq_consumer  ON dlq (consumer);
CREATE INDEX IF NOT EXISTS idx_dlq_status    ON dlq (status);
CREATE INDEX IF NOT EXISTS idx_dlq_failed_at ON dlq (failed_at);
"""

ORIGINAL_COLUMNS = (
    "dlq_id, consumer, event_id, event_payload, error_message, failed_at, retry_count, status"
)


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def _server_version(url: str) -> int:
    with _connect(url) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]


def _original_definition(conn: psycopg.Connection[Any]) -> list[Any]:
    columns = conn.execute(
        "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_name = 'dlq' AND column_name = ANY(%s)"
        " ORDER BY ordinal_position",
        (ORIGINAL_COLUMNS.split(", "),),
    ).fetchall()
    check = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'dlq_status_check'"
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'dlq'"
        " AND indexname IN ('dlq_pkey', 'idx_dlq_consumer', 'idx_dlq_status', 'idx_dlq_failed_at')"
        " ORDER BY indexname"
    ).fetchall()
    return [columns, check, indexes]


def test_migrate_from_empty_matches_snapshot(empty_db_url: str) -> None:
    result = migrate(empty_db_url)
    assert result.applied == [m.name for m in available_migrations()]
    assert result.pending == []
    with _connect(empty_db_url) as conn:
        schema = dump_schema(conn)
        default = conn.execute(
            "SELECT column_default FROM information_schema.columns"
            " WHERE table_name = 'dlq' AND column_name = 'dlq_id'"
        ).fetchone()[0]  # type: ignore[index]
    if os.environ.get("DLQCTL_TEST_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(schema)
    assert schema == SNAPSHOT.read_text(), (
        "schema drifted: rerun with DLQCTL_TEST_UPDATE_SNAPSHOT=1"
    )
    expected = "uuidv7()" if _server_version(empty_db_url) >= 180000 else "gen_random_uuid()"
    assert default == expected


def test_migrate_keeps_the_original_table_and_its_rows(empty_db_url: str) -> None:
    uuid_default = "uuidv7()" if _server_version(empty_db_url) >= 180000 else "gen_random_uuid()"
    with _connect(empty_db_url) as conn:
        conn.execute(ORIGINAL_DDL.format(uuid_default=uuid_default))
        conn.execute(
            "INSERT INTO dlq (consumer, event_id, event_payload, error_message, failed_at,"
            " retry_count, status)"
            " SELECT 'svc-' || (i % 3), gen_random_uuid(), jsonb_build_object('n', i, 's', 'é\"'),"
            " 'boom ' || i, now() - i * interval '1 minute', i % 4,"
            " (ARRAY['pending','replayed','discarded'])[1 + i % 3]"
            " FROM generate_series(1, 500) AS i"
        )
        before_rows = conn.execute(f"SELECT {ORIGINAL_COLUMNS} FROM dlq ORDER BY dlq_id").fetchall()
        before_definition = _original_definition(conn)

    result = migrate(empty_db_url)
    assert "0001_original_dlq" in result.applied

    with _connect(empty_db_url) as conn:
        after_rows = conn.execute(f"SELECT {ORIGINAL_COLUMNS} FROM dlq ORDER BY dlq_id").fetchall()
        assert after_rows == before_rows
        assert _original_definition(conn) == before_definition
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO dlq (consumer, event_id, event_payload, error_message, status)"
                " VALUES ('x', gen_random_uuid(), '{}', 'e', 'weird')"
            )
        # The original system's INSERT (without the new columns) keeps working.
        conn.execute(
            "INSERT INTO dlq (consumer, event_id, event_payload, error_message)"
            " VALUES ('svc-0', gen_random_uuid(), '{}', 'later failure')"
        )


def test_rerun_is_a_no_op(empty_db_url: str) -> None:
    migrate(empty_db_url)
    with _connect(empty_db_url) as conn:
        schema = dump_schema(conn)
    assert migrate(empty_db_url).applied == []
    with _connect(empty_db_url) as conn:
        assert dump_schema(conn) == schema
        count = conn.execute("SELECT count(*) FROM dlqctl_schema_migrations").fetchone()
        assert count == (len(available_migrations()),)


def test_dry_run_lists_pending_and_changes_nothing(empty_db_url: str) -> None:
    result = migrate(empty_db_url, dry_run=True)
    assert result.applied == []
    assert result.pending == [m.name for m in available_migrations()]
    with _connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('dlq')").fetchone() == (None,)
        assert conn.execute("SELECT to_regclass('dlqctl_schema_migrations')").fetchone() == (None,)


def test_interrupted_concurrent_index_is_rebuilt(empty_db_url: str) -> None:
    migrate(empty_db_url)
    with _connect(empty_db_url) as conn:
        # What a CREATE INDEX CONCURRENTLY killed half-way leaves behind: an invalid index.
        conn.execute(
            "UPDATE pg_index SET indisvalid = false"
            " WHERE indexrelid = 'idx_dlq_status_failed'::regclass"
        )
        conn.execute("DELETE FROM dlqctl_schema_migrations WHERE name = '0004_dlq_indexes'")
    assert migrate(empty_db_url).applied == ["0004_dlq_indexes"]
    with _connect(empty_db_url) as conn:
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_dlq_status_failed'::regclass"
        ).fetchone()
    assert valid == (True,)


def test_concurrent_migrate_runs_both_succeed(empty_db_url: str) -> None:
    errors: list[BaseException] = []
    applied: list[list[str]] = []

    def run() -> None:
        try:
            applied.append(migrate(empty_db_url).applied)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(len(a) for a in applied) == [0, len(available_migrations())]


def test_migrate_as_a_role_that_does_not_own_dlq(empty_db_url: str) -> None:
    with _connect(empty_db_url) as conn:
        conn.execute(ORIGINAL_DDL.format(uuid_default="gen_random_uuid()"))
        conn.execute("DROP ROLE IF EXISTS dlqctl_not_owner")
        conn.execute("CREATE ROLE dlqctl_not_owner LOGIN")
        conn.execute("GRANT ALL ON SCHEMA public TO dlqctl_not_owner")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON dlq TO dlqctl_not_owner")
    url = empty_db_url.replace("postgres@", "dlqctl_not_owner@")
    try:
        from dlqctl.core.errors import MigrationError

        with pytest.raises(MigrationError, match="owns table dlq.*dlqctl_not_owner"):
            migrate(url)
    finally:
        with _connect(empty_db_url) as conn:
            conn.execute("DROP OWNED BY dlqctl_not_owner")
            conn.execute("DROP ROLE dlqctl_not_owner")


def test_built_wheel_ships_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("dlqctl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    for migration in available_migrations():
        assert f"dlqctl/migrations/{migration.name}.sql" in names
    found = subprocess.run(
        [sys.executable, "-c", "from dlqctl.db.migrations import migrations_dir as d; print(d())"],
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert found == str(tmp_path / "site" / "dlqctl" / "migrations")
