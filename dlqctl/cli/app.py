"""The dlqctl command line: global options, command registration and the one error boundary.

Importing this module (which imports every command module) stays cheap so that `--help`
and short commands start fast: psycopg, the Kafka client, pydantic-settings and Rich are
imported inside the functions that need them (tests/cli/test_startup.py checks).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from dlqctl import __version__
from dlqctl.cli.commands import (
    backfill_cmd,
    completion_cmd,
    config_cmd,
    consume_cmd,
    demo_cmd,
    discard_cmd,
    edit_cmd,
    history_cmd,
    list_cmd,
    migrate_cmd,
    purge_cmd,
    replay_cmd,
    show_cmd,
    stats_cmd,
)
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


class _PipeClosed(Exception):
    """stdout's reader went away. Not an OSError, so that Typer does not turn it into exit 1."""


class DlqctlGroup(TyperGroup):
    """Runs every invocation (console script and CliRunner alike) inside the error boundary:
    errors become one line on stderr and an exit code, never a traceback unless --debug."""

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
    message = one_line(exc.format_message(), limit=MAX_ERROR_LINE)
    # One line, whatever the error (a choice list, a value with a newline in it).
    setattr(exc, "format_message", lambda: message)  # noqa: B010 (a bound method's stand-in)
    show = getattr(exc, "show", None)
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
    _configure_logging(logging.DEBUG if state.debug else logging.INFO)


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at emit time (the scrubbing stream of this run)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _configure_logging(level: int) -> None:
    """dlqctl's log lines go to stderr through the scrubber, one line each."""
    logger = logging.getLogger("dlqctl")
    logger.setLevel(level)
    if not any(isinstance(h, _CurrentStderrHandler) for h in logger.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


app.command("list")(list_cmd.list_entries)
app.command("show")(show_cmd.show)
app.command("stats")(stats_cmd.stats)
app.command("replay")(replay_cmd.replay)
app.command("discard")(discard_cmd.discard)
app.command("purge")(purge_cmd.purge)
app.command("edit")(edit_cmd.edit)
app.command("consume")(consume_cmd.consume)
app.command("history")(history_cmd.history)
app.command("migrate")(migrate_cmd.migrate)
app.command("backfill")(backfill_cmd.backfill)
app.command("config")(config_cmd.show_config)
app.command("demo")(demo_cmd.demo)
app.command("completion")(completion_cmd.completion)


def main() -> None:
    """Entry point of the console script and ``python -m dlqctl``."""
    app(prog_name="dlqctl")
