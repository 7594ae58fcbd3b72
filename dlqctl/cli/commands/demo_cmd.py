"""`dlqctl demo`."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer


def demo(
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Leave the services running and print export lines to use them from"
            " another shell.",
        ),
    ] = False,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop what an earlier `dlqctl demo --keep` left running.")
    ] = False,
) -> None:
    """Run the whole loop on an embedded PostgreSQL and Kafka-protocol broker, no setup.

    Generates order events, lets the embedded consumer store the failing ones, shows
    stats, a page and one entry, fixes the handler, replays one error group and shows the
    final counts. Everything it starts is stopped again (also on Ctrl-C) unless --keep.
    Needs the demo extra: pip install 'dlqctl[demo]'.

    Example: dlqctl demo --keep
    """
    if keep and stop:
        raise typer.BadParameter("--keep and --stop do not go together", param_hint="'--stop'")
    # Lazy (Rich, pydantic-settings): importing the CLI stays cheap; see test_startup.py.
    from dlqctl.cli.output.console import note
    from dlqctl.cli.output.demo import DemoConsole
    from dlqctl.usecases.demo import run_demo, stop_kept_demo

    if stop:
        if stop_kept_demo():
            note("Stopped the services `dlqctl demo --keep` left running.")
        else:
            note("Nothing to stop: no demo was kept running.")
        return
    if keep:
        # stdout carries only the export lines, so `eval "$(dlqctl demo --keep)"` works;
        # the demo's own views go to stderr with the narration.
        with contextlib.redirect_stdout(sys.stderr):
            result = run_demo(DemoConsole(), keep=True)
        note("The services keep running. To use them from another shell:")
        print("\n".join(result.exports), flush=True)
        note("Stop them with: dlqctl demo --stop")
    else:
        run_demo(DemoConsole(), keep=False)
        note("Stopped the embedded services. Run `dlqctl demo --keep` to explore further.")
