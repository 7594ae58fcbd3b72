"""Benchmark suite `replay`: `dlqctl replay` next to raw baselines measured in the same run.

For each size, the same all-pending table is restored before every contender:
- dlqctl: ``dlqctl replay --yes --topic T -o json`` as a process (start-up, planning,
  preflight and audit included);
- raw loop: a claim → produce → flush → mark → commit loop written directly with psycopg and
  confluent-kafka (``python -m bench.replay raw-loop``), reading the same columns, as a
  process; it forwards the jsonb text as it is (no compact JSON), plans nothing, checks
  nothing and records no audit row;
- raw producer: the same payloads (a sample of real rows, cycled) produced and flushed
  with the same producer settings, no database at all.
Two more runs of dlqctl on the same table: with ``--canary 100 --canary-wait 2s`` (no
group: a fixed wait; the wait is subtracted, what remains is the canary's own cost), and
``--plan FILE`` for a plan of every entry written just before by ``--dry-run --plan-out``
(timed on its own: the review step).
Entries/s are end-to-end wall times of the processes; peak RSS is the child's maximum.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import ResultTable, dlqctl_argv, fmt_ratio, load_rows, run_process, servers
from dlqctl.embedded.tansu import EmbeddedBroker

FULL_SIZES = [100_000, 1_000_000]
QUICK_SIZES = [3_000]
PARTITIONS = 3
BATCH = 1000
CANARY = 100
CANARY_WAIT_SECONDS = 2
PRODUCER = {"acks": "all", "enable.idempotence": True, "linger.ms": 5}


def _prepare(dsn: str, rows: int) -> None:
    """Load ``rows`` entries and keep an all-pending copy to restore before each run."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE dlq CASCADE")
    load_rows(dsn, rows)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS dlq_template")
        conn.execute("CREATE TABLE dlq_template AS SELECT * FROM dlq")
        conn.execute("UPDATE dlq_template SET status = 'pending', status_changed_at = NULL")


def _restore(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE dlq CASCADE")
        conn.execute("INSERT INTO dlq SELECT * FROM dlq_template")
        conn.execute("VACUUM ANALYZE dlq")
        conn.execute("CHECKPOINT")


def _replayed(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM dlq WHERE status = 'replayed'").fetchone()
        return int(row[0]) if row else 0


def _topic(bootstrap: str, name: str) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)
    return name


def _raw_loop(dsn: str, bootstrap: str, topic: str) -> None:
    """The baseline: claim → produce → flush → mark → commit, keyset-ordered."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    conn = psycopg.connect(dsn)
    claim = (
        "SELECT dlq_id::text, failed_at, consumer, event_id::text, retry_count, event_key,"
        " event_headers, event_raw, CASE WHEN event_raw IS NULL THEN event_payload::text END"
        " FROM dlq WHERE status = 'pending' AND (failed_at, dlq_id) > (%s, %s::uuid)"
        " ORDER BY failed_at, dlq_id LIMIT %s FOR UPDATE SKIP LOCKED"
    )
    mark = (
        "UPDATE dlq SET status = 'replayed', retry_count = retry_count + 1,"
        " status_changed_at = now() WHERE dlq_id = ANY(%s::uuid[])"
    )
    failed: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    cursor: tuple[Any, str] = ("-infinity", "00000000-0000-0000-0000-000000000000")
    done = 0
    while True:
        rows = conn.execute(claim, (*cursor, BATCH)).fetchall()
        if not rows:
            conn.rollback()
            break
        for r in rows:
            headers = [("dlq-id", r[0]), ("dlq-consumer", r[2]), ("dlq-retry-count", str(r[4] + 1))]
            value = r[7] if r[7] is not None else r[8]
            key = r[5] if r[5] is not None else r[3]
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
        producer.flush()
        conn.execute(mark, ([r[0] for r in rows],))
        conn.commit()
        done += len(rows)
        cursor = (rows[-1][1], rows[-1][0])
    if failed:
        raise SystemExit(f"{len(failed)} deliveries failed: {failed[0]}")
    print(json.dumps({"replayed": done}))


def _db_loop(dsn: str) -> None:
    """The database's own limit: claim (the columns dlqctl reads) → mark → commit, keyset,
    batches of BATCH, no Kafka at all."""
    conn = psycopg.connect(dsn)
    claim = (
        "SELECT dlq_id::text, failed_at, consumer, event_id::text, retry_count, event_key,"
        " event_headers, event_raw, CASE WHEN event_raw IS NULL THEN event_payload::text END"
        " FROM dlq WHERE status = 'pending' AND (failed_at, dlq_id) > (%s, %s::uuid)"
        " ORDER BY failed_at, dlq_id LIMIT %s FOR UPDATE SKIP LOCKED"
    )
    mark = (
        "UPDATE dlq SET status = 'replayed', retry_count = retry_count + 1,"
        " status_changed_at = now() WHERE dlq_id = ANY(%s::uuid[])"
    )
    cursor: tuple[Any, str] = ("-infinity", "00000000-0000-0000-0000-000000000000")
    done = 0
    while True:
        rows = conn.execute(claim, (*cursor, BATCH)).fetchall()
        if not rows:
            conn.rollback()
            break
        conn.execute(mark, ([r[0] for r in rows],))
        conn.commit()
        done += len(rows)
        cursor = (rows[-1][1], rows[-1][0])
    print(json.dumps({"replayed": done}))


def _raw_producer(dsn: str, bootstrap: str, topic: str, count: int) -> None:
    """The same payloads, produced and flushed without any database work (timed inside)."""
    from confluent_kafka import Producer

    from dlqctl.core.replay import compact_jsonb_text

    with psycopg.connect(dsn) as conn:
        sample = conn.execute(
            "SELECT dlq_id::text, consumer, event_id::text, retry_count, event_payload::text"
            " FROM dlq LIMIT 1000"
        ).fetchall()
    messages = [
        (
            r[2],
            compact_jsonb_text(r[4]),
            [("dlq-id", r[0]), ("dlq-consumer", r[1]), ("dlq-retry-count", str(r[3] + 1))],
        )
        for r in sample
    ]
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    producer.produce(topic, value=b"warm-up")  # the idempotent start (~0.5 s) is not timed
    producer.flush(30)
    started = time.perf_counter()
    for i in range(count):
        key, value, headers = messages[i % len(messages)]
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    print(json.dumps({"seconds": time.perf_counter() - started}))


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.replay", *args]


def _measure(
    size: int, rounds: int, dsn: str, kafka: EmbeddedBroker
) -> dict[str, dict[str, float]]:
    bootstrap = kafka.bootstrap_servers
    runs: dict[str, list[tuple[float, float]]] = {
        "dlqctl": [],
        "dlqctl --canary": [],
        "dlqctl --plan": [],
        "db loop": [],
        "raw loop": [],
    }
    seconds: dict[str, list[float]] = {name: [] for name in (*runs, "plan-out")}
    env = {"DLQCTL_DATABASE_URL": dsn, "DLQCTL_KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    with tempfile.TemporaryDirectory() as folder:
        for round_no in range(rounds):
            for name in runs:
                _restore(dsn)
                slug = name.replace(" ", "-").replace("--", "")
                topic = _topic(bootstrap, f"bench-{slug}-{size}-{round_no}")
                replay = ("replay", "--yes", "--topic", topic, "-o", "json")
                waited = 0.0
                if name == "dlqctl":
                    argv = dlqctl_argv(*replay)
                elif name == "dlqctl --canary":
                    wait = f"{CANARY_WAIT_SECONDS}s"
                    argv = dlqctl_argv(*replay, "--canary", str(CANARY), "--canary-wait", wait)
                    waited = CANARY_WAIT_SECONDS
                elif name == "dlqctl --plan":
                    plan = str(Path(folder) / f"plan-{round_no}.json")
                    made = run_process(
                        dlqctl_argv("replay", "--dry-run", "--topic", topic, "--plan-out", plan),
                        env=env,
                    )
                    if made.returncode != 0:
                        raise RuntimeError(f"plan-out failed: {made.stderr.decode()}")
                    seconds["plan-out"].append(made.wall)
                    argv = dlqctl_argv("replay", "--yes", "--plan", plan, "-o", "json")
                elif name == "db loop":
                    argv = _python("db-loop", dsn)
                else:
                    argv = _python("raw-loop", dsn, bootstrap, topic)
                run = run_process(argv, env=env)
                if run.returncode != 0:
                    raise RuntimeError(f"{name} failed: {run.stderr.decode(errors='replace')}")
                replayed = _replayed(dsn)
                if replayed != size:
                    raise RuntimeError(f"{name} replayed {replayed} of {size}")
                runs[name].append((size / run.wall, run.max_rss_mb))
                seconds[name].append(run.wall - waited)
                print(
                    f"  {size:>9,} {name:<16} {size / run.wall:>9,.0f}/s"
                    f" {run.wall - waited:6.2f}s (wait excluded) {run.max_rss_mb:.0f} MB",
                    flush=True,
                )
    topic = _topic(bootstrap, f"bench-raw-producer-{size}")
    produced = run_process(_python("raw-producer", dsn, bootstrap, topic, str(size)))
    if produced.returncode != 0:
        raise RuntimeError(f"raw producer failed: {produced.stderr.decode(errors='replace')}")
    produced_seconds = json.loads(produced.stdout)["seconds"]
    result = {
        name: {
            "rate": statistics.median(r for r, _ in samples),
            "rss": max(m for _, m in samples),
            "seconds": statistics.median(seconds[name]),
        }
        for name, samples in runs.items()
    }
    result["raw producer"] = {"rate": size / produced_seconds, "rss": produced.max_rss_mb}
    result["plan-out"] = {"seconds": statistics.median(seconds["plan-out"])}
    return result


def run(quick: bool) -> tuple[list[ResultTable], dict[str, Any]]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    # Three rounds each (two for a million entries: about a minute per run).
    rounds = {size: 1 if quick else (2 if size >= 1_000_000 else 3) for size in sizes}
    table = ResultTable(
        title="Replay throughput (entries/s, median of the rounds) and peak RSS",
        headers=[
            "entries",
            "dlqctl replay",
            "DB-only loop (no Kafka)",
            "dlqctl / DB-only",
            "raw claim→produce→mark loop",
            "dlqctl / raw loop",
            "raw producer, same payloads",
            "dlqctl peak RSS",
        ],
    )
    extras = ResultTable(
        title="Canary and plan runs next to a plain replay (seconds, median of the rounds)",
        headers=[
            "entries",
            "plain replay",
            f"--canary {CANARY} (the {CANARY_WAIT_SECONDS}s wait excluded)",
            "canary's own cost",
            "--dry-run --plan-out (every entry)",
            "--plan run",
            "plan run / plain",
        ],
    )
    meta: dict[str, Any] = {"sizes": sizes, "rounds": list(rounds.values()), "batch": BATCH}
    rates: dict[int, float] = {}
    with servers() as (pg, kafka):
        assert kafka is not None
        for size in sizes:
            _prepare(pg.dsn, size)
            result = _measure(size, rounds[size], pg.dsn, kafka)
            dlqctl, db, raw = result["dlqctl"], result["db loop"], result["raw loop"]
            rates[size] = dlqctl["rate"]
            meta[f"dlqctl_vs_db_loop_{size}"] = round(dlqctl["rate"] / db["rate"], 3)
            table.rows.append(
                [
                    f"{size:,}",
                    f"{dlqctl['rate']:,.0f}/s",
                    f"{db['rate']:,.0f}/s",
                    fmt_ratio(dlqctl["rate"] / db["rate"]),
                    f"{raw['rate']:,.0f}/s",
                    fmt_ratio(dlqctl["rate"] / raw["rate"]),
                    f"{result['raw producer']['rate']:,.0f}/s",
                    f"{dlqctl['rss']:.0f} MB",
                ]
            )
            canary, planned = result["dlqctl --canary"], result["dlqctl --plan"]
            extras.rows.append(
                [
                    f"{size:,}",
                    f"{dlqctl['seconds']:.2f}s",
                    f"{canary['seconds']:.2f}s",
                    f"{canary['seconds'] - dlqctl['seconds']:+.2f}s",
                    f"{result['plan-out']['seconds']:.2f}s",
                    f"{planned['seconds']:.2f}s",
                    f"{planned['seconds'] / dlqctl['seconds']:.2f}×",
                ]
            )
    table.notes = [
        f"tests/datagen.py's skewed rows, all pending, ~600-byte jsonb payloads; batches of"
        f" {BATCH}; a {PARTITIONS}-partition topic on tansu; embedded PostgreSQL 18 (fsync"
        " off). Each contender runs as its own process on a freshly restored table; entries/s"
        " are end-to-end (dlqctl's start-up, plan, preflight and audit row included).",
        "DB-only loop: claim FOR UPDATE SKIP LOCKED (the columns dlqctl reads) → UPDATE …"
        " = ANY(ids) → commit, keyset, no Kafka: the database's own limit. Targets: dlqctl"
        " ≥ 0.9× of it on 100k entries, and dlqctl's rate on 1M ≥ 0.9× its rate on 100k.",
        "The raw loop forwards the jsonb text as it is; dlqctl sends compact JSON. The raw"
        " producer is timed from its first message to the end of its flush.",
        "Marking an entry updates every index of the dlqctl migrations; that UPDATE is most"
        " of the time of every loop. Measured on a 2-core machine shared with other work:"
        " compare the ratios of one run, not absolute numbers across runs.",
    ]
    extras.notes = [
        f"The canary run replays the first {CANARY} entries, waits {CANARY_WAIT_SECONDS}s"
        " (no --canary-group), checks them for re-failures, then replays the rest in the same"
        " run; its own cost is its time without the wait minus the plain run's.",
        "The plan is of every entry, written by --dry-run --plan-out (reading and hashing"
        " every value); the plan run claims its entries by id in plan order, checks each"
        " against the plan and replays them.",
    ]
    if len(rates) > 1:
        small, large = min(rates), max(rates)
        ratio = rates[large] / rates[small]
        meta["dlqctl_large_vs_small"] = round(ratio, 3)
        table.notes.append(f"dlqctl's rate on {large:,} / on {small:,}: {fmt_ratio(ratio)}")
    return [table, extras], meta


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay")
    sub = parser.add_subparsers(dest="contender", required=True)
    loop = sub.add_parser("raw-loop")
    producer = sub.add_parser("raw-producer")
    db_loop = sub.add_parser("db-loop")
    db_loop.add_argument("dsn")
    for p in (loop, producer):
        p.add_argument("dsn")
        p.add_argument("bootstrap")
        p.add_argument("topic")
    producer.add_argument("count", type=int)
    args = parser.parse_args()
    if args.contender == "db-loop":
        _db_loop(args.dsn)
    elif args.contender == "raw-loop":
        _raw_loop(args.dsn, args.bootstrap, args.topic)
    else:
        _raw_producer(args.dsn, args.bootstrap, args.topic, args.count)


if __name__ == "__main__":
    main()
