"""oddwatch's own health while a flow runs: the Prometheus endpoint and ``pipeline`` points.

:func:`start_health` is called by the commands that run a flow for real (``oddwatch run``,
:func:`oddwatch.flowrun.served_flow`), never by a flow factory. It serves ``/metrics`` on
``[metrics].host`` at the flow's own port (``[metrics].port`` for the sensor flow,
``[metrics].logs_port`` for the log flow, ``[metrics].incidents_port`` for the incidents flow)
and hands the ``pipeline`` measurement every ``interval_s`` to the *writer* the caller built
(an InfluxDB writer of its own): this module knows no connector.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from oddwatch.lineproto import to_line
from oddwatch.observe import metrics
from oddwatch.records import utcnow
from oddwatch.settings import Settings

log = logging.getLogger(__name__)


class LineWriter(Protocol):
    """Where ``pipeline`` points go as line protocol (an :class:`~oddwatch.connectors.influx.InfluxWriter`)."""

    def add(self, lines: list[str]) -> None: ...

    def close(self) -> None: ...


@dataclass
class Health:
    """What :func:`start_health` started; ``close()`` stops both."""

    server: metrics.MetricsServer | None
    stop: threading.Event
    thread: threading.Thread | None

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        if self.server is not None:
            self.server.close()


def start_health(settings: Settings, instance: str, writer: LineWriter | None, *, interval_s: float = 10.0,
                 meters: metrics.Metrics = metrics.METRICS) -> Health:
    """Serve *meters* and write their ``pipeline`` points to *writer* (closed at the end; none:
    no points) for the flow *instance* (``sensors``, ``logs`` or ``incidents``)."""
    server = None
    if settings.metrics.enabled:
        m = dataclasses.replace(settings.metrics, port=settings.metrics.port_of(instance))
        try:
            server = metrics.start_metrics_server(m, meters.registry)
        except metrics.MetricsError as exc:  # a second copy of a flow on one host: keep running
            log.warning("%s; %s flow runs without a metrics endpoint", exc, instance)
    stop = threading.Event()
    thread = None
    if writer is not None:
        reporter = metrics.pipeline_reporter(instance, meters.registry)
        thread = threading.Thread(target=_report, args=(writer, reporter, interval_s, stop), daemon=True,
                                  name=f"oddwatch-health-{instance}")
        thread.start()
    health = Health(server, stop, thread)
    atexit.register(health.close)
    return health


def _report(writer: LineWriter, reporter: metrics.PipelineReporter, interval_s: float, stop: threading.Event) -> None:
    try:
        while not stop.wait(interval_s):
            writer.add([to_line(p) for p in reporter.points(utcnow())])
    finally:
        writer.close()
