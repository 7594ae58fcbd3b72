"""Hostile input through a real process: arguments that are not UTF-8 (bytes argv, as a
shell passes $'\\xff'), and a reader that closes the pipe (`dlqctl list --all | head`)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tests.cli_helpers import CliEnv, process_env

BAD = b"\xff"
ID = b"0123456789abcdef"

BAD_ARGUMENTS = {
    "list -c": [b"list", b"-c", BAD],
    "list --error": [b"list", b"--error", b"time" + BAD],
    "list --error=": [b"list", b"--error=" + BAD],
    "list --since": [b"list", b"--since", BAD],
    "list --cursor": [b"list", b"--cursor", BAD],
    "stats -c": [b"stats", b"-c", BAD],
    "show id": [b"show", ID + BAD],
    "discard --reason": [b"discard", ID, b"--reason", b"bad " + BAD + b" deploy"],
    "discard -c": [b"discard", b"-c", BAD, b"--yes"],
    "purge -c": [b"purge", b"--older-than", b"30d", b"-c", BAD, b"--yes"],
    "replay --topic": [b"replay", ID, b"--topic", BAD, b"--yes"],
    "replay id": [b"replay", BAD, b"--yes"],
    "history --action": [b"history", b"--action", BAD],
    "--profile": [b"--profile", BAD, b"config"],
    "--database-url": [b"--database-url", b"postgresql://u:Kq7-secret@h/" + BAD, b"list"],
    "--database-url=": [b"--database-url=postgresql://u:Kq7-secret@h/" + BAD, b"list"],
    "unknown option": [b"list", b"--" + BAD],
    "consume -c": [b"consume", b"-c", BAD, b"-t", b"orders", b"--handler", b"json:loads"],
}


def run(
    argv: list[bytes], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable.encode(), b"-m", b"dlqctl", *argv],
        env=process_env(env),
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("argv", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_an_argument_that_is_not_utf8_exits_2_with_one_line(
    cli_env: CliEnv, broker: Any, argv: list[bytes]
) -> None:
    # A reachable database and broker: nothing else may fail first. consume would run (and
    # die on its first failed event) if its name were not refused at start.
    result = run(argv, cli_env(broker.bootstrap_servers))
    stderr = result.stderr.decode("utf-8", "backslashreplace")
    assert result.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ") and "not valid UTF-8" in lines[0], stderr
    if b"Kq7-secret" in b"".join(argv):
        assert "Kq7-secret" not in stderr and "not shown" in lines[0]
    else:
        assert "\\xff" in lines[0]  # shown escaped, so the line itself is valid text
    assert "bug" not in stderr and "Traceback" not in stderr
    assert result.stdout == b""


@pytest.mark.parametrize("name", ["DLQCTL_DATABASE_URL", "DLQCTL_ACTOR", "DLQCTL_TOPIC_MAP"])
def test_a_setting_that_is_not_utf8_exits_2_without_showing_it(cli_env: CliEnv, name: str) -> None:
    env = {k.encode(): v.encode() for k, v in process_env(cli_env()).items()}
    env[name.encode()] = env.get(name.encode(), b'{"orders": "t"}') + BAD
    result = subprocess.run(
        [sys.executable, "-m", "dlqctl", "discard", "-c", "nobody", "--yes"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = result.stderr.decode("utf-8", "backslashreplace")
    assert result.returncode == 2, stderr
    assert stderr.strip().splitlines() == [
        f"Error: the environment variable {name} is not valid UTF-8 text"
    ]


FORMATS = ["table", "json", "ndjson", "csv"]
# (rows, bytes the reader takes before it closes): before anything is written, whatever the
# size; or after some of an output far larger than a pipe holds, while dlqctl still streams
# rows from the server. Either way dlqctl cannot finish writing: it must stop with 141.
PIPE_CASES = [(1, 0), (400, 0), (4000, 0), (4000, 100), (4000, 70_000)]


@pytest.mark.parametrize(("rows", "read_first"), PIPE_CASES)
def test_a_closed_pipe_stops_list_quietly_with_141(
    conn: Any, cli_env: CliEnv, rows: int, read_first: int
) -> None:
    # Plain SQL: the factories' sequence (and so their timestamps) stays where it is.
    conn.execute(
        "INSERT INTO dlq (consumer, event_id, event_payload, error_message)"
        " SELECT 'orders', gen_random_uuid(), jsonb_build_object('n', g), 'ValueError: ' || g"
        " FROM generate_series(1, %s) AS g",
        (rows,),
    )
    for output in FORMATS:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dlqctl", "list", "--all", "-o", output],
            env=process_env(cli_env()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        got = proc.stdout.read(read_first) if read_first else b""
        assert len(got) == read_first
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
        code = proc.wait(timeout=60)
        assert (code, stderr) == (141, b""), (output, code, stderr.decode(errors="replace"))
