"""EXPLAIN ANALYZE a query as dlqctl runs it, with a custom or a generic plan, and count the
rows each plan node reads (for the plan tests; see docs/performance.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import ClientCursor, sql

from dlqctl.db.filters import fence_plans

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


@dataclass(frozen=True)
class NodeRows:
    """One plan node and how many rows it read (returned plus removed by its filters)."""

    node: str
    rows: int
    detail: str

    def __str__(self) -> str:
        return f"{self.node} read {self.rows:,} ({self.detail})"


def _text(conn: psycopg.Connection[Any], query: Any) -> str:
    if isinstance(query, sql.Composable):
        return query.as_string(conn)
    return query.decode() if isinstance(query, bytes) else str(query)


def to_prepared(text: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """``text`` with its ``%(name)s`` placeholders as ``$n``, and the values in order."""
    order: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        name = match.group(1)
        if name is None:
            raise ValueError("positional %s placeholders are not supported here")
        if name not in order:
            order[name] = len(order) + 1
        return f"${order[name]}"

    converted = _PLACEHOLDER.sub(number, text)
    return converted, [params[name] for name in order]


def explain(
    conn: psycopg.Connection[Any],
    query: Any,
    params: dict[str, Any] | None = None,
    *,
    generic: bool,
    fence: bool | Callable[[psycopg.Connection[Any]], None] = False,
) -> dict[str, Any]:
    """The EXPLAIN (ANALYZE, FORMAT JSON) plan of ``query`` run as a prepared statement.

    ``generic``: ``plan_cache_mode = force_generic_plan``, the plan PostgreSQL caches for a
    statement psycopg prepares after a few executions (planned without the parameters'
    values); otherwise ``force_custom_plan`` (planned for these values, as a one-off query).
    ``fence``: with ``fence_plans`` first, as dlqctl runs its walks (or with this function
    of the connection, for statements fenced otherwise). Runs in a transaction
    that is rolled back: a write shape changes nothing.
    """
    text, values = to_prepared(_text(conn, query), params or {})
    mode = "force_generic_plan" if generic else "force_custom_plan"
    with conn.transaction(force_rollback=True):
        if callable(fence):
            fence(conn)
        elif fence:
            fence_plans(conn)
        conn.execute(sql.SQL("SET LOCAL plan_cache_mode = {}").format(sql.Literal(mode)))
        conn.execute(f"PREPARE dlqctl_plan_test AS {text}")
        try:
            cur = ClientCursor(conn)
            holders = ", ".join(["%s"] * len(values))
            call = "EXECUTE dlqctl_plan_test" + (f"({holders})" if values else "")
            cur.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {call}", values)
            row = cur.fetchone()
            assert row is not None
        finally:
            conn.execute("DEALLOCATE dlqctl_plan_test")
    plan = row[0] if isinstance(row, tuple) else row["QUERY PLAN"]
    return dict(plan[0]["Plan"])


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += nodes(child)
    return out


def rows_read(node: dict[str, Any]) -> int:
    """Rows a node produced plus those its filters removed, over all its loops (EXPLAIN
    reports both per loop)."""
    loops = node.get("Actual Loops", 1) or 0
    per_loop = node.get("Actual Rows", 0)
    for key in (
        "Rows Removed by Filter",
        "Rows Removed by Index Recheck",
        "Rows Removed by Join Filter",
    ):
        per_loop += node.get(key, 0)
    return round(per_loop * loops)


def describe(node: dict[str, Any]) -> str:
    parts = [node["Node Type"]]
    if "Index Name" in node:
        parts.append(f"using {node['Index Name']}")
    if "Relation Name" in node:
        parts.append(f"on {node['Relation Name']}")
    return " ".join(parts)


def node_rows(plan: dict[str, Any]) -> list[NodeRows]:
    out = []
    for node in nodes(plan):
        cond = node.get("Index Cond") or node.get("Filter") or node.get("Recheck Cond") or ""
        detail = f"loops={node.get('Actual Loops')}"
        if cond:
            detail += f", {cond[:160]}"
        out.append(NodeRows(describe(node), rows_read(node), detail))
    return out


def most_rows_read(plan: dict[str, Any]) -> NodeRows:
    """The node that read the most rows."""
    return max(node_rows(plan), key=lambda n: n.rows)
