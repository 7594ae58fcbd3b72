"""What `dlqctl demo --keep` left running, recorded so that `dlqctl demo --stop` can stop it.

The state file lives under the temporary directory, one per user. Before signalling a pid
we check it is still the process we started (its start time), so a reused pid is never hit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


def state_path() -> Path:
    return Path(tempfile.gettempdir()) / f"dlqctl-demo-{os.geteuid()}" / "state.json"


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
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True)
class DemoState:
    """The services a kept demo runs, and how to reach them."""

    processes: tuple[KeptProcess, ...]
    exports: dict[str, str]

    def save(self) -> Path:
        path = state_path()
        path.parent.mkdir(mode=0o700, exist_ok=True)
        st = path.parent.lstat()
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise PermissionError(f"{path.parent} is not a private directory of ours")
        path.write_text(json.dumps({"processes": [asdict(p) for p in self.processes],
                                    "exports": self.exports}, indent=2))  # fmt: skip
        return path

    @classmethod
    def load(cls) -> DemoState | None:
        try:
            data = json.loads(state_path().read_text())
        except (OSError, ValueError):
            return None
        return cls(tuple(KeptProcess(**p) for p in data["processes"]), data["exports"])

    @staticmethod
    def clear() -> None:
        shutil.rmtree(state_path().parent, ignore_errors=True)
