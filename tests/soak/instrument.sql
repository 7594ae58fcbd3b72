-- Test-only instrumentation of the chaos soak's own database (never a migration): every row
-- inserted into, changed in or deleted from dlq, and every dlq_attempts row deleted, logged
-- with the moment it happened (clock_timestamp(): inside the transaction, before its commit).
-- Rows of transactions that roll back vanish with them.

CREATE TABLE soak_dlq_log (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                timestamptz NOT NULL DEFAULT clock_timestamp(),
    op                text NOT NULL,
    dlq_id            uuid NOT NULL,
    consumer          text,
    event_id          uuid,
    source_topic      text,
    source_partition  integer,
    source_offset     bigint,
    event_headers     jsonb,
    old_status        text,
    new_status        text,
    new_retry_count   integer,
    changed_by        text
);

CREATE FUNCTION soak_log_dlq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO soak_dlq_log (op, dlq_id, consumer, event_id, source_topic,
                                  source_partition, source_offset, event_headers,
                                  new_status, new_retry_count)
        VALUES ('insert', NEW.dlq_id, NEW.consumer, NEW.event_id, NEW.source_topic,
                NEW.source_partition, NEW.source_offset, NEW.event_headers,
                NEW.status, NEW.retry_count);
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.status IS DISTINCT FROM OLD.status
           OR NEW.retry_count IS DISTINCT FROM OLD.retry_count THEN
            INSERT INTO soak_dlq_log (op, dlq_id, old_status, new_status, new_retry_count,
                                      changed_by)
            VALUES ('update', NEW.dlq_id, OLD.status, NEW.status, NEW.retry_count,
                    NEW.status_changed_by);
        END IF;
        RETURN NEW;
    ELSE
        INSERT INTO soak_dlq_log (op, dlq_id, consumer, event_id, old_status, new_retry_count)
        VALUES ('delete', OLD.dlq_id, OLD.consumer, OLD.event_id, OLD.status, OLD.retry_count);
        RETURN OLD;
    END IF;
END
$$;

CREATE TRIGGER soak_log_dlq AFTER INSERT OR UPDATE OR DELETE ON dlq
    FOR EACH ROW EXECUTE FUNCTION soak_log_dlq();

CREATE TABLE soak_attempts_deleted (
    at                timestamptz NOT NULL DEFAULT clock_timestamp(),
    failed_at         timestamptz NOT NULL,
    dlq_id            uuid NOT NULL,
    source_topic      text,
    source_partition  integer,
    source_offset     bigint
);

CREATE FUNCTION soak_log_attempt_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO soak_attempts_deleted (failed_at, dlq_id, source_topic, source_partition,
                                       source_offset)
    VALUES (OLD.failed_at, OLD.dlq_id, OLD.source_topic, OLD.source_partition,
            OLD.source_offset);
    RETURN OLD;
END
$$;

CREATE TRIGGER soak_log_attempt_delete AFTER DELETE ON dlq_attempts
    FOR EACH ROW EXECUTE FUNCTION soak_log_attempt_delete();
