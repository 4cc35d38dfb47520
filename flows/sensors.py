"""The sensor dataflow: MQTT readings -> per-series detectors -> InfluxDB and MQTT alerts.

Run it with ``oddwatch run sensors`` or ``python -m bytewax.run "flows.sensors:build_flow()"``.

Steps (ids match the functions): ``mqtt_in`` -> ``parse_reading`` -> ``split_errors`` ->
``series_key`` -> ``score`` (one :class:`~flows.series.SeriesState` per series, pickled at
Bytewax snapshots) -> ``to_points`` / ``to_messages`` -> ``influx_out`` / ``mqtt_out``. Bad input
goes to ``ingest_error`` points and the dead-letter topic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from flows import metrics
from flows.config import Settings, load_settings
from flows.logsetup import configure_logging
from flows.outputs import alert_message, alert_points, deadletter_message, error_point
from flows.records import Outgoing, Point, Reading, utcnow
from flows.sensor_parse import SensorParser
from flows.series import SeriesOutput, SeriesState

DETECTOR_TAG = "ensemble"


@dataclass(frozen=True, slots=True)
class Scored:
    """A reading with what the series pipeline decided about it."""

    reading: Reading
    out: SeriesOutput
    alert_open: bool = False  # an alert is open for the series after this reading


class ScoreStep:
    """The ``score`` step's mapper: create the series state on first sight, then step it."""

    def __init__(self, settings: Settings) -> None:
        self.params = settings.series
        self.alerts = settings.alerts

    def __call__(self, state: SeriesState | None, reading: Reading) -> tuple[SeriesState, Scored]:
        if state is None:
            state = SeriesState(reading.site, reading.asset, reading.sensor, self.params, self.alerts)
        out = state.step(reading)
        metrics.READINGS_SCORED.inc()
        metrics.END_TO_END_LAG_SECONDS.observe(max(0.0, (utcnow() - reading.ts).total_seconds()))
        if out.alert is not None:
            metrics.ALERTS.labels(source="sensor", kind=out.alert.kind).inc()
        return state, Scored(reading, out, state.tracker.is_open)



def score_point(s: Scored) -> Point:
    """The ``sensor_score`` point of one scored reading (scores always floats)."""
    r, o = s.reading, s.out
    fields: dict[str, float | int | bool | str] = {
        "value": float(r.value),
        "score": float(o.score),
        "threshold": float(o.threshold),
        "is_anomaly": bool(o.score >= o.threshold),
        "alert_open": bool(s.alert_open),
    }
    if math.isfinite(o.expected_low) and math.isfinite(o.expected_high):  # unknown while warming up
        fields["expected_low"] = float(o.expected_low)
        fields["expected_high"] = float(o.expected_high)
    tags = {"site": r.site, "asset": r.asset, "sensor": r.sensor, "detector": DETECTOR_TAG}
    return Point("sensor_score", tags, fields, r.ts)


def to_points(s: Scored) -> list[Point]:
    """Points for one scored reading: its score, plus the alert transition if any."""
    points = [score_point(s)]
    if s.out.alert is not None:
        points.extend(alert_points(s.out.alert))
    return points


def to_messages(s: Scored, alerts_prefix: str) -> list[Outgoing]:
    """MQTT messages for one scored reading: the alert transition, if any."""
    return [alert_message(s.out.alert, alerts_prefix)] if s.out.alert is not None else []


def build_flow(
    settings: Settings | None = None,
    *,
    source: Any = None,
    influx_sink: Any = None,
    mqtt_sink: Any = None,
) -> Dataflow:
    """The sensor dataflow; real MQTT and InfluxDB connectors unless others are given."""
    configure_logging()
    settings = settings or load_settings()
    parser = SensorParser(settings.sensors)
    if source is None:
        from flows.connectors.mqtt import MqttSource
        from flows.health import start_health

        start_health(settings, "sensors")
        topics = [sub.topic for sub in settings.sensors.subscriptions]
        source = MqttSource(settings.mqtt, topics, flow="sensors")
    if influx_sink is None:
        from flows.connectors.influx import InfluxSink

        influx_sink = InfluxSink(settings.influx)
    if mqtt_sink is None:
        from flows.connectors.mqtt import MqttSink

        mqtt_sink = MqttSink(settings.mqtt, flow="sensors")

    prefix = settings.mqtt.alerts_prefix
    dead_prefix = settings.mqtt.deadletter_prefix
    flow = Dataflow("sensors")
    messages = op.input("mqtt_in", flow, source)
    parsed = op.flat_map("parse_reading", messages, metrics.counted("sensor", parser.parse))
    split = op.branch("split_errors", parsed, lambda x: isinstance(x, Reading))
    readings = split.trues
    errors = split.falses
    keyed = op.key_on("series_key", readings, lambda r: r.key)
    scored = op.map("unkey", op.stateful_map("score", keyed, ScoreStep(settings)), lambda kv: kv[1])
    points = op.flat_map("to_points", scored, to_points)
    alerts = op.flat_map("to_messages", scored, lambda s: to_messages(s, prefix))
    err_points = op.map("error_point", errors, error_point)
    err_msgs = op.map("deadletter_message", errors, lambda e: deadletter_message(e, dead_prefix))
    op.output("influx_out", op.merge("all_points", points, err_points), influx_sink)
    op.output("mqtt_out", op.merge("all_messages", alerts, err_msgs), mqtt_sink)
    return flow

