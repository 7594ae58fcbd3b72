"""`dlqctl replay`: what a prompt shows besides the counts (target topics, the plan), and the
run's summary with its canary, its skipped entries and the plan it wrote."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from dlqctl.cli.output.console import err, key_value_table, note, out, utc_now
from dlqctl.cli.output.writes import render_routes, render_write_result
from dlqctl.core.canary import CanaryReport
from dlqctl.core.replay import ReplayPlan, ReplayReport

MAX_SKIPS_SHOWN = 20
MAX_REFAILED_SHOWN = 20


def render_plan_details(plan: ReplayPlan) -> None:
    """Below a prompt's counts (stderr): target topics, and for a plan run the plan's
    checksum prefix, author, age and size, and how many entries changed since."""
    render_routes(plan.routes)
    if plan.plan is not None:
        note(plan.plan.describe(utc_now()))
        if plan.plan_skips:
            note(f"{len(plan.plan_skips)} of them changed since and will be skipped")


def render_replay_report(report: ReplayReport, output: str) -> None:
    """The run's summary: one JSON object, or tables (stdout) and lines (stderr)."""
    if output == "json":
        render_write_result(report.result, output)
        return
    plan = report.plan
    if report.result.dry_run:
        if plan.plan is not None:
            out().print(
                plan.plan.describe(utc_now()), highlight=False, markup=False, soft_wrap=True
            )
        if plan.routes:
            render_routes(plan.routes, to_stdout=True)
        if plan.plan is not None:
            _render_skips(plan.plan_skips, to_stdout=True)
    render_write_result(report.result, output)
    if report.canary is not None:
        _render_canary(report.canary)
    if not report.result.dry_run:
        _render_skips(report.skips, to_stdout=False)
    if report.plan_file is not None and report.plan_path is not None:
        summary = report.plan_file.summary()
        note(
            f"wrote plan {report.plan_path}: {summary.size} entries, checksum"
            f" {summary.checksum_prefix}; review it, then run:"
            f" dlqctl replay --plan {report.plan_path}"
        )


def _render_canary(canary: CanaryReport) -> None:
    rows = [("size", str(canary.size)), ("outcome", canary.outcome.value)]
    if canary.group is not None:
        rows.append(("group", canary.group))
    shown = ", ".join(str(i) for i in canary.refailed[:MAX_REFAILED_SHOWN])
    if len(canary.refailed) > MAX_REFAILED_SHOWN:
        shown += f" … and {len(canary.refailed) - MAX_REFAILED_SHOWN} more (use -o json)"
    if canary.refailed:
        rows.append(("failed again", shown))
    out().print(key_value_table(None, rows, ("canary", "")))


def _render_skips(skips: Sequence[tuple[UUID, str]], *, to_stdout: bool) -> None:
    console = out() if to_stdout else err()
    for dlq_id, reason in skips[:MAX_SKIPS_SHOWN]:
        console.print(f"skipped {dlq_id}: {reason}", highlight=False, markup=False, soft_wrap=True)
    if len(skips) > MAX_SKIPS_SHOWN:
        console.print(f"… and {len(skips) - MAX_SKIPS_SHOWN} more skipped (use -o json)")
