"""Replay on a terminal: the confirmation prompt (counts per consumer and topic) and the
progress bar, with stdin and stderr on a pseudo-terminal."""

from __future__ import annotations

from typing import Any

from tests.cli_helpers import CliEnv, run_on_terminal
from tests.factories import entry, insert_entries
from tests.kafka_helpers import create_topic
from tests.replay_helpers import rows_by_id


def test_prompt_shows_counts_per_consumer_and_topic_and_no_changes_nothing(
    conn: Any, cli_env: CliEnv, broker: Any
) -> None:
    topic = create_topic(broker.bootstrap_servers)
    insert_entries(
        conn,
        [entry(consumer="orders", source_topic=topic) for _ in range(2)]
        + [entry(consumer="billing", source_topic=topic)],
    )
    before = rows_by_id(conn)

    run = run_on_terminal(["replay"], cli_env(broker.bootstrap_servers), "n")

    screen = run.text
    assert run.exit_code == 1, screen
    assert "entries to replay" in screen and "target topics" in screen
    assert "Replay 3 entries?" in screen
    assert topic in screen and "orders" in screen and "billing" in screen
    assert "nothing was changed" in screen
    assert rows_by_id(conn) == before


def test_yes_at_the_prompt_replays_with_a_progress_bar(
    conn: Any, cli_env: CliEnv, broker: Any
) -> None:
    topic = create_topic(broker.bootstrap_servers)
    insert_entries(conn, [entry(source_topic=topic) for _ in range(30)])

    run = run_on_terminal(["replay", "--rate", "20"], cli_env(broker.bootstrap_servers), "y")

    screen = run.text
    assert run.exit_code == 0, screen
    assert "replaying" in screen  # the progress bar (stderr is a terminal)
    assert {r["status"] for r in rows_by_id(conn).values()} == {"replayed"}
