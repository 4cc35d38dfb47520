"""Parse the JSON alerts the sensor and log flows publish (``oddwatch.schema.alert_json``).

>>> import json
>>> from oddwatch.records import Message, UTC
>>> from datetime import datetime
>>> t = datetime(2026, 1, 1, tzinfo=UTC)
>>> body = {"alert_id": "n/p/temp:1767225600", "source": "sensor", "kind": "open", "severity": "warning",
...         "site": "n", "subject": "p", "title": "hot", "text": "", "score": 0.9, "threshold": 0.5,
...         "opened_at": "2026-01-01T00:00:00+00:00", "ts": "2026-01-01T00:00:05+00:00", "details": {}}
>>> a = parse_alert(Message("oddwatch/alerts/n/p", json.dumps(body).encode(), t))
>>> a.alert_id, a.kind, (a.ts - a.opened_at).total_seconds()
('n/p/temp:1767225600', 'open', 5.0)
>>> parse_alert(Message("oddwatch/alerts/n/p", b'{"kind": "open"}', t)).reason
'missing_field'
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from oddwatch.records import Alert, IngestError, Message, Stream, excerpt

KINDS = ("open", "close", "summary")
MAX_PAYLOAD_BYTES = 262144
STRINGS = ("alert_id", "source", "kind", "severity", "site", "subject", "title", "text")


def parse_alert(msg: Message, *, stream: Stream = "incident") -> Alert | IngestError:
    """One alert message as an :class:`Alert`; bad input comes back as an :class:`IngestError`."""

    def error(reason: str, detail: str) -> IngestError:
        return IngestError(stream, "parse_alert", reason, msg.topic, excerpt(msg.payload), detail, msg.received)

    if len(msg.payload) > MAX_PAYLOAD_BYTES:
        return error("too_large", f"alert on {msg.topic}: {len(msg.payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        body: Any = json.loads(msg.payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error("bad_json", f"alert on {msg.topic} is not JSON: {exc}")
    if not isinstance(body, dict):
        return error("bad_type", f"alert on {msg.topic} must be a JSON object, got {type(body).__name__}")
    missing = [k for k in (*STRINGS, "opened_at", "ts") if not isinstance(body.get(k), str)]
    if missing:
        return error("missing_field", f"alert on {msg.topic} lacks string field(s) {', '.join(missing)}")
    if body["kind"] not in KINDS:
        return error("bad_type", f"alert {body['alert_id']!r}: kind = {body['kind']!r} is not one of {KINDS}")
    try:
        opened_at, ts = (datetime.fromisoformat(body[k]) for k in ("opened_at", "ts"))
        score, threshold = float(body.get("score", 0.0)), float(body.get("threshold", 0.0))
    except (TypeError, ValueError) as exc:
        return error("bad_type", f"alert {body['alert_id']!r}: bad time or score: {exc}")
    if opened_at.tzinfo is None or ts.tzinfo is None:
        return error("bad_timestamp", f"alert {body['alert_id']!r}: opened_at and ts need a UTC offset")
    details = body.get("details")
    return Alert(
        alert_id=body["alert_id"], source=body["source"], kind=body["kind"], severity=body["severity"],
        site=body["site"], subject=body["subject"], title=body["title"], text=body["text"],
        score=score, threshold=threshold, opened_at=opened_at, ts=ts,
        details=details if isinstance(details, dict) else {},
    )
