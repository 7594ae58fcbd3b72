"""Running dlqctl from a test: in-process (CliRunner) or as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from typer.testing import CliRunner

from dlqctl.cli.app import app


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


def run_dlqctl_process(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real ``python -m dlqctl`` in a child process (no inherited DLQCTL_/PG* vars)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DLQCTL_", "PG"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dlqctl", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
