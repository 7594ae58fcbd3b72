"""Write commands (replay, discard, purge): the counts a prompt shows, target topics, and
the summary of a run, as a table or one JSON object."""

from __future__ import annotations

from collections.abc import Sequence

from dlqctl.cli.output.console import err, key_value_table, note, out
from dlqctl.cli.output.machine import print_json
from dlqctl.core.errors import RunEnded
from dlqctl.core.models import CleanupResult, MatchCount, WriteResult, iso_utc
from dlqctl.core.replay import TopicCount
from dlqctl.core.runs import AUDIT_WARNING

MAX_FAILURES_SHOWN = 20
MAX_IDS_SHOWN = 10


def render_match_counts(counts: Sequence[MatchCount], *, title: str) -> None:
    """The per-consumer × status counts a confirmation prompt shows (on stderr)."""
    table = key_value_table(
        title,
        ((c.consumer, c.status.value, str(c.count)) for c in counts),
        ("consumer", "status", "entries"),
    )
    err().print(table)


def render_routes(routes: Sequence[TopicCount], *, to_stdout: bool = False) -> None:
    """Selected entries per consumer and target topic."""
    table = key_value_table(
        "target topics",
        ((r.consumer, r.topic, str(r.count)) for r in routes),
        ("consumer", "topic", "entries"),
    )
    (out() if to_stdout else err()).print(table)


def render_write_result(result: WriteResult, output: str) -> None:
    """The summary of a write command: a table, or the JSON summary object."""
    if output == "json":
        print_json(result.to_json())
        return
    verb = {"replay": "replayed", "discard": "discarded", "purge": "deleted"}.get(
        result.action, "changed"
    )
    title = f"{result.action}{' (dry run)' if result.dry_run else ''}"
    rows = [
        ("matched", str(result.matched)),
        ("would be " + verb if result.dry_run else verb, str(result.succeeded)),
        ("failed", str(result.failed)),
        ("skipped", str(result.skipped)),
        ("ineligible", str(result.ineligible)),
    ]
    if result.topics:
        rows += [(f"→ {topic}", str(n)) for topic, n in sorted(result.topics.items())]
    out().print(key_value_table(title, rows, ("", "entries")))
    for dlq_id, error in result.failures[:MAX_FAILURES_SHOWN]:
        err().print(f"failed {dlq_id}: {error}", highlight=False, markup=False, soft_wrap=True)
    if len(result.failures) > MAX_FAILURES_SHOWN:
        more = len(result.failures) - MAX_FAILURES_SHOWN
        err().print(f"… and {more} more failures (use -o json for all)")


def end_cleanup_run(result: CleanupResult) -> None:
    """After the summary (also with --quiet): a run that failed ends with its error line
    (exit 1, the audit log's failure in it), an interrupted one says what it did (exit 130),
    one that worked but could not be recorded says so (exit 0)."""
    if not result.exit_code:
        if not result.audit_recorded:
            note(AUDIT_WARNING)
        return
    if result.write.outcome == "interrupted":
        note(result.write.error or "interrupted")
        raise RunEnded(result.exit_code)
    raise RunEnded(result.exit_code, result.write.error)


def render_cleanup_result(result: CleanupResult, output: str) -> None:
    """discard / purge: the dry-run breakdown and the write summary, or one JSON object."""
    if output == "json":
        print_json(result.to_json())
        return
    preview = result.preview
    if preview is not None and preview.counts:
        verb = "deleted" if result.write.action == "purge" else "discarded"
        rows = ((c.consumer, c.status.value, str(c.count)) for c in preview.counts)
        out().print(
            key_value_table(
                f"entries that would be {verb}", rows, ("consumer", "status", "entries")
            )
        )
        oldest, newest = iso_utc(preview.oldest_failed_at), iso_utc(preview.newest_failed_at)
        out().print(f"failed_at from {oldest} to {newest}", highlight=False)
    if result.cutoff is not None:
        out().print(
            f"older than {result.older_than}: failed_at before {iso_utc(result.cutoff)}",
            highlight=False,
        )
    render_write_result(result.write, output)
    if result.ineligible_ids:
        shown = ", ".join(str(i) for i in result.ineligible_ids[:MAX_IDS_SHOWN])
        more = len(result.ineligible_ids) - MAX_IDS_SHOWN
        note(
            f"not pending or not matching the filters (left alone): {shown}"
            + (f" … and {more} more" if more > 0 else "")
        )
    if result.write.skipped and result.write.outcome == "ok":
        note(
            f"{result.write.skipped} entries were skipped: another run (a replay) held them,"
            " or they changed while this ran"
        )
