"""Machine output (JSON, NDJSON, CSV, OpenMetrics), written without Rich.

Scripts and cron jobs ask for these formats, and importing Rich would add tens of
milliseconds to every such run: this module must not import it (tests/cli/test_startup.py
checks).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from dlqctl.core.models import DlqEntry, DlqStats, Status

# The keys of DlqEntry.to_json(), in order: the CSV header even when nothing matches.
# "edited" (added in round 2) comes last so that the earlier columns keep their places.
_ENTRY_KEYS = (
    "dlq_id",
    "consumer",
    "event_id",
    "status",
    "retry_count",
    "failed_at",
    "error_message",
)
ENTRY_FIELDS = (*_ENTRY_KEYS, "edited")
DETAIL_FIELDS = (
    *_ENTRY_KEYS,
    "event_payload",
    "source_topic",
    "source_partition",
    "source_offset",
    "event_key",
    "event_headers",
    "status_changed_at",
    "status_reason",
    "edited",
)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def print_ndjson(values: Iterable[Any]) -> None:
    write, encode = sys.stdout.write, _COMPACT.encode
    for value in values:
        write(encode(value) + "\n")


def print_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def print_json_items(items: Iterable[dict[str, Any]], **fields: Any) -> int:
    """``{"items": [...], **fields}`` written item by item (flat memory); the text equals
    ``print_json`` of the whole object. Returns the number of items."""
    write = sys.stdout.write
    write('{\n  "items": [')
    count = 0
    for item in items:
        text = json.dumps(item, indent=2, ensure_ascii=False, default=str)
        write(("," if count else "") + "\n    " + text.replace("\n", "\n    "))
        count += 1
    write("\n  ]" if count else "]")
    for key, value in fields.items():
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        write(f",\n  {json.dumps(key)}: " + text.replace("\n", "\n  "))
    write("\n}\n")
    return count


def csv_cell(value: Any) -> Any:
    """CSV has no null and no nesting: None is empty, lists and objects are compact JSON."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def print_entries_csv(entries: Iterable[DlqEntry], *, details: bool) -> None:
    """A header row, then one row per entry (streamed)."""
    print_csv(
        DETAIL_FIELDS if details else ENTRY_FIELDS,
        ([csv_cell(v) for v in e.to_json(details=details).values()] for e in entries),
    )


def stats_rows(stats: DlqStats) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """Flat rows of ``stats`` for CSV and NDJSON: the ``--by`` breakdown, else the
    consumer × status counts."""
    if stats.by is None:
        header: tuple[str, ...] = ("consumer", "status", "count")
        return header, [
            {"consumer": c.consumer, "status": c.status.value, "count": c.count}
            for c in stats.counts
        ]
    header = (stats.by.value, "count") + (("example",) if stats.by.value == "error" else ())
    rows = []
    for b in stats.breakdown:
        row: dict[str, Any] = {stats.by.value: b.key, "count": b.count}
        if b.example is not None:
            row["example"] = b.example
        rows.append(row)
    return header, rows


def _label(value: str) -> str:
    """An OpenMetrics label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics_text(stats: DlqStats, statuses: Sequence[Status]) -> str:
    """Gauges for a node-exporter textfile collector, ending with ``# EOF``.

    Every consumer present gets a sample for each status in ``statuses`` (0 included), so
    a series drops to zero instead of vanishing when its last entry changes status.
    """
    counts = {(c.consumer, c.status): c.count for c in stats.counts}
    consumers = sorted({c.consumer for c in stats.counts})
    lines = [
        "# TYPE dlq_entries gauge",
        "# HELP dlq_entries Dead-letter entries by consumer and status.",
    ]
    for consumer in consumers:
        for status in statuses:
            n = counts.get((consumer, status), 0)
            lines.append(
                f'dlq_entries{{consumer="{_label(consumer)}",status="{status.value}"}} {n}'
            )
    lines += [
        "# TYPE dlq_oldest_pending_age_seconds gauge",
        "# UNIT dlq_oldest_pending_age_seconds seconds",
        "# HELP dlq_oldest_pending_age_seconds Age of the oldest pending entry per consumer.",
    ]
    for consumer, failed_at in sorted(stats.oldest_pending.items()):
        age = max(0.0, (stats.as_of - failed_at).total_seconds())
        lines.append(f'dlq_oldest_pending_age_seconds{{consumer="{_label(consumer)}"}} {age:.3f}')
    # Only grows (one per later failure) until purge deletes entries with their attempts:
    # increase() over it counts re-failures (see docs/inspect.md).
    lines += [
        "# TYPE dlq_refailures gauge",
        "# HELP dlq_refailures Failures of replayed entries recorded so far"
        " (dlq_attempts rows) per consumer.",
    ]
    for consumer in sorted({*consumers, *stats.refailures}):
        later = stats.refailures.get(consumer)
        lines.append(
            f'dlq_refailures{{consumer="{_label(consumer)}"}} {later.attempts if later else 0}'
        )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
