-- The original system's table, exactly as it created it. A no-op where it already exists.
-- dlq_id defaults to uuidv7() on PostgreSQL 18+ and to gen_random_uuid() before 18; a table
-- that already exists keeps whatever default it has.
--
-- On the original system's live table: an index that exists is not touched at all (CREATE
-- INDEX IF NOT EXISTS would still wait for a SHARE lock on dlq, behind any open writer, and
-- every service INSERT would queue behind it). One that is missing is built under a short
-- lock timeout: behind a long transaction the migration fails fast and is re-run (see
-- docs/operations.md). Installations that applied the earlier text of this file are not
-- affected: migrations are recorded by name and never run twice.
SET LOCAL lock_timeout = '5s';

DO $$
BEGIN
    IF to_regclass('dlq') IS NULL THEN
        CREATE TABLE dlq (
            dlq_id        UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            consumer      VARCHAR(255) NOT NULL,
            event_id      UUID NOT NULL,
            event_payload JSONB NOT NULL,
            error_message TEXT NOT NULL,
            failed_at     TIMESTAMPTZ NOT NULL DEFAULT NOW(),
            retry_count   INTEGER NOT NULL DEFAULT 0,
            status        VARCHAR(50) NOT NULL DEFAULT 'pending',
            CONSTRAINT dlq_status_check CHECK (status IN ('pending', 'replayed', 'discarded'))
        );
        IF current_setting('server_version_num')::int >= 180000 THEN
            ALTER TABLE dlq ALTER COLUMN dlq_id SET DEFAULT uuidv7();
        END IF;
    END IF;
    IF to_regclass('idx_dlq_consumer') IS NULL THEN
        CREATE INDEX idx_dlq_consumer ON dlq (consumer);
    END IF;
    IF to_regclass('idx_dlq_status') IS NULL THEN
        CREATE INDEX idx_dlq_status ON dlq (status);
    END IF;
    IF to_regclass('idx_dlq_failed_at') IS NULL THEN
        CREATE INDEX idx_dlq_failed_at ON dlq (failed_at);
    END IF;
END
$$;
