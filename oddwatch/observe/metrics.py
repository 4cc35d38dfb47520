"""Own-health metrics: Prometheus counters, gauges and histograms, and their InfluxDB twin.

One API: a :class:`Metrics` object holds every oddwatch metric on one registry. Code that
counts takes a ``Metrics`` (or, in a connector, any object with the attributes it counts)
as an argument; :data:`METRICS` on :data:`REGISTRY` is the process's default, which the
commands inject::

    meters.messages_in.labels(stream="sensor").inc()
    meters.parse_errors.labels(stream="log", reason="bad_json").inc()
    meters.embed_batch_size.observe(len(batch))

The upper-case module aliases (``MESSAGES_IN``...) are :data:`METRICS`' attributes under their
older names, still read by the sensor flow's steps.

:func:`start_metrics_server` serves the registry for Prometheus (127.0.0.1:9464 by default);
:func:`snapshot` returns the current values as a flat dict (``oddwatch status``);
:func:`pipeline_points` turns them into points of the ``pipeline`` measurement (schema in
``docs/schema.md``) that a flow writes to InfluxDB every few seconds, so that Grafana shows the
pipeline's health without Prometheus.

Every metric name starts with ``oddwatch_``; counters are exposed with the ``_total`` suffix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from oddwatch.records import IngestError, Message, Point
from oddwatch.schema import pipeline_point
from oddwatch.settings import MetricsSettings

PREFIX = "oddwatch_"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


class MetricsError(RuntimeError):
    """The metrics server could not start; the message names the address and the setting."""


class Metrics:
    """Every oddwatch metric, registered on one registry.

    Parameters
    ----------
    registry
        Where the metrics are registered; tests pass a fresh ``CollectorRegistry()``.

    Examples
    --------
    >>> m = Metrics(CollectorRegistry())
    >>> m.messages_in.labels(stream="sensor").inc(3)
    >>> snapshot(m.registry)["messages_in{stream=sensor}"]
    3.0
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.messages_in = Counter(
            PREFIX + "messages_in", "MQTT messages received", ["stream"], registry=r
        )
        self.parse_errors = Counter(
            PREFIX + "parse_errors", "Messages that could not be used, by reason", ["stream", "reason"], registry=r
        )
        self.readings_scored = Counter(PREFIX + "readings_scored", "Sensor readings scored", registry=r)
        self.windows_scored = Counter(PREFIX + "windows_scored", "Log windows scored", registry=r)
        self.model_calls = Counter(PREFIX + "model_calls", "Embedding model calls (batches)", registry=r)
        self.embed_batch_size = Histogram(
            PREFIX + "embed_batch_size", "Texts per embedding model call", buckets=BATCH_BUCKETS, registry=r
        )
        self.template_cache_hits = Counter(
            PREFIX + "template_cache_hits", "Log templates whose embedding was cached", registry=r
        )
        self.template_cache_misses = Counter(
            PREFIX + "template_cache_misses", "Log templates that had to be embedded", registry=r
        )
        self.index_size = Gauge(
            PREFIX + "index_size", "Vectors in the novelty index, per group", ["group"], registry=r
        )
        self.alerts = Counter(
            PREFIX + "alerts", "Alert transitions, by source and kind", ["source", "kind"], registry=r
        )
        self.influx_points_written = Counter(
            PREFIX + "influx_points_written", "Points InfluxDB accepted", registry=r
        )
        self.influx_write_errors = Counter(
            PREFIX + "influx_write_errors", "Failed InfluxDB write attempts", registry=r
        )
        self.spool_bytes = Gauge(PREFIX + "spool_bytes", "Bytes waiting in the InfluxDB spool", registry=r)
        self.held = Gauge(
            PREFIX + "held",
            "1 while the flow holds its input (spool_full: the sink waits for InfluxDB; state_disk_full: the "
            "source takes no messages from the broker)",
            ["reason"],
            registry=r,
        )
        self.end_to_end_lag_seconds = Histogram(
            PREFIX + "end_to_end_lag_seconds",
            "Seconds from a reading's or line's timestamp to its score being emitted",
            buckets=LAG_BUCKETS,
            registry=r,
        )


REGISTRY = CollectorRegistry()
METRICS = Metrics(REGISTRY)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

MESSAGES_IN = METRICS.messages_in
PARSE_ERRORS = METRICS.parse_errors
READINGS_SCORED = METRICS.readings_scored
WINDOWS_SCORED = METRICS.windows_scored
MODEL_CALLS = METRICS.model_calls
EMBED_BATCH_SIZE = METRICS.embed_batch_size
TEMPLATE_CACHE_HITS = METRICS.template_cache_hits
TEMPLATE_CACHE_MISSES = METRICS.template_cache_misses
INDEX_SIZE = METRICS.index_size
ALERTS = METRICS.alerts
INFLUX_POINTS_WRITTEN = METRICS.influx_points_written
INFLUX_WRITE_ERRORS = METRICS.influx_write_errors
SPOOL_BYTES = METRICS.spool_bytes
HELD = METRICS.held
END_TO_END_LAG_SECONDS = METRICS.end_to_end_lag_seconds


@dataclass
class MetricsServer:
    """A running metrics HTTP server (``GET /metrics``)."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(
    settings: MetricsSettings, registry: CollectorRegistry = REGISTRY
) -> MetricsServer | None:
    """Serve *registry* on ``settings.host:settings.port`` in a daemon thread.

    Returns None when ``settings.enabled`` is false. Port 0 picks a free port (tests).
    The default host is 127.0.0.1: set ``[metrics].host = "0.0.0.0"`` only behind a firewall.

    Raises
    ------
    MetricsError
        When the address cannot be bound (another oddwatch process on the same port).
    """
    if not settings.enabled:
        return None
    try:
        server, thread = start_http_server(settings.port, addr=settings.host, registry=registry)
    except OSError as exc:
        raise MetricsError(
            f"metrics server could not listen on {settings.host}:{settings.port} ({exc.strerror or exc}); "
            "give each oddwatch process its own [metrics].port (ODDWATCH_METRICS__PORT) "
            "or set ODDWATCH_METRICS__ENABLED=false"
        ) from exc
    return MetricsServer(settings.host, int(server.server_port), server, thread)


Sample = tuple[str, dict[str, str], float]


def samples(registry: CollectorRegistry = REGISTRY) -> list[Sample]:
    """``(name, labels, value)`` of every oddwatch series, names as in :func:`snapshot`."""
    out: list[Sample] = []
    for family in registry.collect():
        if not family.name.startswith(PREFIX):
            continue
        for sample in family.samples:
            name = sample.name[len(PREFIX):]
            if name.endswith(("_created", "_bucket")):
                continue
            if family.type == "counter":
                name = name.removesuffix("_total")
            out.append((name, dict(sample.labels), float(sample.value)))
    return out


def _key(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in labels.items()) + "}"


def snapshot(registry: CollectorRegistry = REGISTRY) -> dict[str, float]:
    """The current value of every oddwatch metric, as a flat dict.

    Keys drop the ``oddwatch_`` prefix and the counters' ``_total`` suffix; labels follow in
    braces (``parse_errors{stream=log,reason=bad_json}``); histograms give ``<name>_count``
    and ``<name>_sum``. Series never touched are absent.

    >>> m = Metrics(CollectorRegistry())
    >>> m.end_to_end_lag_seconds.observe(0.5)
    >>> s = snapshot(m.registry)
    >>> s["end_to_end_lag_seconds_count"], s["end_to_end_lag_seconds_sum"], s["readings_scored"]
    (1.0, 0.5, 0.0)
    """
    return {_key(name, labels): value for name, labels, value in samples(registry)}


def _total(current: list[Sample], name: str, **labels: str) -> float:
    """Sum of *name* over the series whose labels include *labels*."""
    return sum(
        (value for n, lab, value in current if n == name and all(lab.get(k) == v for k, v in labels.items())),
        0.0,
    )


class PipelineReporter:
    """Turns successive snapshots into ``pipeline`` points (schema in ``docs/schema.md``).

    Counters are written as running totals (Grafana takes ``non_negative_derivative``);
    ``batch_size``, ``cache_hit_rate`` and ``lag_s`` are means over the interval since the
    previous call (absent when nothing happened in it).

    Parameters
    ----------
    instance
        The ``instance`` tag: which process wrote the point (``sensors``, ``logs``).
    registry
        The registry to read.
    """

    def __init__(self, instance: str = "oddwatch", registry: CollectorRegistry = REGISTRY) -> None:
        self.instance = instance
        self.registry = registry
        self._previous: dict[str, float] = {}

    def points(self, now: datetime) -> list[Point]:
        """Points stamped *now* (timezone-aware UTC) for every component that has data."""
        current = samples(self.registry)
        snap = {_key(name, labels): value for name, labels, value in current}
        prev, self._previous = self._previous, snap

        def delta(name: str) -> float:
            return max(snap.get(name, 0.0) - prev.get(name, 0.0), 0.0)

        def mean(name: str) -> float | None:
            count = delta(name + "_count")
            return delta(name + "_sum") / count if count > 0 else None

        components: dict[str, dict[str, float]] = {}
        for stream in ("sensor", "log"):
            fields = {
                "messages_in": _total(current, "messages_in", stream=stream),
                "parse_errors": _total(current, "parse_errors", stream=stream),
                "alerts_opened": _total(current, "alerts", source=stream, kind="open"),
                "alerts_closed": _total(current, "alerts", source=stream, kind="close"),
            }
            fields["readings_scored" if stream == "sensor" else "windows_scored"] = snap.get(
                "readings_scored" if stream == "sensor" else "windows_scored", 0.0
            )
            if any(fields.values()):
                components[stream] = fields
        embedder = {
            "model_calls": snap.get("model_calls", 0.0),
            "texts_embedded": snap.get("embed_batch_size_sum", 0.0),
        }
        batch = mean("embed_batch_size")
        if batch is not None:
            embedder["batch_size"] = batch
        if any(embedder.values()):
            components["embedder"] = embedder
        hits, misses = snap.get("template_cache_hits", 0.0), snap.get("template_cache_misses", 0.0)
        if hits or misses:
            templates = {"cache_hits": hits, "cache_misses": misses}
            d_hits, d_misses = delta("template_cache_hits"), delta("template_cache_misses")
            if d_hits + d_misses > 0:
                templates["cache_hit_rate"] = d_hits / (d_hits + d_misses)
            components["templates"] = templates
        groups = sorted({lab["group"] for name, lab, _ in current if name == "index_size"})
        if groups:
            components["index"] = {"index_size": _total(current, "index_size"), "index_groups": float(len(groups))}
            for group in groups:
                components[f"index:{group}"] = {"index_size": _total(current, "index_size", group=group)}
        influx = {
            "points_written": snap.get("influx_points_written", 0.0),
            "write_errors": snap.get("influx_write_errors", 0.0),
            "spool_bytes": snap.get("spool_bytes", 0.0),
        }
        if any(influx.values()):
            components["influx"] = influx
        lag = mean("end_to_end_lag_seconds")
        if lag is not None:
            components["flow"] = {"lag_s": lag, "lag_samples": delta("end_to_end_lag_seconds_count")}
        return [
            pipeline_point(name, self.instance, fields, now) for name, fields in components.items()
        ]


_REPORTERS: dict[tuple[str, int], PipelineReporter] = {}


def pipeline_reporter(instance: str = "oddwatch", registry: CollectorRegistry = REGISTRY) -> PipelineReporter:
    """The process's one :class:`PipelineReporter` of *instance* over *registry* (interval means
    cover the time since the previous call of anyone using it)."""
    key = (instance, id(registry))
    reporter = _REPORTERS.get(key)
    if reporter is None:
        reporter = _REPORTERS[key] = PipelineReporter(instance, registry)
    return reporter


def pipeline_points(now: datetime, instance: str = "oddwatch") -> list[Point]:
    """``pipeline`` points for the module registry, stamped *now*; call every few seconds.

    Interval means (``batch_size``, ``cache_hit_rate``, ``lag_s``) cover the time since the
    previous call for the same *instance*.
    """
    return pipeline_reporter(instance).points(now)


def counted(stream: str, parse: Callable[[Message], list[Any]], meters: Metrics = METRICS,
            ) -> Callable[[Message], list[Any]]:
    """*parse* with the ``messages_in`` and ``parse_errors`` metrics counted in *meters*."""
    messages_in = meters.messages_in.labels(stream=stream)
    errors = meters.parse_errors

    def step(msg: Message) -> list[Any]:
        messages_in.inc()
        items = parse(msg)
        for item in items:
            if isinstance(item, IngestError):
                errors.labels(stream=stream, reason=item.reason).inc()
        return items

    return step


def counted_batch(stream: str, parse: Callable[[Message], list[Any]], meters: Metrics = METRICS,
                  ) -> Callable[[list[Message]], list[Any]]:
    """*parse* over a batch of messages, ``messages_in`` counted once per batch, errors by reason."""
    messages_in = meters.messages_in.labels(stream=stream)
    errors = meters.parse_errors

    def step(msgs: list[Message]) -> list[Any]:
        messages_in.inc(len(msgs))
        out: list[Any] = []
        for msg in msgs:
            items = parse(msg)
            for item in items:
                if isinstance(item, IngestError):
                    errors.labels(stream=stream, reason=item.reason).inc()
            out += items
        return out

    return step


def scrape(port: int, name: str, labels: dict[str, str] | None = None, host: str = "127.0.0.1") -> float | None:
    """The value of sample *name* (with *labels*) on a flow's ``/metrics``; None when it does not
    answer, 0.0 when it answers without that sample."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = requests.get(f"http://{host}:{port}/metrics", timeout=2).text
    except requests.RequestException:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(sample.value)
    return 0.0
