"""Tests of oddwatch.observe.metrics: snapshot, pipeline points and the HTTP server."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
import requests
from prometheus_client import CollectorRegistry

from oddwatch.observe import metrics
from oddwatch.observe.metrics import Metrics, MetricsError, PipelineReporter, snapshot, start_metrics_server
from oddwatch.records import UTC
from oddwatch.settings import MetricsSettings

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@pytest.fixture
def m() -> Metrics:
    return Metrics(CollectorRegistry())


def test_module_registry_has_every_metric() -> None:
    names = {family.name for family in metrics.REGISTRY.collect()}
    for name in (
        "messages_in", "parse_errors", "readings_scored", "windows_scored", "model_calls",
        "embed_batch_size", "template_cache_hits", "template_cache_misses", "index_size", "alerts",
        "influx_points_written", "influx_write_errors", "spool_bytes", "end_to_end_lag_seconds",
    ):
        assert "oddwatch_" + name in names, name
    assert metrics.MESSAGES_IN is metrics.METRICS.messages_in


def test_snapshot_keys_and_values(m: Metrics) -> None:
    m.messages_in.labels(stream="sensor").inc(5)
    m.parse_errors.labels(stream="log", reason="bad_json").inc()
    m.index_size.labels(group="web").set(42)
    m.embed_batch_size.observe(8)
    m.embed_batch_size.observe(24)
    snap = snapshot(m.registry)
    assert snap["messages_in{stream=sensor}"] == 5.0
    assert snap["parse_errors{stream=log,reason=bad_json}"] == 1.0
    assert snap["index_size{group=web}"] == 42.0
    assert snap["embed_batch_size_count"] == 2.0 and snap["embed_batch_size_sum"] == 32.0
    assert snap["spool_bytes"] == 0.0
    assert not any(k.endswith(("_created", "_bucket", "_total")) for k in snap)
    assert all(isinstance(v, float) for v in snap.values())


def test_snapshot_of_module_registry_skips_process_metrics() -> None:
    assert all(not k.startswith(("process_", "python_")) for k in snapshot())


def test_pipeline_points_empty_when_nothing_happened(m: Metrics) -> None:
    assert PipelineReporter("t", m.registry).points(NOW) == []


def test_pipeline_points_components_and_interval_means(m: Metrics) -> None:
    reporter = PipelineReporter("sensors", m.registry)
    m.messages_in.labels(stream="sensor").inc(100)
    m.parse_errors.labels(stream="sensor", reason="bad_json").inc(2)
    m.parse_errors.labels(stream="sensor", reason="ts_future").inc(1)
    m.readings_scored.inc(97)
    m.alerts.labels(source="sensor", kind="open").inc()
    m.model_calls.inc(2)
    m.embed_batch_size.observe(10)
    m.embed_batch_size.observe(30)
    m.template_cache_hits.inc(3)
    m.template_cache_misses.inc(1)
    m.index_size.labels(group="a").set(10)
    m.index_size.labels(group="b").set(5)
    m.influx_points_written.inc(97)
    m.spool_bytes.set(1024)
    m.end_to_end_lag_seconds.observe(0.2)
    m.end_to_end_lag_seconds.observe(0.4)
    points = {p.tags["component"]: p for p in reporter.points(NOW)}
    assert set(points) == {"sensor", "embedder", "templates", "index", "index:a", "index:b", "influx", "flow"}
    for p in points.values():
        assert p.measurement == "pipeline" and p.ts == NOW
        assert p.tags["instance"] == "sensors" and set(p.tags) == {"component", "instance"}
        assert all(isinstance(v, float) and math.isfinite(v) for v in p.fields.values())
    assert points["sensor"].fields == {
        "messages_in": 100.0, "parse_errors": 3.0, "alerts_opened": 1.0, "alerts_closed": 0.0,
        "readings_scored": 97.0,
    }
    assert points["embedder"].fields["batch_size"] == 20.0
    assert points["templates"].fields["cache_hit_rate"] == 0.75
    assert points["index"].fields == {"index_size": 15.0, "index_groups": 2.0}
    assert points["influx"].fields["spool_bytes"] == 1024.0
    assert points["flow"].fields["lag_s"] == pytest.approx(0.3)

    # The next interval: means cover only what happened since the previous call.
    m.embed_batch_size.observe(4)
    m.template_cache_misses.inc(1)
    points = {p.tags["component"]: p for p in reporter.points(NOW + timedelta(seconds=10))}
    assert points["embedder"].fields["batch_size"] == 4.0
    assert points["templates"].fields["cache_hit_rate"] == 0.0
    assert "flow" not in points  # no lag observed in this interval
    assert points["sensor"].fields["messages_in"] == 100.0  # counters stay running totals


def test_pipeline_points_lines_protocol_ready(m: Metrics) -> None:
    m.messages_in.labels(stream="log").inc()
    m.windows_scored.inc()
    (point,) = PipelineReporter("logs", m.registry).points(NOW)
    assert point.tags == {"component": "log", "instance": "logs"}
    assert point.fields["windows_scored"] == 1.0


def test_module_pipeline_points_runs() -> None:
    assert isinstance(metrics.pipeline_points(NOW, instance="test"), list)


def test_metrics_server_serves_and_refuses_busy_port(m: Metrics) -> None:
    m.messages_in.labels(stream="sensor").inc(7)
    server = start_metrics_server(MetricsSettings(port=0), m.registry)
    assert server is not None and server.host == "127.0.0.1"
    try:
        body = requests.get(server.url, timeout=5).text
        assert 'oddwatch_messages_in_total{stream="sensor"} 7.0' in body
        with pytest.raises(MetricsError, match="ODDWATCH_METRICS__PORT"):
            start_metrics_server(MetricsSettings(port=server.port), m.registry)
    finally:
        server.close()


def test_metrics_server_disabled() -> None:
    assert start_metrics_server(MetricsSettings(enabled=False)) is None


def test_pipeline_points_odd_group_names_and_line_protocol(m: Metrics) -> None:
    from oddwatch.lineproto import to_line

    m.index_size.labels(group="web,app=1 x").set(3)
    points = {p.tags["component"]: p for p in PipelineReporter("logs", m.registry).points(NOW)}
    assert points["index:web,app=1 x"].fields == {"index_size": 3.0}
    line = to_line(points["index:web,app=1 x"])
    assert line.startswith("pipeline,component=index:web\\,app\\=1\\ x,instance=logs index_size=3")
