"""The sensor dataflow: MQTT readings -> per-series detectors -> InfluxDB and MQTT alerts.

Run it with ``oddwatch run sensors`` or ``python -m bytewax.run "flows.sensors:build_flow()"``.

Steps (ids match the functions): ``mqtt_in`` -> ``parse_reading`` -> ``split_errors`` ->
``asset_key`` -> ``score`` (one :class:`~oddwatch.core.asset_sensors.AssetSensorsState` per
``site/asset``, holding a :class:`~oddwatch.core.series.SeriesState` per sensor, stepped in place
by :func:`flows.runtime.keyed_state`, pickled at Bytewax recovery snapshots; scores are written
per sensor, alerts per asset) ->
``to_points`` / ``to_messages`` -> ``influx_out`` / ``mqtt_out``. Bad input goes to
``ingest_error`` points and the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from flows.runtime import (
    DISCARD,
    BudgetStep,
    DeadletterMessage,
    Discard,
    ParseFeedback,
    SplitFeedback,
    ToMessage,
    budget_key,
    budget_points,
    connectors,
    keyed_state,
    value_of,
)
from oddwatch.core.admission import Evict, admit_series
from oddwatch.core.asset_sensors import AssetSensorsState
from oddwatch.core.feedback import (
    Feedback,
    FeedbackDone,
    route_key,
    topic_prefix,
)
from oddwatch.core.series import SeriesOutput
from oddwatch.ingest.guard import guarded
from oddwatch.ingest.sensors import SensorParser
from oddwatch.ingest.topics import own_prefixes, subscribe_filters
from oddwatch.observe import metrics
from oddwatch.observe.logsetup import configure_logging
from oddwatch.records import Alert, IngestError, Point, Reading, utcnow
from oddwatch.schema import (
    drift_point,
    error_point,
    feedback_point,
    score_point,
)
from oddwatch.settings import Settings, load_settings


@dataclass(frozen=True, slots=True)
class Scored:
    """A reading with what the series pipeline decided about it."""

    reading: Reading
    out: SeriesOutput
    alert_open: bool = False  # an alert is open for the reading's asset after this reading
    alert: Alert | None = None  # the asset alert's open or close caused by this reading


class ScoreStep:
    """The ``score`` step: :meth:`new` makes an asset's state on its first reading, a call steps it."""

    def __init__(self, settings: Settings) -> None:
        self.params = settings.series
        self.alerts = settings.alerts

    def new(self, item: Reading | Feedback | Evict) -> AssetSensorsState | None:
        """A fresh state for the asset of *item*; none for feedback on an unknown asset (maybe
        the log flow's) or the eviction of a series this worker no longer holds."""
        if isinstance(item, (Feedback, Evict)):
            return None
        return AssetSensorsState(item.site, item.asset, self.params, self.alerts)

    def __call__(self, state: AssetSensorsState,
                 item: Reading | Feedback | Evict) -> Scored | FeedbackDone | Discard | None:
        if isinstance(item, Evict):  # idle, and its place went to a new series: drop its sensor
            state.evict(item.key.rsplit("/", 1)[-1])
            return DISCARD if not state.series else None
        if isinstance(item, Feedback):
            return FeedbackDone(item, state.site, (state.apply_feedback(item),))
        out = state.step(item)
        return Scored(item, out.series, state.is_open, out.alert)


def asset_key(item: Reading | Feedback | Evict) -> str:
    """The ``asset_key`` step: ``site/asset`` of a reading, of an evicted series or of an alert's key."""
    key = route_key(item.alert_id) if isinstance(item, Feedback) else item.key
    return "/".join(key.split("/")[:2])


def alert_of(item: Scored | FeedbackDone) -> Alert | None:
    """The alert transition an item carries, if any (a scored reading's, or a quiet close)."""
    return item.alert if isinstance(item, Scored) else item.alert


def to_points_batch(items: list[Scored | FeedbackDone]) -> list[Point]:
    """The ``to_points`` step: :func:`to_points` of a batch, with the flow's metrics counted once.

    ``readings_scored`` counts the batch's readings; ``end_to_end_lag_seconds`` gets one
    sample per batch, the lag of its oldest reading (a sample per reading would cost more
    than the rest of the step).
    """
    points: list[Point] = []
    scored = 0
    oldest: datetime | None = None
    for item in items:
        points += to_points(item)
        if isinstance(item, Scored):
            scored += 1
            ts = item.reading.ts
            if oldest is None or ts < oldest:
                oldest = ts
            if item.alert is not None:
                metrics.ALERTS.labels(source="sensor", kind=item.alert.kind).inc()
    if oldest is not None:
        metrics.READINGS_SCORED.inc(scored)
        metrics.END_TO_END_LAG_SECONDS.observe(max(0.0, (utcnow() - oldest).total_seconds()))
    return points


def to_points(s: Scored | FeedbackDone) -> list[Point]:
    """Points for a scored reading (score, drift) or applied feedback; alert rows come from ``budget``."""
    if isinstance(s, FeedbackDone):
        return [feedback_point(s.feedback, s.site, "sensor")]
    points = [score_point(s.reading, s.out, s.alert_open)]
    if s.out.drift is not None:
        r = s.reading
        points.append(drift_point((r.site, r.asset, r.sensor), s.out.drift, stream="sensor",
                                  threshold=s.out.threshold, recalibrated=s.out.recalibrated))
    return points


def is_input(x: object) -> TypeGuard[Reading | Feedback | Evict]:
    """Readings and feedback go on to the series; everything else is an ingest error."""
    return isinstance(x, (Reading, Feedback, Evict))


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
    topics = subscribe_filters(settings.sensors.subscriptions, own_prefixes(settings))
    source, influx_sink, mqtt_sink = connectors(settings, "sensors", topics, source=source,
                                                influx_sink=influx_sink, mqtt_sink=mqtt_sink)

    prefix = settings.mqtt.alerts_prefix
    dead_prefix = settings.mqtt.deadletter_prefix
    fb_prefix = topic_prefix(settings.mqtt.feedback_topic)
    flow = Dataflow("sensors")
    messages = op.input("mqtt_in", flow, source)
    by_topic = op.branch("split_feedback", messages, SplitFeedback(fb_prefix))
    feedback = op.map("parse_feedback", by_topic.trues, ParseFeedback(fb_prefix, "sensor"))
    parse = guarded("sensor", "parse_reading", admit_series(parser.parse, settings.sensors))
    parsed = op.flat_map_batch("parse_reading", by_topic.falses, metrics.counted_batch("sensor", parse))
    split = op.branch("split_errors", op.merge("inputs", parsed, feedback), is_input)
    errors = cast("Stream[IngestError]", split.falses)
    keyed = op.key_on("asset_key", split.trues, asset_key)
    score = ScoreStep(settings)
    scored: Stream[Scored | FeedbackDone] = keyed_state("score", keyed, score.new, score)
    points = op.flat_map_batch("to_points", scored, to_points_batch)
    alerts = op.key_on("budget_key", op.filter_map("alert_of", scored, alert_of), budget_key)
    budgeted = op.flat_map("unkey_budget", op.stateful_map("budget", alerts, BudgetStep(settings.alerts, "sensors")),
                           value_of)
    alert_pts = op.flat_map("budget_points", budgeted, budget_points)
    alert_msgs = op.filter_map("to_messages", budgeted, ToMessage(prefix))
    err_points = op.map("error_point", errors, error_point)
    err_msgs = op.map("deadletter_message", errors, DeadletterMessage(dead_prefix))
    op.output("influx_out", op.merge("all_points", points, alert_pts, err_points), influx_sink)
    op.output("mqtt_out", op.merge("all_messages", alert_msgs, err_msgs), mqtt_sink)
    return flow

