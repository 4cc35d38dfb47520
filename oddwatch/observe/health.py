"""oddwatch's own health while a flow runs: the Prometheus endpoint and ``pipeline`` points.

:func:`start_health` is called by the flow factories for real runs (not in tests that pass
their own source). It serves ``/metrics`` on ``[metrics].host`` at the flow's own port
(``[metrics].port`` for the sensor flow, ``[metrics].logs_port`` for the log flow) and writes the ``pipeline``
measurement to InfluxDB every ``interval_s`` through its own :class:`InfluxWriter`.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
from dataclasses import dataclass

from oddwatch.lineproto import to_line
from oddwatch.observe import metrics
from oddwatch.records import utcnow
from oddwatch.settings import Settings, expand

log = logging.getLogger(__name__)


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


def start_health(settings: Settings, instance: str, *, interval_s: float = 10.0) -> Health:
    """Serve metrics and write ``pipeline`` points for the flow *instance* (``sensors``/``logs``)."""
    server = None
    if settings.metrics.enabled:
        m = dataclasses.replace(settings.metrics, port=settings.metrics.port_of(instance))
        try:
            server = metrics.start_metrics_server(m)
        except metrics.MetricsError as exc:  # a second copy of a flow on one host: keep running
            log.warning("%s; %s flow runs without a metrics endpoint", exc, instance)
    stop = threading.Event()
    from oddwatch.connectors.influx import sink_spool_dir  # its own folder per flow and per process

    influx = dataclasses.replace(settings.influx, spool_dir=sink_spool_dir(str(expand(settings.influx.spool_dir)), f"health-{instance}"))
    thread = threading.Thread(target=_report, args=(influx, instance, interval_s, stop), daemon=True,
                              name=f"oddwatch-health-{instance}")
    thread.start()
    health = Health(server, stop, thread)
    atexit.register(health.close)
    return health


def _report(influx: object, instance: str, interval_s: float, stop: threading.Event) -> None:
    from oddwatch.connectors.influx import InfluxWriter

    writer = InfluxWriter(influx)  # type: ignore[arg-type]
    try:
        while not stop.wait(interval_s):
            writer.add([to_line(p) for p in metrics.pipeline_points(utcnow(), instance)])
    finally:
        writer.close()
