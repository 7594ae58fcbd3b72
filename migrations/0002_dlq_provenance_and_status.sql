-- Provenance of consumed events (for exact replay and the duplicate guard), status
-- bookkeeping and the stored error fingerprint. Nullable columns without defaults: adding
-- them only touches the catalog. The short lock timeout makes the migration fail fast instead
-- of queueing the services' inserts behind it when a long transaction holds the table (then
-- re-run it; see docs/operations.md).
SET LOCAL lock_timeout = '5s';

-- Where every column already exists, the ALTER (an ACCESS EXCLUSIVE lock) is not run at all.
DO $$
BEGIN
    IF (
        SELECT count(*) FROM pg_attribute
        WHERE attrelid = 'dlq'::regclass AND NOT attisdropped AND attname = ANY (ARRAY[
            'source_topic', 'source_partition', 'source_offset', 'event_key', 'event_headers',
            'event_raw', 'status_changed_at', 'status_reason', 'status_changed_by',
            'error_fingerprint'
        ])
    ) < 10 THEN
        ALTER TABLE dlq
            ADD COLUMN IF NOT EXISTS source_topic      text,
            ADD COLUMN IF NOT EXISTS source_partition  integer,
            ADD COLUMN IF NOT EXISTS source_offset     bigint,
            ADD COLUMN IF NOT EXISTS event_key         bytea,
            ADD COLUMN IF NOT EXISTS event_headers     jsonb,
            ADD COLUMN IF NOT EXISTS event_raw         bytea,
            ADD COLUMN IF NOT EXISTS status_changed_at timestamptz,
            ADD COLUMN IF NOT EXISTS status_reason     text,
            ADD COLUMN IF NOT EXISTS status_changed_by text,
            ADD COLUMN IF NOT EXISTS error_fingerprint text;
    END IF;
END
$$;

COMMENT ON COLUMN dlq.event_headers IS
    'Kafka headers as consumed: an array of [key, value] pairs, value base64 text or null';
COMMENT ON COLUMN dlq.event_raw IS 'the exact message bytes as consumed';
COMMENT ON COLUMN dlq.error_fingerprint IS
    'error_message with numbers, ids, hex, quoted values and timestamps replaced (dlqctl writer)';
