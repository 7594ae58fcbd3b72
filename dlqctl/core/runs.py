"""What every batch run shares: replay, discard, purge, and the next batch command.

Each follows one shape (see docs/architecture.md):

- a **request** (``ReplayRequest``, ``DiscardRequest``, ``PurgeRequest``): frozen, checked
  when made (UsageError); ``selection`` is the EntryFilter of the entries the run may
  change, ``statuses`` the statuses it may change them from;
- a **use case** (``replay``, ``discard``, ``purge``) called as
  ``(settings, request, *, listener=None, stop=None)``: it counts the selection into a
  plan (a ``RunPlan``), hands it to ``listener.confirm`` before changing anything, then a
  **run** (``ReplayRun``, ``DiscardRun``, ``PurgeRun``) works through the selection in
  batches, each committed on its own: ``run.execute(plan)`` calls ``listener.started``
  once and ``listener.advanced`` after every batch, and returns the WriteResult;
- **stop** is a ``threading.Event`` (the CLI's ``stop_on_signals`` sets it on Ctrl-C or
  SIGTERM): the run checks it between batches, finishes the batch in flight, records
  what it did and ends as "interrupted".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar
from uuid import UUID

from dlqctl.core.models import MatchCount


@dataclass(frozen=True)
class RunPlan:
    """What a run is about to change, counted before it changes anything (what a
    confirmation prompt shows)."""

    match_counts: tuple[MatchCount, ...] = ()
    # Explicit ids that exist but are not eligible (another status, or excluded by the
    # filters given with them): the run leaves them alone.
    ineligible: tuple[UUID, ...] = ()

    @property
    def total(self) -> int:
        return sum(c.count for c in self.match_counts)


PlanT_contra = TypeVar("PlanT_contra", bound=RunPlan, contravariant=True)


class RunListener(Protocol[PlanT_contra]):
    """What a run tells its caller (the CLI renders it; the core never prints)."""

    def confirm(self, plan: PlanT_contra) -> None:
        """Called once, before anything changes; raise to cancel the run."""

    def started(self, total: int) -> None:
        """The run starts its batches; ``total`` entries are selected."""

    def advanced(self, done: int) -> None:
        """``done`` entries so far (the run has finished with them, whatever the outcome)."""

    def note(self, message: str) -> None:
        """A line of narration (a warning, a preflight finding)."""


class SilentListener:
    """A listener that shows nothing and confirms everything (library use, tests)."""

    def confirm(self, plan: RunPlan) -> None:
        return None

    def started(self, total: int) -> None:
        return None

    def advanced(self, done: int) -> None:
        return None

    def note(self, message: str) -> None:
        return None


# Said (once, on stderr) when a run worked but its audit row could not be written; a run that
# failed says it in its error line instead.
AUDIT_WARNING = "warning: the run could not be recorded in the audit log (dlq_actions)"
