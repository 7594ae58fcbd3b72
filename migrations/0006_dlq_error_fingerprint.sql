-- dlqctl:no-transaction
-- The error fingerprint in SQL: the twin of dlqctl.core.fingerprint.fingerprint (the two
-- agree exactly, tested property by property against the real server). `dlqctl stats`
-- groups the rows other writers stored (error_fingerprint NULL) with it, and the backfill
-- stores it; see docs/performance.md.
--
-- Applied in this order (each pattern before plain numbers, so that a timestamp, UUID, hex
-- run or quoted value stays one piece): timestamps, UUIDs, hex runs of 8+ digits with a
-- letter and a digit (or 0x…), quoted values, numbers (also glued to letters; a leading
-- minus belongs to the number); then the first 1024 characters. Character classes are
-- spelled out (ASCII digits and spaces; for the quote rule a "word character" is an ASCII
-- letter, digit or underscore, or any non-ASCII character) and the text is matched under
-- COLLATE "C", so the result does not depend on the database's locale or encoding. Change
-- it only together with the Python function: stored fingerprints were made by both.
CREATE OR REPLACE FUNCTION dlqctl_error_fingerprint(message text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $fingerprint$
SELECT left(
    regexp_replace(
        regexp_replace(
            regexp_replace(
                regexp_replace(
                    regexp_replace(
                        message COLLATE "C",
                        '[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:[ \t\n\r\f\v]?(?:Z|UTC|[+-][0-9]{2}(?::?[0-9]{2})?))?)?',
                        '<ts>', 'g'),
                    '(?<![0-9A-Za-z])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![0-9A-Za-z])',
                    '<uuid>', 'g'),
                '(?<![0-9A-Za-z])(?:0[xX][0-9a-fA-F]+|(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,})(?![0-9A-Za-z])',
                '<hex>', 'g'),
            '"(?:[^"\\\n]|\\[^\n])*"|(?<![0-9A-Za-z_''])(?<![^\x01-\x7f])''(?:[^''\\\n]|\\[^\n])*''(?![0-9A-Za-z_])(?![^\x01-\x7f])|`[^`\n]*`',
            '<str>', 'g'),
        '-?[0-9]+(?:\.[0-9]+)?',
        '<n>', 'g'),
    1024)
$fingerprint$;

COMMENT ON FUNCTION dlqctl_error_fingerprint(text) IS
    'dlqctl''s error fingerprint (the group key of an error message); equal to dlqctl.core.fingerprint.fingerprint';

-- Error groups, read by `dlqctl stats` with an index-only scan; also finds the rows without
-- a fingerprint (the NULL end) and one example per group. Duplicates share one entry: a few
-- MB for a million rows. Built CONCURRENTLY: the table is live and other services keep
-- inserting while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_dlq_error_groups
    ON dlq (error_fingerprint, consumer, status);
