"""Benchmark suite ``inspect``: list, show's neighbours and stats on a large dlq table.

Loads rows with COPY-speed server-side generation (bench.common.load_rows) into an embedded
PostgreSQL 18, then measures, next to raw baselines taken in the same run:
- first pages (server time from EXPLAIN ANALYZE) for a big and a small consumer, with and
  without -s, and with no filter, against the naive ORDER BY ... LIMIT query;
- `dlqctl list` wall time against `python -c "import psycopg, typer, pydantic_settings"`
  plus the same query, and psql running the same SQL; `dlqctl --help`;
- a deep page by cursor against OFFSET;
- `list --all -o ndjson` rows/s and peak RSS on ~10 % of the rows and on all of them,
  against a raw psycopg server-side cursor loop;
- `stats` wall time with stored fingerprints and with none stored (grouped on the fly).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import ClientCursor, sql
from psycopg.rows import dict_row

from bench.common import (
    BIG_CONSUMER,
    SMALL_CONSUMER,
    ResultTable,
    dlqctl_argv,
    fmt_ms,
    fmt_ratio,
    load_rows,
    run_process,
    servers,
)
from dlqctl.core.cursor import Position, encode_cursor
from dlqctl.core.filters import EntryFilter
from dlqctl.core.fingerprint import fingerprint
from dlqctl.core.models import Status, iso_utc
from dlqctl.db.filters import build_filter
from dlqctl.db.inspect_queries import ENTRY_COLUMNS, group_counts_query, page_query
from dlqctl.db.migrations import migrate
from dlqctl.embedded.postgres import embedded_bindir

PAGE = 50
PENDING = (Status.PENDING,)


def _explain_ms(
    conn: psycopg.Connection[Any], query: sql.Composable, params: Any, repeat: int
) -> float:
    """Median server time (planning + execution) of ``query`` from EXPLAIN ANALYZE."""
    samples = []
    explain = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query
    for i in range(repeat + 1):
        row = conn.execute(explain, params).fetchone()
        assert row is not None
        plan = row["QUERY PLAN"][0]
        if i:  # the first run warms the cache
            samples.append((plan["Planning Time"] + plan["Execution Time"]) / 1000)
    return statistics.median(samples)


def _naive_page(entry_filter: EntryFilter, limit: int) -> tuple[sql.Composable, dict[str, Any]]:
    """What one would write by hand: the filter, ORDER BY, LIMIT."""
    where = build_filter(entry_filter)
    query = sql.SQL("SELECT {} FROM dlq {} ORDER BY failed_at DESC, dlq_id DESC LIMIT {}").format(
        sql.SQL(", ").join(map(sql.Identifier, ENTRY_COLUMNS)), where.where(), sql.Literal(limit)
    )
    return query, where.params


def _literal_sql(dsn: str, query: sql.Composable, params: dict[str, Any]) -> str:
    with psycopg.connect(dsn) as conn:
        return ClientCursor(conn).mogrify(query, params)


def _median_run(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    return _interleaved({"run": argv}, repeat, env)["run"]


def _interleaved(
    commands: dict[str, list[str]], repeat: int, env: dict[str, str] | None = None
) -> dict[str, float]:
    """Median wall time of each command, run in turn (one warm-up round), so that a busy
    moment on the shared machine hits every command alike."""
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for i in range(repeat + 1):
        for label, argv in commands.items():
            run = run_process(argv, env=env, stdout_to_null=True)
            if run.returncode != 0:
                raise RuntimeError(f"{argv[:4]} failed: {run.stderr.decode(errors='replace')}")
            if i:
                samples[label].append(run.wall)
    return {label: statistics.median(values) for label, values in samples.items()}


def first_pages(conn: psycopg.Connection[Any], rows: int, repeat: int) -> ResultTable:
    table = ResultTable(
        f"First page ({PAGE} entries) on {rows:,} rows: server time (EXPLAIN ANALYZE, median)",
        ["filter", "dlqctl query", "naive ORDER BY … LIMIT", "naive / dlqctl"],
        notes=[
            f"big consumer: {BIG_CONSUMER} (27 % of rows); small: {SMALL_CONSUMER} (1 %, all"
            " older than 25 days). Target: dlqctl under 1 ms in every row.",
        ],
    )
    cases = [
        ("no filter", EntryFilter()),
        ("-s pending", EntryFilter(statuses=PENDING)),
        (f"-c {BIG_CONSUMER}", EntryFilter(consumers=(BIG_CONSUMER,))),
        (f"-c {BIG_CONSUMER} -s pending", EntryFilter(consumers=(BIG_CONSUMER,), statuses=PENDING)),
        (f"-c {SMALL_CONSUMER}", EntryFilter(consumers=(SMALL_CONSUMER,))),
        (
            f"-c {SMALL_CONSUMER} -s pending",
            EntryFilter(consumers=(SMALL_CONSUMER,), statuses=PENDING),
        ),
    ]
    for label, entry_filter in cases:
        ours = _explain_ms(conn, *page_query(entry_filter, limit=PAGE + 1), repeat)
        naive = _explain_ms(conn, *_naive_page(entry_filter, PAGE + 1), max(1, repeat // 3))
        table.rows.append([label, fmt_ms(ours), fmt_ms(naive), fmt_ratio(naive / ours)])
    return table


def startup(dsn: str, repeat: int) -> tuple[ResultTable, dict[str, float]]:
    """dlqctl's wall time next to an interpreter with the same imports, and psql."""
    env = {"DLQCTL_DATABASE_URL": dsn, "COLUMNS": "200"}
    out: dict[str, float] = {}
    table = ResultTable(
        "Start-up and one page: wall time per run (median)",
        ["command", "wall", "vs python + imports + query"],
        notes=[
            'The baseline is `python -c "import psycopg, typer, pydantic_settings"` plus'
            " connecting and running the same page query. Targets: dlqctl list within 1.3× of"
            " it; dlqctl --help at most 150 ms.",
        ],
    )
    for consumer in (BIG_CONSUMER, SMALL_CONSUMER):
        entry_filter = EntryFilter(consumers=(consumer,), statuses=PENDING)
        literal = _literal_sql(dsn, *page_query(entry_filter, limit=PAGE + 1))
        baseline_code = (
            "import sys, json, psycopg, typer, pydantic_settings\n"
            f"with psycopg.connect({dsn!r}) as c:\n"
            f"    rows = c.execute({literal!r}).fetchall()\n"
            "sys.stdout.write(json.dumps([[str(v) for v in r] for r in rows]))\n"
        )
        runs: list[tuple[str, list[str]]] = [
            ("python + imports + query (baseline)", [sys.executable, "-c", baseline_code]),
            (
                "psql, same SQL",
                [str(embedded_bindir() / "psql"), "-X", "-q", "-A", "-t", "-d", dsn, "-c", literal],
            ),
            (
                f"dlqctl list -c {consumer} -s pending -o json",
                dlqctl_argv("list", "-c", consumer, "-s", "pending", "-o", "json"),
            ),
            (
                f"dlqctl list -c {consumer} -s pending (table)",
                dlqctl_argv("list", "-c", consumer, "-s", "pending"),
            ),
        ]
        walls = _interleaved(dict(runs), repeat, env)
        base = walls["python + imports + query (baseline)"]
        for label, wall in walls.items():
            table.rows.append([label, fmt_ms(wall), fmt_ratio(wall / base)])
        out[f"list_json_ratio_{consumer}"] = walls[runs[2][0]] / base
        out[f"list_table_ratio_{consumer}"] = walls[runs[3][0]] / base
    helps = _interleaved(
        {
            "python -c pass": [sys.executable, "-c", "pass"],
            "dlqctl --help": dlqctl_argv("--help"),
            "dlqctl list --help": dlqctl_argv("list", "--help"),
        },
        repeat,
    )
    for label, wall in helps.items():
        out[label] = wall
        table.rows.append([label, fmt_ms(wall), ""])
    return table, out


def deep_page(conn: psycopg.Connection[Any], rows: int, repeat: int) -> ResultTable:
    entry_filter = EntryFilter(consumers=(BIG_CONSUMER,))
    depth = rows // 5
    row = conn.execute(
        "SELECT failed_at, dlq_id FROM dlq WHERE consumer = %s"
        " ORDER BY failed_at DESC, dlq_id DESC OFFSET %s LIMIT 1",
        (BIG_CONSUMER, depth - 1),
    ).fetchone()
    assert row is not None
    after = Position(row["failed_at"], row["dlq_id"])
    by_cursor = _explain_ms(conn, *page_query(entry_filter, limit=PAGE + 1, after=after), repeat)
    naive, params = _naive_page(entry_filter, PAGE + 1)
    by_offset = _explain_ms(conn, naive + sql.SQL(f" OFFSET {depth}"), params, max(1, repeat // 3))
    return ResultTable(
        f"Deep page: entries {depth:,}–{depth + PAGE:,} of -c {BIG_CONSUMER} (server time)",
        ["how", "server time", "vs cursor"],
        [
            [f"--cursor {encode_cursor(after)[:12]}…", fmt_ms(by_cursor), "1.00×"],
            [f"OFFSET {depth:,}", fmt_ms(by_offset), fmt_ratio(by_offset / by_cursor)],
        ],
    )


_RAW_STREAM = """
import json, sys, psycopg
from psycopg.rows import dict_row
dsn, where = sys.argv[1], sys.argv[2]
n = 0
with psycopg.connect(dsn, row_factory=dict_row) as conn, conn.cursor(name="raw") as cur:
    cur.itersize = 2000
    conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
    cur.execute("SELECT dlq_id, consumer, event_id, status, retry_count, failed_at, error_message"
                " FROM dlq " + where + " ORDER BY failed_at DESC, dlq_id DESC")
    write = sys.stdout.write
    for row in cur:
        write(json.dumps(row, default=str, separators=(",", ":")) + "\\n")
        n += 1
"""


def stream(dsn: str, rows: int) -> tuple[ResultTable, dict[str, float]]:
    env = {"DLQCTL_DATABASE_URL": dsn}
    table = ResultTable(
        "list --all -o ndjson: throughput (best of two) and peak RSS",
        [
            "selection",
            "rows",
            "dlqctl wall",
            "dlqctl rows/s",
            "dlqctl peak RSS",
            "raw psycopg rows/s",
            "raw peak RSS",
        ],
        notes=[
            "raw: a psycopg server-side cursor (itersize 2000) writing one json.dumps per row."
            " Target: dlqctl's peak RSS within 10 % between the two sizes.",
        ],
    )
    out: dict[str, float] = {}
    with psycopg.connect(dsn) as conn:
        discarded = conn.execute("SELECT count(*) FROM dlq WHERE status = 'discarded'").fetchone()
    assert discarded is not None
    for label, args, where, n in [
        ("-s discarded (~10 %)", ["-s", "discarded"], "WHERE status = 'discarded'", discarded[0]),
        ("everything", [], "", rows),
    ]:
        ours_argv = dlqctl_argv("list", "--all", "-o", "ndjson", *args)
        raw_argv = [sys.executable, "-c", _RAW_STREAM, dsn, where]
        run_process(raw_argv, stdout_to_null=True)  # warm-up: the same pages into the cache
        ours_runs, raw_runs = [], []
        for _ in range(2):  # best of two, in turn
            ours_runs.append(run_process(ours_argv, env=env, stdout_to_null=True))
            raw_runs.append(run_process(raw_argv, stdout_to_null=True))
        if any(r.returncode for r in ours_runs + raw_runs):
            raise RuntimeError(" ".join(r.stderr.decode() for r in ours_runs + raw_runs))
        ours = min(ours_runs, key=lambda r: r.wall)
        raw = min(raw_runs, key=lambda r: r.wall)
        rss = max(r.max_rss_mb for r in ours_runs)
        raw_rss = max(r.max_rss_mb for r in raw_runs)
        table.rows.append(
            [
                label,
                f"{n:,}",
                f"{ours.wall:.2f} s",
                f"{n / ours.wall:,.0f}",
                f"{rss:.0f} MB",
                f"{n / raw.wall:,.0f}",
                f"{raw_rss:.0f} MB",
            ]
        )
        key = "all" if not args else "part"
        out[f"rss_mb_{key}"] = rss
        out[f"rows_per_s_{key}"] = n / ours.wall
        out[f"raw_rows_per_s_{key}"] = n / raw.wall
    table.notes.append(
        f"peak RSS everything / ~10 %: {out['rss_mb_all'] / out['rss_mb_part']:.2f}×"
    )
    return table, out


def stats(dsn: str, null_dsn: str, repeat: int) -> tuple[ResultTable, dict[str, float]]:
    table = ResultTable(
        "stats: wall time per run (median)",
        ["case", "dlqctl stats -o json", "its SQL alone (server)", "psql, same SQL"],
        notes=[
            "stored: every row carries the error_fingerprint dlqctl's writer stores."
            " none stored: rows written by another service; stats groups each distinct"
            " message in Python (core/fingerprint.py) as the messages stream by."
            " Target: under 1 s on 1M rows with stored fingerprints.",
        ],
    )
    out: dict[str, float] = {}
    psql = str(embedded_bindir() / "psql")
    day_ago = datetime.now(UTC) - timedelta(hours=24)
    cases = [
        ("fingerprints stored, everything", dsn, [], EntryFilter()),
        (
            "fingerprints stored, --since 24h",
            dsn,
            ["--since", iso_utc(day_ago) or ""],
            EntryFilter(since=day_ago),
        ),
        (
            f"fingerprints stored, -c {SMALL_CONSUMER}",
            dsn,
            ["-c", SMALL_CONSUMER],
            EntryFilter(consumers=(SMALL_CONSUMER,)),
        ),
        ("none stored (on the fly), everything", null_dsn, [], EntryFilter()),
        (
            "none stored (on the fly), --since 24h",
            null_dsn,
            ["--since", iso_utc(day_ago) or ""],
            EntryFilter(since=day_ago),
        ),
    ]
    for label, url, args, entry_filter in cases:
        wall = _median_run(
            dlqctl_argv("stats", "-o", "json", *args), repeat, {"DLQCTL_DATABASE_URL": url}
        )
        query, params = group_counts_query(entry_filter)
        with psycopg.connect(url, row_factory=dict_row) as conn:
            server = _explain_ms(conn, query, params, max(1, repeat // 2))
        literal = _literal_sql(url, query, params)
        psql_wall = _median_run([psql, "-X", "-q", "-A", "-t", "-d", url, "-c", literal], repeat)
        table.rows.append([label, fmt_ms(wall), fmt_ms(server), fmt_ms(psql_wall)])
        out[f"stats {label}"] = wall
    with psycopg.connect(null_dsn) as conn:
        distinct_row = conn.execute("SELECT count(DISTINCT error_message) FROM dlq").fetchone()
        sample = [r[0] for r in conn.execute("SELECT error_message FROM dlq LIMIT 20000")]
    assert distinct_row is not None
    started = time.perf_counter()
    for message in sample:
        fingerprint(message)
    per_message = (time.perf_counter() - started) / len(sample)
    table.notes.append(
        f"none stored: {distinct_row[0]:,} distinct messages; fingerprinting costs"
        f" {per_message * 1e6:.1f} µs per message in this run"
        f" ({distinct_row[0] * per_message:.2f} s of the total)."
    )
    out["fingerprint_us"] = per_message * 1e6
    return table, out


def _timed(label: str, fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = fn()
    print(f"  {label}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return result


def run(quick: bool) -> tuple[list[ResultTable], dict[str, Any]]:
    rows = 20_000 if quick else 1_000_000
    repeat = 3 if quick else 7
    meta: dict[str, Any] = {"rows": rows}
    with servers(broker=False) as (pg, _):
        dsn = pg.dsn
        meta["load_s"] = round(_timed(f"load {rows:,} rows", lambda: load_rows(dsn, rows)), 1)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("CREATE DATABASE dlq_unfingerprinted")
        null_dsn = pg.url("dlq_unfingerprinted")
        migrate(null_dsn)
        _timed(
            "load without fingerprints", lambda: load_rows(null_dsn, rows, with_fingerprints=False)
        )
        tables = []
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            tables.append(_timed("first pages", lambda: first_pages(conn, rows, repeat)))
            tables.append(_timed("deep page", lambda: deep_page(conn, rows, repeat)))
        table, numbers = _timed("start-up", lambda: startup(dsn, repeat))
        tables.append(table)
        meta.update({k: round(v, 3) for k, v in numbers.items()})
        table, numbers = _timed("stream", lambda: stream(dsn, rows))
        tables.append(table)
        meta.update({k: round(v, 3) for k, v in numbers.items()})
        table, numbers = _timed("stats", lambda: stats(dsn, null_dsn, repeat))
        tables.append(table)
        meta.update({k: round(v, 3) for k, v in numbers.items()})
    meta["note"] = "2-core machine shared with other jobs; compare ratios within one run"
    print(json.dumps(meta), file=sys.stderr)
    return tables, meta
