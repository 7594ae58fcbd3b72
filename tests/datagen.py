"""A dlq table shaped like a real platform's: skewed, mostly written by other services.

Used by the plan tests (``tests/integration/test_query_plans.py``) and by ``bench/``::

    from tests.datagen import load
    load(conn, rows=1_000_000, seed=7)

What the data looks like (shares of ``rows``; see ``PROFILES``):

- consumers from 30 % of the rows down to a handful: ``orders`` 30 %, ``payments`` 18 %, …,
  ``tiny`` (5 rows);
- ``legacy-import``, an old incident's small consumer: 0.9 % of the rows (9,000 of a
  million), all pending, all failed four weeks ago, so its rows sit at the far end of every
  index on ``failed_at``;
- ``new-feature``, a new small consumer: all its entries failed in the last hour;
- statuses skewed per consumer (``orders`` is mostly replayed, ``notifications`` mostly
  discarded, ``payments`` mostly pending);
- about 85 % of the rows written by "other writers" (the original services): no
  ``error_fingerprint`` and no provenance columns (``source_*``, ``event_key``,
  ``event_headers``, ``event_raw``), ids from ``gen_random_uuid()``-style UUIDv4; the rest as
  dlqctl's writer stores them (fingerprint from ``dlqctl.core.fingerprint``, provenance,
  UUIDv7 ids);
- bursts of rows with the very same ``failed_at`` (one service's batch insert, and
  millisecond clocks), and a few event ids shared by two entries;
- error messages from a few dozen templates with variable parts (numbers, durations, UUIDs,
  hex, quoted values, timestamps): each template is one error group, almost every message is
  distinct.

The rows are generated in ``failed_at`` order (as services insert them) from a seeded
``random.Random``: the same ``seed``, ``rows`` and ``now`` give the same table. Loading uses
COPY in text format, written by hand (no per-value adaptation): a million rows take well
under a minute.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dlqctl.core.fingerprint import fingerprint

DAY = 86_400.0
HOUR = 3_600.0

OTHER = "other"  # rows written by the original services
DLQCTL = "dlqctl"  # rows written by dlqctl's embedded consumer


@dataclass(frozen=True)
class Profile:
    """One consumer: its share of the rows, status mix, age range and writer."""

    name: str
    share: float  # of all rows; ``count`` overrides it
    statuses: tuple[float, float, float]  # pending, replayed, discarded
    oldest: float  # seconds before ``now``
    newest: float
    dlqctl_share: float  # rows stored by dlqctl's writer (the rest: other writers)
    templates: tuple[int, ...]  # indexes into TEMPLATES, most frequent first
    count: int | None = None


# fmt: the error templates. {n}: a number, {ms}: a duration glued to its unit, {uuid},
# {hex}: 16 hex digits, {q}: a quoted word, {ts}: a timestamp, {ip}: an address.
TEMPLATES: tuple[str, ...] = (
    "context deadline exceeded: POST https://payments.internal/v1/charges/{uuid} after {ms}ms",
    "TimeoutError: upstream inventory-api timed out after {ms}ms (attempt {n} of 5)",
    'pq: duplicate key value violates unique constraint "orders_pkey" (order {n})',
    "KeyError: {q}",
    "ValueError: unknown currency {q} in event {uuid}",
    "json: cannot unmarshal string into Go struct field Order.total of type int64 at offset {n}",
    "HTTPError: 503 Service Unavailable from {ip} (request {hex})",
    "java.lang.IllegalStateException: order {n} is in state {q}, expected 'PAID'",
    "dial tcp {ip}: connect: connection refused",
    "schema validation failed at {ts}: field {q} must be >= {n}",
    "rate limited by carrier API, retry after {ms}ms",
    "template {q} not found for locale {q}",
    "checksum mismatch for blob {hex}: expected {hex}",
    "StaleElementReferenceException while indexing document {uuid} (shard {n})",
    "fraud score {n}.{n} above threshold {n} for card {hex}",
    "could not parse CSV line {n}: unexpected quote at column {n}",
    "panic: runtime error: index out of range [{n}] with length {n}",
    "ConnectionResetError: [Errno 104] Connection reset by peer",
    "payload too large: {n} bytes exceeds limit of 1048576",
    "feature flag {q} evaluated at {ts} returned no variant",
)

PROFILES: tuple[Profile, ...] = (
    Profile("orders", 0.30, (0.25, 0.70, 0.05), 30 * DAY, 0, 0.0, (0, 2, 7, 5, 3)),
    Profile("payments", 0.18, (0.60, 0.30, 0.10), 30 * DAY, 0, 0.0, (0, 4, 8, 6)),
    Profile("inventory", 0.14, (0.15, 0.80, 0.05), 30 * DAY, 0, 0.0, (1, 8, 17, 3)),
    Profile("shipping", 0.10, (0.30, 0.50, 0.20), 21 * DAY, 0, 0.0, (10, 6, 1, 8)),
    Profile("notifications", 0.08, (0.05, 0.15, 0.80), 30 * DAY, 0, 0.0, (11, 10, 17)),
    Profile("search-indexer", 0.07, (0.50, 0.45, 0.05), 14 * DAY, 0, 1.0, (13, 18, 1)),
    Profile("billing", 0.05, (0.70, 0.25, 0.05), 30 * DAY, 0, 1.0, (2, 4, 3, 9)),
    Profile("analytics", 0.04, (0.20, 0.20, 0.60), 7 * DAY, 0, 0.0, (18, 15, 16)),
    Profile("fraud-check", 0.02, (0.40, 0.40, 0.20), 30 * DAY, 0, 0.5, (14, 6, 12)),
    # The old incident: every entry pending, all four weeks old.
    Profile("legacy-import", 0.009, (1.0, 0.0, 0.0), 29 * DAY, 28 * DAY, 0.0, (15, 9, 5)),
    # Deployed an hour ago.
    Profile("new-feature", 0.001, (0.90, 0.05, 0.05), HOUR, 0, 1.0, (19, 16, 3)),
    Profile("tiny", 0.0, (0.60, 0.20, 0.20), 30 * DAY, 0, 0.0, (3, 16), count=5),
)

STATUSES = ("pending", "replayed", "discarded")
BIG = "orders"
OLD_SMALL = "legacy-import"
NEW_SMALL = "new-feature"
TINY = "tiny"

COLUMNS = (
    "dlq_id",
    "consumer",
    "event_id",
    "event_payload",
    "error_message",
    "failed_at",
    "retry_count",
    "status",
    "source_topic",
    "source_partition",
    "source_offset",
    "event_key",
    "event_headers",
    "event_raw",
    "status_changed_at",
    "status_reason",
    "status_changed_by",
    "error_fingerprint",
)

_WORDS = ("sku", "customer_id", "SHIPPED", "total", "de_DE", "GBP", "XBT", "lost", "beta", "v2")
_NULL = "\\N"


def counts(rows: int) -> dict[str, int]:
    """How many rows each consumer gets out of ``rows`` (the first profile takes the rest)."""
    out = {p.name: p.count if p.count is not None else round(rows * p.share) for p in PROFILES}
    out[PROFILES[0].name] += rows - sum(out.values())
    return out


def _copy_text(value: str) -> str:
    """A text value escaped for COPY's text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def _uuid4(rnd: random.Random) -> str:
    h = f"{rnd.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def _uuid7(rnd: random.Random, epoch: float) -> str:
    h = f"{int(epoch * 1000) & 0xFFFFFFFFFFFF:012x}{rnd.getrandbits(80):020x}"
    return f"{h[:8]}-{h[8:12]}-7{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


# The RFC 4122 variant bits (10xx) in the first hex digit of the fourth group.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def _rand_int(rnd: random.Random, low: int, high: int) -> int:
    """An int in [low, high) (cheaper than randrange; the data need not be unbiased)."""
    return low + int(rnd.random() * (high - low))


def _iso(epoch: float) -> str:
    """COPY text of a timestamptz (UTC) at microsecond precision."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class _Messages:
    """Error messages from the templates, their variable parts drawn from ``rnd``."""

    def __init__(self, rnd: random.Random, now: float) -> None:
        self.rnd = rnd
        self.now = now
        self.parsed = [self._parse(t) for t in TEMPLATES]

    @staticmethod
    def _parse(template: str) -> list[tuple[str, str]]:
        """(placeholder, literal text after it) pairs; the first placeholder is empty."""
        parts = template.split("{")
        out = [("", parts[0])]
        for part in parts[1:]:
            name, rest = part.split("}", 1)
            out.append((name, rest))
        return out

    def render(self, template: int) -> str:
        rnd = self.rnd
        out = []
        for name, rest in self.parsed[template]:
            if name == "n":
                out.append(str(_rand_int(rnd, 1, 100_000)))
            elif name == "ms":
                out.append(str(_rand_int(rnd, 50, 30_000)))
            elif name == "uuid":
                out.append(_uuid4(rnd))
            elif name == "hex":
                out.append(f"{rnd.getrandbits(64):016x}")
            elif name == "q":
                word = _WORDS[_rand_int(rnd, 0, len(_WORDS))]
                out.append(f"'{word}'" if rnd.random() < 0.7 else f'"{word}"')
            elif name == "ts":
                at = datetime.fromtimestamp(self.now - rnd.random() * 30 * DAY, UTC)
                out.append(at.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
            elif name == "ip":
                a, b, c = rnd.getrandbits(8), rnd.getrandbits(8), rnd.getrandbits(8)
                out.append(f"10.{a}.{b}.{c}:443")
            out.append(rest)
        return "".join(out)


def _times(rnd: random.Random, profile: Profile, n: int, now: float) -> list[float]:
    """``n`` failure instants of one consumer, oldest first, with bursts of equal instants."""
    span = profile.oldest - profile.newest
    newest = now - profile.newest
    raw = sorted(round(newest - rnd.random() * span, 3) for _ in range(n))
    # Millisecond clocks, and a fifth of the rows in bursts that share one instant.
    for i in range(1, n):
        if rnd.random() < 0.2:
            raw[i] = raw[i - 1]
    return raw


def _cumulative(weights: tuple[float, ...]) -> tuple[float, ...]:
    total = sum(weights)
    acc = 0.0
    out = []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 2.0  # never fall off the end through rounding
    return tuple(out)


def _pick(rnd: random.Random, cumulative: tuple[float, ...]) -> int:
    r = rnd.random()
    for i, bound in enumerate(cumulative):
        if r < bound:
            return i
    return len(cumulative) - 1


def generate(
    rows: int,
    *,
    seed: int = 7,
    now: datetime | None = None,
    payload_bytes: int = 200,
    fingerprinted: bool = False,
) -> Iterator[str]:
    """The rows as lines of COPY text (columns ``COLUMNS``), oldest first.

    ``fingerprinted``: every row has its error_fingerprint, as after a backfill (the other
    writers' rows still have no provenance).
    """
    rnd = random.Random(seed)
    now_s = (now or datetime.now(UTC)).timestamp()
    messages = _Messages(rnd, now_s)
    per_consumer = counts(rows)
    streams = []
    for index, profile in enumerate(PROFILES):
        times = _times(rnd, profile, per_consumer[profile.name], now_s)
        streams.append(zip(times, itertools.repeat(index)))
    status_odds = [_cumulative(p.statuses) for p in PROFILES]
    template_odds = [
        _cumulative(tuple(1.0 / (rank + 1) for rank in range(len(p.templates)))) for p in PROFILES
    ]
    filler = "x" * max(0, payload_bytes - 150)
    offsets: dict[str, int] = {}
    recent_events: list[str] = []
    null6 = [_NULL] * 6
    for epoch, index in heapq.merge(*streams):
        profile = PROFILES[index]
        name = profile.name
        status = STATUSES[_pick(rnd, status_odds[index])]
        by_dlqctl = rnd.random() < profile.dlqctl_share
        # A few percent of the events fail in two consumers: one event id, two entries.
        if recent_events and rnd.random() < 0.02:
            event_id = recent_events[_rand_int(rnd, 0, len(recent_events))]
        else:
            event_id = _uuid4(rnd)
            if len(recent_events) < 512:
                recent_events.append(event_id)
            else:
                recent_events[_rand_int(rnd, 0, 512)] = event_id
        error = messages.render(profile.templates[_pick(rnd, template_odds[index])])
        amount = rnd.random() * 1000
        payload = (
            f'{{"event_id":"{event_id}","type":"{name}.event",'
            f'"n":{rnd.getrandbits(20)},"amount":{amount:.2f},"note":"{filler}"}}'
        )
        retry_count = "0"
        changed_at = reason = changed_by = _NULL
        if status != "pending":
            retry_count = str(_rand_int(rnd, 1, 4) if status == "replayed" else rnd.getrandbits(1))
            changed_at = _iso(min(now_s, epoch + rnd.random() * DAY))
            changed_by = "oncall"
            if status == "discarded" and rnd.random() < 0.5:
                reason = "obsolete after the fix"
        if by_dlqctl:
            dlq_id = _uuid7(rnd, epoch)
            topic = f"{name}.events"
            partition = _rand_int(rnd, 0, 6)
            key = f"{topic}/{partition}"
            offsets[key] = offset = offsets.get(key, 0) + _rand_int(rnd, 1, 50)
            trace = base64.b64encode(event_id[:8].encode()).decode()
            provenance = [
                topic,
                str(partition),
                str(offset),
                "\\\\x" + event_id.encode().hex(),
                f'[["trace-id", "{trace}"]]',
                "\\\\x" + payload.encode().hex(),
            ]
            stored_fp = _copy_text(fingerprint(error))
        else:
            dlq_id = _uuid4(rnd)
            provenance = null6
            stored_fp = _copy_text(fingerprint(error)) if fingerprinted else _NULL
        yield (
            "\t".join(
                [
                    dlq_id,
                    name,
                    event_id,
                    payload,
                    _copy_text(error),
                    _iso(epoch),
                    retry_count,
                    status,
                    *provenance,
                    changed_at,
                    reason,
                    changed_by,
                    stored_fp,
                ]
            )
            + "\n"
        )


def load(
    conn: Any,
    rows: int,
    *,
    seed: int = 7,
    now: datetime | None = None,
    payload_bytes: int = 200,
    analyze: bool = True,
    defer_indexes: bool | None = None,
    fingerprinted: bool = False,
) -> float:
    """COPY ``rows`` generated rows into ``dlq`` (then ANALYZE, unless told not to).

    ``conn`` is a psycopg connection in autocommit mode; ``fingerprinted`` as for
    ``generate``. ``defer_indexes`` (default: from
    100,000 rows on) drops the secondary indexes of ``dlq`` before the COPY and creates
    them again, with the same definitions, afterwards: much faster than maintaining them
    row by row. Returns the seconds taken.
    """
    started = time.perf_counter()
    if defer_indexes is None:
        defer_indexes = rows >= 100_000
    indexes: list[str] = []
    with conn.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '256MB'")
        if defer_indexes:
            cur.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)"
                " FROM pg_index i WHERE i.indrelid = 'dlq'::regclass AND NOT i.indisprimary"
            )
            found = cur.fetchall()
            for name, definition in found:
                cur.execute(f"DROP INDEX {name}")
                indexes.append(definition)
        lines = generate(
            rows, seed=seed, now=now, payload_bytes=payload_bytes, fingerprinted=fingerprinted
        )
        with cur.copy(f"COPY dlq ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            batch: list[str] = []
            for line in lines:
                batch.append(line)
                if len(batch) >= 2000:
                    copy.write("".join(batch))
                    batch.clear()
            if batch:
                copy.write("".join(batch))
        for definition in indexes:
            cur.execute(definition)
        if analyze:
            cur.execute("ANALYZE dlq")
    return time.perf_counter() - started
