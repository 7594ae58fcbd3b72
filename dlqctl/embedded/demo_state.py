"""What `dlqctl demo --keep` left running, recorded so that `dlqctl demo --stop` can stop it.

The state file lives under the temporary directory, one per user. Before signalling a pid
we check it is still the process we started (its start time), so a reused pid is never hit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dlqctl.core.errors import DlqctlError

# What the embedded servers name their temporary directories (the only ones --stop removes).
SERVER_DIR_PREFIXES = ("dlqctl-pg-", "dlqctl-tansu-")


class DemoStateError(DlqctlError):
    """The state file is not one this user's `dlqctl demo --keep` wrote."""


def state_path() -> Path:
    return Path(tempfile.gettempdir()) / f"dlqctl-demo-{os.geteuid()}" / "state.json"


def _private(path: Path) -> bool:
    """Ours, and neither group nor others may write (or, for the directory, enter) it."""
    st = path.lstat()
    return st.st_uid == os.geteuid() and not st.st_mode & 0o077 and not stat.S_ISLNK(st.st_mode)


def _server_directory(directory: str) -> bool:
    """A directory an embedded server of ours made: directly under the temporary directory,
    with our prefix (a state file can name nothing else to delete)."""
    path = Path(directory)
    return path.parent == Path(tempfile.gettempdir()) and path.name.startswith(SERVER_DIR_PREFIXES)


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces, so split after its ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass(frozen=True)
class KeptProcess:
    """One server process left running."""

    name: str
    pid: int
    start_time: int
    stop_signal: int
    directory: str

    @classmethod
    def of(cls, name: str, pid: int, stop_signal: signal.Signals, directory: Path) -> KeptProcess:
        return cls(name, pid, process_start_time(pid) or 0, int(stop_signal), str(directory))

    def alive(self) -> bool:
        return process_start_time(self.pid) == self.start_time

    def stop(self, timeout: float = 30) -> None:
        """Signal it, wait, SIGKILL if needed; then remove its directory."""
        if self.alive():
            os.kill(self.pid, self.stop_signal)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                os.kill(self.pid, signal.SIGKILL)
        if _server_directory(self.directory):
            shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True)
class DemoState:
    """The services a kept demo runs, and how to reach them."""

    processes: tuple[KeptProcess, ...]
    exports: dict[str, str]

    def save(self) -> Path:
        path = state_path()
        path.parent.mkdir(mode=0o700, exist_ok=True)
        if not _private(path.parent):
            raise DemoStateError(f"{path.parent} is not a private directory of ours")
        text = json.dumps(
            {"processes": [asdict(p) for p in self.processes], "exports": self.exports}, indent=2
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(text)
        return path

    @classmethod
    def load(cls) -> DemoState | None:
        """The recorded state; None when there is none. DemoStateError when the file is not
        private to this user (another user could have planted it) or not ours at all."""
        path = state_path()
        try:
            if not (_private(path.parent) and _private(path)):
                raise DemoStateError(f"{path} is not private to this user; remove it")
            data = json.loads(path.read_text())
            return cls(tuple(KeptProcess(**p) for p in data["processes"]), data["exports"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise DemoStateError(
                f"{path} is not a dlqctl demo state file ({exc}); remove it"
            ) from None

    @staticmethod
    def clear() -> None:
        shutil.rmtree(state_path().parent, ignore_errors=True)
