"""The embedded consumer's operations endpoint: Prometheus metrics and readiness over HTTP.

``GET /metrics`` serves the consumer's counters and gauges in the Prometheus text format
(prometheus-client, one registry per consumer, so that two consumers in one process never
clash); ``GET /ready`` answers 200 while the consumer can store failed events, 503 with a
one-line reason while it cannot; any other path is 404. The metric names are listed in
docs/consumer.md ("Metrics and readiness").
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from dlqctl.core.errors import DlqctlError

PREFIX = "dlqctl_consumer_"

# (name without prefix and _total, help, ConsumerSnapshot attribute)
COUNTERS = (
    ("events_consumed", "Messages taken from Kafka.", "consumed"),
    ("events_handled", "Events the handler handled successfully.", "handled"),
    (
        "events_failed",
        "Events that failed for good (retries exhausted, PermanentError, undecodable).",
        "failed",
    ),
    ("events_stored", "New DLQ entries stored.", "stored"),
    (
        "events_already_stored",
        "Failed events found already stored (a re-delivered message).",
        "already_stored",
    ),
    (
        "refailures_linked",
        "Replayed events that failed again, recorded as an attempt on their entry.",
        "linked",
    ),
    ("handler_retries", "Handler calls after the first one of an event.", "retries"),
    (
        "store_retries",
        "DLQ writes that failed and were retried (database unreachable).",
        "store_retries",
    ),
)
GAUGES = (
    ("partitions_assigned", "Partitions assigned to this consumer.", "partitions_assigned"),
    (
        "partitions_paused",
        "Partitions paused (while the DLQ cannot be written, or during a retry wait).",
        "partitions_paused",
    ),
    (
        "events_waiting_to_be_stored",
        "Failed events whose DLQ entry is not stored yet (their offsets are not committed).",
        "waiting",
    ),
    (
        "seconds_since_last_store",
        "Seconds since the last successful DLQ write (since start-up before the first).",
        "seconds_since_last_store",
    ),
    (
        "store_failing",
        "1 while DLQ writes fail and the partitions are paused for it, else 0.",
        "store_failing",
    ),
)

log = logging.getLogger("dlqctl.consumer")


@dataclass(frozen=True)
class ConsumerSnapshot:
    """What the metrics show, read from a running consumer."""

    consumer: str
    consumed: int = 0
    handled: int = 0
    failed: int = 0
    stored: int = 0
    already_stored: int = 0
    linked: int = 0
    retries: int = 0
    store_retries: int = 0
    partitions_assigned: int = 0
    partitions_paused: int = 0
    waiting: int = 0
    seconds_since_last_store: float = 0.0
    store_failing: bool = False
    lag: dict[tuple[str, int], int] = field(default_factory=dict)


class ConsumerCollector(Collector):
    """Turns a consumer's snapshot into metric families on each scrape."""

    def __init__(self, snapshot: Callable[[], ConsumerSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        labels = [snap.consumer]
        for name, help_text, attribute in COUNTERS:
            counter = CounterMetricFamily(PREFIX + name, help_text, labels=["consumer"])
            counter.add_metric(labels, float(getattr(snap, attribute)))
            yield counter
        for name, help_text, attribute in GAUGES:
            gauge = GaugeMetricFamily(PREFIX + name, help_text, labels=["consumer"])
            gauge.add_metric(labels, float(getattr(snap, attribute)))
            yield gauge
        lag = GaugeMetricFamily(
            PREFIX + "lag",
            "Messages in the partition after the last one this consumer took"
            " (from the high watermark of the last fetch).",
            labels=["consumer", "topic", "partition"],
        )
        for (topic, partition), value in sorted(snap.lag.items()):
            lag.add_metric([snap.consumer, topic, str(partition)], float(value))
        yield lag


def consumer_registry(snapshot: Callable[[], ConsumerSnapshot]) -> CollectorRegistry:
    """A registry of its own for one consumer's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsumerCollector(snapshot))
    return registry


Readiness = Callable[[], tuple[bool, str]]


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class OperationsServer:
    """``/metrics`` and ``/ready`` on ``host:port`` (port 0: a free one), in daemon threads."""

    def __init__(
        self, registry: CollectorRegistry, readiness: Readiness, host: str, port: int
    ) -> None:
        self._registry = registry
        self._readiness = readiness
        handler = _handler_class(self)
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        try:
            self._server = server_class((host, port), handler)
        except OSError as exc:
            raise DlqctlError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
                " (pick another --metrics-port)"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dlqctl-metrics", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self) -> OperationsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def metrics(self) -> bytes:
        return generate_latest(self._registry)

    def ready(self) -> tuple[bool, str]:
        return self._readiness()


def _handler_class(server: OperationsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dlqctl"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, server.metrics(), CONTENT_TYPE_LATEST)
            elif path == "/ready":
                ok, reason = server.ready()
                text = f"{reason}\n".encode()
                self._send(200 if ok else 503, text, "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found: try /metrics or /ready\n", "text/plain")

        def do_HEAD(self) -> None:
            self.do_GET()

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics endpoint: " + format, *args)

    return Handler
