"""Opening connections and translating psycopg errors into dlqctl errors, in one place."""

from __future__ import annotations

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

APPLICATION_NAME = "dlqctl"
DEFAULT_CONNECT_TIMEOUT = 10

Connection = psycopg.Connection[dict[str, Any]]


def describe_target(dsn: str) -> str:
    """host:port/dbname that a DSN (plus libpq's PG* variables) points at, never the password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        params = {}
    host = (
        params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "[local socket]"
    )
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER") or ""
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user or "postgres"
    return f"{host}:{port}/{dbname}"


def _conninfo(dsn: str, application_name: str) -> str:
    try:
        given = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"the database URL is not a valid libpq connection string: {first_line(exc)}"
        ) from None
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
