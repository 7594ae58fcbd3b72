"""`dlqctl consume`."""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Annotated

import typer

from dlqctl.cli.context import AppState, app_state
from dlqctl.cli.options import choices
from dlqctl.cli.signals import stop_on_signals
from dlqctl.core.errors import DlqctlError
from dlqctl.core.logformat import JsonFormatter


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def consume(
    ctx: typer.Context,
    consumer: Annotated[
        str,
        typer.Option(
            "--consumer",
            "-c",
            metavar="NAME",
            help="Consumer name written into each DLQ entry.",
            show_default=False,
        ),
    ],
    topic: Annotated[
        list[str],
        typer.Option(
            "--topic",
            "-t",
            metavar="TOPIC",
            help="Topic to consume (repeatable).",
            show_default=False,
        ),
    ],
    handler: Annotated[
        str,
        typer.Option(
            "--handler",
            metavar="MODULE:FUNCTION",
            help="The function called with each decoded event, as module:function.",
            show_default=False,
        ),
    ],
    group_id: Annotated[
        str | None,
        typer.Option(
            "--group-id",
            metavar="GROUP",
            help="Consumer group [default: the consumer name].",
            show_default=False,
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(
            "--retries",
            metavar="N",
            min=0,
            max=100,
            show_default=False,
            help="Handler retries before an event goes to the DLQ (0: at once)"
            " [default: one per DLQCTL_CONSUMER_RETRY_BACKOFF wait: at once, 1 s, 2 s].",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            metavar="PORT",
            min=0,
            max=65535,
            show_default=False,
            help="Serve Prometheus metrics on /metrics and readiness on /ready at this port"
            " (0: any free port, logged) [default: not served].",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host",
            metavar="HOST",
            help="Address the metrics endpoint binds to (0.0.0.0: every interface).",
        ),
    ] = "127.0.0.1",
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            case_sensitive=False,
            metavar=choices(LogFormat),
            help="Log lines as text, or as one JSON object per line (ts, level, msg, fields).",
        ),
    ] = LogFormat.TEXT,
) -> None:
    """Run the embedded consumer: call a handler on each event; failing events go to the DLQ.

    Failed events are retried, then stored in the dlq table (once each) before their
    offsets are committed. While the database is down the partitions are paused. SIGTERM
    or Ctrl-C finishes the current event, commits and exits 0. Logs one line per failed
    event and a stats line a minute. A replayed event that fails again reopens its entry.

    Example: dlqctl consume --consumer orders-projector --topic orders.v1 --handler app:on_order
    """
    for name in topic:
        if not name.strip():
            raise typer.BadParameter("must not be empty", param_hint="'--topic'")
    # Lazy (psycopg, confluent_kafka): importing the CLI stays cheap; see test_startup.py.
    from dlqctl.usecases.consume import build_consumer

    state = app_state(ctx)
    json_logs = log_format is LogFormat.JSON
    with _json_logs(state) if json_logs else nullcontext():
        try:
            dlq_consumer = build_consumer(
                state.settings(),
                consumer=consumer,
                topics=topic,
                handler=handler,
                group_id=group_id,
                retries=retries,
                metrics_port=metrics_port,
                metrics_host=metrics_host,
            )
            with stop_on_signals(on_stop=dlq_consumer.stop):
                dlq_consumer.run()
        except DlqctlError as exc:
            if not json_logs:
                raise
            # A log pipeline reads every stderr line as JSON: the closing error is one too.
            logging.getLogger("dlqctl").error(
                "Error: %s", exc.message, exc_info=state.debug, extra={"exit_code": exc.exit_code}
            )
            raise typer.Exit(exc.exit_code) from None


@contextmanager
def _json_logs(state: AppState) -> Iterator[None]:
    """dlqctl's log lines as JSON objects (scrubbed) while the command runs."""
    state.settings()  # the scrubber knows the configured secrets once they are loaded
    handlers = logging.getLogger("dlqctl").handlers
    previous = [h.formatter for h in handlers]
    for log_handler in handlers:
        log_handler.setFormatter(JsonFormatter(state.scrubber))
    try:
        yield
    finally:
        for log_handler, formatter in zip(handlers, previous, strict=True):
            log_handler.setFormatter(formatter)
