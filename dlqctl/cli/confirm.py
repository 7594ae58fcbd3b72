"""Confirmation for write commands.

Without explicit ids a write command counts what matches and asks when stdin and stderr
are terminals; off a terminal it refuses unless --yes was given (exit 2). --dry-run never
prompts.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

import typer

from dlqctl.cli.signals import default_signals
from dlqctl.core.errors import ConfirmationRequired, DlqctlError
from dlqctl.core.models import MatchCount
from dlqctl.core.runs import RunPlan

PlanT = TypeVar("PlanT", bound=RunPlan)


class Declined(DlqctlError):
    """Cancelled at the prompt; nothing was changed."""


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirm_write(
    *,
    verb: str,
    has_ids: bool,
    dry_run: bool,
    yes: bool,
    count: Callable[[], Sequence[MatchCount]],
    warning: str | None = None,
    details: Callable[[], None] | None = None,
) -> None:
    """Return when the write may go ahead; raise ConfirmationRequired or Declined otherwise.

    ``count`` is only called when a prompt is shown; ``details`` renders more of what is
    about to happen (on stderr) below the counts.
    """
    if has_ids or dry_run or yes:
        return
    if not interactive():
        raise ConfirmationRequired(
            f"refusing to {verb} entries selected by filters without confirmation:"
            " pass --yes to run non-interactively (or --dry-run to see what matches)"
        )
    # Lazy (Rich): importing the CLI stays cheap; see tests/cli/test_startup.py.
    from dlqctl.cli.output.console import note
    from dlqctl.cli.output.writes import render_match_counts

    counts = count()
    total = sum(c.count for c in counts)
    if total == 0:
        return
    render_match_counts(counts, title=f"entries to {verb}")
    if details is not None:
        details()
    if warning:
        note(warning)
    if not typer.confirm(f"{verb.capitalize()} {total} entries?", default=False, err=True):
        raise Declined()


def confirm_run(
    *,
    verb: str,
    has_ids: bool,
    dry_run: bool,
    yes: bool,
    warning: str | None = None,
    details: Callable[[PlanT], None] | None = None,
) -> Callable[[PlanT], None]:
    """The ``confirm`` of a batch run's listener: off a terminal it refuses at once (before
    anything connects) unless --yes, ids or --dry-run; on one it asks once the run has
    counted its plan (Ctrl-C at the prompt acts at once)."""
    confirm = functools.partial(
        confirm_write, verb=verb, has_ids=has_ids, dry_run=dry_run, yes=yes, warning=warning
    )
    if not interactive():
        confirm(count=list)

    def ask(plan: PlanT) -> None:
        with default_signals():
            confirm(
                count=lambda: plan.match_counts,
                details=None if details is None else functools.partial(details, plan),
            )

    return ask
