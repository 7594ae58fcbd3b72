"""Replay on a terminal: the confirmation prompt (counts per consumer and topic) and the
progress bar, with stdin and stderr on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from typing import Any

from tests.factories import entry, insert_entries
from tests.kafka_helpers import create_topic
from tests.replay_helpers import replay_env, rows_by_id


def run_on_terminal(args: list[str], env: dict[str, str], answer: str | None) -> tuple[int, str]:
    """Run dlqctl with stdin and stderr on a pty; type ``answer`` at the prompt."""
    master, slave = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DLQCTL_", "PG"))}
    full_env.update(env, COLUMNS="120", TERM="xterm")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlqctl", *args],
        env=full_env,
        stdin=slave,
        stderr=slave,
        stdout=subprocess.DEVNULL,
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
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                if answer is not None and b"[y/N]" in seen:
                    os.write(master, answer.encode() + b"\n")
                    answer = None
            elif proc.poll() is not None:
                break
        return proc.wait(30), seen.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_prompt_shows_counts_per_consumer_and_topic_and_no_changes_nothing(
    conn: Any, db_url: str, broker: Any
) -> None:
    topic = create_topic(broker.bootstrap_servers)
    insert_entries(
        conn,
        [entry(consumer="orders", source_topic=topic) for _ in range(2)]
        + [entry(consumer="billing", source_topic=topic)],
    )
    before = rows_by_id(conn)

    code, screen = run_on_terminal(["replay"], replay_env(db_url, broker.bootstrap_servers), "n")

    assert code == 1, screen
    assert "entries to replay" in screen and "target topics" in screen
    assert "Replay 3 entries?" in screen
    assert topic in screen and "orders" in screen and "billing" in screen
    assert "nothing was changed" in screen
    assert rows_by_id(conn) == before


def test_yes_at_the_prompt_replays_with_a_progress_bar(conn: Any, db_url: str, broker: Any) -> None:
    topic = create_topic(broker.bootstrap_servers)
    insert_entries(conn, [entry(source_topic=topic) for _ in range(30)])

    code, screen = run_on_terminal(
        ["replay", "--rate", "20"], replay_env(db_url, broker.bootstrap_servers), "y"
    )

    assert code == 0, screen
    assert "replaying" in screen  # the progress bar (stderr is a terminal)
    assert {r["status"] for r in rows_by_id(conn).values()} == {"replayed"}
