"""The dlqctl command line: global options, command registration and the one error boundary.

Importing this module (which imports every command module) stays cheap so that `--help`
and short commands start fast: psycopg, the Kafka client, pydantic-settings and Rich are
imported inside the functions that need them (tests/cli/test_startup.py checks).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from dlqctl import __version__
from dlqctl.cli.commands import (
    completion_cmd,
    config_cmd,
    consume_cmd,
    demo_cmd,
    discard_cmd,
    history_cmd,
    list_cmd,
    migrate_cmd,
    purge_cmd,
    replay_cmd,
    show_cmd,
    stats_cmd,
)
from dlqctl.cli.context import AppState, debug_from_env, early_scrubber
from dlqctl.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, DlqctlError, RunEnded
from dlqctl.core.secrets import ScrubbingStream


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
        state = AppState(debug=debug_from_env() or "--debug" in argv, scrubber=early_scrubber(argv))
        original_stderr = sys.stderr
        sys.stderr = ScrubbingStream(original_stderr, state.scrubber)
        extra.setdefault("obj", state)
        try:
            code = self._run(state, argv, prog_name, complete_var, **extra)
        finally:
            sys.stderr.flush()
            sys.stderr = original_stderr
        if standalone_mode:
            sys.exit(code)
        return code

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
    print(f"Error: {message}", file=sys.stderr)


def _show_usage_error(exc: typer.TyperException) -> None:
    """A usage error as Typer prints it: the usage line, the help hint and "Error: …".

    ``typer.TyperException`` (public since Typer 0.27.2) is the base of Typer's usage
    errors; the ``show`` that prints them lives on its subclasses in Typer's private
    modules, so it is looked up rather than imported.
    """
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        _error_line(exc.format_message())


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
        typer.Option("--profile", help="Config-file profile to use [env: DLQCTL_PROFILE]."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
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
app.command("consume")(consume_cmd.consume)
app.command("history")(history_cmd.history)
app.command("migrate")(migrate_cmd.migrate)
app.command("config")(config_cmd.show_config)
app.command("demo")(demo_cmd.demo)
app.command("completion")(completion_cmd.completion)


def main() -> None:
    """Entry point of the console script and ``python -m dlqctl``."""
    app(prog_name="dlqctl")
