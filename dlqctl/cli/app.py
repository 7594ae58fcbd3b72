"""The dlqctl command line: global options, command registration and the one error boundary.

Importing this module stays cheap so that `--help` and short commands start fast: a
command's module is imported only when that command runs (or shows its help), and
psycopg, the Kafka client, pydantic-settings and Rich only inside the functions that need
them (tests/cli/test_startup.py checks; docs/performance.md has the figures).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import os
import sys
import traceback
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Annotated, Any, NamedTuple

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandInfo

from dlqctl import __version__
from dlqctl.cli.context import AppState, debug_from_env, early_scrubber
from dlqctl.core.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    DlqctlError,
    RunEnded,
)
from dlqctl.core.secrets import ScrubbingStream
from dlqctl.core.text import one_line

# What a shell reports for a tool killed by SIGPIPE (128 + 13): `dlqctl list --all | head`.
EXIT_BROKEN_PIPE = 141
MAX_ERROR_LINE = 20_000
# The one option whose value may hold a secret (a DSN with its password).
SECRET_OPTION = "--database-url"


class CommandSpec(NamedTuple):
    """Where a command lives, and the first sentence of its help (what `dlqctl --help`
    lists without importing the command's module)."""

    module: str
    function: str
    summary: str


# Every command, in the order `dlqctl --help` lists them. tests/cli/test_startup.py checks
# that each summary still gives the line the command's own help would.
COMMANDS: dict[str, CommandSpec] = {
    "list": CommandSpec(
        "list_cmd",
        "list_entries",
        "List entries, newest first (failed_at, then dlq_id), all statuses unless -s.",
    ),
    "show": CommandSpec(
        "show_cmd",
        "show",
        "Show one entry: every column, the error in full, the payload pretty-printed.",
    ),
    "stats": CommandSpec(
        "stats_cmd",
        "stats",
        "Count matching entries by consumer and status, with the oldest pending entry, the"
        " top error groups, and the entries that failed again after a replay.",
    ),
    "replay": CommandSpec(
        "replay_cmd", "replay", "Republish entries to Kafka and mark them replayed."
    ),
    "discard": CommandSpec(
        "discard_cmd",
        "discard",
        "Mark pending entries discarded: they stay for inspection but are never replayed.",
    ),
    "purge": CommandSpec(
        "purge_cmd",
        "purge",
        "Delete old entries in short batches (default: replayed and discarded ones).",
    ),
    "edit": CommandSpec(
        "edit_cmd",
        "edit",
        "Change what replay publishes for one pending entry; the original is kept.",
    ),
    "consume": CommandSpec(
        "consume_cmd",
        "consume",
        "Run the embedded consumer: call a handler on each event; failing events go to the DLQ.",
    ),
    "history": CommandSpec(
        "history_cmd", "history", "Show the audit log of write commands, newest first."
    ),
    "migrate": CommandSpec(
        "migrate_cmd",
        "migrate",
        "Apply pending schema migrations (idempotent; keeps existing rows).",
    ),
    "backfill": CommandSpec(
        "backfill_cmd",
        "backfill",
        "Store the error fingerprint of rows other services wrote, so stats stays fast.",
    ),
    "config": CommandSpec(
        "config_cmd",
        "show_config",
        "Print the effective settings and where each came from (secrets masked).",
    ),
    "demo": CommandSpec(
        "demo_cmd",
        "demo",
        "Run the whole loop on an embedded PostgreSQL and Kafka-protocol broker, no setup.",
    ),
    "completion": CommandSpec(
        "completion_cmd",
        "completion",
        "Print the shell completion script for bash, zsh or fish.",
    ),
}


def load_command(name: str) -> TyperCommand:
    """The Click command of ``name``, built from its function as ``app.command(name)``
    would build it: imports the command's module."""
    spec = COMMANDS[name]
    module = importlib.import_module(f"dlqctl.cli.commands.{spec.module}")
    command = typer.main.get_command_from_info(
        CommandInfo(name=name, callback=getattr(module, spec.function)),
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
    )
    assert isinstance(command, TyperCommand)
    return command


class _LazyCommands(MutableMapping[str, Any]):
    """The group's commands: every name of COMMANDS, each built on first access."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in COMMANDS:
                raise KeyError(name)
            self._built[name] = load_command(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("dlqctl's commands cannot be removed")

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self._built if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS) + sum(name not in COMMANDS for name in self._built)

    def __contains__(self, name: object) -> bool:
        # Without this, Mapping's `in` builds the command (imports its module) to find out.
        return name in COMMANDS or name in self._built

    def summary_command(self, name: str) -> Any:
        """The command if it is built, else a stand-in holding only its summary: enough for
        the group's help listing."""
        if name in self._built or name not in COMMANDS:
            return self[name]
        return TyperCommand(name=name, help=COMMANDS[name].summary)


class _PipeClosed(Exception):
    """stdout's reader went away. Not an OSError, so that Typer does not turn it into exit 1."""


class DlqctlGroup(TyperGroup):
    """Runs every invocation (console script and CliRunner alike) inside the error boundary:
    errors become one line on stderr and an exit code, never a traceback unless --debug.

    Its commands are those of COMMANDS, each loaded when it is first looked up (to run it,
    show its help or complete it); its help lists them from their summaries.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        commands = _LazyCommands()
        commands.update(self.commands)  # any registered with app.command(), built already
        self.commands = commands

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names alone: TyperGroup's would build every command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """As TyperGroup's, from the summaries: `dlqctl --help` imports no command."""
        commands = self.commands
        assert isinstance(commands, _LazyCommands)
        shown = [(name, commands.summary_command(name)) for name in self.list_commands(ctx)]
        shown = [(name, command) for name, command in shown if not command.hidden]
        if shown:
            limit = formatter.width - 6 - max(len(name) for name, _ in shown)
            rows = [(name, command.get_short_help_str(limit)) for name, command in shown]
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        refused = _argument_problem(argv) or _environment_problem()
        if refused is not None:
            _error_line(refused)
            code = EXIT_USAGE
        else:
            code = self._guarded(argv, prog_name, complete_var, **extra)
        if standalone_mode:
            sys.exit(_flushed(code))
        return code

    def _guarded(
        self, argv: list[str], prog_name: str | None, complete_var: str | None, **extra: Any
    ) -> int:
        state = AppState(debug=debug_from_env() or "--debug" in argv, scrubber=early_scrubber(argv))
        original_stderr = sys.stderr
        sys.stderr = ScrubbingStream(original_stderr, state.scrubber)
        extra.setdefault("obj", state)
        try:
            return self._run(state, argv, prog_name, complete_var, **extra)
        except (_PipeClosed, BrokenPipeError):  # stderr's reader went away too
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        finally:
            with contextlib.suppress(OSError):
                sys.stderr.flush()
            sys.stderr = original_stderr

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise _PipeClosed from None
            raise

    def _run(
        self,
        state: AppState,
        argv: list[str],
        prog_name: str | None,
        complete_var: str | None,
        **extra: Any,
    ) -> int:
        try:
            result = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:
            # Usage errors. Typer's pydantic-based coercion prefixes messages "Value error, ".
            exc.message = exc.message.removeprefix("Value error, ")
            _show_usage_error(exc)
            return exc.exit_code
        except RunEnded as exc:
            if exc.error:
                _error_line(exc.error)
            return exc.exit_code
        except DlqctlError as exc:
            if state.debug:
                traceback.print_exc()
            _error_line(exc.message)
            return exc.exit_code
        except _PipeClosed:
            # Quietly, as tools killed by SIGPIPE: nothing more can be read anyway.
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        except (KeyboardInterrupt, typer.Abort):
            print("Interrupted.", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:
            if state.debug:
                traceback.print_exc()
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _error_line(
                f"unexpected {type(exc).__name__}{': ' + detail if detail else ''}"
                " (this is a bug in dlqctl; rerun with --debug for the traceback)"
            )
            return EXIT_FAILED
        return result if isinstance(result, int) else 0


def _error_line(message: str) -> None:
    """The one line a failed command ends with."""
    print(f"Error: {one_line(message, limit=MAX_ERROR_LINE)}", file=sys.stderr)


def _shown(argument: str) -> str:
    """An argument as printable text on one line: bytes that are not UTF-8 as \\xNN, control
    characters escaped."""
    try:
        raw = argument.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = argument.encode("utf-8", "backslashreplace")
    return one_line(raw.decode("utf-8", "backslashreplace"))


def _argument_problem(argv: Sequence[str]) -> str | None:
    """Why an argument cannot be used at all (refused before anything runs), or None.

    A byte string that is not UTF-8 reaches Python as lone surrogates, which no database,
    Kafka client or terminal can take; a NUL cannot be passed to a program by a shell.
    """
    for i, argument in enumerate(argv):
        if "\x00" in argument:
            problem = "contains a NUL character"
        else:
            try:
                argument.encode("utf-8")
                continue
            except UnicodeEncodeError:
                problem = "is not valid UTF-8"
        option, equals, _ = argument.partition("=")
        after = argv[i - 1] if i > 0 else ""
        if argument.startswith("--") and equals:
            what = f"the value of {_shown(option)}"
        elif after.startswith("-") and "=" not in after:
            what = f"argument {i + 1} (after {_shown(after)})"
        else:
            what = f"argument {i + 1}"
        if SECRET_OPTION in (option, after):
            shown = "(not shown: it may hold a password)"  # the scrubber cannot know it yet
        else:
            shown = f"'{_shown(argument)}'"
        return f"{what} {problem}: {shown} (dlqctl takes text arguments only)"
    return None


def _environment_problem() -> str | None:
    """A DLQCTL_* variable that is not valid UTF-8 text (its value reaches the database and
    the Kafka clients), or None. DLQCTL_CONFIG is a path: any bytes will do."""
    for name, value in os.environ.items():
        if name.startswith("DLQCTL_") and name != "DLQCTL_CONFIG":
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"the environment variable {_shown(name)} is not valid UTF-8 text"
    return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that nothing (not even the interpreter's last flush)
    tries to write to the closed pipe again."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _flushed(code: int) -> int:
    """The exit code once stdout is flushed: data still buffered when the reader went away
    also means 141."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _show_usage_error(exc: typer.TyperException) -> None:
    """A usage error as Typer prints it: the usage line, the help hint and "Error: …".

    ``typer.TyperException`` (public since Typer 0.27.2) is the base of Typer's usage
    errors; the ``show`` that prints them lives on its subclasses in Typer's private
    modules, so it is looked up rather than imported.
    """
    show = getattr(exc, "show", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and callable(show):
        show()  # `dlqctl` alone: the whole help, as it is
        return
    message = one_line(exc.format_message(), limit=MAX_ERROR_LINE)
    # One line, whatever the error (a choice list, a value with a newline in it).
    setattr(exc, "format_message", lambda: message)  # noqa: B010 (a bound method's stand-in)
    if callable(show):
        show()
    else:
        _error_line(message)


app = typer.Typer(
    name="dlqctl",
    cls=DlqctlGroup,
    help="Inspect, replay, discard and purge dead-letter queues kept in PostgreSQL.",
    epilog="Settings come from flags, DLQCTL_* variables and ~/.config/dlqctl/config.toml;"
    " `dlqctl config` shows them.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        print(f"dlqctl {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", metavar="NAME", help="Config-file profile to use [env: DLQCTL_PROFILE]."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            metavar="URL",
            help="libpq URI or key=value DSN [env: DLQCTL_DATABASE_URL; unset: PG* variables].",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks [env: DLQCTL_DEBUG=1].")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    state = ctx.ensure_object(AppState)
    state.profile = profile
    state.database_url = database_url
    state.debug = state.debug or debug
    from dlqctl.cli.logsetup import configure_logging

    configure_logging(state.debug)


def main() -> None:
    """Entry point of the console script and ``python -m dlqctl``."""
    app(prog_name="dlqctl")
