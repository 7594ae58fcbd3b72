"""Progress on stderr while a write command runs: the batch progress bar of discard and
purge, and replay's console (notes, the confirmation, a progress bar with the rate)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

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
from dlqctl.core.replay import ReplayPlan


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


class BatchProgress:
    """A progress bar on stderr for batched writes (use only when stderr is a terminal)."""

    def __init__(self, description: str) -> None:
        self._progress = _progress_bar(description)
        self._description = description
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        self._task = self._progress.add_task(self._description, total=total)
        self._progress.start()

    def advance(self, done: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, done)

    def close(self) -> None:
        self._progress.stop()


@contextlib.contextmanager
def batch_progress(description: str, *, show: bool) -> Iterator[BatchProgress | None]:
    """A BatchProgress while the block runs, if ``show`` and stderr is a terminal."""
    if not show or not sys.stderr.isatty():
        yield None
        return
    progress = BatchProgress(description)
    try:
        yield progress
    finally:
        progress.close()


class ReplayConsole:
    """Replay's listener on the terminal: notes, the confirmation, a progress bar on stderr
    (count, rate, ETA; only when stderr is a terminal)."""

    def __init__(self, confirm: Callable[[ReplayPlan], None]) -> None:
        self._confirm = confirm
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def confirm(self, plan: ReplayPlan) -> None:
        self._confirm(plan)

    def started(self, total: int) -> None:
        if total and err().is_terminal:
            self._progress = _progress_bar("replaying", with_rate=True)
            self._task = self._progress.add_task("replay", total=total)
            self._progress.start()

    def advanced(self, attempted: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=attempted)

    def note(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, highlight=False, markup=False)
        else:
            note(message)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ReplayConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
