-- Round 2: later failures of replayed entries (dlq_attempts) and edited messages (edited_*).
-- Only additions: nullable columns without defaults (a catalog change) and a new table. The
-- lock timeout makes the migration fail fast (re-run it) instead of queueing the services'
-- inserts behind it when a long transaction holds the table (see docs/operations.md).
SET LOCAL lock_timeout = '5s';

-- What replay publishes instead of the original message (`dlqctl edit`). The original
-- event_payload / event_raw / event_headers are never changed.
-- Where every column already exists, the ALTER (an ACCESS EXCLUSIVE lock) is not run at all.
DO $$
BEGIN
    IF (
        SELECT count(*) FROM pg_attribute
        WHERE attrelid = 'dlq'::regclass AND NOT attisdropped
            AND attname = ANY (ARRAY['edited_raw', 'edited_headers', 'edited_at', 'edited_by'])
    ) < 4 THEN
        ALTER TABLE dlq
            ADD COLUMN IF NOT EXISTS edited_raw     bytea,
            ADD COLUMN IF NOT EXISTS edited_headers jsonb,
            ADD COLUMN IF NOT EXISTS edited_at      timestamptz,
            ADD COLUMN IF NOT EXISTS edited_by      text;
    END IF;
END
$$;

COMMENT ON COLUMN dlq.edited_raw IS 'the exact value bytes replay publishes instead of the original';
COMMENT ON COLUMN dlq.edited_headers IS
    'headers replay publishes instead of the original (event_headers format); null = unchanged';

-- One row per failure of an entry after it was replayed: the message carried the entry's
-- dlq-id and dlq-consumer headers, and the entry was reopened instead of a new one stored.
CREATE TABLE IF NOT EXISTS dlq_attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign key to dlq on purpose: it would make the original system's `TRUNCATE dlq`
    -- fail. purge deletes the attempts of the entries it deletes; the consumer locks the
    -- entry row before it records an attempt.
    dlq_id           uuid NOT NULL,
    attempt          integer NOT NULL,
    failed_at        timestamptz NOT NULL DEFAULT now(),
    error_message    text NOT NULL,
    source_topic     text,
    source_partition integer,
    source_offset    bigint
);

COMMENT ON COLUMN dlq_attempts.attempt IS 'the entry''s retry_count when it failed again';

-- A re-delivered replayed message records one attempt; also the lookup by entry (show, and
-- purge deleting the attempts of the entries it deletes).
CREATE UNIQUE INDEX IF NOT EXISTS uq_dlq_attempts_source_message
    ON dlq_attempts (dlq_id, source_topic, source_partition, source_offset);
