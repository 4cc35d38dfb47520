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
from datetime import datetime

from oddwatch.records import Alert, IngestError, Outgoing, Point


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
