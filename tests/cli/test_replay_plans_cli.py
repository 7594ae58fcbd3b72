"""`dlqctl replay --dry-run --plan-out FILE` and `replay --plan FILE` on the real PostgreSQL
and tansu: the plan file, exactly its entries replayed, changed ones skipped with reasons,
a tampered plan refused, the topics it names kept."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.cli_helpers import CliEnv, run_on_terminal
from tests.factories import ACTOR, audit_rows, entry, insert_entries
from tests.kafka_helpers import create_topic
from tests.replay_helpers import dlq_ids_on, parse_json, rows_by_id


def _make_plan(cli: Any, env: dict[str, str], path: Path, *args: str) -> dict[str, Any]:
    result = cli("replay", *args, "--dry-run", "--plan-out", str(path), "-o", "json", env=env)
    assert result.exit_code == 0, result.output
    assert path.exists()
    return parse_json(result.stdout)


def test_a_plan_replays_exactly_its_unchanged_entries_and_skips_the_changed_ones(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    ids = insert_entries(conn, [entry(source_topic=topic) for _ in range(6)])
    env = cli_env(bootstrap)
    plan_path = tmp_path / "plan.json"

    made = _make_plan(cli, env, plan_path, "-c", "orders")

    assert (made["dry_run"], made["matched"], made["plan_file"]) == (True, 6, str(plan_path))
    plan = json.loads(plan_path.read_text())
    assert list(plan) == [
        "version",
        "created_at",
        "actor",
        "host",
        "filter",
        "entries",
        "checksum",
    ]
    assert (plan["version"], plan["actor"], plan["filter"]) == (1, ACTOR, {"consumer": ["orders"]})
    assert [e["dlq_id"] for e in plan["entries"]] == [str(i) for i in ids]  # oldest first
    first = plan["entries"][0]
    assert {k: first[k] for k in ("consumer", "topic", "status", "retry_count")} == {
        "consumer": "orders",
        "topic": topic,
        "status": "pending",
        "retry_count": 0,
    }
    body = {k: v for k, v in plan.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert plan["checksum"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert made["plan"]["checksum"] == plan["checksum"]
    jq = subprocess.run(
        ["jq", "-jcS", "del(.checksum)", str(plan_path)], capture_output=True, check=True
    )
    assert hashlib.sha256(jq.stdout).hexdigest() == plan["checksum"]  # as docs/replay.md says
    assert rows_by_id(conn)[ids[0]]["status"] == "pending"  # a dry run changes nothing

    # Since the plan was made: one discarded, one edited, one replayed by someone else.
    conn.execute("UPDATE dlq SET status = 'discarded' WHERE dlq_id = %s", (ids[0],))
    conn.execute(
        "UPDATE dlq SET edited_raw = '{\"fixed\":true}', edited_at = now(), edited_by = 'x'"
        " WHERE dlq_id = %s",
        (ids[1],),
    )
    other = cli("replay", str(ids[2]), "-o", "json", env=env)
    assert other.exit_code == 0, other.output

    run = cli("replay", "--plan", str(plan_path), "--yes", "-o", "json", env=env)

    assert run.exit_code == 0, run.output
    summary = parse_json(run.stdout)
    assert (summary["matched"], summary["succeeded"], summary["skipped"]) == (6, 3, 3)
    assert (summary["failed"], summary["topics"]) == (0, {topic: 3})
    reasons = {s["dlq_id"]: s["reason"] for s in summary["skipped_entries"]}
    assert reasons == {
        str(ids[0]): "changed since the plan was made: status pending → discarded",
        str(ids[1]): "changed since the plan was made: value (edited?)",
        str(ids[2]): "changed since the plan was made: status pending → replayed,"
        " retry_count 0 → 1",
    }
    assert summary["plan"]["checksum"] == plan["checksum"]
    published = dlq_ids_on(bootstrap, topic, 4)
    assert sorted(published) == sorted([ids[2], *ids[3:]])  # the other run's, then the rest
    rows = rows_by_id(conn)
    assert [rows[i]["retry_count"] for i in ids] == [0, 0, 1, 1, 1, 1]
    audit = audit_rows(conn)[-1]
    assert audit["details"]["plan"]["checksum"] == plan["checksum"]
    assert len(audit["details"]["skipped_entries"]) == 3

    # The same plan again: everything changed since (replayed), nothing sent.
    again = cli("replay", "--plan", str(plan_path), "--yes", "-o", "json", env=env)
    assert again.exit_code == 0, again.output
    assert (parse_json(again.stdout)["succeeded"], parse_json(again.stdout)["skipped"]) == (0, 6)
    assert len(dlq_ids_on(bootstrap, topic, 4)) == 4


def test_a_changed_byte_in_the_plan_is_refused_and_nothing_is_sent(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = create_topic(bootstrap)
    insert_entries(conn, [entry(source_topic=topic) for _ in range(3)])
    env = cli_env(bootstrap)
    plan_path = tmp_path / "plan.json"
    _make_plan(cli, env, plan_path)
    before = rows_by_id(conn)
    text = plan_path.read_text()

    tampered = tmp_path / "tampered.json"
    tampered.write_text(text.replace('"retry_count": 0', '"retry_count": 1', 1))
    run = cli("replay", "--plan", str(tampered), "--yes", env=env)
    assert run.exit_code == 2, run.output
    assert run.stderr.strip() == (
        f"Error: plan {tampered} was changed after it was made (its checksum does not match"
        " its content): nothing is sent; make a new plan with --dry-run --plan-out"
    )

    broken = tmp_path / "broken.json"
    broken.write_text(text[:-20])
    run = cli("replay", "--plan", str(broken), "--yes", env=env)
    assert run.exit_code == 2 and "is not valid JSON" in run.stderr, run.output

    assert rows_by_id(conn) == before
    assert audit_rows(conn) == []
    assert dlq_ids_on(bootstrap, topic, 0) == []


def test_a_plan_goes_to_the_topics_it_names_after_the_topic_map_changed(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    orders_topic, billing_topic, new_topic = (create_topic(bootstrap) for _ in range(3))
    orders = insert_entries(conn, [entry(consumer="orders") for _ in range(2)])
    billing = insert_entries(conn, [entry(consumer="billing") for _ in range(2)])
    mapped = {"orders": orders_topic, "billing": billing_topic}
    plan_path = tmp_path / "plan.json"
    ids = [*orders, billing[0]]  # ids of two consumers
    _make_plan(
        cli,
        cli_env(bootstrap, DLQCTL_TOPIC_MAP=json.dumps(mapped)),
        plan_path,
        *(str(i) for i in ids),
    )
    remapped = cli_env(
        bootstrap, DLQCTL_TOPIC_MAP=json.dumps({"orders": new_topic, "billing": new_topic})
    )

    review = cli("replay", "--plan", str(plan_path), "--dry-run", env=remapped)

    assert review.exit_code == 0, review.output
    checksum = json.loads(plan_path.read_text())["checksum"]
    assert f"plan {checksum[:12]} by {ACTOR} on " in review.stdout
    assert re.search(r"made \d+s ago \(\d{4}-\d\d-\d\dT", review.stdout), review.stdout
    assert ": 3 entries" in review.stdout
    for consumer, topic, count in (("orders", orders_topic, "2"), ("billing", billing_topic, "1")):
        assert any(
            consumer in line and topic in line and line.rstrip(" │|").endswith(count)
            for line in review.stdout.splitlines()
        ), review.stdout

    run = cli("replay", "--plan", str(plan_path), "--yes", "-o", "json", env=remapped)

    assert run.exit_code == 0, run.output
    assert parse_json(run.stdout)["topics"] == {orders_topic: 2, billing_topic: 1}
    assert sorted(dlq_ids_on(bootstrap, orders_topic, 2)) == sorted(orders)
    assert dlq_ids_on(bootstrap, billing_topic, 1) == [billing[0]]
    assert dlq_ids_on(bootstrap, new_topic, 0) == []
    assert rows_by_id(conn)[billing[1]]["status"] == "pending"  # not in the plan


def test_plan_options_are_checked_before_anything_happens(
    conn: Any, cli_env: CliEnv, cli: Any, tmp_path: Path
) -> None:
    insert_entries(conn, [entry(source_topic="orders")])
    env = cli_env()
    existing = tmp_path / "exists.json"
    existing.write_text("keep me")

    run = cli("replay", "--dry-run", "--plan-out", str(existing), env=env)
    assert run.exit_code == 2, run.output
    assert "exists: a plan file is never overwritten" in run.stderr
    assert existing.read_text() == "keep me"

    run = cli("replay", "--dry-run", "--plan-out", str(tmp_path / "no" / "p.json"), env=env)
    assert run.exit_code == 2 and "does not exist" in run.stderr, run.output

    run = cli("replay", "--plan-out", str(tmp_path / "new.json"), "--yes", env=env)
    assert run.exit_code == 2 and "give it with --dry-run" in run.stderr, run.output
    assert not (tmp_path / "new.json").exists()

    plan_path = tmp_path / "plan.json"
    _make_plan(cli, env, plan_path)
    for extra in (["-c", "orders"], [str(uuid.uuid4())], ["--topic", "t"], ["--limit", "1"]):
        run = cli("replay", "--plan", str(plan_path), *extra, "--yes", env=env)
        assert run.exit_code == 2, (extra, run.output)
        assert "--plan replays exactly the entries of the plan" in run.stderr

    run = cli("replay", "--plan", str(tmp_path / "missing.json"), "--yes", env=env)
    assert run.exit_code == 2 and "cannot read plan" in run.stderr, run.output
    assert audit_rows(conn) == []


def test_the_prompt_of_a_plan_run_shows_its_checksum_size_and_age(
    conn: Any, cli_env: CliEnv, broker: Any, cli: Any, tmp_path: Path
) -> None:
    topic = create_topic(broker.bootstrap_servers)
    insert_entries(conn, [entry(source_topic=topic) for _ in range(2)])
    env = cli_env(broker.bootstrap_servers)
    plan_path = tmp_path / "plan.json"
    _make_plan(cli, env, plan_path)
    checksum = json.loads(plan_path.read_text())["checksum"]
    before = rows_by_id(conn)

    run = run_on_terminal(["replay", "--plan", str(plan_path)], env, "n")

    screen = run.text
    assert run.exit_code == 1, screen
    assert f"plan {checksum[:12]} by {ACTOR}" in screen
    assert ": 2 entries" in screen and " ago " in screen
    assert "Replay 2 entries?" in screen
    assert rows_by_id(conn) == before
