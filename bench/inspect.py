"""Benchmark suite ``inspect``: list, stats and the confirmation queries on skewed data.

Loads tests/datagen.py's skewed rows (a big consumer with 30 % of the rows, an old small
one whose entries are all four weeks old, a new one from the last hour, ~85 % of the rows
from other writers without a stored fingerprint) into an embedded PostgreSQL 18, then
measures, next to baselines taken in the same run:
- first pages (server time from EXPLAIN ANALYZE) against the query shape dlqctl shipped
  before (one LATERAL per consumer × status, docs/performance.md) and the naive
  ORDER BY ... LIMIT;
- what discard/purge/replay run before they ask (count, age range), against the old
  queries;
- `dlqctl list` (json and table) wall time against a bare script that imports the same
  libraries and runs the same query, and psql running the same SQL; `dlqctl --help`;
- a deep page by cursor against OFFSET;
- `list --all -o ndjson` rows/s and peak RSS against a raw psycopg server-side cursor loop;
- `stats` over other writers' rows before the fingerprint backfill, the backfill itself
  (with a writer inserting a row every 5 ms: its insert latency), and `stats` after it.
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
    NEW_CONSUMER,
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
from dlqctl.core.models import Status, iso_utc
from dlqctl.core.settings import Settings
from dlqctl.db.cleanup_queries import age_range_query
from dlqctl.db.entries import all_consumers, count_matches_query
from dlqctl.db.filters import build_filter, fence_plans
from dlqctl.db.inspect_queries import ENTRY_COLUMNS, page_query, stats_query
from dlqctl.embedded.postgres import embedded_bindir

PAGE = 50
PENDING = (Status.PENDING,)


def _explain_ms(
    conn: psycopg.Connection[Any],
    query: sql.Composable,
    params: Any,
    repeat: int,
    *,
    fence: bool = True,
) -> float:
    """Median server time (planning + execution) of ``query`` from EXPLAIN ANALYZE, run as
    dlqctl runs it (``fence``: after fence_plans, in the same transaction)."""
    samples = []
    explain = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query
    for i in range(repeat + 1):
        with conn.transaction():
            if fence:
                fence_plans(conn)
            row = conn.execute(explain, params).fetchone()
        assert row is not None
        plan = row["QUERY PLAN"][0]
        if i:  # the first run warms the cache
            samples.append((plan["Planning Time"] + plan["Execution Time"]) / 1000)
    return statistics.median(samples)


# The page query dlqctl shipped before issue 10: one LATERAL per consumer × status (or per
# status), the consumer and status the planner cannot see (docs/performance.md).
_OLD_PAGE = """
SELECT {outer} FROM {ranges} CROSS JOIN LATERAL (
    SELECT {inner} FROM dlq WHERE {match}
    ORDER BY failed_at DESC, dlq_id DESC LIMIT %(page_limit)s) AS e
ORDER BY e.failed_at DESC, e.dlq_id DESC LIMIT %(page_limit)s
"""


def _old_page(entry_filter: EntryFilter, limit: int) -> tuple[sql.Composable, dict[str, Any]]:
    params: dict[str, Any] = {
        "page_statuses": [s.value for s in entry_filter.effective_statuses],
        "page_limit": limit,
    }
    if entry_filter.consumers:
        params["page_consumers"] = list(entry_filter.consumers)
        ranges = (
            "unnest(%(page_consumers)s::text[]) AS pc(name)"
            " CROSS JOIN unnest(%(page_statuses)s::text[]) AS ps(name)"
        )
        match = "consumer = pc.name AND status = ps.name"
    else:
        ranges = "unnest(%(page_statuses)s::text[]) AS ps(name)"
        match = "status = ps.name"
    query = sql.SQL(_OLD_PAGE).format(
        outer=sql.SQL(", ").join(sql.Identifier("e", c) for c in ENTRY_COLUMNS),
        ranges=sql.SQL(ranges),
        inner=sql.SQL(", ").join(map(sql.Identifier, ENTRY_COLUMNS)),
        match=sql.SQL(match),
    )
    return query, params


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
        ["filter", "dlqctl", "shape shipped before", "naive ORDER BY … LIMIT", "before / dlqctl"],
        notes=[
            f"{BIG_CONSUMER}: 30 % of the rows; {SMALL_CONSUMER}: 0.9 %, all pending and four"
            f" weeks old; {NEW_CONSUMER}: 0.1 %, all from the last hour. Target: dlqctl under"
            " 1 ms in every row.",
        ],
    )
    cases = [
        (
            f"-c {SMALL_CONSUMER} -s pending",
            EntryFilter(consumers=(SMALL_CONSUMER,), statuses=PENDING),
        ),
        (f"-c {SMALL_CONSUMER}", EntryFilter(consumers=(SMALL_CONSUMER,))),
        (f"-c {NEW_CONSUMER}", EntryFilter(consumers=(NEW_CONSUMER,))),
        (f"-c {BIG_CONSUMER} -s pending", EntryFilter(consumers=(BIG_CONSUMER,), statuses=PENDING)),
        (f"-c {BIG_CONSUMER}", EntryFilter(consumers=(BIG_CONSUMER,))),
        ("-s pending", EntryFilter(statuses=PENDING)),
        ("no filter", EntryFilter()),
    ]
    for label, entry_filter in cases:
        ours = _explain_ms(conn, *page_query(entry_filter, limit=PAGE + 1), repeat)
        few = max(1, repeat // 3)
        before = _explain_ms(conn, *_old_page(entry_filter, PAGE + 1), few, fence=False)
        naive = _explain_ms(conn, *_naive_page(entry_filter, PAGE + 1), few, fence=False)
        table.rows.append(
            [label, fmt_ms(ours), fmt_ms(before), fmt_ms(naive), fmt_ratio(before / ours)]
        )
    return table


# What discard, purge and replay ran before issue 10 to confirm (one scan with the filter).
_OLD_COUNT = "SELECT consumer, status, count(*) AS n FROM dlq {} GROUP BY consumer, status"
_OLD_AGE_RANGE = "SELECT min(failed_at) AS oldest, max(failed_at) AS newest FROM dlq {}"


def confirmations(conn: psycopg.Connection[Any], repeat: int) -> ResultTable:
    table = ResultTable(
        "Before the prompt: what discard/purge count and show, server time (median)",
        ["query", "dlqctl", "query shipped before", "before / dlqctl"],
        notes=["Target: the age range of `discard -c SMALL --dry-run` under 5 ms."],
    )
    small = EntryFilter(consumers=(SMALL_CONSUMER,), statuses=PENDING)
    purge = EntryFilter(
        statuses=(Status.REPLAYED, Status.DISCARDED), until=datetime.now(UTC) - timedelta(days=7)
    )
    cases = [
        (f"discard -c {SMALL_CONSUMER}: age range", age_range_query(small), _OLD_AGE_RANGE, small),
        (f"discard -c {SMALL_CONSUMER}: count", count_matches_query(small), _OLD_COUNT, small),
        ("purge --older-than 7d: age range", age_range_query(purge), _OLD_AGE_RANGE, purge),
        ("purge --older-than 7d: count", count_matches_query(purge), _OLD_COUNT, purge),
    ]
    for label, (query, params), old, entry_filter in cases:
        if label.endswith("count") and not entry_filter.consumers:
            # As count_matches runs it: per consumer (a loose scan finds them first).
            with conn.transaction():
                fence_plans(conn)
                consumers = all_consumers(conn)
            query, params = count_matches_query(entry_filter, consumers=consumers)
        ours = _explain_ms(conn, query, params, repeat)
        where = build_filter(entry_filter)
        old_query = sql.SQL(old).format(where.where())
        before = _explain_ms(conn, old_query, where.params, max(1, repeat // 3), fence=False)
        table.rows.append([label, fmt_ms(ours), fmt_ms(before), fmt_ratio(before / ours)])
    return table


# A bare script with the libraries `dlqctl list` loads, running the same statements (the
# plan fence, then the page query) and printing the rows as JSON or as a Rich table.
_BARE_LIST = """
import sys, json, psycopg, typer, pydantic_settings
{rich_import}
with psycopg.connect({dsn!r}) as c:
    c.execute({fence!r})
    rows = c.execute({query!r}).fetchall()
{render}
"""
_RENDER_JSON = "sys.stdout.write(json.dumps([[str(v) for v in r] for r in rows]))"
_RICH_IMPORT = "from rich.console import Console\nfrom rich.table import Table"
_RENDER_TABLE = """
table = Table("dlq_id", "consumer", "event_id", "status", "retry_count", "failed_at", "error")
for r in rows:
    table.add_row(*[str(v) for v in r])
Console(width=200).print(table)
"""


def startup(dsn: str, repeat: int) -> tuple[ResultTable, dict[str, float]]:
    """dlqctl's wall time next to a bare script with the same imports and query, and psql."""
    env = {"DLQCTL_DATABASE_URL": dsn, "COLUMNS": "200"}
    out: dict[str, float] = {}
    table = ResultTable(
        "Start-up and one page: wall time per run (median)",
        ["command", "wall", "vs its bare script"],
        notes=[
            "bare script: `import psycopg, typer, pydantic_settings` (and Rich's Console and"
            " Table for the table view), then connect, the same statements, print the rows"
            " (json.dumps / a Rich Table). Targets: dlqctl list within 1.3× of its bare"
            " script; dlqctl --help at most 150 ms.",
        ],
    )
    fence = "SET enable_sort = off; SET enable_incremental_sort = off"
    for consumer in (SMALL_CONSUMER, BIG_CONSUMER):
        entry_filter = EntryFilter(consumers=(consumer,), statuses=PENDING)
        literal = _literal_sql(dsn, *page_query(entry_filter, limit=PAGE + 1))
        bare_json = _BARE_LIST.format(
            rich_import="", dsn=dsn, fence=fence, query=literal, render=_RENDER_JSON
        )
        bare_table = _BARE_LIST.format(
            rich_import=_RICH_IMPORT, dsn=dsn, fence=fence, query=literal, render=_RENDER_TABLE
        )
        args = ["list", "-c", consumer, "-s", "pending"]
        runs = {
            "bare script, json": [sys.executable, "-c", bare_json],
            "bare script, Rich table": [sys.executable, "-c", bare_table],
            "psql, same SQL": [
                str(embedded_bindir() / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-d",
                dsn,
                "-c",
                literal,
            ],
            f"dlqctl list -c {consumer} -s pending -o json": dlqctl_argv(*args, "-o", "json"),
            f"dlqctl list -c {consumer} -s pending (table)": dlqctl_argv(*args),
        }
        walls = _interleaved(runs, repeat, env)
        labels = list(runs)
        json_ratio = walls[labels[3]] / walls[labels[0]]
        table_ratio = walls[labels[4]] / walls[labels[1]]
        for label, wall in walls.items():
            ratio = {labels[3]: fmt_ratio(json_ratio), labels[4]: fmt_ratio(table_ratio)}
            table.rows.append([label, fmt_ms(wall), ratio.get(label, "")])
        out[f"list_json_ratio_{consumer}"] = json_ratio
        out[f"list_table_ratio_{consumer}"] = table_ratio
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
    by_offset = _explain_ms(
        conn, naive + sql.SQL(f" OFFSET {depth}"), params, max(1, repeat // 3), fence=False
    )
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


def _stats_runs(
    dsn: str, repeat: int, cases: list[tuple[str, list[str], EntryFilter]]
) -> list[tuple[str, float, float]]:
    """(label, dlqctl stats -o json wall, its grouping SQL's server time) per case."""
    out = []
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        for label, args, entry_filter in cases:
            wall = _median_run(
                dlqctl_argv("stats", "-o", "json", *args), repeat, {"DLQCTL_DATABASE_URL": dsn}
            )
            query, params = stats_query(entry_filter)
            server = _explain_ms(conn, query, params, max(1, repeat // 2))
            out.append((label, wall, server))
    return out


def _writer_latency(dsn: str, work: Callable[[], Any] | None, seconds: float) -> list[float]:
    """Insert latencies of a writer inserting one row every 5 ms while ``work`` runs (or for
    ``seconds`` with nothing else running)."""
    from multiprocessing import get_context

    from bench.purge import _writer

    context = get_context("spawn")
    stop, ready, results = context.Event(), context.Event(), context.Queue()
    writer = context.Process(target=_writer, args=(dsn, stop, ready, results))
    writer.start()
    ready.wait(30)
    if work is None:
        time.sleep(seconds)
    else:
        work()
    stop.set()
    latencies: list[float] = results.get(timeout=60)
    writer.join(30)
    return latencies


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stats(dsn: str, rows: int, repeat: int) -> tuple[list[ResultTable], dict[str, float]]:
    """stats over other writers' rows, the fingerprint backfill, stats after it."""
    out: dict[str, float] = {}
    day_ago = datetime.now(UTC) - timedelta(hours=24)
    everything = [("everything", [], EntryFilter())]
    filtered = [
        ("--since 24h", ["--since", iso_utc(day_ago) or ""], EntryFilter(since=day_ago)),
        (f"-c {SMALL_CONSUMER}", ["-c", SMALL_CONSUMER], EntryFilter(consumers=(SMALL_CONSUMER,))),
    ]
    with psycopg.connect(dsn) as conn:
        missing_row = conn.execute(
            "SELECT count(*) FROM dlq WHERE error_fingerprint IS NULL"
        ).fetchone()
    assert missing_row is not None
    missing = missing_row[0]
    before = _stats_runs(dsn, 1, everything) + _stats_runs(dsn, repeat, filtered)
    idle = _writer_latency(dsn, None, 10)
    backfill: dict[str, Any] = {}

    def run_backfill() -> None:
        started = time.perf_counter()
        result = backfill(Settings(database_url=dsn))
        backfill["seconds"] = time.perf_counter() - started
        backfill["changed"] = result.changed

    during = _writer_latency(dsn, run_backfill, 0)
    # The writer's rows the first pass had already walked past: what the next scheduled
    # run picks up.
    started = time.perf_counter()
    catch_up = backfill(Settings(database_url=dsn))
    catch_up_s = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE dlq")
    after = _stats_runs(dsn, repeat, everything + filtered)

    table = ResultTable(
        f"stats over {rows:,} rows, {missing:,} of them stored by other writers without a"
        " fingerprint: wall time (median)",
        ["case", "dlqctl stats -o json", "its grouping SQL alone (server)"],
        notes=[
            "Before the backfill stats fingerprints those rows in SQL as it reads them"
            " (correct, slow); after it, stored fingerprints come from an index-only scan of"
            " idx_dlq_error_groups. Target: under 1 s on 1M rows after the backfill.",
        ],
    )
    for when, results in (("before the backfill", before), ("after the backfill", after)):
        for label, wall, server in results:
            table.rows.append([f"{label}, {when}", fmt_ms(wall), fmt_ms(server)])
            out[f"stats {label}, {when}"] = wall
    backfill_table = ResultTable(
        "The fingerprint backfill, and a writer inserting one row every 5 ms meanwhile",
        ["", "rows", "seconds", "rows/s", "insert p50", "insert p99", "insert max"],
        notes=[
            "The backfill: batches of 1,000 rows per status in stored order, each one short"
            " transaction that locks only rows without a fingerprint, SKIP LOCKED. Rows the"
            " writer inserted behind the walk are left for the next run, measured after the"
            " writer stopped. The VACUUM that follows (autovacuum's job on a live system) is"
            " not timed.",
        ],
    )
    for label, latencies, n, seconds in (
        ("writer alone (10 s)", idle, 0, 0.0),
        ("writer during the backfill", during, backfill["changed"], backfill["seconds"]),
        ("the next run (the writer's rows), writer stopped", [], catch_up.changed, catch_up_s),
    ):
        backfill_table.rows.append(
            [
                label,
                f"{n:,}" if n else "",
                f"{seconds:.1f}" if seconds else "",
                f"{n / seconds:,.0f}" if seconds else "",
                fmt_ms(_quantile(latencies, 0.5)) if latencies else "",
                fmt_ms(_quantile(latencies, 0.99)) if latencies else "",
                fmt_ms(max(latencies)) if latencies else "",
            ]
        )
    out["catch_up_rows"] = catch_up.changed
    out["backfill_s"] = backfill["seconds"]
    out["backfill_rows"] = backfill["changed"]
    out["insert_p99_idle_ms"] = _quantile(idle, 0.99) * 1000
    out["insert_p99_backfill_ms"] = _quantile(during, 0.99) * 1000
    return [table, backfill_table], out


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
        tables = []
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            tables.append(_timed("first pages", lambda: first_pages(conn, rows, repeat)))
            tables.append(_timed("confirmations", lambda: confirmations(conn, repeat)))
            tables.append(_timed("deep page", lambda: deep_page(conn, rows, repeat)))
        table, numbers = _timed("start-up", lambda: startup(dsn, repeat))
        tables.append(table)
        meta.update({k: round(v, 3) for k, v in numbers.items()})
        table, numbers = _timed("stream", lambda: stream(dsn, rows))
        tables.append(table)
        meta.update({k: round(v, 3) for k, v in numbers.items()})
        stats_tables, numbers = _timed("stats", lambda: stats(dsn, rows, repeat))
        tables.extend(stats_tables)
        meta.update({k: round(v, 3) for k, v in numbers.items()})
    meta["note"] = "2-core machine shared with other jobs; compare ratios within one run"
    print(json.dumps(meta), file=sys.stderr)
    return tables, meta
