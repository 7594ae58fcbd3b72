"""Shared pieces of the benchmarks: embedded servers, bulk loading, timing, RSS, reporting."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from dlqctl.core.fingerprint import fingerprint
from dlqctl.db.migrations import migrate
from dlqctl.embedded.postgres import EmbeddedPostgres
from dlqctl.embedded.tansu import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# Consumers and their share of the rows: one big, several medium, one small whose
# failures are all old (the case that needs the composite index).
CONSUMERS: list[tuple[str, float]] = [
    ("orders", 0.27),
    ("payments", 0.15),
    ("inventory", 0.12),
    ("shipping", 0.10),
    ("notifications", 0.09),
    ("billing", 0.08),
    ("search-indexer", 0.07),
    ("analytics", 0.06),
    ("fraud-check", 0.05),
    ("legacy-import", 0.01),
]
BIG_CONSUMER = "orders"
SMALL_CONSUMER = "legacy-import"

# Error templates: %s are filled with ids, numbers, timestamps; each is one error group.
ERROR_TEMPLATES = [
    "TimeoutError: call to payments-api for order %s timed out after %sms",
    "ValueError: unknown currency '%s' in event %s",
    "KeyError: 'customer_id' missing in payload of %s",
    'UniqueViolation: duplicate key value violates unique constraint "orders_pkey"'
    " DETAIL: Key (id)=(%s) already exists.",
    "HTTPError: 503 Service Unavailable from inventory at %s (request %s)",
    "json.decoder.JSONDecodeError: Expecting value: line %s column %s (char %s)",
]


def environment_line() -> str:
    return (
        f"{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )


@contextmanager
def servers(broker: bool = True) -> Iterator[tuple[EmbeddedPostgres, EmbeddedBroker | None]]:
    """An embedded PostgreSQL 18 (migrated) and, if asked, a tansu broker."""
    with EmbeddedPostgres() as pg:
        migrate(pg.dsn)
        if not broker:
            yield pg, None
            return
        with EmbeddedBroker() as kafka:
            yield pg, kafka


def load_rows(
    dsn: str, rows: int, *, with_fingerprints: bool = True, payload_bytes: int = 600
) -> float:
    """Fill ``dlq`` with ``rows`` realistic entries using COPY; returns seconds taken.

    failed_at spans 30 days; 60 % pending, 30 % replayed, 10 % discarded; the small
    consumer's failures are all older than 25 days. The error fingerprint is stored as the
    embedded consumer stores it (``with_fingerprints=False``: as another writer leaves it).
    """
    started = time.perf_counter()
    filler = "x" * max(0, payload_bytes - 160)
    # The server fills the templates with (uuid, number, number, md5 hex), in that order.
    sample = (str(uuid.uuid4()), 17, 42, hashlib.md5(b"0").hexdigest())
    fingerprints = [fingerprint(t % sample[: t.count("%s")]) for t in ERROR_TEMPLATES]
    boundaries = []
    acc = 0.0
    for name, share in CONSUMERS:
        acc += share
        boundaries.append((name, acc))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        # Generated server-side: fast, and the same data on every run (setseed).
        conn.execute("SELECT setseed(0.42)")
        conn.execute(
            """
            INSERT INTO dlq (consumer, event_id, event_payload, error_message, failed_at,
                             retry_count, status, error_fingerprint)
            SELECT c.name, gen_random_uuid(),
                   jsonb_build_object('event_id', gen_random_uuid()::text, 'type', 'OrderPlaced',
                       'order_id', g.i, 'amount', round((random() * 1000)::numeric, 2),
                       'currency', 'EUR', 'items', jsonb_build_array(jsonb_build_object(
                           'sku', 'SKU-' || (g.i %% 977), 'qty', 1 + g.i %% 5)),
                       'note', %(filler)s::text),
                   format((%(templates)s::text[])[1 + g.i %% %(n_templates)s],
                          gen_random_uuid(), g.i %% 5000, g.i, md5(g.i::text)),
                   CASE WHEN c.name = %(small)s
                        THEN now() - interval '25 days' - random() * interval '5 days'
                        ELSE now() - random() * interval '30 days' END,
                   (g.i %% 3),
                   CASE WHEN r.s < 0.6 THEN 'pending' WHEN r.s < 0.9 THEN 'replayed'
                        ELSE 'discarded' END,
                   CASE WHEN %(with_fp)s::boolean
                        THEN (%(fingerprints)s::text[])[1 + g.i %% %(n_templates)s] END
            FROM generate_series(1, %(rows)s) AS g(i)
            CROSS JOIN LATERAL (SELECT random() + 0 * g.i AS pick, random() + 0 * g.i AS s) AS r
            CROSS JOIN LATERAL (
                SELECT b.name FROM unnest(%(names)s::text[], %(bounds)s::float8[]) AS b(name, bound)
                WHERE r.pick <= b.bound OR b.bound = 1 ORDER BY b.bound LIMIT 1) AS c
            """,
            {
                "rows": rows,
                "filler": filler,
                "templates": ERROR_TEMPLATES,
                "n_templates": len(ERROR_TEMPLATES),
                "small": SMALL_CONSUMER,
                "with_fp": with_fingerprints,
                "fingerprints": fingerprints,
                "names": [b[0] for b in boundaries],
                "bounds": [min(b[1], 1.0) for b in boundaries[:-1]] + [1.0],
            },
        )
        conn.execute("VACUUM ANALYZE dlq")
    return time.perf_counter() - started


def median_time(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall seconds of ``fn`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


@dataclass
class ProcessRun:
    wall: float
    max_rss_mb: float
    returncode: int
    stdout: bytes
    stderr: bytes


def _peak_rss_mb(pid: int) -> float | None:
    """VmHWM of a running process: the peak RSS of its own address space (since its exec)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def run_process(
    argv: Sequence[str], env: dict[str, str] | None = None, stdout_to_null: bool = False
) -> ProcessRun:
    """Run a command; wall time and its peak RSS.

    The peak is the process's VmHWM, polled every 10 ms until it exits (it only grows, so the
    last reading is the peak but for the last few ms). Not wait4's ru_maxrss: Linux carries
    the parent's high-water mark over fork and exec, so every child of this (large) benchmark
    process would report at least the benchmark's own RSS.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL if stdout_to_null else subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peak = 0.0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            reading = _peak_rss_mb(proc.pid)
            if reading is not None:
                peak = max(peak, reading)
            done.wait(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    done.set()
    watcher.join()
    return ProcessRun(wall, peak, proc.returncode, out or b"", err or b"")


def dlqctl_argv(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("dlqctl")), *args]


@dataclass
class ResultTable:
    """One table of results, rendered as Markdown."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [
            f"**{self.title}**",
            "",
            "| " + " | ".join(self.headers) + " |",
            "|" + "---|" * len(self.headers),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [""] + [f"_{n}_" for n in self.notes] if self.notes else []
        return "\n".join(lines) + "\n"


def write_results(suite: str, tables: list[ResultTable], meta: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{suite}.md"
    header = f"<!-- generated by `make bench` ({environment_line()}; {json.dumps(meta)}) -->\n"
    path.write_text(header + "\n".join(t.markdown() for t in tables))
    return path


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}×"
