"""What dlqctl.db hands the use cases instead of psycopg: sessions, release, batch errors."""

from __future__ import annotations

from typing import Any

import pytest

from dlqctl.core.errors import DatabaseError
from dlqctl.db.connection import (
    batch_errors,
    connect,
    describe_target,
    read_only_session,
    release,
    usable,
)
from tests.factories import entry, insert_entries


def test_a_read_only_session_cannot_write(conn: Any, db_url: str) -> None:
    insert_entries(conn, [entry()])
    with (
        pytest.raises(DatabaseError, match="read-only transaction"),
        read_only_session(db_url) as session,
    ):
        session.execute("DELETE FROM dlq")
    assert conn.execute("SELECT count(*) AS n FROM dlq").fetchone()["n"] == 1


def test_read_only_session_options(db_url: str) -> None:
    with read_only_session(db_url, snapshot=True, statement_timeout=2) as session:
        row = session.execute(
            "SELECT current_setting('statement_timeout') AS timeout,"
            " current_setting('transaction_isolation') AS isolation,"
            " current_setting('transaction_read_only') AS read_only"
        ).fetchone()
    assert row == {"timeout": "2s", "isolation": "repeatable read", "read_only": "on"}


def test_batch_errors_name_the_target_and_release_frees_a_broken_connection(
    conn: Any, db_url: str
) -> None:
    run = connect(db_url, application_name="dlqctl test run")
    try:
        run.execute("SELECT 1")  # a transaction is open
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'dlqctl test run'"
        )
        with pytest.raises(DatabaseError) as failed, batch_errors(describe_target(db_url)):
            run.execute("SELECT 1")
        assert failed.value.message.endswith(f" at {describe_target(db_url)}")
        assert not usable(run)
        release(run)  # nothing to roll back any more, and no error
    finally:
        run.close()
