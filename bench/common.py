"""Shared pieces of the benchmarks: embedded servers, bulk loading, timing, RSS, reporting."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from dlqctl.db.migrations import migrate
from dlqctl.embedded.postgres import EmbeddedPostgres
from dlqctl.embedded.tansu import EmbeddedBroker
from tests import datagen

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# The skewed data of tests/datagen.py: the big consumer (30 % of the rows), the old small
# one (0.9 %, all pending, all four weeks old) and the new small one (the last hour).
BIG_CONSUMER = datagen.BIG
SMALL_CONSUMER = datagen.OLD_SMALL
NEW_CONSUMER = datagen.NEW_SMALL


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
    dsn: str, rows: int, *, fingerprinted: bool = False, payload_bytes: int = 600
) -> float:
    """Fill ``dlq`` with ``rows`` entries of tests/datagen.py (COPY), then VACUUM ANALYZE;
    returns seconds taken.

    Most rows come from other writers without a stored fingerprint; ``fingerprinted``: every
    row has one, as after a backfill.
    """
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        datagen.load(
            conn, rows, payload_bytes=payload_bytes, analyze=False, fingerprinted=fingerprinted
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
