"""Purge (and discard) while a service keeps writing: dlqctl next to a raw psycopg loop.

A table of ~1.24M rows written in failed_at order (as services write them): 1M replayed or
discarded rows 31-90 days old (the purge), 111k pending rows of the same age (kept), and 125k
rows of the last 29 days (kept). For each batch size, `dlqctl purge --older-than 30d`
(the real CLI process, start-up included) and a raw `DELETE ... WHERE dlq_id IN (SELECT ...
LIMIT n)` loop each run on a fresh copy of that table, while another process inserts one
row every few milliseconds and records how long each insert took.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event
from typing import Any

import psycopg

from bench.common import ResultTable, dlqctl_argv, fmt_ratio
from dlqctl.core.cleanup import DISCARD_BATCH
from dlqctl.db.migrations import migrate
from dlqctl.embedded.postgres import EmbeddedPostgres

BATCH_SIZES = (1_000, 5_000, 20_000)
WRITER_INTERVAL = 0.005
DISCARD_ARGS = ["discard", "-s", "pending", "--until", "30d"]
TEMPLATE = "purge_template"
CONSUMERS = [
    "orders",
    "payments",
    "inventory",
    "shipping",
    "notifications",
    "billing",
    "search-indexer",
    "analytics",
    "fraud-check",
    "legacy-import",
]

_LOAD = """
INSERT INTO dlq (consumer, event_id, event_payload, error_message, failed_at, retry_count, status)
SELECT (%(consumers)s::text[])[1 + abs(hashint4(g.i) %% 10)], gen_random_uuid(),
       jsonb_build_object('event_id', gen_random_uuid()::text, 'type', 'OrderPlaced',
                          'order_id', g.i, 'amount', (g.i %% 100000) / 100.0,
                          'note', %(filler)s::text),
       format('TimeoutError: call to payments-api for order %%s timed out after %%sms',
              g.i, g.i %% 5000),
       now() - CASE WHEN g.i <= %(old)s
                    THEN interval '90 days' - interval '59 days' * (g.i::float8 / %(old)s)
                    ELSE interval '29 days' * (1 - (g.i - %(old)s)::float8 / %(recent)s) END,
       g.i %% 3,
       CASE WHEN g.i > %(old)s THEN (ARRAY['pending', 'replayed', 'discarded'])[1 + g.i %% 3]
            WHEN g.i %% 10 = 0 THEN 'pending'
            WHEN g.i %% 4 = 0 THEN 'discarded'
            ELSE 'replayed' END
FROM generate_series(1, %(total)s) AS g(i)
"""

_RAW_DELETE = """
DELETE FROM dlq WHERE dlq_id IN (
    SELECT dlq_id FROM dlq
    WHERE status IN ('replayed', 'discarded') AND failed_at < %(cutoff)s
    LIMIT %(n)s)
"""

_RAW_DISCARD = """
UPDATE dlq SET status = 'discarded', status_changed_at = now(), status_reason = 'bench'
WHERE dlq_id IN (
    SELECT dlq_id FROM dlq WHERE status = 'pending' AND failed_at < %(cutoff)s LIMIT %(n)s)
"""

_WRITE = """
INSERT INTO dlq (consumer, event_id, event_payload, error_message)
VALUES ('bench-writer', gen_random_uuid(), %s, 'ValueError: written during the benchmark')
"""


def _load(dsn: str, purgeable: int) -> dict[str, int]:
    old = round(purgeable / 0.9)
    recent = purgeable // 8
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(
            _LOAD,
            {
                "consumers": CONSUMERS,
                "filler": "x" * 440,
                "old": old,
                "recent": recent,
                "total": old + recent,
            },
        )
        conn.execute("VACUUM ANALYZE dlq")
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status <> 'pending' AND failed_at < now() - interval"
            " '30 days'), count(*) FILTER (WHERE status = 'pending' AND failed_at < now() -"
            " interval '30 days'), count(*) FROM dlq"
        ).fetchone()
    assert row is not None
    return {"purgeable": row[0], "old_pending": row[1], "total": row[2]}


def _writer(dsn: str, stop: Event, ready: Event, results: Any) -> None:
    """Insert one row every WRITER_INTERVAL until stopped; send back each insert's latency."""
    payload = json.dumps({"type": "OrderPlaced", "note": "y" * 500})
    latencies: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_WRITE, (payload,))
        ready.set()
        next_at = time.perf_counter()
        while not stop.is_set():
            started = time.perf_counter()
            conn.execute(_WRITE, (payload,), prepare=True)
            latencies.append(time.perf_counter() - started)
            next_at += WRITER_INTERVAL
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.perf_counter()
    results.put(latencies)


@dataclass
class Run:
    """One measured run: rows changed, batches, wall seconds, the writer's insert latencies."""

    rows: int
    batches: int
    wall: float
    latencies: list[float]
    # Seconds of the wall time that are not batches (the CLI's start-up and connect).
    overhead: float = 0.0

    @property
    def rate(self) -> float:
        return self.rows / self.wall if self.wall else 0.0

    def latency(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Cluster:
    """The embedded server, a loaded template database, and fresh copies of it per run."""

    def __init__(self, pg: EmbeddedPostgres) -> None:
        self.pg = pg
        self.admin = psycopg.connect(pg.url("postgres"), autocommit=True)

    def create_template(self, purgeable: int) -> dict[str, int]:
        self.admin.execute(f"CREATE DATABASE {TEMPLATE}")
        migrate(self.pg.url(TEMPLATE))
        return _load(self.pg.url(TEMPLATE), purgeable)

    def fresh_copy(self, name: str) -> str:
        self.admin.execute(f"DROP DATABASE IF EXISTS {name}")
        self.admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        # Start every run from a clean checkpoint, not in the middle of the copy's one.
        self.admin.execute("CHECKPOINT")
        return self.pg.url(name)

    def drop(self, name: str) -> None:
        self.admin.execute(f"DROP DATABASE IF EXISTS {name}")

    def measure(self, name: str, work: Any) -> Run:
        """Run ``work(dsn) -> (rows, batches)`` on a fresh copy while the writer inserts."""
        dsn = self.fresh_copy(name)
        ctx = multiprocessing.get_context("spawn")
        stop, ready, results = ctx.Event(), ctx.Event(), ctx.Queue()
        writer = ctx.Process(target=_writer, args=(dsn, stop, ready, results))
        writer.start()
        try:
            if not ready.wait(60):
                raise RuntimeError("the writer did not start")
            time.sleep(0.5)  # the writer's steady state before the purge starts
            started = time.perf_counter()
            rows, batches = work(dsn)
            wall = time.perf_counter() - started
            time.sleep(0.2)
        finally:
            stop.set()
        latencies: list[float] = results.get(timeout=60)
        writer.join(60)
        with psycopg.connect(dsn) as conn:
            landed = conn.execute("SELECT count(*) FROM dlq WHERE consumer = 'bench-writer'")
            writer_rows = landed.fetchone()[0]  # type: ignore[index]
        self.drop(name)
        # +1: the writer's first insert, made before it reported ready.
        if writer_rows != len(latencies) + 1:
            raise RuntimeError(f"writer inserted {len(latencies) + 1} rows, {writer_rows} landed")
        return Run(rows=rows, batches=batches, wall=wall, latencies=latencies)

    def close(self) -> None:
        self.admin.close()


def _dlqctl(args: list[str]) -> Any:
    def work(dsn: str) -> tuple[int, int]:
        done = subprocess.run(
            dlqctl_argv("--database-url", dsn, *args, "--yes", "-o", "json"),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"dlqctl failed ({done.returncode}): {done.stderr.strip()}")
        with psycopg.connect(dsn) as conn:
            audit = conn.execute("SELECT details FROM dlq_actions ORDER BY id DESC LIMIT 1")
            batches = int(audit.fetchone()[0]["batches"])  # type: ignore[index]
        return int(json.loads(done.stdout)["succeeded"]), batches

    return work


def _raw(statement: str, n: int) -> Any:
    def work(dsn: str) -> tuple[int, int]:
        cutoff = datetime.now(UTC) - timedelta(days=30)
        total = batches = 0
        with psycopg.connect(dsn, autocommit=True) as conn:
            while True:
                changed = conn.execute(statement, {"cutoff": cutoff, "n": n}).rowcount
                total += changed
                batches += 1
                if changed < n:
                    return total, batches

    return work


def _startup(cluster: Cluster) -> float:
    """Median wall time of a dlqctl purge that matches nothing: start-up, connect, one query."""
    dsn = cluster.fresh_copy("purge_startup")
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            dlqctl_argv(
                "--database-url", dsn, "purge", "--older-than", "30d", "-c", "nobody", "--yes", "-q"
            ),
            check=True,
        )
        samples.append(time.perf_counter() - started)
    cluster.drop("purge_startup")
    return statistics.median(samples)


def _idle(cluster: Cluster) -> Run:
    def work(dsn: str) -> tuple[int, int]:
        time.sleep(3)
        return 0, 0

    return cluster.measure("purge_idle", work)


def _row(label: str, tool: str, runs: list[Run], raw: list[Run] | None) -> list[str]:
    """Best and median over the rounds (best: the round least disturbed by other load)."""
    busy = runs[0].rows > 0
    rates = [r.rate for r in runs]
    best, median = max(rates), statistics.median(rates)
    if raw:
        raw_rates = [r.rate for r in raw]
        ratio = (
            f"{fmt_ratio(best / max(raw_rates))} / "
            f"{fmt_ratio(median / statistics.median(raw_rates))}"
        )
    per_batch = statistics.median((r.wall - r.overhead) / r.batches for r in runs) if busy else 0.0
    maxima = [max(r.latencies) for r in runs]
    return [
        label,
        tool,
        f"{best:,.0f} / {median:,.0f}" if busy else "–",
        ratio if raw else "–",
        f"{per_batch * 1000:.0f} ms" if busy else "–",
        f"{sum(len(r.latencies) for r in runs):,}",
        f"{statistics.median(r.latency(0.99) for r in runs) * 1000:.1f} ms",
        f"{statistics.median(maxima) * 1000:.1f} / {max(maxima) * 1000:.1f} ms",
    ]


HEADERS = [
    "batch",
    "tool",
    "rows/s best / median",
    "vs raw best / median",
    "per batch",
    "writer inserts",
    "writer p99",
    "writer max: median / worst round",
]


def _check(runs: list[Run], expected: int, tool: str) -> None:
    for r in runs:
        if r.rows != expected:
            raise RuntimeError(f"{tool} changed {r.rows} rows, expected {expected}")


def run(quick: bool) -> tuple[list[ResultTable], dict[str, Any]]:
    purgeable = 20_000 if quick else 1_000_000
    rounds = 1 if quick else 5
    purge_table = ResultTable(
        f"purge {purgeable:,} rows (replayed/discarded older than 30 days) while a writer"
        f" inserts one row every {WRITER_INTERVAL * 1000:.0f} ms; {rounds} rounds",
        HEADERS,
    )
    discard_table = ResultTable(
        f"discard the old pending rows (`discard -s pending --until 30d`, {DISCARD_BATCH:,}-row"
        " batches)"
        f" with the same writer; {rounds} rounds",
        HEADERS,
    )
    with EmbeddedPostgres() as pg:
        cluster = Cluster(pg)
        try:
            started = time.perf_counter()
            shape = cluster.create_template(purgeable)
            load_seconds = time.perf_counter() - started
            purge_table.rows.append(_row("–", "writer alone", [_idle(cluster)], None))
            startup = _startup(cluster)
            purge_args = ["purge", "--older-than", "30d", "--batch-size"]
            measured: dict[tuple[str, int], list[Run]] = {}
            # Interleave the configurations round by round, so drift in the machine's load
            # spreads over all of them instead of landing on one.
            for round_ in range(rounds):
                for i, n in enumerate(BATCH_SIZES):
                    tools = ["raw", "dlqctl"] if (i + round_) % 2 == 0 else ["dlqctl", "raw"]
                    for tool in tools:
                        work = (
                            _raw(_RAW_DELETE, n)
                            if tool == "raw"
                            else _dlqctl([*purge_args, str(n)])
                        )
                        measured.setdefault((tool, n), []).append(
                            cluster.measure(f"purge_{tool}_{n}", work)
                        )
                for tool in ("raw", "dlqctl"):
                    work = (
                        _raw(_RAW_DISCARD, DISCARD_BATCH)
                        if tool == "raw"
                        else _dlqctl(DISCARD_ARGS)
                    )
                    measured.setdefault((tool, 0), []).append(
                        cluster.measure(f"discard_{tool}", work)
                    )
            for (tool, _), runs in measured.items():
                for r in runs:
                    r.overhead = startup if tool == "dlqctl" else 0.0
            for n in BATCH_SIZES:
                raw, ours = measured[("raw", n)], measured[("dlqctl", n)]
                _check(raw + ours, shape["purgeable"], f"purge at {n}")
                purge_table.rows.append(_row(f"{n:,}", "raw DELETE loop", raw, None))
                purge_table.rows.append(_row(f"{n:,}", "dlqctl purge", ours, raw))
            raw, ours = measured[("raw", 0)], measured[("dlqctl", 0)]
            _check(raw + ours, shape["old_pending"], "discard")
            discard_table.rows.append(_row(f"{DISCARD_BATCH:,}", "raw UPDATE loop", raw, None))
            discard_table.rows.append(_row(f"{DISCARD_BATCH:,}", "dlqctl discard", ours, raw))
        finally:
            cluster.close()
    purge_table.notes += [
        note.format(startup=startup)
        for note in [
            "dlqctl is the CLI process, its start-up included in wall and rows/s; the raw loop is"
            " `DELETE FROM dlq WHERE dlq_id IN (SELECT dlq_id FROM dlq WHERE <statuses> AND"
            " failed_at < cutoff LIMIT n)` in autocommit. Each run on a fresh copy of the table."
            " Writer latency: one autocommitted single-row INSERT; every insert landed (checked).",
            "Rounds interleave all configurations; best = the round least disturbed by other load"
            " on the machine. per batch (median): time per batch transaction (for dlqctl, after"
            " subtracting its measured"
            " start-up of {startup:.2f} s): how long each batch holds its rows' locks, so the"
            " longest a writer that conflicts with one of those rows (re-inserting a duplicate of"
            " a row being deleted) could wait.",
            "A 2-core machine that other jobs may share: compare rows within this run.",
        ]
    ]
    meta = {
        **shape,
        "rounds": rounds,
        "dlqctl_startup_seconds": round(startup, 3),
        "load_seconds": round(load_seconds, 1),
        "writer_interval_ms": WRITER_INTERVAL * 1000,
        "postgres": pg_version(),
    }
    return [purge_table, discard_table], meta


def pg_version() -> str:
    from dlqctl.embedded.postgres import embedded_bindir

    out = subprocess.run(
        [str(embedded_bindir() / "postgres"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip()
