"""Entries: ``list`` as aligned lines (one per entry) and ``show`` as every column."""

from __future__ import annotations

import base64
import difflib
import functools
import json
import os
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.json import JSON
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dlqctl.cli.output.console import new_console, out, when
from dlqctl.core import jsontext
from dlqctl.core.models import DlqEntry, Header, compact_json
from dlqctl.core.text import one_line

ERROR_CELL_CHARS = 200
PAYLOAD_CELL_CHARS = 120
STATUS_STYLES = {"pending": "yellow", "replayed": "green", "discarded": "dim"}
# After the status of an entry whose replay sends an edited version (dlqctl edit).
EDITED_MARK = " ✎"
# A pending entry that was replayed before has failed again after its replays.
FAILED_AGAIN_STYLE = "bold red"
ATTEMPT_ERROR_CHARS = 300
DIFF_CONTEXT = 3
DIFF_STYLES = {"+": "green", "-": "red", "@": "cyan"}
PIPED_TABLE_WIDTH = 200

_FIXED_COLUMNS = ("dlq_id", "consumer", "status", "retries", "failed_at (UTC)")
_GAP = "  "
MAX_CONSUMER_WIDTH = 24
MIN_FLEXIBLE_WIDTH = 20


def _entry_cells(e: DlqEntry, now: datetime, payload: bool) -> list[str]:
    cells = [
        str(e.dlq_id),
        e.consumer,
        e.status.value + (EDITED_MARK if e.is_edited else ""),
        str(e.retry_count),
        when(e.failed_at, now),
        one_line(e.error_message, ERROR_CELL_CHARS, first_line_only=True),
    ]
    if payload:
        cells.append(
            one_line(compact_json(e.event_payload), PAYLOAD_CELL_CHARS, first_line_only=True)
        )
    return cells


def _fit(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded or cut (with …) to exactly ``width`` terminal cells."""
    size = cell_len(text)
    if size <= width:
        return " " * (width - size) + text if right else text + " " * (width - size)
    return set_cell_size(text, width - 1) + "…"


def _layout(rows: list[list[str]], width: int, payload: bool) -> list[int]:
    """Column widths: the fixed columns fit their content, the error (and payload) share
    what is left of the line, so each entry stays on one line."""
    widths = [
        max(len(name), *(cell_len(r[i]) for r in rows)) for i, name in enumerate(_FIXED_COLUMNS)
    ]
    widths[1] = min(widths[1], MAX_CONSUMER_WIDTH)
    flexible = 2 if payload else 1
    rest = width - sum(widths) - len(_GAP) * (len(widths) + flexible - 1)
    return widths + [max(MIN_FLEXIBLE_WIDTH, rest // flexible)] * flexible


def _entry_lines(rows: list[list[str]], widths: list[int], header: bool) -> Text:
    text = Text(no_wrap=True, overflow="crop", end="")
    if header:
        names = [*_FIXED_COLUMNS, "error", "payload"][: len(widths)]
        line = _GAP.join(
            _fit(n, w, right=n == "retries") for n, w in zip(names, widths, strict=True)
        )
        text.append(line.rstrip() + "\n", style="bold")
        text.append("─" * cell_len(line) + "\n", style="dim")
    for row in rows:
        status = row[2].split(" ", 1)[0]
        text.append(_fit(row[0], widths[0]) + _GAP + _fit(row[1], widths[1]) + _GAP)
        text.append(_fit(row[2], widths[2]), style=STATUS_STYLES.get(status, ""))
        failed_again = status == "pending" and row[3] != "0"
        text.append(_GAP)
        text.append(
            _fit(row[3], widths[3], right=True), style=FAILED_AGAIN_STYLE if failed_again else ""
        )
        rest = [_fit(c, w) for c, w in zip(row[4:], widths[4:], strict=True)]
        text.append(_GAP + _GAP.join(rest).rstrip() + "\n")
    return text


@functools.cache
def _listing_console() -> Console:
    """Off a terminal (and without COLUMNS) Rich assumes 80 columns, which would cut the ids
    of a piped listing; print it on a wide page instead."""
    console = out()
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return new_console(width=PIPED_TABLE_WIDTH, color_system=None)


class Rendered(NamedTuple):
    """How many entries a listing printed, and how many of them are edited."""

    shown: int
    edited: int


def render_entries(
    entries: Iterable[DlqEntry], *, payload: bool, now: datetime, chunk: int | None = None
) -> Rendered:
    """Print entries as aligned columns on stdout, one line each; with ``chunk``, that many
    at a time (``--all``: the layout of the first chunk is kept)."""
    console = _listing_console()
    count = edited = 0
    widths: list[int] | None = None
    batch: list[list[str]] = []

    def flush() -> None:
        nonlocal widths, count
        if not batch:
            return
        header = widths is None
        if widths is None:
            widths = _layout(batch, console.width, payload)
        console.print(_entry_lines(batch, widths, header), soft_wrap=True, highlight=False, end="")
        count += len(batch)
        batch.clear()

    for entry in entries:
        batch.append(_entry_cells(entry, now, payload))
        edited += entry.is_edited
        if chunk is not None and len(batch) >= chunk:
            flush()
    flush()
    return Rendered(count, edited)


def render_entry(entry: DlqEntry, now: datetime) -> None:
    """``show``: every column, the error in full, the payload pretty-printed."""
    fields = Table(box=None, show_header=False, pad_edge=False)
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column(overflow="fold")

    def add(name: str, value: object) -> None:
        shown = "—" if value is None else str(value)
        style = STATUS_STYLES.get(shown, "") if name == "status" else ""
        fields.add_row(Text(name), Text(shown, style=style))

    add("dlq_id", entry.dlq_id)
    add("consumer", entry.consumer)
    add("event_id", entry.event_id)
    add("status", entry.status.value)
    add("retry_count", entry.retry_count)
    add("failed_at", when(entry.failed_at, now))
    add("status_changed_at", when(entry.status_changed_at, now) or None)
    add("status_changed_by", entry.status_changed_by)
    add("status_reason", entry.status_reason)
    add("source_topic", entry.source_topic)
    add("source_partition", entry.source_partition)
    add("source_offset", entry.source_offset)
    data = entry.to_json(full=True)
    add("event_key", data["event_key"])
    add("error_fingerprint", entry.error_fingerprint)
    add("attempts", len(entry.attempts) or None)
    if entry.is_edited:
        parts = " and ".join(data["edited"]["parts"])
        add("edited", f"{parts} by {entry.edited_by or '?'}, {when(entry.edited_at, now)}")
    console = out()
    console.print(fields)
    if entry.event_headers:
        headers = Table(
            title="headers",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            header_style="bold",
        )
        headers.add_column("key", no_wrap=True)
        headers.add_column("value", overflow="fold")
        for key, value in data["event_headers"]:
            headers.add_row(Text(key), Text("null" if value is None else value))
        console.print(headers)
    console.print(Panel(Text(entry.error_message), title="error", title_align="left"))
    payload = JSON.from_data(entry.event_payload, indent=2, ensure_ascii=False)
    payload.text.overflow = "fold"  # long strings fold instead of being cut at the border
    console.print(Panel(payload, title="payload", title_align="left"))
    if entry.event_raw is not None:
        console.print(
            Panel(
                Text(_raw_summary(entry, data["event_raw"])),
                title=f"raw message ({len(entry.event_raw)} bytes)",
                title_align="left",
            )
        )
    if entry.is_edited:
        _render_edit(console, entry, now)
    if entry.attempts:
        _render_attempts(console, entry, now)


def _render_attempts(console: Console, entry: DlqEntry, now: datetime) -> None:
    """Failures after replays, oldest first (the full errors are in ``-o json``)."""
    table = Table(
        title=f"failed again after replay ({len(entry.attempts)})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
    )
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("failed_at (UTC)", no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("error", overflow="fold")
    for a in entry.attempts:
        source = a.source_topic or ""
        if a.source_partition is not None:
            source += f"[{a.source_partition}]@{a.source_offset}"
        table.add_row(
            Text(str(a.attempt)),
            Text(when(a.failed_at, now)),
            Text(source),
            Text(one_line(a.error_message, ATTEMPT_ERROR_CHARS, first_line_only=True)),
        )
    console.print(table)


def _render_edit(console: Console, entry: DlqEntry, now: datetime) -> None:
    """What replay sends instead of the original: a unified diff of the value (pretty-printed
    when JSON) and of the headers, coloured on a terminal."""
    diff = Text(no_wrap=False, overflow="fold")
    if entry.edited_raw is not None:
        _append_diff(
            diff,
            value_lines(entry.original_value),
            value_lines(entry.sent_value),
            "value",
        )
    if entry.edited_headers is not None:
        original = [h for h in entry.event_headers or () if not h.key.startswith("dlq-")]
        _append_diff(diff, header_lines(original), header_lines(entry.sent_headers), "headers")
    diff.rstrip()
    title = f"edited by {entry.edited_by or '?'}, {when(entry.edited_at, now)}: replay sends"
    console.print(Panel(diff, title=title, title_align="left"))


def _append_diff(text: Text, before: list[str], after: list[str], what: str) -> None:
    lines = list(
        difflib.unified_diff(
            before,
            after,
            fromfile=f"original {what}",
            tofile=f"edited {what}",
            n=DIFF_CONTEXT,
            lineterm="",
        )
    )
    if not lines:
        lines = [f"{what}: the same as the original"]
    for line in lines:
        style = "bold" if line.startswith(("---", "+++")) else DIFF_STYLES.get(line[:1], "")
        text.append(line + "\n", style=style)


def value_lines(value: bytes | None) -> list[str]:
    """A message value as lines to compare: JSON pretty-printed token for token, other text
    as it is, other bytes as base64."""
    if value is None:
        return ["null (a tombstone)"]
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return ["base64:" + base64.b64encode(value).decode("ascii")]
    if jsontext.is_json(text):
        text = jsontext.pretty(text)
    return text.splitlines() or [""]


def header_lines(headers: Iterable[Header]) -> list[str]:
    """Headers as ``key: value`` lines (values as text where UTF-8)."""
    lines = []
    for key, value in (h.to_json() for h in headers):
        lines.append(f"{key}: {'null' if value is None else value}")
    return lines


def _raw_summary(entry: DlqEntry, shown: str) -> str:
    """The raw bytes, unless they are just the payload's JSON."""

    try:
        if json.loads(entry.event_raw or b"") == entry.event_payload:
            return "the payload above, as consumed"
    except ValueError:
        pass
    return shown
