"""Records leaving oddwatch: InfluxDB points and MQTT messages for alerts and bad input.

Shared by the sensor and the log flows so both write the same schema (docs/schema.md).

>>> from oddwatch.records import IngestError, UTC
>>> from datetime import datetime
>>> e = IngestError("sensor", "parse_reading", "bad_json", "plant/a/b/c", "{", "not JSON", datetime(2026, 1, 1, tzinfo=UTC))
>>> error_point(e).tags
{'stream': 'sensor', 'reason': 'bad_json'}
>>> deadletter_message(e, "oddwatch/deadletter").topic
'oddwatch/deadletter/sensor/bad_json'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from detectors.drift import DriftEvent
from oddwatch.core.budget import AlertBudget
from oddwatch.core.feedback import Feedback, route_key
from oddwatch.core.log_outputs import split_source
from oddwatch.core.log_pipeline import WindowResult
from oddwatch.core.series import SeriesOutput
from oddwatch.records import Alert, IngestError, Outgoing, Point, Reading

DETECTOR_TAG = "ensemble"  # the sensor_score detector tag of the sensor ensemble

if TYPE_CHECKING:
    from oddwatch.core.incidents import Incident
    from oddwatch.core.quality import QualityRow


def error_point(err: IngestError) -> Point:
    """The ``ingest_error`` point for one rejected input."""
    return Point(
        "ingest_error",
        {"stream": err.stream, "reason": err.reason},
        {"topic": err.topic, "payload": err.payload, "detail": err.detail, "step": err.step, "count": 1.0},
        err.ts,
    )


def deadletter_message(err: IngestError, prefix: str) -> Outgoing:
    """The dead-letter MQTT message for one rejected input, JSON with the reason and excerpt."""
    body = {
        "topic": err.topic, "reason": err.reason, "detail": err.detail, "step": err.step,
        "payload": err.payload, "ts": err.ts.isoformat(),
    }
    return Outgoing(f"{prefix}/{err.stream}/{err.reason}", json.dumps(body).encode(), qos=1)


def alert_points(alert: Alert) -> list[Point]:
    """The ``alert`` rows for one transition (docs/schema.md, "How rows are written").

    An open writes a ``kind=open`` row stamped at ``opened_at``. A close writes a
    ``kind=close`` row at the closing time and rewrites the open row (same time and tags) with
    ``state="closed"``, ``time_end`` and ``duration_s``, so Grafana shades the alert from open
    to close with one annotation query. The severity tag is the one the alert opened with
    (``details["open_severity"]`` when the close carries it), whatever the score did while
    open; ``peak_severity`` (a field) is the severity of the highest score seen.
    """
    opened_ms = float(alert.opened_at.timestamp() * 1000.0)
    fields: dict[str, float | int | bool | str] = {
        "alert_id": alert.alert_id,
        "state": alert.state,
        "title": alert.title,
        "text": alert.text,
        "score": float(alert.score),
        "threshold": float(alert.threshold),
        "opened_at_ms": opened_ms,
    }
    if alert.kind == "open":
        fields["raised_at_ms"] = float(alert.ts.timestamp() * 1000.0)
    severity = str(alert.details.get("open_severity", alert.severity))
    fields["peak_severity"] = str(alert.details.get("peak_severity", alert.severity))
    tags = {"site": alert.site, "source": alert.source, "kind": alert.kind, "severity": severity,
            "subject": alert.subject}
    if alert.kind != "close":
        return [Point("alert", tags, fields, alert.opened_at if alert.kind == "open" else alert.ts)]
    end = {"time_end": float(alert.ts.timestamp() * 1000.0),
           "duration_s": float((alert.ts - alert.opened_at).total_seconds())}
    reopened: dict[str, float | int | bool | str] = {"state": "closed", "alert_id": alert.alert_id,
                                                     "peak_severity": fields["peak_severity"], **end}
    return [
        Point("alert", tags, {**fields, **end}, alert.ts),
        Point("alert", {**tags, "kind": "open"}, reopened, alert.opened_at),
    ]


def alert_message(alert: Alert, prefix: str) -> Outgoing:
    """The JSON alert published on ``<prefix>/<site>/<subject>`` (QoS 1)."""
    return Outgoing(f"{prefix}/{alert.site}/{alert.subject}", json.dumps(alert_json(alert)).encode(), qos=1)


def alert_json(alert: Alert) -> dict[str, object]:
    """An alert as plain JSON-ready data."""
    return {
        "alert_id": alert.alert_id,
        "source": alert.source,
        "kind": alert.kind,
        "state": alert.state,
        "severity": alert.severity,
        "site": alert.site,
        "subject": alert.subject,
        "title": alert.title,
        "text": alert.text,
        "score": round(float(alert.score), 6),
        "threshold": round(float(alert.threshold), 6),
        "opened_at": alert.opened_at.isoformat(),
        "ts": alert.ts.isoformat(),
        "details": _jsonable(alert.details),
    }


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


STORY_SEPARATOR = " | "  # between the story lines of an incident's text in InfluxDB


def incident_points(inc: Incident) -> list[Point]:
    """The ``incident`` row of one incident transition, stamped at ``opened_at``.

    Every transition rewrites the same row (same time and tags: the severity is the one the
    incident opened with), so the row holds the latest state, story and ``time_end`` (the
    close, or the latest update while open) for a table and an annotation query. The story's
    lines are joined with :data:`STORY_SEPARATOR` (the MQTT message keeps the newlines).

    >>> from oddwatch.core.incidents import Incident
    >>> from oddwatch.records import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> p = incident_points(Incident("n/p:1", "open", "n", "p", "warning", "critical", "p on n", "story", 2,
    ...                              ("n/p/plc", "n/p/temp"), ("a", "b"), t, t))[0]
    >>> p.measurement, p.tags, p.fields["sources"], p.fields["state"]
    ('incident', {'site': 'n', 'asset': 'p', 'severity': 'warning'}, 'n/p/plc n/p/temp', 'open')
    """
    end = inc.closed_at or inc.ts
    fields: dict[str, float | int | bool | str] = {
        "incident_id": inc.incident_id,
        "state": inc.state,
        "title": inc.title,
        "text": inc.text.replace("\n", STORY_SEPARATOR),  # line protocol has no newlines
        "alerts": float(inc.alerts),
        "sources": " ".join(inc.sources),
        "alert_ids": " ".join(inc.alert_ids)[:4000],
        "peak_severity": inc.peak_severity,
        "opened_at": float(inc.opened_at.timestamp() * 1000.0),
        "time_end": float(end.timestamp() * 1000.0),
        "duration_s": float((end - inc.opened_at).total_seconds()),
    }
    return [Point("incident", {"site": inc.site, "asset": inc.asset, "severity": inc.severity}, fields, inc.opened_at)]


def incident_json(inc: Incident) -> dict[str, object]:
    """An incident transition as plain JSON-ready data."""
    return {
        "incident_id": inc.incident_id, "kind": inc.kind, "state": inc.state, "site": inc.site,
        "asset": inc.asset, "severity": inc.severity, "peak_severity": inc.peak_severity, "title": inc.title,
        "text": inc.text, "alerts": inc.alerts, "sources": list(inc.sources), "alert_ids": list(inc.alert_ids),
        "opened_at": inc.opened_at.isoformat(), "ts": inc.ts.isoformat(),
        "time_end": inc.closed_at.isoformat() if inc.closed_at else None,
    }


def incident_message(inc: Incident, prefix: str) -> Outgoing:
    """The JSON incident transition published on ``<prefix>/<site>/<asset>`` (QoS 1)."""
    return Outgoing(f"{prefix}/{inc.site}/{inc.asset}", json.dumps(incident_json(inc)).encode(), qos=1)


def quality_point(row: QualityRow) -> Point:
    """The ``quality`` row of one source, component and week (stamped at the week's Monday).

    Each verdict rewrites the week's row with the running counts; ``precision`` and
    ``recall`` are written only when they can be computed.

    >>> from oddwatch.core.quality import QualityRow
    >>> from oddwatch.records import UTC
    >>> t = datetime(2025, 12, 29, tzinfo=UTC)
    >>> p = quality_point(QualityRow("n", "p", "n/p/temp", "ensemble", "2026-W01", t, 3, 1, 1, 0, 0.5, 1.0,
    ...                              0.5, False, []))
    >>> p.tags, p.fields["precision"], "recent_false_positives" in p.fields
    ({'site': 'n', 'asset': 'p', 'source': 'n/p/temp', 'component': 'ensemble'}, 0.5, False)
    """
    fields: dict[str, float | int | bool | str] = {
        "week": row.week, "alerts": float(row.alerts), "confirmed": float(row.confirmed),
        "false_positives": float(row.false_positives), "missed": float(row.missed),
        "below_floor": bool(row.below_floor),
    }
    for name in ("precision", "recall", "source_precision"):
        value = getattr(row, name)
        if value is not None:
            fields[name] = float(value)
    if row.recent_false_positives:
        fields["recent_false_positives"] = " | ".join(row.recent_false_positives)[:2000]
    tags = {"site": row.site, "asset": row.asset, "source": row.source, "component": row.component}
    return Point("quality", tags, fields, row.week_start)


def quality_message(row: QualityRow, prefix: str) -> Outgoing:
    """The report of a source below its precision floor, on ``<prefix>/<source>`` (QoS 1)."""
    body = {"source": row.source, "asset": row.asset, "precision": row.source_precision, "week": row.week,
            "below_floor": row.below_floor, "recent_false_positives": row.recent_false_positives}
    return Outgoing(f"{prefix}/{row.source}", json.dumps(body).encode(), qos=1)


# ---------------------------------------------------------------- detection points
def score_point(reading: Reading, out: SeriesOutput, alert_open: bool) -> Point:
    """The ``sensor_score`` point of one scored reading (scores always floats)."""
    r, o = reading, out
    fields: dict[str, float | int | bool | str] = {
        "value": float(r.value),
        "score": float(o.score),
        "threshold": float(o.threshold),
        "is_anomaly": bool(o.score >= o.threshold),
        "alert_open": bool(alert_open),
    }
    if math.isfinite(o.expected_low) and math.isfinite(o.expected_high):  # unknown while warming up
        fields["expected_low"] = float(o.expected_low)
        fields["expected_high"] = float(o.expected_high)
    tags = {"site": r.site, "asset": r.asset, "sensor": r.sensor, "detector": DETECTOR_TAG}
    return Point("sensor_score", tags, fields, r.ts)


def window_point(r: WindowResult, stamp: datetime | None = None) -> Point:
    """The ``log_window`` point of one scored window, at *stamp* (default: its end)."""
    site, host, app = split_source(r.source)
    return Point(
        "log_window", {"site": site, "host": host, "app": app},
        {"novelty": float(r.score), "threshold": float(r.threshold), "lines": int(r.lines),
         "templates": int(r.templates), "is_anomaly": bool(r.is_anomaly), "window_id": r.window_id,
         "start_ms": float(r.start * 1000.0), "end_ms": float(r.end * 1000.0), **novel_template_fields(r)},
        stamp or datetime.fromtimestamp(r.end, UTC),
    )


def novel_template_fields(r: WindowResult) -> dict[str, float | int | bool | str]:
    """``novel_template`` and ``example`` of an anomalous window with a new or rare template."""
    burst = r.explanation.get("burst") if r.is_anomaly else None
    if burst:
        return {"novel_template": str(burst["template"])[:256], "example": str(burst["example"])[:256]}
    rare = r.explanation.get("rare_templates", []) if r.is_anomaly else []
    if not rare:
        return {}
    first = min(rare, key=lambda x: x["windows_seen"])
    return {"novel_template": str(first["template"])[:256], "example": str(first["example"])[:256]}


def drift_point(
    key_parts: Sequence[str], event: DriftEvent, *, stream: str = "sensor", threshold: float = 0.0,
    recalibrated: bool = False,
) -> Point:
    """The ``drift`` point of one event (docs/schema.md).

    ``score`` is the event's magnitude in [0, 1]; ``threshold`` the series' alert threshold
    when the drift was found (before any recalibration); ``kind`` says whether the score level
    or the input rate changed, ``before_mean``/``after_mean`` by how much (mean score, or
    updates per minute for ``rate``).

    >>> from datetime import datetime, timezone
    >>> ev = DriftEvent("score", datetime(2026, 1, 1, tzinfo=timezone.utc), 0.1, 0.4, 900)
    >>> p = drift_point(("s1", "pump1", "temp"), ev, threshold=0.5, recalibrated=True)
    >>> p.tags, p.fields["key"], p.fields["score"], p.fields["recalibrated"]
    ({'stream': 'sensor', 'site': 's1'}, 's1/pump1/temp', 0.3, True)
    """
    parts = [str(p) for p in key_parts]
    if not parts or not parts[0]:
        raise ValueError(f"drift_point: key_parts = {key_parts!r} must start with a non-empty site")
    if stream not in ("sensor", "log"):
        raise ValueError(f"drift_point: stream = {stream!r} must be 'sensor' or 'log'")
    fields: dict[str, float | int | bool | str] = {
        "key": "/".join(parts),
        "kind": event.kind,
        "score": float(event.magnitude),
        "threshold": float(threshold),
        "before_mean": float(event.before_mean),
        "after_mean": float(event.after_mean),
        "samples": float(event.samples),
        "recalibrated": bool(recalibrated),
    }
    return Point("drift", {"stream": stream, "site": parts[0]}, fields, event.ts)


# ---------------------------------------------------------------- operations points
def pipeline_point(component: str, instance: str, fields: Mapping[str, float], ts: datetime) -> Point:
    """A ``pipeline`` point: one component's health figures (always floats) for a flow instance."""
    return Point("pipeline", {"component": component, "instance": instance},
                 {k: float(v) for k, v in fields.items()}, ts)


def budget_point(budget: AlertBudget, instance: str, ts: datetime) -> Point:
    """A ``pipeline`` point (component ``budget``) with this hour's used, limit and held.

    >>> from oddwatch.records import UTC
    >>> p = budget_point(AlertBudget(6, 60), "sensors", datetime(2026, 1, 1, tzinfo=UTC))
    >>> p.tags, p.fields
    ({'component': 'budget', 'instance': 'sensors'}, {'budget_used': 0.0, 'budget_limit': 60.0, 'budget_held': 0.0, 'budget_held_total': 0.0, 'budget_sources_over': 0.0})
    """
    fields = {
        "budget_used": float(budget.used),
        "budget_limit": float(budget.global_per_hour),
        "budget_held": float(budget.held),
        "budget_held_total": float(budget.held_total),
        "budget_sources_over": float(
            sum(1 for n in budget.used_by_source.values() if n >= budget.per_source_per_hour)),
    }
    return pipeline_point("budget", instance, fields, ts)


def feedback_point(fb: Feedback, site: str | None = None, source: str | None = None) -> Point:
    """The ``feedback`` point (docs/schema.md); ``site`` defaults to the alert id's site.

    >>> from datetime import datetime, timezone
    >>> fb = Feedback("s1/pump1/temp:1767225600", "ack", "ana", "", datetime(2026, 1, 1, tzinfo=timezone.utc))
    >>> p = feedback_point(fb, source="sensor")
    >>> p.tags, p.fields["count"]
    ({'site': 's1', 'source': 'sensor', 'label': 'unsure'}, 1.0)
    """
    if not site:
        try:
            site = route_key(fb.alert_id).split("/", 1)[0]
        except ValueError:
            site = "unknown"
    tags = {"site": site or "unknown", "source": source or "unknown", "label": fb.label}
    fields: dict[str, float | int | bool | str] = {
        "alert_id": fb.alert_id, "user": fb.user, "comment": fb.comment, "verdict": fb.verdict, "count": 1.0,
    }
    return Point("feedback", tags, fields, fb.ts)
