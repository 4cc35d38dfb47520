"""The incidents dataflow: both flows' MQTT alerts and operator feedback -> incidents and quality.

Run it with ``oddwatch run incidents`` or ``python -m bytewax.run "flows.incidents:build_flow()"``.

Steps (ids match the functions): ``mqtt_in`` (``oddwatch/alerts/#`` and the feedback topic) ->
``parse_alert`` / ``parse_feedback`` -> ``check_source`` -> ``split_errors`` -> ``asset_key`` (an
:class:`~oddwatch.core.assets.AssetMap` from ``[assets]``) -> ``incident`` (one
:class:`~oddwatch.core.asset_state.AssetState` per asset: its incidents and quality counts,
pickled at Bytewax snapshots) -> ``budget``
(with ``[alerts].budget_counts = "incidents"`` the hourly budget counts incidents) ->
``to_points`` / ``to_messages`` -> ``influx_out`` / ``mqtt_out`` (``oddwatch/incidents/<site>/<asset>``,
and ``oddwatch/quality/<source>`` for a source below its precision floor).

Every incident transition is written to InfluxDB; the budget only holds back MQTT pages.
"""

from __future__ import annotations

from typing import Any, TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from flows.runtime import DeadletterMessage, ParseFeedback, SplitFeedback, budget_key, connectors, value_of
from oddwatch.core.asset_state import AssetState, Decided
from oddwatch.core.assets import AssetMap
from oddwatch.core.budget import AlertBudget
from oddwatch.core.feedback import Feedback, route_key, topic_prefix
from oddwatch.core.incidents import Incident, IncidentPager, source_of_alert
from oddwatch.core.quality import QualityRow
from oddwatch.ingest.alerts import parse_alert
from oddwatch.observe.logsetup import configure_logging
from oddwatch.records import Alert, IngestError, Outgoing, Point
from oddwatch.schema import (
    alert_message,
    alert_points,
    budget_point,
    error_point,
    incident_message,
    incident_points,
    quality_message,
    quality_point,
)
from oddwatch.settings import AlertSettings, Settings, load_settings


def is_input(x: object) -> TypeGuard[Alert | Feedback]:
    """Alerts (not budget summaries) and feedback go on; everything else is an ingest error."""
    return isinstance(x, Feedback) or (isinstance(x, Alert) and x.kind != "summary")


def is_error(x: object) -> TypeGuard[IngestError]:
    return isinstance(x, IngestError)


class AssetKey:
    """The ``asset_key`` step: an alert's or a feedback's source key -> its incident key."""

    def __init__(self, assets: AssetMap) -> None:
        self.assets = assets

    def __call__(self, item: Alert | Feedback) -> str:
        source = route_key(item.alert_id) if isinstance(item, Feedback) else source_of_alert(item)
        return self.assets.key_of(source)


def check_source(assets: AssetMap, item: object) -> object:
    """The ``check_source`` step: an alert or feedback whose source key maps to no asset becomes
    an ingest error naming the id and the key; anything else passes unchanged."""
    if not is_input(item):
        return item
    try:
        AssetKey(assets)(item)
    except ValueError as exc:
        return IngestError("incident", "check_source", "unknown_source", "", item.alert_id,
                           f"alert {item.alert_id!r}: {exc}; expected ids 'site/asset/sensor:epoch' or "
                           "'site/host/app:epoch'", item.ts)
    return item


class IncidentStep:
    """The ``incident`` step's mapper: one :class:`AssetState` per incident key, created on first sight."""

    def __init__(self, settings: Settings, assets: AssetMap) -> None:
        self.incidents = settings.incidents
        self.quality = settings.quality
        self.assets = assets

    def __call__(self, state: AssetState | None, item: Alert | Feedback) -> tuple[AssetState, list[Decided]]:
        if state is None:
            state = AssetState.create(AssetKey(self.assets)(item), self.incidents, self.quality)
        return state, state.apply_feedback(item) if isinstance(item, Feedback) else state.step(item)


class IncidentBudgetStep:
    """The ``budget`` step's mapper: one :class:`~oddwatch.core.incidents.IncidentPager` decides
    which incident transitions are paged on MQTT. Emits incidents to page, budget summaries
    (``Alert``) and, when the budget counts incidents, the budget's ``pipeline`` point."""

    def __init__(self, alerts: AlertSettings) -> None:
        self.alerts = alerts

    def __call__(self, pager: IncidentPager | AlertBudget | None,
                 inc: Incident) -> tuple[IncidentPager, list[Incident | Alert | Point]]:
        if not isinstance(pager, IncidentPager):  # new, or a snapshot that held the bare budget
            fresh = IncidentPager.create(self.alerts)
            pager = IncidentPager(pager, counts_incidents=fresh.counts_incidents) if pager else fresh
        out: list[Incident | Alert | Point] = list(pager.step(inc))
        if pager.counts_incidents:
            out.append(budget_point(pager.budget, "incidents", inc.ts))
        return pager, out


def only_incident(item: Decided) -> Incident | None:
    return item if isinstance(item, Incident) else None


def to_points(item: Decided) -> list[Point]:
    """InfluxDB points: the ``incident`` row or the ``quality`` row."""
    return incident_points(item) if isinstance(item, Incident) else [quality_point(item)]


def budget_points(item: Incident | Alert | Point) -> list[Point]:
    """Points of a ``budget`` output: budget summaries' ``alert`` rows and ``pipeline`` points."""
    if isinstance(item, Alert):
        return alert_points(item)
    return [item] if isinstance(item, Point) else []


class ToMessages:
    """The ``to_messages`` step: a paged incident, a budget summary, or a source below its floor."""

    def __init__(self, settings: Settings) -> None:
        self.incidents_prefix = settings.incidents.topic_prefix
        self.quality_prefix = settings.quality.topic_prefix

    def __call__(self, item: Incident | Alert | Point | QualityRow) -> Outgoing | None:
        if isinstance(item, Incident):
            return incident_message(item, self.incidents_prefix)
        if isinstance(item, Alert):
            return alert_message(item, self.incidents_prefix)
        if isinstance(item, QualityRow) and item.below_floor:
            return quality_message(item, self.quality_prefix)
        return None


class CheckSource:
    """The ``check_source`` step: :func:`check_source` with the flow's asset map."""

    def __init__(self, assets: AssetMap) -> None:
        self.assets = assets

    def __call__(self, item: object) -> object:
        return check_source(self.assets, item)


def is_quality(item: object) -> bool:
    """The ``quality_only`` step's predicate: quality rows go on to their MQTT message."""
    return isinstance(item, QualityRow)


def build_flow(
    settings: Settings | None = None,
    *,
    source: Any = None,
    influx_sink: Any = None,
    mqtt_sink: Any = None,
) -> Dataflow:
    """The incidents dataflow; real MQTT and InfluxDB connectors unless others are given."""
    configure_logging()
    settings = settings or load_settings()
    assets = AssetMap.from_settings(settings.assets, settings.incidents)
    topics = [settings.mqtt.alerts_prefix.rstrip("/") + "/#"]
    source, influx_sink, mqtt_sink = connectors(settings, "incidents", topics, source=source,
                                                influx_sink=influx_sink, mqtt_sink=mqtt_sink)
    fb_prefix = topic_prefix(settings.mqtt.feedback_topic)
    dead_prefix = settings.mqtt.deadletter_prefix

    flow = Dataflow("incidents")
    messages = op.input("mqtt_in", flow, source)
    by_topic = op.branch("split_feedback", messages, SplitFeedback(fb_prefix))
    feedback = op.map("parse_feedback", by_topic.trues, ParseFeedback(fb_prefix, "incident"))
    alerts = op.map("parse_alert", by_topic.falses, parse_alert)
    checked = op.map("check_source", op.merge("inputs", alerts, feedback), CheckSource(assets))
    split = op.branch("split_errors", checked, is_input)
    errors = cast("Stream[IngestError]", op.filter("only_errors", split.falses, is_error))
    keyed = op.key_on("asset_key", split.trues, AssetKey(assets))
    decided = op.flat_map("unkey", op.stateful_map("incident", keyed, IncidentStep(settings, assets)), value_of)
    points = op.flat_map("to_points", decided, to_points)
    incidents = op.key_on("budget_key", op.filter_map("incidents_only", decided, only_incident), budget_key)
    budgeted = op.flat_map("unkey_budget", op.stateful_map("budget", incidents, IncidentBudgetStep(settings.alerts)),
                           value_of)
    budget_pts = op.flat_map("budget_points", budgeted, budget_points)
    quality = op.filter("quality_only", decided, is_quality)
    msgs = op.filter_map("to_messages", op.merge("pages", budgeted, quality), ToMessages(settings))
    err_points = op.map("error_point", errors, error_point)
    err_msgs = op.map("deadletter_message", errors, DeadletterMessage(dead_prefix))
    op.output("influx_out", op.merge("all_points", points, budget_pts, err_points), influx_sink)
    op.output("mqtt_out", op.merge("all_messages", msgs, err_msgs), mqtt_sink)
    return flow
