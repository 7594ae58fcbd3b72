"""Secrets never appear in any output (docs/configuration.md, "Secrets").

Every password below holds one character that libpq treats specially in some form of
connection string, between two pieces no ordinary text contains. Each is written in
every form a DSN can take (URI percent-encoded and not, a URI parameter, key=value quoted
and not, PGPASSWORD) and pushed through every output path: ``config`` in every format,
connection errors (an unreachable server, and a real server that rejects the password),
``--debug``, the audit table, the logs of ``consume`` and the export lines of
``demo --keep``. The secret may appear in none of them, in any of its forms (as written,
percent-encoded or decoded, JSON-escaped) or in pieces.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from dlqctl.db.migrations import migrate
from dlqctl.embedded.postgres import EmbeddedPostgres
from dlqctl.embedded.process import free_port
from dlqctl.embedded.tansu import EmbeddedBroker
from tests.cli_helpers import CliRun, run_dlqctl_process, start_dlqctl

PASSWORDS = {
    "question": "Kq7?xT9m-Vb2",
    "hash": "Kq7#xT9m-Vb2",
    "slash": "Kq7/xT9m-Vb2",
    "at": "Kq7@xT9m-Vb2",
    "percent": "Kq7%xT9m-Vb2",
    "percent-hex": "Kq7%41T9m-Vb2",
    "colon": "Kq7:xT9m-Vb2",
    "single-quote": "Kq7'xT9m-Vb2",
    "double-quote": 'Kq7"xT9m-Vb2',
    "space": "Kq7 xT9m-Vb2",
}
FORMS = ("uri", "uri-unencoded", "uri-param", "keyvalue", "keyvalue-unquoted", "pgpassword")
DATABASE = "matrix_db"
WRONG_ROLE = "mx_wrong"
SUPERUSER_PASSWORD = "Su9-Zr4q-Lw8p"

# Every librdkafka property kind that holds a secret, each with a value of its own.
KAFKA_SECRETS = {
    "sasl.password": "Kf1sasl-Qw9z",
    "ssl.key.password": "Kf2keyp-Qw9z",
    "ssl.keystore.password": "Kf3stor-Qw9z",
    "ssl.key.pem": "-----BEGIN PRIVATE KEY-----\nMIIEvKf4pem-Qw9z\n-----END PRIVATE KEY-----",
    "ssl.certificate.pem": "-----BEGIN CERTIFICATE-----\nMIIEvKf5crt-Qw9z\n-----END CERT-----",
    "sasl.oauthbearer.config": "principal=Kf6prin extension_x=Kf6oauth-Qw9z",
    "sasl.oauthbearer.client.secret": "Kf7clis-Qw9z",
    "sasl.oauthbearer.assertion.private.key.passphrase": "Kf8phrase-Qw9z",
    "sasl.oauthbearer.assertion.private.key.pem": "-----BEGIN PRIVATE KEY-----\nKf9apem-Qw9z\n"
    "-----END PRIVATE KEY-----",
    "sasl.oauthbearer.token.endpoint.url": "https://idp.example/Kf10tok-Qw9z",
}
# Properties librdkafka does not know (config shows them; a client would refuse them).
OTHER_SECRETS = {
    "x.sasl.jaas.config": "Kf11jaas.Login Kf11opt=Kf11jaas-Qw9z;",
    "x.aws.credential": "Kf12cred-Qw9z",
}


def role(name: str) -> str:
    return f"mx_{name.replace('-', '_')}"


def kv_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dsn(name: str, form: str, host: str, port: int, user: str | None = None) -> tuple[str, dict]:
    """The connection string of ``form`` carrying password ``name``, and extra environment."""
    password, user = PASSWORDS[name], user or role(name)
    where = f"{host}:{port}/{DATABASE}"
    if form == "uri":
        return f"postgresql://{user}:{quote(password, safe='')}@{where}", {}
    if form == "uri-unencoded":
        return f"postgresql://{user}:{password}@{where}", {}
    if form == "uri-param":
        return f"postgresql://{user}@{where}?password={quote(password, safe='')}", {}
    base = f"host={host} port={port} user={user} dbname={DATABASE}"
    if form == "keyvalue":
        return f"{base} password={kv_quote(password)}", {}
    if form == "keyvalue-unquoted":
        return f"{base} password={password}", {}
    assert form == "pgpassword"
    return f"postgresql://{user}@{where}", {"PGPASSWORD": password}


def forms_of(secret: str) -> set[str]:
    """The secret as written, percent-encoded or decoded, JSON-escaped, and its pieces."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        unquote(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=True)[1:-1],
    }
    pieces = {p for f in list(forms) for p in re.split(r"[^A-Za-z0-9+-]+", f)}
    structure = {"https", "-----BEGIN", "-----END", "PRIVATE", "KEY-----", "CERT-----"}
    return {f for f in forms | pieces if len(f) >= 3 and f not in structure}


def assert_no_secret(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        for form in forms_of(secret):
            assert form not in text, f"{where}: {form!r} (of {secret!r}) leaked:\n{text}"


ALL_KAFKA = {**KAFKA_SECRETS, **OTHER_SECRETS}


def kafka_env(properties: dict[str, str]) -> dict[str, str]:
    half = dict(list(properties.items())[: len(properties) // 2])
    rest = {k: v for k, v in properties.items() if k not in half}
    return {
        "DLQCTL_KAFKA_CONFIG": json.dumps(half),
        "DLQCTL_KAFKA_PRODUCER_CONFIG": json.dumps(rest),
        "DLQCTL_KAFKA_CONSUMER_CONFIG": json.dumps(
            {"sasl.password": KAFKA_SECRETS["sasl.password"]}
        ),
    }


@pytest.fixture(scope="module")
def pw_server() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL that checks passwords over TCP, with one role per matrix password and one
    role whose password is none of them."""
    bindir = os.environ.get("DLQCTL_TEST_PG_BINDIR")
    server = EmbeddedPostgres(bindir=Path(bindir) if bindir else None, password=SUPERUSER_PASSWORD)
    server.start()
    try:
        with psycopg.connect(server.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
            for name, password in PASSWORDS.items():
                admin.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role(name)), sql.Literal(password)
                    )
                )
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'none-of-them-1'").format(
                    sql.Identifier(WRONG_ROLE)
                )
            )
        migrate(server.url(DATABASE))
        with psycopg.connect(server.url(DATABASE), autocommit=True) as db:
            roles = [sql.Identifier(role(n)) for n in PASSWORDS]
            grantees = sql.SQL(", ").join(roles)
            db.execute(sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA public TO {}").format(grantees))
        yield server
    finally:
        server.stop()


def runs_as_written(text: str, name: str) -> bool:
    """Whether libpq itself reads the matrix password (and its role) from this string."""
    try:
        params = conninfo_to_dict(text)
    except psycopg.Error:
        return False
    return params.get("password") == PASSWORDS[name] and params.get("user") == role(name)


CASES = [(n, f) for n in PASSWORDS for f in FORMS]


def check(run: CliRun, secrets: list[str], where: str) -> None:
    assert "Traceback" not in run.stderr or "--debug" in where, run.stderr
    assert_no_secret(run.stdout + run.stderr, secrets, where)


@pytest.mark.parametrize(("name", "form"), CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_config_and_connection_errors_never_show_the_password(
    cli: Any, name: str, form: str
) -> None:
    secrets = [PASSWORDS[name], *ALL_KAFKA.values()]
    closed = free_port()
    url, extra = dsn(name, form, "127.0.0.1", closed)
    env = {"DLQCTL_DATABASE_URL": url, **extra, **kafka_env(ALL_KAFKA)}

    for args in (["config"], ["config", "-o", "json"]):
        shown = cli(*args, env=env)
        assert shown.exit_code == 0, shown.output
        check(shown, secrets, " ".join(args))
    as_flag = cli("--database-url", url, "config", "-o", "json", env=extra)
    check(as_flag, secrets, "--database-url … config")

    unreachable = cli("list", env=env)
    assert unreachable.exit_code in (1, 2), unreachable.output
    [line] = unreachable.stderr.strip().splitlines()
    check(unreachable, secrets, "unreachable")
    assert f"{role(name)}:" not in line  # no user-info in a connection error
    if unreachable.exit_code == 1:
        assert f"at 127.0.0.1:{closed}/{DATABASE}" in line, line

    debug = cli("--debug", "list", env=env)
    assert debug.exit_code == unreachable.exit_code
    check(debug, secrets, "--debug unreachable")


@pytest.mark.db
@pytest.mark.parametrize(("name", "form"), CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_a_real_server_and_the_audit_log_never_show_the_password(
    cli: Any, pw_server: EmbeddedPostgres, name: str, form: str
) -> None:
    secrets = [PASSWORDS[name], SUPERUSER_PASSWORD, *ALL_KAFKA.values()]
    port = pw_server.port

    # The password of another role: the server rejects it.
    url, extra = dsn(name, form, "127.0.0.1", port, user=WRONG_ROLE)
    rejected = cli("list", env={"DLQCTL_DATABASE_URL": url, **extra})
    assert rejected.exit_code in (1, 2), rejected.output
    check(rejected, secrets, "wrong password")
    debug = cli("--debug", "list", env={"DLQCTL_DATABASE_URL": url, **extra})
    check(debug, secrets, "--debug wrong password")

    # The role's own password: it connects wherever libpq reads the password as written.
    url, extra = dsn(name, form, "127.0.0.1", port)
    env = {"DLQCTL_DATABASE_URL": url, **extra, **kafka_env(KAFKA_SECRETS)}
    listed = cli("list", env=env)
    expected_ok = runs_as_written(url, name) or form == "pgpassword"
    assert (listed.exit_code == 0) == expected_ok, listed.output
    check(listed, secrets, "list")
    discarded = cli("discard", "--yes", "-c", "nobody", "--reason", "matrix", "-o", "json", env=env)
    check(discarded, secrets, "discard")
    if expected_ok:
        assert discarded.exit_code == 0, discarded.output
        with psycopg.connect(pw_server.url(DATABASE)) as db:
            rows = db.execute("SELECT to_jsonb(a)::text FROM dlq_actions a").fetchall()
        assert rows
        assert_no_secret("\n".join(r[0] for r in rows), secrets, "dlq_actions")


# A subprocess each (a few seconds): the forms libpq misreads or rejects, and two it reads.
CONSUME_CASES = [
    ("slash", "uri-unencoded", "text"),
    ("at", "uri-unencoded", "json"),
    ("space", "keyvalue-unquoted", "text"),
    ("double-quote", "uri", "json"),
    ("percent", "pgpassword", "text"),
]


@pytest.mark.db
@pytest.mark.parametrize(
    ("name", "form", "log_format"), CONSUME_CASES, ids=["-".join(c) for c in CONSUME_CASES]
)
def test_consume_logs_never_show_the_password(
    pw_server: EmbeddedPostgres, broker: EmbeddedBroker, name: str, form: str, log_format: str
) -> None:
    secrets = [PASSWORDS[name], *KAFKA_SECRETS.values()]
    # Another role's password: the database refuses every connection while it runs.
    url, extra = dsn(name, form, "127.0.0.1", pw_server.port, user=WRONG_ROLE)
    env = {
        "DLQCTL_DATABASE_URL": url,
        "DLQCTL_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        **extra,
        **kafka_env(KAFKA_SECRETS),
    }
    args = ["consume", "-c", "matrix", "-t", "matrix-topic", "--handler", "json:loads"]
    proc = start_dlqctl(*args, "--log-format", log_format, env=env)
    stderr = _until_database_line(proc)
    stdout, rest = proc.communicate(timeout=60)
    stderr += rest
    assert_no_secret(stdout + stderr, secrets, f"consume --log-format {log_format}")
    assert "Traceback" not in stderr
    if proc.returncode == 0:
        assert "database is unreachable" in stderr, stderr
    else:
        assert proc.returncode == 2, stderr  # a URL libpq cannot read as written: refused


def _until_database_line(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """stderr until the consumer logged that the database is unreachable (then SIGTERM), or
    until it exits."""
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            return seen  # it exited
        seen += line
        if "database is unreachable" in line:
            proc.send_signal(signal.SIGTERM)
            return seen
    proc.kill()
    raise AssertionError(f"consume logged nothing about the database within {timeout}s: {seen}")


@pytest.mark.db
def test_demo_keep_exports_never_show_the_demo_password(pw_server: EmbeddedPostgres) -> None:
    from dlqctl.usecases.demo import demo_settings, export_lines

    settings = demo_settings(pw_server.url(DATABASE), "127.0.0.1:9")
    url = pw_server.url_with_passfile(DATABASE)  # what `demo --keep` exports
    exports = export_lines(settings, database_url=url)
    assert_no_secret("\n".join(exports), [SUPERUSER_PASSWORD], "demo --keep exports")
    env = {}
    for line in exports:
        key, _, value = line.removeprefix("export ").partition("=")
        (env[key],) = shlex.split(value)
    # The exported URL still reaches the server from another shell.
    listed = run_dlqctl_process("list", "-o", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert_no_secret(listed.stdout + listed.stderr, [SUPERUSER_PASSWORD], "list from the exports")
