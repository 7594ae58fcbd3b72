"""A text dump of the dlqctl schema, compared against a checked-in snapshot."""

from __future__ import annotations

from typing import Any

import psycopg

TABLES = ("dlq", "dlq_actions", "dlq_attempts", "dlqctl_schema_migrations")
UUID_DEFAULTS = ("uuidv7()", "gen_random_uuid()")


def dump_schema(conn: psycopg.Connection[Any]) -> str:
    lines: list[str] = []
    for table in TABLES:
        lines.append(f"table {table}")
        for name, type_, nullable, default in conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        ):
            if default in UUID_DEFAULTS:
                default = "<uuid default>"
            lines.append(f"  column {name} {type_} null={nullable} default={default}")
        for name, definition in conn.execute(
            # PostgreSQL 18 also lists NOT NULL constraints; is_nullable covers them.
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype <> 'n' ORDER BY conname",
            (table,),
        ):
            lines.append(f"  constraint {name} {definition}")
        for name, definition, valid in conn.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass"
            " ORDER BY c.relname",
            (table,),
        ):
            lines.append(f"  index {name} valid={valid} {definition.replace('public.', '')}")
    return "\n".join(lines) + "\n"
