-- dlqctl:no-transaction
-- Built CONCURRENTLY: the table is live and other services keep inserting while these build.
-- Each statement runs on its own; an interrupted build leaves an INVALID index, which
-- `dlqctl migrate` drops and rebuilds on its next run; an index that already exists (and is
-- valid) is skipped without taking any lock.
--
-- A concurrent build never blocks the services' inserts, but it waits for the transactions
-- that were running when it started: behind a long one it gives up after the lock timeout,
-- and `dlqctl migrate` is re-run (see docs/operations.md).
SET lock_timeout = '5s';

-- Newest-first listing and counting per consumer and status; with a LATERAL over the
-- statuses it also serves a consumer's list without a status filter.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_dlq_consumer_status_failed
    ON dlq (consumer, status, failed_at DESC, dlq_id DESC);

-- Listing by status (and, over all three statuses, without any filter); replay's claim
-- walks it forward from its keyset cursor.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_dlq_status_failed
    ON dlq (status, failed_at DESC, dlq_id DESC);

-- --event-id lookups.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_dlq_event_id ON dlq (event_id);

-- The duplicate guard: a re-delivered message cannot be stored twice.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_dlq_source_message
    ON dlq (consumer, source_topic, source_partition, source_offset, event_id)
    WHERE source_topic IS NOT NULL;
