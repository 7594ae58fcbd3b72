"""Opening connections and translating psycopg errors into dlqctl errors, in one place.

The layers above see only what this module hands out: sessions (``session``,
``read_only_session``), dlqctl errors (``translate_errors``, ``batch_errors``) and
``release``; none of them imports psycopg (see docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from dlqctl.core.errors import (
    ConfigError,
    DatabaseError,
    DatabaseUnavailable,
    SchemaMissing,
    first_line,
)
from dlqctl.core.secrets import misread_uri, without_credentials

APPLICATION_NAME = "dlqctl"
DEFAULT_CONNECT_TIMEOUT = 10

Connection = psycopg.Connection[dict[str, Any]]

_SET_STATEMENT_TIMEOUT = """
SELECT set_config('statement_timeout', %(milliseconds)s, false)
"""


def describe_target(dsn: str) -> str:
    """host:port/dbname that a DSN (plus libpq's PG* variables) points at, never who connects
    or with what password: the user-info of a URI is cut off first, however libpq reads it."""
    try:
        params = conninfo_to_dict(without_credentials(dsn))
    except psycopg.Error:
        params = {}
    try:
        user = conninfo_to_dict(dsn).get("user")
    except psycopg.Error:
        user = None
    host = (
        params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "[local socket]"
    )
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = user or os.environ.get("PGUSER") or ""
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user or "postgres"
    return f"{host}:{port}/{dbname}"


def _misread(dsn: str, params: dict[str, Any]) -> bool:
    """A URI whose password has an unencoded '/' or '@' that libpq took for the start of the
    database name or the host (libpq then connects somewhere else, or echoes the pieces)."""
    if not misread_uri(dsn):
        return False
    port = str(params.get("port") or "")
    return (
        "@" in str(params.get("host") or "")
        or "@" in str(params.get("dbname") or "")
        or not all(p.strip().isdigit() for p in port.split(",") if port)
    )


def _conninfo(dsn: str, application_name: str) -> str:
    try:
        given = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"the database URL is not a valid libpq connection string: {first_line(exc)}"
        ) from None
    if _misread(dsn, given):
        raise ConfigError(
            "the database URL has a '/' or '@' in its password, which libpq reads as the"
            " start of the database name or the host: percent-encode them ('/' as %2F,"
            " '@' as %40)"
        )
    extra: dict[str, Any] = {}
    if "connect_timeout" not in given and "PGCONNECT_TIMEOUT" not in os.environ:
        extra["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
    if "application_name" not in given and "PGAPPNAME" not in os.environ:
        extra["application_name"] = application_name
    return make_conninfo(dsn, **extra)


def connect(
    dsn: str, *, autocommit: bool = False, application_name: str = APPLICATION_NAME
) -> Connection:
    """Open a connection; an unreachable server becomes one clear DatabaseUnavailable."""
    conninfo = _conninfo(dsn, application_name)
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {describe_target(dsn)}: {_reason(exc)}"
            " (check DLQCTL_DATABASE_URL and that the server is running)"
        ) from None


def accepts_connections(dsn: str, *, timeout: int = 2) -> bool:
    """Whether the server at ``dsn`` accepts a connection now (a readiness probe)."""
    try:
        psycopg.connect(dsn, connect_timeout=timeout).close()
    except psycopg.OperationalError:
        return False
    return True


def _reason(exc: psycopg.OperationalError) -> str:
    # libpq says 'connection to server at "h", port p failed: <reason>'; we name the target.
    text = first_line(exc)
    return text.rsplit("failed: ", 1)[1] if "failed: " in text else text


@contextmanager
def translate_errors(target: str = "PostgreSQL") -> Iterator[None]:
    """Turn psycopg errors raised inside into dlqctl errors with an exit code."""
    try:
        yield
    except (
        pg_errors.UndefinedTable,
        pg_errors.UndefinedColumn,
        pg_errors.UndefinedFunction,
    ) as exc:
        raise SchemaMissing(
            f"{first_line(exc)}: the dlqctl schema is missing or outdated; run `dlqctl migrate`"
        ) from None
    except pg_errors.InsufficientPrivilege as exc:
        raise DatabaseError(
            f"permission denied: {first_line(exc)} (check the role in DLQCTL_DATABASE_URL)"
        ) from None
    except pg_errors.QueryCanceled as exc:
        raise DatabaseError(f"query cancelled: {first_line(exc)}") from None
    except pg_errors.LockNotAvailable as exc:
        raise DatabaseError(f"could not lock: {first_line(exc)}; try again") from None
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"lost the connection to {target}: {first_line(exc)}") from None
    except psycopg.Error as exc:
        raise DatabaseError(f"database error: {first_line(exc)}") from None


@contextmanager
def session(
    dsn: str, *, autocommit: bool = False, application_name: str = APPLICATION_NAME
) -> Iterator[Connection]:
    """A connection whose psycopg errors are translated, closed on exit."""
    conn = connect(dsn, autocommit=autocommit, application_name=application_name)
    try:
        with translate_errors(describe_target(dsn)):
            yield conn
    finally:
        conn.close()


@contextmanager
def read_only_session(
    dsn: str,
    *,
    snapshot: bool = False,
    application_name: str = APPLICATION_NAME,
    statement_timeout: float | None = None,
) -> Iterator[Connection]:
    """A session whose transactions cannot write.

    ``snapshot``: every query of a transaction sees the same snapshot (REPEATABLE READ);
    ``statement_timeout``: seconds after which the server cancels a statement.
    """
    with session(dsn, application_name=application_name) as conn:
        conn.read_only = True
        if snapshot:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        if statement_timeout is not None:
            milliseconds = str(max(1, round(statement_timeout * 1000)))
            conn.execute(_SET_STATEMENT_TIMEOUT, {"milliseconds": milliseconds})
        yield conn


def usable(conn: Connection) -> bool:
    """Whether the connection is still open and not broken (a failed run's may be neither)."""
    return not conn.closed and not conn.broken


def release(conn: Connection) -> None:
    """Roll back whatever the connection holds (a claimed batch's locks), whatever its state."""
    with contextlib.suppress(psycopg.Error):  # a broken connection holds nothing any more
        conn.rollback()


@contextmanager
def batch_errors(target: str) -> Iterator[None]:
    """Inside a batch of a run that reports a database failure in its summary instead of
    stopping with it: a psycopg error becomes DatabaseError("<what failed> at <target>")."""
    try:
        yield
    except psycopg.Error as exc:
        raise DatabaseError(f"{first_line(exc)} at {target}") from None
