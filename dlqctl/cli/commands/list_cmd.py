"""`dlqctl list`."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import (
    ConsumerOpt,
    ErrorOpt,
    EventIdOpt,
    FailedAgainOpt,
    MinRetriesOpt,
    OutputFormat,
    OutputOpt,
    SinceOpt,
    StatusOpt,
    UntilOpt,
    bad,
    build_entry_filter,
    filter_args,
)
from dlqctl.cli.output import machine
from dlqctl.core.cursor import decode_cursor
from dlqctl.core.filters import EntryFilter
from dlqctl.core.models import DlqEntry, RetryFilter

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000
# --all in table view prints this many rows per table (a Rich table is built whole).
TABLE_CHUNK = 500


def list_entries(
    ctx: typer.Context,
    consumer: ConsumerOpt = None,
    status: StatusOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    error: ErrorOpt = None,
    event_id: EventIdOpt = None,
    failed_again: FailedAgainOpt = False,
    min_retries: MinRetriesOpt = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            "-n",
            min=1,
            max=MAX_LIMIT,
            metavar="N",
            show_default=False,
            help=f"Entries per page (default {DEFAULT_LIMIT}).",
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        typer.Option(
            "--cursor",
            metavar="CURSOR",
            show_default=False,
            help="Continue after the page that printed this cursor.",
        ),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every match, streamed (not one page).")
    ] = False,
    payload: Annotated[
        bool, typer.Option("--payload", help="Include the payload and provenance.")
    ] = False,
    output: OutputOpt = OutputFormat.TABLE,
) -> None:
    """List entries, newest first (failed_at, then dlq_id), all statuses unless -s.

    Pages continue with --cursor (printed under the table; next_cursor in JSON); --all
    streams every match instead. "retries" counts replays (a pending entry with retries
    failed again after them); ✎ marks an entry whose replay sends an edited version.

    Example: dlqctl list -c orders -s pending --since 2h
    """
    entry_filter = build_entry_filter(
        consumers=consumer,
        statuses=status,
        since=since,
        until=until,
        error=error,
        event_id=event_id,
    )
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(cursor)
        except ValueError as exc:
            raise bad("--cursor", str(exc)) from None
    if all_ and limit is not None:
        raise bad("--all", "cannot be combined with --limit (--all lists every match)")
    settings = app_state(ctx).settings()
    # Lazy (psycopg): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.usecases.inspect import iter_entries, list_page

    retry = RetryFilter(failed_again=failed_again, min_retries=min_retries)
    if all_:
        entries = iter_entries(settings, entry_filter, after=after, payload=payload, retry=retry)
        next_cursor = None
    else:
        page = list_page(
            settings,
            entry_filter,
            limit=limit or DEFAULT_LIMIT,
            after=after,
            payload=payload,
            retry=retry,
        )
        entries, next_cursor = iter(page.entries), page.next_cursor
    if output is OutputFormat.JSON:
        machine.print_json_items(
            (e.to_json(details=payload) for e in entries), next_cursor=next_cursor
        )
    elif output is OutputFormat.NDJSON:
        machine.print_ndjson(e.to_json(details=payload) for e in entries)
    elif output is OutputFormat.CSV:
        machine.print_entries_csv(entries, details=payload)
    else:
        _table(ctx, entries, entry_filter, retry, limit, next_cursor, payload=payload, all_=all_)


def _table(
    ctx: typer.Context,
    entries: Iterator[DlqEntry],
    entry_filter: EntryFilter,
    retry: RetryFilter,
    limit: int | None,
    next_cursor: str | None,
    *,
    payload: bool,
    all_: bool,
) -> None:
    """Aligned lines, and on stderr how many were shown and the command for the next page."""
    # Lazy (Rich): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.cli.output.console import note
    from dlqctl.cli.output.entries import EDITED_MARK, render_entries

    shown, edited = render_entries(
        entries, payload=payload, now=datetime.now(UTC), chunk=TABLE_CHUNK if all_ else None
    )
    if edited:
        note(f"{EDITED_MARK.strip()} edited: replay sends the edited version (dlqctl show ID)")
    if not shown:
        note("no matching entries")
    elif next_cursor is None:
        note(f"{shown} {'entry' if shown == 1 else 'entries'}; no more")
    else:
        state = app_state(ctx)
        args = ["dlqctl"] + (["--profile", state.profile] if state.profile else [])
        args += ["list", *filter_args(entry_filter)]
        args += ["--failed-again"] if retry.failed_again else []
        args += [] if retry.min_retries is None else ["--min-retries", str(retry.min_retries)]
        args += (["-n", str(limit)] if limit else []) + (["--payload"] if payload else [])
        command = shlex.join([*args, "--cursor", next_cursor])
        note(f"{shown} entries, newest first. Next page: {command}")
