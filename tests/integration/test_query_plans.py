"""Every query shape reads only a small multiple of what its command returns, whatever the
planner believes (see docs/performance.md).

The data: ``tests.datagen`` (skewed consumers, an old small consumer at the far end of every
failed_at index, a new one, mostly rows of other writers) loaded once per session into three
databases: with fresh statistics (ANALYZE, VACUUM), with stale ones (ANALYZE of another
data set's oldest rows, then the real rows loaded) and with none (never analysed;
autovacuum is off in the last two). Each shape is run as a prepared statement under
``EXPLAIN (ANALYZE, FORMAT JSON)``, once with ``plan_cache_mode = force_generic_plan`` (the
plan PostgreSQL caches for a statement psycopg prepares after a few runs) and once with
custom plans, fenced as the code fences it. The assertion is on row counts: no plan node
reads (returns plus removes by a filter) more rows than the bound of the shape — the rows
the command can return, times the number of index ranges it merges — never on timings.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from pytest_postgresql.executors.noop import NoopExecutor

from dlqctl.core.cursor import Position
from dlqctl.core.filters import EntryFilter
from dlqctl.core.ids import parse_id
from dlqctl.core.models import Status
from dlqctl.db import cleanup_queries as cq
from dlqctl.db import completion, entries
from dlqctl.db import edit_queries as eq
from dlqctl.db import fingerprints as fp
from dlqctl.db import inspect_queries as iq
from dlqctl.db import replay_queries as rq
from dlqctl.db.inspect_queries import RetryScope
from tests import datagen
from tests.plans import explain, node_rows

ROWS = 120_000
NOW = datetime.now(UTC).replace(microsecond=0)
PAGE = 51  # list's 50 plus the one that says whether there is a next page
BATCH = 100
STATES = ("fresh", "stale", "none")
# A node may read twice the shape's bound, plus a few index entries of row versions the
# rolled-back write shapes left behind (a bitmap index scan counts them).
SLACK = 2
DEAD = 10

P, R, D = Status.PENDING, Status.REPLAYED, Status.DISCARDED
BIG, OLD, NEW, TINY = datagen.BIG, datagen.OLD_SMALL, datagen.NEW_SMALL, datagen.TINY

Conn = psycopg.Connection[dict[str, Any]]


def _load(url: str, state: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if state != "fresh":
            conn.execute("ALTER TABLE dlq SET (autovacuum_enabled = false)")
        if state == "stale":
            # Statistics of another table: the oldest 3 % of another data set's rows.
            old = itertools.islice(datagen.generate(ROWS, seed=99, now=NOW), ROWS * 3 // 100)
            with conn.cursor() as cur:
                with cur.copy(f"COPY dlq ({', '.join(datagen.COLUMNS)}) FROM STDIN") as copy:
                    copy.write("".join(old))
                cur.execute("ANALYZE dlq")
                cur.execute("TRUNCATE dlq CASCADE")
        datagen.load(conn, ROWS, now=NOW, analyze=False)
        if state != "fresh":
            conn.execute("ALTER TABLE dlq_attempts SET (autovacuum_enabled = false)")
        conn.execute(_ATTEMPTS)
        if state == "fresh":
            conn.execute("VACUUM ANALYZE dlq")
            conn.execute("VACUUM ANALYZE dlq_attempts")


# Later failures after replays: one for each of 300 of the big consumer's entries, two for
# each of the old consumer's first three, and one whose entry is gone (TRUNCATE dlq).
_ATTEMPTS = f"""
INSERT INTO dlq_attempts (dlq_id, attempt, failed_at, error_message, source_topic,
                          source_partition, source_offset)
SELECT dlq_id, n, failed_at + n * interval '1 hour', 'failed again', 'replayed', 0,
       row_number() OVER ()
FROM (
    (SELECT dlq_id, failed_at FROM dlq WHERE consumer = '{BIG}' ORDER BY dlq_id LIMIT 300)
    UNION ALL
    (SELECT dlq_id, failed_at FROM dlq WHERE consumer = '{OLD}' ORDER BY failed_at LIMIT 3)
    UNION ALL
    (SELECT gen_random_uuid(), now())
) AS picked
CROSS JOIN generate_series(1, CASE WHEN dlq_id IN (
    SELECT dlq_id FROM dlq WHERE consumer = '{OLD}') THEN 2 ELSE 1 END) AS n
"""


@pytest.fixture(scope="session")
def plan_dbs(pg_server: NoopExecutor) -> Iterator[dict[str, str]]:
    """URLs of the three databases (copies of the migrated template, loaded)."""
    base = f"postgresql://{pg_server.user}@{pg_server.host}:{pg_server.port}"
    urls = {}
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        for state in STATES:
            name = f"dlqctl_plans_{state}_{uuid.uuid4().hex[:8]}"
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(pg_server.template_dbname)
                )
            )
            urls[state] = f"{base}/{name}"
            _load(urls[state], state)
        yield urls
        for url in urls.values():
            name = url.rsplit("/", 1)[1]
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass(frozen=True)
class Facts:
    """Values of the loaded data the shapes need (the same in every database)."""

    counts: dict[tuple[str, str], int]
    last_hour: int
    unfingerprinted: int
    old_event: uuid.UUID
    old_ids: list[uuid.UUID]
    deep_big: Position
    deep_old: Position
    attempts: int
    attempted: list[uuid.UUID]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def matching(self, consumers: tuple[str, ...] = (), statuses: tuple[Status, ...] = ()) -> int:
        return sum(
            n
            for (c, s), n in self.counts.items()
            if (not consumers or c in consumers) and (not statuses or s in statuses)
        )


@pytest.fixture(scope="session")
def facts(plan_dbs: dict[str, str]) -> Facts:
    with psycopg.connect(plan_dbs["fresh"], row_factory=dict_row) as conn:
        counts = {
            (r["consumer"], r["status"]): r["n"]
            for r in conn.execute("SELECT consumer, status, count(*) AS n FROM dlq GROUP BY 1, 2")
        }
        last_hour = conn.execute(
            "SELECT count(*) AS n FROM dlq WHERE failed_at >= %s", (NOW - timedelta(hours=1),)
        ).fetchone()
        unfingerprinted = conn.execute(
            "SELECT count(*) AS n FROM dlq WHERE error_fingerprint IS NULL"
        ).fetchone()
        old_rows = conn.execute(
            "SELECT dlq_id, event_id FROM dlq WHERE consumer = %s ORDER BY failed_at LIMIT 3",
            (OLD,),
        ).fetchall()

        def deep(consumer: str, status: str | None) -> Position:
            """Two thirds into a consumer's entries, newest first."""
            where = "consumer = %(c)s" + ("" if status is None else " AND status = %(s)s")
            n = sum(v for (c, s), v in counts.items() if c == consumer and status in (None, s))
            row = conn.execute(
                f"SELECT failed_at, dlq_id FROM dlq WHERE {where}"
                " ORDER BY failed_at DESC, dlq_id DESC OFFSET %(o)s LIMIT 1",
                {"c": consumer, "s": status, "o": n * 2 // 3},
            ).fetchone()
            assert row is not None
            return Position(row["failed_at"], row["dlq_id"])

        attempts = conn.execute("SELECT count(*) AS n FROM dlq_attempts").fetchone()
        attempted = [r["dlq_id"] for r in conn.execute("SELECT DISTINCT dlq_id FROM dlq_attempts")]
        assert last_hour is not None and unfingerprinted is not None and attempts is not None
        return Facts(
            attempts=attempts["n"],
            attempted=attempted,
            counts=counts,
            last_hour=last_hour["n"],
            unfingerprinted=unfingerprinted["n"],
            old_event=old_rows[0]["event_id"],
            old_ids=[r["dlq_id"] for r in old_rows],
            deep_big=deep(BIG, None),
            deep_old=deep(OLD, "pending"),
        )


@dataclass(frozen=True)
class Shape:
    """A statement as dlqctl runs it, and the most rows any of its plan nodes may read."""

    query: Any
    params: dict[str, Any]
    bound: int
    fenced: bool | Callable[[psycopg.Connection[Any]], None] = True


Build = Callable[[Facts], Shape]
F = EntryFilter
CUTOFF = NOW - timedelta(days=25)
PURGE = F(statuses=(R, D), until=CUTOFF)
# The old consumer fails with "could not parse CSV line ..." about every other time: a walk
# with --error reads about twice the rows it returns.
CSV = "CSV line"


def page(entry_filter: EntryFilter, ranges: int = 1, deep: str | None = None) -> Build:
    def build(facts: Facts) -> Shape:
        after = {None: None, "big": facts.deep_big, "old": facts.deep_old}[deep]
        query, params = iq.page_query(entry_filter, limit=PAGE, after=after)
        factor = 3 if entry_filter.error else 1
        return Shape(query, params, PAGE * ranges * factor)

    return build


def stream(entry_filter: EntryFilter, consumers: tuple[str, ...]) -> Build:
    def build(facts: Facts) -> Shape:
        query, params = iq.stream_query(entry_filter)
        return Shape(query, params, facts.matching(consumers))

    return build


def count(entry_filter: EntryFilter) -> Build:
    def build(facts: Facts) -> Shape:
        consumers = [] if entry_filter.consumers else sorted({c for c, _ in facts.counts})
        query, params = entries.count_matches_query(entry_filter, consumers=consumers)
        bound = facts.matching(entry_filter.consumers, entry_filter.effective_statuses)
        return Shape(query, params, bound)

    return build


def age_range(entry_filter: EntryFilter, ranges: int) -> Build:
    def build(facts: Facts) -> Shape:
        entry_filter_ = entry_filter
        if entry_filter.event_id is not None:
            entry_filter_ = replace(entry_filter, event_id=facts.old_event)
        query, params = cq.age_range_query(entry_filter_)
        return Shape(query, params, 2 * ranges)

    return build


def _selection(entry_filter: EntryFilter, ids: list[uuid.UUID] | None = None) -> rq.Selection:
    return rq.Selection(entry_filter, ids=ids, started_at=NOW + timedelta(days=1))


def claim(entry_filter: EntryFilter, ranges: int, at_days: float | None = None) -> Build:
    """A batch claimed from ``at_days`` ago (or the start), as replay's loop runs it."""

    def build(facts: Facts) -> Shape:
        query, params = rq.claim_sql(_selection(entry_filter))
        params["walk_limit"] = BATCH
        if at_days is not None:
            params["walk_at"] = NOW - timedelta(days=at_days)
        factor = 3 if entry_filter.error else 1
        # + 1: a merged claim returns the last row walked once more, as its cursor
        return Shape(query, params, BATCH * ranges * factor + 1)

    return build


def claim_ids(facts: Facts) -> Shape:
    query, params = rq.claim_sql(_selection(F(), ids=facts.old_ids))
    params["walk_limit"] = BATCH
    return Shape(query, params, len(facts.old_ids) + 1)


def plan_groups(entry_filter: EntryFilter, limit: int | None) -> Build:
    def build(facts: Facts) -> Shape:
        pick, params = rq._pick(_selection(entry_filter), rq._SIZE_COLUMNS, limit)
        query = sql.SQL(rq._PLAN_GROUPS).format(size=sql.SQL(rq._size_bound("d")), pick=pick)
        params.update(rq._size_params(1_000_000))
        statuses = entry_filter.statuses or (P,)
        bound = limit or facts.matching(entry_filter.consumers, statuses)
        return Shape(query, params, bound)

    return build


def batch(entry_filter: EntryFilter, ranges: int, after_days: float | None = None) -> Build:
    def build(facts: Facts) -> Shape:
        after = None
        if after_days is not None:
            after = cq.Keyset(NOW - timedelta(days=after_days), uuid.UUID(int=0))
        query, params = cq.batch_statement(entry_filter, after, cq.DELETE)
        fence = partial(cq.fence_batch, change=cq.DELETE)
        return Shape(query, {**params, "walk_limit": BATCH}, BATCH * ranges, fenced=fence)

    return build


def count_after(facts: Facts) -> Shape:
    entry_filter = F(consumers=(OLD,), statuses=(P,))
    after = cq.Keyset(facts.deep_old.failed_at, facts.deep_old.dlq_id)
    source = cq.walk(entry_filter, ("dlq_id",), newest_first=False)
    params = {**source.params, **cq._bound(entry_filter, after)}
    query = sql.SQL(cq._COUNT_AFTER).format(walk=source.source)
    return Shape(query, params, facts.matching((OLD,), (P,)))


def stats(entry_filter: EntryFilter, by: str | None = None) -> Build:
    def build(facts: Facts) -> Shape:
        if by is None:
            query, params = iq.stats_query(entry_filter)
        else:
            query, params = iq.time_buckets_query(entry_filter, by)
        if entry_filter.since is not None:
            bound = facts.last_hour
        else:
            bound = facts.matching(entry_filter.consumers, entry_filter.statuses)
        return Shape(query, params, bound)

    return build


def failed_again(build: Callable[[RetryScope], tuple[Any, dict[str, Any]]]) -> Build:
    """A shape of --failed-again: it reads the entries that failed again by primary key."""

    def shape(facts: Facts) -> Shape:
        query, params = build(iq.RetryScope(ids=facts.attempted))
        return Shape(query, params, len(facts.attempted))

    return shape


def refailures(entry_filter: EntryFilter) -> Build:
    def build(facts: Facts) -> Shape:
        query, params = iq.refailures_query(entry_filter)
        return Shape(query, params, facts.attempts)

    return build


def min_retries(entry_filter: EntryFilter, what: str) -> Build:
    """--min-retries: a condition on each row of the walked ranges (no more rows read)."""

    def build(facts: Facts) -> Shape:
        scope = iq.RetryScope(min_retries=1)
        if what == "page":
            query, params = iq.page_query(entry_filter, limit=PAGE, scope=scope)
            return Shape(query, params, PAGE)
        query, params = iq.stats_query(entry_filter, scope)
        return Shape(query, params, facts.matching(entry_filter.consumers, entry_filter.statuses))

    return build


def retry_counts(entry_filter: EntryFilter) -> Build:
    def build(facts: Facts) -> Shape:
        query, params = iq.retry_counts_query(entry_filter)
        bound = facts.matching(entry_filter.consumers, entry_filter.statuses)
        return Shape(query, params, bound)

    return build


def edit_read(facts: Facts) -> Shape:
    query = sql.SQL(eq._READ).format(lock=sql.SQL("FOR UPDATE"))
    return Shape(query, {"dlq_id": facts.old_ids[0]}, 1, fenced=False)


def edit_write(facts: Facts) -> Shape:
    params = {
        "dlq_id": facts.old_ids[0],
        "edited_raw": b"{}",
        "edited_headers": None,
        "edited": True,
        "actor": "test",
    }
    return Shape(eq._WRITE_EDIT, params, 1, fenced=False)


def backfill_batch(facts: Facts) -> Shape:
    after = (NOW - timedelta(days=12), uuid.UUID(int=0))
    query, params = fp.backfill_query(P, after)
    return Shape(query, {**params, "walk_limit": BATCH}, BATCH)


def id_prefix(facts: Facts) -> Shape:
    selector = parse_id(str(facts.old_ids[0])[:8])
    params = {"low": selector.low, "high": selector.high, "limit": entries.MAX_CANDIDATES + 1}
    return Shape(entries._RESOLVE, params, entries.MAX_CANDIDATES + 1, fenced=False)


def explicit_ids(facts: Facts) -> Shape:
    source = entries.walk(F(consumers=(OLD,)), ("dlq_id",), statuses=(P,), ids=facts.old_ids)
    query = sql.SQL(entries._ELIGIBLE).format(walk=source.source)
    return Shape(query, source.params, len(facts.old_ids), fenced=False)


def mark(facts: Facts) -> Shape:
    params = {"ids": [str(i) for i in facts.old_ids], "actor": "test"}
    return Shape(rq._MARK, params, len(facts.old_ids), fenced=False)


SHAPES: dict[str, Build] = {
    # list: pages (consumers x statuses, windows, --error, --event-id, cursors)
    "page -c old -s pending": page(F(consumers=(OLD,), statuses=(P,))),
    "page -c old": page(F(consumers=(OLD,)), ranges=3),
    "page -c big": page(F(consumers=(BIG,)), ranges=3),
    "page -c big -s discarded": page(F(consumers=(BIG,), statuses=(D,))),
    "page -c new": page(F(consumers=(NEW,)), ranges=3),
    "page -c tiny -c old -s pending": page(F(consumers=(TINY, OLD), statuses=(P,)), ranges=2),
    "page -s pending": page(F(statuses=(P,))),
    "page, no filter": page(F(), ranges=3),
    "page -s discarded --since 3d": page(F(statuses=(D,), since=NOW - timedelta(days=3))),
    "page -c big --until 20d": page(F(consumers=(BIG,), until=NOW - timedelta(days=20)), 3),
    "page -c old --error": page(F(consumers=(OLD,), error=CSV), ranges=3),
    "page -c big, deep cursor": page(F(consumers=(BIG,)), ranges=3, deep="big"),
    "page -c old -s pending, deep cursor": page(F(consumers=(OLD,), statuses=(P,)), deep="old"),
    "page --event-id": lambda facts: page(F(event_id=facts.old_event))(facts),
    # list --all
    "stream -c old": stream(F(consumers=(OLD,)), (OLD,)),
    "stream -c tiny -s discarded": stream(F(consumers=(TINY,), statuses=(D,)), (TINY,)),
    "stream -c new --since 2h": stream(F(consumers=(NEW,), since=NOW - timedelta(hours=2)), (NEW,)),
    # what replay, discard and purge count before they ask
    "count -c old -s pending": count(F(consumers=(OLD,), statuses=(P,))),
    "count -c old -s discarded": count(F(consumers=(OLD,), statuses=(D,))),
    "count purge": count(PURGE),
    "all consumers": lambda facts: Shape(entries._CONSUMERS, {}, len({c for c, _ in facts.counts})),
    "age range -c old -s pending": age_range(F(consumers=(OLD,), statuses=(P,)), 1),
    "age range purge -c big": age_range(F(consumers=(BIG,), statuses=(R, D), until=CUTOFF), 2),
    "age range --event-id": age_range(F(event_id=uuid.UUID(int=1), statuses=(P,)), 1),
    "count after": count_after,
    "replay plan -c old": plan_groups(F(consumers=(OLD,)), None),
    "replay plan --limit": plan_groups(F(), BATCH),
    # the claim walks of replay, discard and purge
    "claim pending": claim(F(), 1, at_days=12),
    "claim -c old": claim(F(consumers=(OLD,)), 1),
    "claim -c old -c tiny": claim(F(consumers=(OLD, TINY)), 2),
    "claim -s pending -s discarded": claim(F(statuses=(P, D)), 2, at_days=12),
    "claim -c old --error": claim(F(consumers=(OLD,), error=CSV), 1),
    "claim ids": claim_ids,
    "mark": mark,
    "discard batch -c old": batch(F(consumers=(OLD,), statuses=(P,)), 1),
    "purge batch": batch(PURGE, 2),
    "purge batch, later": batch(PURGE, 2, after_days=28),
    # stats
    "stats -c old": stats(F(consumers=(OLD,))),
    "stats -c big -s pending": stats(F(consumers=(BIG,), statuses=(P,))),
    "stats --since 1h": stats(F(since=NOW - timedelta(hours=1))),
    "stats, everything": stats(F()),
    "stats --by day -c old": stats(F(consumers=(OLD,)), by="day"),
    "stats --by hour": stats(F(), by="hour"),
    "stats examples": lambda facts: Shape(
        iq._EXAMPLES, {"fingerprints": ["KeyError: <str>", "no such group"]}, 2
    ),
    "stats oldest pending": lambda facts: Shape(
        iq._OLDEST_PENDING, {"consumers": [BIG, OLD, NEW, TINY]}, 4
    ),
    # later failures (stats, list --failed-again / --min-retries, show) and edits
    "attempted ids": lambda facts: Shape(iq._ATTEMPTED_IDS, {}, facts.attempts, fenced=False),
    "stats --failed-again": failed_again(lambda scope: iq.stats_query(F(), scope)),
    "stats --failed-again -c big -s pending": failed_again(
        lambda scope: iq.stats_query(F(consumers=(BIG,), statuses=(P,)), scope)
    ),
    "stats --failed-again --by day": failed_again(
        lambda scope: iq.time_buckets_query(F(), "day", scope)
    ),
    "page --failed-again": failed_again(lambda scope: iq.page_query(F(), limit=PAGE, scope=scope)),
    "stream --failed-again -c big": failed_again(
        lambda scope: iq.stream_query(F(consumers=(BIG,)), scope=scope)
    ),
    "stats --min-retries -c old": min_retries(F(consumers=(OLD,)), "stats"),
    "page --min-retries -c big -s replayed": min_retries(
        F(consumers=(BIG,), statuses=(R,)), "page"
    ),
    "stats --by retries -c old": retry_counts(F(consumers=(OLD,))),
    "stats --by retries -c big -s pending": retry_counts(F(consumers=(BIG,), statuses=(P,))),
    "refailures": refailures(F()),
    "refailures -c old -s pending --since": refailures(
        F(consumers=(OLD,), statuses=(P,), since=NOW - timedelta(days=40))
    ),
    "show attempts": lambda facts: Shape(
        iq._ATTEMPTS, {"dlq_id": facts.old_ids[0]}, 2, fenced=False
    ),
    "edit read": edit_read,
    "edit write": edit_write,
    # the fingerprint backfill
    "backfill batch": backfill_batch,
    "count unfingerprinted": lambda facts: Shape(fp._MISSING, {}, facts.unfingerprinted),
    # shell completion of --consumer
    "complete consumers": lambda facts: Shape(
        completion._CONSUMERS_FROM,
        {"prefix": "", "limit": completion.MAX_NAMES},
        len({c for c, _ in facts.counts}),
        fenced=False,
    ),
    "complete consumers -c o…": lambda facts: Shape(
        completion._CONSUMERS_FROM,
        {"prefix": OLD[:2], "limit": completion.MAX_NAMES},
        len({c for c, _ in facts.counts}),
        fenced=False,
    ),
    # ids
    "id prefix": id_prefix,
    "explicit ids": explicit_ids,
}


@pytest.mark.parametrize("generic", [True, False], ids=["generic", "custom"])
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", list(SHAPES))
def test_no_plan_node_reads_more_than_the_shape_returns(
    plan_dbs: dict[str, str], facts: Facts, name: str, state: str, generic: bool
) -> None:
    shape = SHAPES[name](facts)
    with psycopg.connect(plan_dbs[state], autocommit=True, row_factory=dict_row) as conn:
        plan = explain(conn, shape.query, shape.params, generic=generic, fence=shape.fenced)
    read = node_rows(plan)
    assert max(n.rows for n in read) <= SLACK * shape.bound + DEAD, "\n".join(map(str, read))
