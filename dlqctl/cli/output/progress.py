"""Progress on stderr while a batch run (replay, discard, purge) works: its console (the
confirmation, notes, a progress bar)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from dlqctl.cli.output.console import err, note
from dlqctl.core.runs import RunPlan

PlanT = TypeVar("PlanT", bound=RunPlan)


class _RateColumn(ProgressColumn):
    """Entries per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")


def _progress_bar(description: str, *, with_rate: bool = False) -> Progress:
    """A transient progress bar on stderr: count, (rate,) elapsed, ETA."""
    columns: list[ProgressColumn] = [TextColumn(description), BarColumn(), MofNCompleteColumn()]
    if with_rate:
        columns.append(_RateColumn())
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=err(), transient=True)


class RunConsole(Generic[PlanT]):
    """A batch run's listener on the terminal (replay, discard, purge): the confirmation,
    notes, and a progress bar on stderr (count, (rate,) ETA; only when stderr is a terminal
    and ``show``)."""

    def __init__(
        self,
        description: str,
        *,
        confirm: Callable[[PlanT], None],
        show: bool = True,
        with_rate: bool = False,
    ) -> None:
        self._description = description
        self._confirm = confirm
        self._show = show
        self._with_rate = with_rate
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def confirm(self, plan: PlanT) -> None:
        self._confirm(plan)

    def started(self, total: int) -> None:
        if self._show and total and err().is_terminal:
            self._progress = _progress_bar(self._description, with_rate=self._with_rate)
            self._task = self._progress.add_task(self._description, total=total)
            self._progress.start()

    def advanced(self, done: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done)

    def note(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, highlight=False, markup=False)
        else:
            note(message)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> RunConsole[PlanT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
