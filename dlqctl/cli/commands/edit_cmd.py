"""`dlqctl edit`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.options import EntryIdArg, SummaryFormat, SummaryOutputOpt, bad, parse_ids

_FROM_FILE_HELP = (
    "Take the new value from this file (- for stdin), exactly as its bytes are; no editor opens."
)


def edit(
    ctx: typer.Context,
    entry_id: EntryIdArg,
    from_file: Annotated[
        str | None,
        typer.Option("--from-file", metavar="F|-", show_default=False, help=_FROM_FILE_HELP),
    ] = None,
    set_header: Annotated[
        list[str] | None,
        typer.Option(
            "--set-header",
            metavar="K=V",
            show_default=False,
            help="Set header K to the text V, replacing any header K (repeatable).",
        ),
    ] = None,
    unset_header: Annotated[
        list[str] | None,
        typer.Option(
            "--unset-header",
            metavar="K",
            show_default=False,
            help="Remove every header K (repeatable).",
        ),
    ] = None,
    revert: Annotated[
        bool,
        typer.Option("--revert", help="Drop the edit: replay sends the original message again."),
    ] = False,
    output: SummaryOutputOpt = SummaryFormat.TABLE,
) -> None:
    """Change what replay publishes for one pending entry; the original is kept.

    With only the id, on a terminal, the value opens in $VISUAL / $EDITOR (JSON
    pretty-printed); saving it unchanged or empty changes nothing. --from-file takes the
    new value as exact bytes (for runbooks); --set-header / --unset-header change headers
    (dlq-* headers are replay's own). A value that was JSON must stay JSON. Only pending
    entries; one audit row per edit. Never asks for confirmation: the id is explicit.

    Example: dlqctl edit 0193a1b2c3d4 --from-file fixed.json --set-header currency=EUR
    """
    # Lazy (psycopg, Rich): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.cli.editor import TerminalEditor, on_terminal
    from dlqctl.cli.output.edit import render_edit_result
    from dlqctl.core.edit import EditRequest, parse_set_header
    from dlqctl.usecases.edit import edit_entry

    (selector,) = parse_ids([entry_id], option="ID")
    headers = tuple(parse_set_header(h) for h in set_header or ())
    value, source = (None, None) if from_file is None else _read_value(from_file)
    request = EditRequest(
        selector=selector,
        value=value,
        value_source=source,
        set_headers=headers,
        unset_headers=tuple(unset_header or ()),
        revert=revert,
    )
    settings = app_state(ctx).settings()
    editor = TerminalEditor() if request.needs_editor and on_terminal() else None
    result = edit_entry(settings, request, editor=editor)
    render_edit_result(result, output.value)


def _read_value(from_file: str) -> tuple[bytes, str]:
    """The bytes of ``--from-file`` (``-``: stdin) and how to name their source."""
    from dlqctl.core.edit import MAX_VALUE_BYTES

    if from_file == "-":
        data = sys.stdin.buffer.read(MAX_VALUE_BYTES + 1)
        source = "stdin"
    else:
        path = Path(from_file)
        try:
            with path.open("rb") as file:
                data = file.read(MAX_VALUE_BYTES + 1)
        except OSError as exc:
            raise bad("--from-file", f"cannot read {from_file!r}: {exc.strerror or exc}") from None
        source = str(path)
    if len(data) > MAX_VALUE_BYTES:
        raise bad("--from-file", f"{source} holds more than {MAX_VALUE_BYTES:,} bytes")
    return data, source
