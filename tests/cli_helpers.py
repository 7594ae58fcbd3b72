"""Running dlqctl from a test: in-process (CliRunner), as a real process, or on a terminal;
and watching the servers such a process starts."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from dlqctl.cli.app import app

# The ``cli_env`` fixture: ``cli_env(bootstrap=None, **more_variables)`` -> environment.
CliEnv = Callable[..., dict[str, str]]

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class CliRun:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(args: list[str], env: dict[str, str], input: str | None = None) -> CliRun:
    """Invoke the CLI in-process with the given environment (the whole error boundary runs)."""
    result = CliRunner().invoke(app, args, env=env, input=input, catch_exceptions=False)
    return CliRun(exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def process_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without DLQCTL_* and PG* variables, plus ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DLQCTL_", "PG"))}
    full_env.update(env or {})
    return full_env


def run_dlqctl_process(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real ``python -m dlqctl`` in a child process (no inherited DLQCTL_/PG* vars)."""
    return subprocess.run(
        [sys.executable, "-m", "dlqctl", *args],
        env=process_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_dlqctl(
    *args: str, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[str]:
    """``python -m dlqctl ARGS`` in the background, stdout and stderr piped as text unless
    ``popen`` says otherwise (no inherited DLQCTL_/PG* variables)."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen(
        [sys.executable, "-m", "dlqctl", *args], env=process_env(env), text=True, **options
    )


@dataclass
class TerminalRun:
    exit_code: int
    screen: str  # what the terminal showed, escape codes included
    stdout: str  # empty when stdout was the terminal too

    @property
    def text(self) -> str:
        """The screen without escape codes."""
        return _ESCAPE.sub("", self.screen)


def run_on_terminal(
    args: list[str], env: dict[str, str], answer: str | None = None, *, stdout_too: bool = False
) -> TerminalRun:
    """Run dlqctl with stdin and stderr (and with ``stdout_too`` stdout) on a pseudo-terminal,
    as an operator's colour terminal without NO_COLOR; type ``answer`` at its [y/N] prompt."""
    master, slave = pty.openpty()
    full_env = process_env({"TERM": "xterm-256color", "COLUMNS": "120"})
    full_env.pop("NO_COLOR", None)
    full_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlqctl", *args],
        env=full_env,
        stdin=slave,
        stderr=slave,
        stdout=slave if stdout_too else subprocess.PIPE,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                if answer is not None and b"[y/N]" in seen:
                    os.write(master, answer.encode() + b"\n")
                    answer = None
            elif proc.poll() is not None:
                break
        stdout, _ = proc.communicate(timeout=30)
        return TerminalRun(proc.returncode, seen.decode(errors="replace"), (stdout or b"").decode())
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def server_pids(marker: str) -> set[int]:
    """PIDs of the postgres postmasters and tansu brokers started by processes that ran with
    ``DLQCTL_TEST_RUN=marker`` in their environment (see ``demo_marker``): servers of other
    test runs on the same machine are not counted."""
    tag = f"DLQCTL_TEST_RUN={marker}".encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv or not (
                argv[0].endswith(b"/tansu") or (argv[0].endswith(b"/postgres") and b"-D" in argv)
            ):
                continue
            if tag in (entry / "environ").read_bytes().split(b"\0"):
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids


def demo_marker() -> tuple[str, dict[str, str]]:
    """A fresh marker and the environment that puts it on every process a dlqctl run starts."""
    marker = uuid.uuid4().hex
    return marker, {"DLQCTL_TEST_RUN": marker}


def wait_gone(pids: set[int], timeout: float = 20) -> set[int]:
    """Wait until these processes are gone (zombies count as gone); those still running."""
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if Path(f"/proc/{p}").exists() and _not_zombie(p)}
        time.sleep(0.1)
    return pids


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
