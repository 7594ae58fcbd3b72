"""``dlqctl demo``: narration on stderr, the operator's views on stdout."""

from __future__ import annotations

from rich.text import Text

from dlqctl.cli.output.console import err, utc_now
from dlqctl.cli.output.entries import render_entries, render_entry
from dlqctl.cli.output.replay import render_replay_report
from dlqctl.cli.output.stats import render_stats
from dlqctl.core.models import DlqEntry, DlqStats, EntryPage
from dlqctl.core.replay import ReplayReport

DEMO_TOP_ERRORS = 5


class DemoConsole:
    """Renders `dlqctl demo`: narration on stderr, the operator's views on stdout."""

    def step(self, text: str) -> None:
        err().print(Text("\n▶ " + text, style="bold"), soft_wrap=True)

    def stats(self, stats: DlqStats) -> None:
        render_stats(stats, top=DEMO_TOP_ERRORS)

    def page(self, page: EntryPage) -> None:
        render_entries(page.entries, payload=False, now=utc_now())

    def entry(self, entry: DlqEntry) -> None:
        render_entry(entry, utc_now())

    def replayed(self, report: ReplayReport) -> None:
        render_replay_report(report, "table")

    def progress(self, text: str) -> None:
        err().print(Text("  " + text, style="dim"), soft_wrap=True)
