-- The audit log of dlqctl's write commands: one row per run.
CREATE TABLE IF NOT EXISTS dlq_actions (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    host     text,
    action   text NOT NULL,
    filter   jsonb NOT NULL DEFAULT '{}'::jsonb,
    ids      uuid[],
    counts   jsonb NOT NULL DEFAULT '{}'::jsonb,
    outcome  text NOT NULL,
    reason   text,
    details  jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX IF NOT EXISTS idx_dlq_actions_at ON dlq_actions (at DESC, id DESC);
