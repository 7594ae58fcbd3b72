"""``edit``: what an edit changed, as a small table or the JSON result object."""

from __future__ import annotations

from dlqctl.cli.output.console import key_value_table, note, out
from dlqctl.cli.output.machine import print_json
from dlqctl.core.edit import EditResult
from dlqctl.core.models import iso_utc

HASH_PREFIX = 12


def render_edit_result(result: EditResult, output: str) -> None:
    """The result object (``-o json``), else a table of what changed; nothing changed: one
    line on stderr."""
    if output == "json":
        print_json(result.to_json())
        return
    if not result.changed:
        note(result.note or "nothing changes")
        return
    rows = [
        ("entry", f"{result.dlq_id} ({result.consumer})"),
        (
            "value",
            _change(result.value_changed, result.value_sha256_before, result.value_sha256_after),
        ),
        (
            "headers",
            _change(
                result.headers_changed, result.headers_sha256_before, result.headers_sha256_after
            ),
        ),
    ]
    if result.edited_by is not None:
        rows.append(("edited", f"by {result.edited_by} at {iso_utc(result.edited_at)}"))
    title = "edit reverted" if result.reverted else "edited"
    out().print(key_value_table(title, rows, ("", "sha256 of what replay sends")))
    if result.reverted:
        note("replay sends the original message again")
    else:
        note(f"replay sends the edited version; `dlqctl show {result.dlq_id}` shows both")


def _change(changed: bool, before: str | None, after: str | None) -> str:
    if not changed:
        return "unchanged"
    return f"{_short(before)} → {_short(after)}"


def _short(digest: str | None) -> str:
    return "null" if digest is None else digest[:HASH_PREFIX]
