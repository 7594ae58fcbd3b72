"""`dlqctl demo` interrupted: Ctrl-C stops every server it started."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.cli_helpers import demo_marker, server_pids, start_dlqctl, wait_gone

pytestmark = pytest.mark.usefixtures("no_kept_demo")


def test_ctrl_c_stops_everything_it_started() -> None:
    marker, env = demo_marker()
    proc = start_dlqctl("demo", env=env, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "Produced" in line:
            break
    started = server_pids(marker)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(60) == 130, "".join(lines) + rest
    assert "Traceback" not in rest
    assert started
    assert wait_gone(started) == set()
