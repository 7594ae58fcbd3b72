"""Replay plans through the use case on the real PostgreSQL and tansu: a plan run with a
canary and a rate, and a plan kept in its own order."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from dlqctl.core.canary import Canary, CanaryOutcome
from dlqctl.core.filters import EntryFilter
from dlqctl.core.replay import ReplayRequest
from dlqctl.usecases.plans import load_plan
from dlqctl.usecases.replay import replay
from tests.factories import entry, insert_entries, make_settings
from tests.kafka_helpers import create_topic, read_topic
from tests.replay_helpers import header, rows_by_id


def test_a_plan_runs_with_a_canary_and_a_rate_in_plan_order(
    conn: Any, db_url: str, broker: Any, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    ids = insert_entries(conn, [entry(source_topic=topic) for _ in range(7)])
    settings = make_settings(db_url, bootstrap)
    path = tmp_path / "plan.json"
    made = replay(settings, ReplayRequest(EntryFilter(), limit=6, dry_run=True, plan_out=path))
    assert made.plan_file is not None and len(made.plan_file.entries) == 6
    plan = load_plan(path)
    assert [e.dlq_id for e in plan.entries] == ids[:6]

    report = replay(
        settings,
        ReplayRequest(
            EntryFilter(),
            plan=plan,
            rate=50,
            batch_size=4,
            canary=Canary(2, None, timedelta(seconds=1), "1s"),
        ),
    )

    assert report.exit_code == 0, report.error
    assert report.canary is not None
    assert (report.canary.size, report.canary.outcome) == (2, CanaryOutcome.PASSED)
    assert (report.result.succeeded, report.result.skipped) == (6, 0)
    # One partition: the topic's order is the plan's order, canary first.
    sent = [
        header(m, "dlq-id") for m in sorted(read_topic(bootstrap, topic, 6), key=lambda m: m.offset)
    ]
    assert sent == [str(i) for i in ids[:6]]
    assert rows_by_id(conn)[ids[6]]["status"] == "pending"  # not in the plan
