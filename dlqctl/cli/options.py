"""Option types shared by the commands, and their parsing into core values.

Parsing errors raise typer.BadParameter, so bad input exits 2 with the usage hint and one
line naming the option and what it accepts.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Annotated

import typer

from dlqctl.cli.completion import complete_consumer
from dlqctl.core.filters import EntryFilter
from dlqctl.core.ids import IdSelector, parse_id, parse_uuid
from dlqctl.core.models import Status, iso_utc
from dlqctl.core.timeparse import TIME_HELP, parse_duration, parse_time


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    NDJSON = "ndjson"
    CSV = "csv"


class SummaryFormat(enum.StrEnum):
    """For commands whose output is one summary object."""

    TABLE = "table"
    JSON = "json"


def choices(values: type[enum.Enum]) -> str:
    """The metavar of an option that takes one of fixed values: ``a|b|c`` (no ``<…>``)."""
    return "|".join(str(member.value) for member in values)


OutputOpt = Annotated[
    OutputFormat,
    typer.Option(
        "--output",
        "-o",
        help="Output format.",
        case_sensitive=False,
        metavar=choices(OutputFormat),
    ),
]
SummaryOutputOpt = Annotated[
    SummaryFormat,
    typer.Option(
        "--output",
        "-o",
        help="Output format.",
        case_sensitive=False,
        metavar=choices(SummaryFormat),
    ),
]
ConsumerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--consumer",
        "-c",
        help="Only this consumer (repeatable).",
        metavar="NAME",
        show_default=False,
        autocompletion=complete_consumer,
    ),
]
StatusOpt = Annotated[
    list[Status] | None,
    typer.Option(
        "--status",
        "-s",
        help="Only this status (repeatable).",
        case_sensitive=False,
        show_default=False,
        metavar=choices(Status),
    ),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help=f"failed_at >= this: {TIME_HELP}.", show_default=False, metavar="TIME"
    ),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until", help=f"failed_at < this: {TIME_HELP}.", show_default=False, metavar="TIME"
    ),
]
ErrorOpt = Annotated[
    str | None,
    typer.Option(
        "--error",
        help="error_message contains this text (case-insensitive, literal).",
        show_default=False,
        metavar="TEXT",
    ),
]
EventIdOpt = Annotated[
    str | None,
    typer.Option(
        "--event-id", help="Only this event_id (a UUID).", show_default=False, metavar="UUID"
    ),
]
FailedAgainOpt = Annotated[
    bool,
    typer.Option(
        "--failed-again",
        help="Only entries that failed again after a replay (a later failure was recorded).",
    ),
]
MinRetriesOpt = Annotated[
    int | None,
    typer.Option(
        "--min-retries",
        min=1,
        metavar="N",
        show_default=False,
        help="Only entries replayed at least N times (retry_count >= N).",
    ),
]
# The one entry a command acts on (show, edit).
EntryIdArg = Annotated[
    str,
    typer.Argument(
        metavar="ID",
        show_default=False,
        help="Entry id or a unique prefix (at least 8 hex digits, hyphens optional).",
    ),
]
IdsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Entry ids or unique prefixes (at least 8 hex digits).",
        show_default=False,
        metavar="ID",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="For cron: print nothing on success, one line on failure."),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Report what would happen; change nothing.")
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed off a terminal).")
]


def bad(option: str, message: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=f"'{option}'")


def parse_time_option(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise bad(option, str(exc)) from None


def parse_duration_option(option: str, value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise bad(option, str(exc)) from None


def parse_ids(values: list[str] | None, option: str = "IDS") -> tuple[IdSelector, ...]:
    selectors = []
    for value in values or []:
        try:
            selectors.append(parse_id(value))
        except ValueError as exc:
            raise bad(option, str(exc)) from None
    return tuple(selectors)


def build_entry_filter(
    *,
    consumers: list[str] | None = None,
    statuses: list[Status] | None = None,
    since: str | None = None,
    until: str | None = None,
    error: str | None = None,
    event_id: str | None = None,
    ids: list[str] | None = None,
) -> EntryFilter:
    """The EntryFilter the shared options describe; bad values exit 2 naming the option."""
    since_at = parse_time_option("--since", since)
    until_at = parse_time_option("--until", until)
    if since_at is not None and until_at is not None and since_at >= until_at:
        raise bad("--until", "must be later than --since")
    for consumer in consumers or []:
        if not consumer.strip():
            raise bad("--consumer", "must not be empty")
    if error is not None and error == "":
        raise bad("--error", "must not be empty")
    parsed_event_id = None
    if event_id is not None:
        try:
            parsed_event_id = parse_uuid(event_id)
        except ValueError as exc:
            raise bad("--event-id", str(exc)) from None
    return EntryFilter(
        consumers=tuple(consumers or ()),
        statuses=tuple(statuses or ()),
        since=since_at,
        until=until_at,
        error=error,
        event_id=parsed_event_id,
        ids=parse_ids(ids),
    )


def filter_args(entry_filter: EntryFilter) -> list[str]:
    """The filter options that select ``entry_filter`` again, with relative times resolved
    (so that a printed follow-up command selects the same window later)."""
    args: list[str] = []
    for consumer in entry_filter.consumers:
        args += ["-c", consumer]
    for status in entry_filter.statuses:
        args += ["-s", status.value]
    if entry_filter.since is not None:
        args += ["--since", iso_utc(entry_filter.since) or ""]
    if entry_filter.until is not None:
        args += ["--until", iso_utc(entry_filter.until) or ""]
    if entry_filter.error is not None:
        args += ["--error", entry_filter.error]
    if entry_filter.event_id is not None:
        args += ["--event-id", str(entry_filter.event_id)]
    return args
