"""`dlqctl consume`."""

from __future__ import annotations

from typing import Annotated

import typer

from dlqctl.cli.context import app_state
from dlqctl.cli.signals import stop_on_signals


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
) -> None:
    """Run the embedded consumer: call a handler on each event; failing events go to the DLQ.

    Failed events are retried, then stored in the dlq table (once each) before their
    offsets are committed. While the database is down the partitions are paused. SIGTERM
    or Ctrl-C finishes the current event, commits and exits 0. Logs one line per failed
    event and a stats line a minute.

    Example: dlqctl consume --consumer orders-projector --topic orders.v1 --handler app:on_order
    """
    for name in topic:
        if not name.strip():
            raise typer.BadParameter("must not be empty", param_hint="'--topic'")
    # Lazy (psycopg, confluent_kafka): importing the CLI stays cheap; see test_startup.py.
    from dlqctl.usecases.consume import build_consumer

    dlq_consumer = build_consumer(
        app_state(ctx).settings(),
        consumer=consumer,
        topics=topic,
        handler=handler,
        group_id=group_id,
        retries=retries,
    )
    with stop_on_signals(on_stop=dlq_consumer.stop):
        dlq_consumer.run()
