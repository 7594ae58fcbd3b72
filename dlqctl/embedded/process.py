"""Helpers shared by the embedded servers: free ports, unprivileged children, readiness."""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
UNPRIVILEGED_USER = "nobody"


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started or stopped."""


def free_port() -> int:
    """A loopback port nobody listens on right now (there is a short race; callers retry)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A preexec_fn that makes the child receive ``sig`` when its parent dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)

    def set_parent_death_signal() -> None:
        libc.prctl(PR_SET_PDEATHSIG, int(sig))

    return set_parent_death_signal


@dataclass(frozen=True)
class RunAs:
    """Who a server runs as: ourselves, or ``nobody`` when we are root."""

    uid: int
    gid: int

    @classmethod
    def for_current_user(cls) -> RunAs | None:
        """``nobody`` when running as root (initdb and postgres refuse uid 0), else None."""
        if os.geteuid() != 0:
            return None
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        return cls(uid=entry.pw_uid, gid=entry.pw_gid)

    def popen_kwargs(self) -> dict[str, object]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def can_traverse(self, path: Path) -> bool:
        """Whether this user can reach ``path`` (every ancestor searchable by it)."""
        for directory in [path, *path.parents]:
            try:
                st = directory.stat()
            except OSError:
                return False
            if st.st_uid == self.uid:
                needed = stat.S_IXUSR
            elif st.st_gid == self.gid:
                needed = stat.S_IXGRP
            else:
                needed = stat.S_IXOTH
            if not st.st_mode & needed:
                return False
        return True


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    timeout: float,
    what: str,
    log_path: Path,
) -> None:
    """Poll ``ready`` until it holds; fail with the log's tail if the process exits first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise EmbeddedServiceError(
                f"{what} exited with code {proc.returncode}: {tail(log_path)}"
            )
        if time.monotonic() > deadline:
            stop_process(proc, signal.SIGKILL, 5)
            raise EmbeddedServiceError(
                f"{what} was not ready after {timeout:.0f}s: {tail(log_path)}"
            )
        time.sleep(0.02)


def tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Send ``sig``, wait up to ``timeout`` seconds, then SIGKILL; always reap."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
