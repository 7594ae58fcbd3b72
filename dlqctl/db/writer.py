"""The DLQ writer: stores failed events in ``dlq``, once each (the duplicate guard).

Used by the embedded consumer, and on its own by services with their own consume loop::

    writer = DlqWriter(dsn)
    writer.write("orders-projector", event, exc, message)

A re-delivered message (same consumer, topic, partition, offset and event id) is a no-op:
``INSERT ... ON CONFLICT DO NOTHING`` against the unique index ``uq_dlq_source_message``.

A replayed message that fails again (its ``dlq-id`` and ``dlq-consumer`` headers name an
entry of this consumer) links back instead (see docs/consumer.md, "Link-back"): one
statement locks the entry, records a ``dlq_attempts`` row (``ON CONFLICT DO NOTHING`` on
``uq_dlq_attempts_source_message``, so a re-delivery or a second group member racing after a
rebalance records one attempt) and, only when that row is new, reopens the entry. Ordinary
failures never take that path: their batch stays one pipelined round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors

from dlqctl.core.errors import DatabaseError, SchemaMissing
from dlqctl.core.events import FailedEvent, KafkaMessage, failed_event, raw_stand_in
from dlqctl.db.connection import Connection, connect, describe_target, translate_errors

if TYPE_CHECKING:
    from dlqctl.core.settings import Settings

APPLICATION_NAME = "dlqctl-consumer"

T = TypeVar("T")

_INSERT = """
INSERT INTO dlq (consumer, event_id, event_payload, error_message, retry_count,
                 source_topic, source_partition, source_offset, event_key, event_headers,
                 event_raw, error_fingerprint)
VALUES (%(consumer)s, %(event_id)s, %(payload)s::jsonb, %(error_message)s, 0,
        %(source_topic)s, %(source_partition)s, %(source_offset)s, %(event_key)s,
        %(event_headers)s::jsonb, %(event_raw)s, %(error_fingerprint)s)
ON CONFLICT (consumer, source_topic, source_partition, source_offset, event_id)
    WHERE source_topic IS NOT NULL
    DO NOTHING
RETURNING dlq_id
"""

_EXISTING = """
SELECT dlq_id FROM dlq
WHERE consumer = %(consumer)s AND source_topic = %(source_topic)s
  AND source_partition = %(source_partition)s AND source_offset = %(source_offset)s
  AND event_id = %(event_id)s
"""

# The entry is locked first (FOR UPDATE): a purge deleting it meanwhile leaves no row, and
# the failure is stored as a new entry. A discarded entry stays discarded (the attempt is
# still recorded). statement_timestamp(): the attempt and the status change share one moment.
_LINK = """
WITH entry AS (
    SELECT dlq_id, retry_count, status FROM dlq
    WHERE dlq_id = %(replayed_from)s AND consumer = %(consumer)s
    FOR UPDATE
), attempt AS (
    INSERT INTO dlq_attempts (dlq_id, attempt, failed_at, error_message,
                              source_topic, source_partition, source_offset)
    SELECT dlq_id, retry_count, statement_timestamp(), %(error_message)s,
           %(source_topic)s, %(source_partition)s, %(source_offset)s
    FROM entry
    ON CONFLICT (dlq_id, source_topic, source_partition, source_offset) DO NOTHING
    RETURNING dlq_id, attempt
), reopened AS (
    UPDATE dlq SET status = 'pending', error_message = %(error_message)s,
           error_fingerprint = %(error_fingerprint)s,
           status_changed_at = statement_timestamp(), status_changed_by = %(consumer)s,
           status_reason = 'failed again after replay ' || attempt.attempt
    FROM attempt
    WHERE dlq.dlq_id = attempt.dlq_id AND dlq.status <> 'discarded'
    RETURNING dlq.dlq_id
)
SELECT entry.dlq_id, entry.retry_count AS attempt, entry.status,
       EXISTS (SELECT FROM attempt) AS recorded, EXISTS (SELECT FROM reopened) AS reopened
FROM entry
"""

_SCHEMA_PROBE = (
    "SELECT source_topic, source_partition, source_offset, event_key, event_headers,"
    " event_raw, error_fingerprint FROM dlq LIMIT 0"
)
_ATTEMPTS_PROBE = "SELECT dlq_id, attempt, source_offset FROM dlq_attempts LIMIT 0"


@dataclass(frozen=True)
class StoredEntry:
    """Where a failed event is in ``dlq``; ``created`` is False when it was there already.

    ``linked``: a replayed event that failed again, recorded as attempt ``attempt`` of the
    entry it was replayed from (``created``: that attempt is new, not a re-delivery);
    ``reopened``: the entry went back to pending (a discarded one stays discarded).
    """

    dlq_id: UUID
    event: FailedEvent
    created: bool
    linked: bool = False
    attempt: int | None = None
    reopened: bool = False


def _params(entry: FailedEvent) -> dict[str, Any]:
    return {
        "consumer": entry.consumer,
        "event_id": entry.event_id,
        "payload": entry.payload,
        "error_message": entry.error_message,
        "source_topic": entry.source_topic,
        "source_partition": entry.source_partition,
        "source_offset": entry.source_offset,
        "event_key": entry.event_key,
        "event_headers": entry.event_headers,
        "event_raw": entry.event_raw,
        "error_fingerprint": entry.error_fingerprint,
    }


def _with_stand_in(entry: FailedEvent) -> FailedEvent:
    """The entry with its payload replaced by the base64 stand-in (jsonb refused the text)."""
    raw = entry.event_raw if entry.event_raw is not None else entry.payload.encode("utf-8")
    return replace(entry, payload=raw_stand_in(raw), event_raw=raw)


class DlqWriter:
    """Writes DLQ entries over one connection, reconnecting after the database was away.

    Raises DatabaseUnavailable when the server cannot be reached (the caller retries),
    SchemaMissing when ``dlqctl migrate`` has not run, DatabaseError otherwise.
    """

    def __init__(self, dsn: str = "", *, application_name: str = APPLICATION_NAME) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._conn: Connection | None = None
        self._target = describe_target(dsn)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> DlqWriter:
        """A writer for the configured database (DLQCTL_DATABASE_URL, the config file, PG*)."""
        if settings is None:
            from dlqctl.core.settings import load_settings

            settings = load_settings().settings
        return cls(settings.dsn)

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(
                self._dsn, autocommit=True, application_name=self._application_name
            )
        return self._conn

    def for_health_checks(self) -> DlqWriter:
        """A writer of its own for the same database (readiness probes from another thread:
        a psycopg connection serves one thread at a time)."""
        return DlqWriter(self._dsn, application_name=f"{self._application_name} health")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> DlqWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_schema(self) -> None:
        """SchemaMissing unless ``dlq`` and ``dlq_attempts`` have the columns the writer needs."""

        def probe(conn: Connection) -> None:
            conn.execute(_SCHEMA_PROBE)
            conn.execute(_ATTEMPTS_PROBE)

        self._run(probe)

    def write(
        self,
        consumer: str,
        event: Any,
        error: BaseException | str,
        message: KafkaMessage | None = None,
    ) -> StoredEntry:
        """Store one failed event: its decoded value (or raw bytes), the error, and the Kafka
        message it came from if there is one (provenance and the exact bytes)."""
        return self.write_many([failed_event(consumer, event, error, message)])[0]

    def write_many(self, entries: Sequence[FailedEvent]) -> list[StoredEntry]:
        """Store entries in one transaction, in order; those already stored are kept as is."""
        if not entries:
            return []
        return self._run(lambda conn: self._insert(conn, entries))

    def _run(self, work: Callable[[Connection], T]) -> T:
        try:
            with translate_errors(self._target):
                try:
                    return work(self._connection())
                except pg_errors.InvalidColumnReference:
                    raise SchemaMissing(
                        "the duplicate guard (unique index uq_dlq_source_message) is missing:"
                        " run `dlqctl migrate`"
                    ) from None
        except BaseException:
            # After any failure the connection's state is unknown (or it is gone): start over.
            self.close()
            raise

    def _insert(self, conn: Connection, entries: Sequence[FailedEvent]) -> list[StoredEntry]:
        try:
            with conn.transaction():
                return self._insert_all(conn, entries)
        except psycopg.DataError:
            if len(entries) == 1 and entries[0] == _with_stand_in(entries[0]):
                raise
        # jsonb refused a payload (a number beyond its range, a character the database's
        # encoding lacks): store each entry on its own, that one with the base64 stand-in.
        stored = []
        for entry in entries:
            try:
                with conn.transaction():
                    stored += self._insert_all(conn, [entry])
            except psycopg.DataError:
                with conn.transaction():
                    stored += self._insert_all(conn, [_with_stand_in(entry)])
        return stored

    def _insert_all(self, conn: Connection, entries: Sequence[FailedEvent]) -> list[StoredEntry]:
        if not any(e.replayed_from is not None for e in entries):
            return self._insert_new(conn, entries)
        # The rare path: link re-failures back first, in entry-id order (two writers locking
        # the same entries lock them in one order), then insert the rest as usual.
        results: dict[int, StoredEntry] = {}
        links = [(i, e) for i, e in enumerate(entries) if e.replayed_from is not None]
        for i, entry in sorted(links, key=lambda pair: str(pair[1].replayed_from)):
            linked = self._link(conn, entry)
            if linked is not None:
                results[i] = linked
        rest = [i for i in range(len(entries)) if i not in results]
        for i, stored in zip(rest, self._insert_new(conn, [entries[i] for i in rest]), strict=True):
            results[i] = stored
        return [results[i] for i in range(len(entries))]

    def _link(self, conn: Connection, entry: FailedEvent) -> StoredEntry | None:
        """Record a re-failure on the entry it was replayed from; None when that entry is gone
        (purged) or belongs to another consumer: the failure is then a new entry."""
        params = {**_params(entry), "replayed_from": entry.replayed_from}
        row = conn.execute(_LINK, params).fetchone()
        if row is None:
            return None
        return StoredEntry(
            row["dlq_id"],
            entry,
            created=row["recorded"],
            linked=True,
            attempt=row["attempt"],
            reopened=row["reopened"],
        )

    def _insert_new(self, conn: Connection, entries: Sequence[FailedEvent]) -> list[StoredEntry]:
        if not entries:
            return []
        params = [_params(e) for e in entries]
        with conn.cursor() as cur:
            # Pipelined: one round trip for the whole batch.
            cur.executemany(_INSERT, params, returning=True)
            ids: list[UUID | None] = []
            for _ in cur.results():
                row = cur.fetchone()
                ids.append(row["dlq_id"] if row is not None else None)
        stored = []
        for entry, param, dlq_id in zip(entries, params, ids, strict=True):
            if dlq_id is not None:
                stored.append(StoredEntry(dlq_id, entry, created=True))
                continue
            stored.append(self._existing_or_new(conn, entry, param))
        return stored

    def _existing_or_new(
        self, conn: Connection, entry: FailedEvent, param: dict[str, Any]
    ) -> StoredEntry:
        """The entry the duplicate guard found, or (deleted meanwhile) a new one."""
        for _ in range(3):
            existing = conn.execute(_EXISTING, param).fetchone()
            if existing is not None:
                return StoredEntry(existing["dlq_id"], entry, created=False)
            row = conn.execute(_INSERT, param).fetchone()
            if row is not None:
                return StoredEntry(row["dlq_id"], entry, created=True)
        raise DatabaseError("the DLQ entry keeps conflicting with one that is being deleted")
