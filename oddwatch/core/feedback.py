"""Operator feedback on alerts: parse it, write it, and learn from false positives.

An operator answers an alert on MQTT topic ``oddwatch/feedback/<alert_id>`` (the CLI:
``oddwatch feedback ALERT_ID false-positive``) with a JSON payload
``{"verdict": "false_positive" | "ack" | "true_positive", "user": ..., "comment": ...}`` or a
bare verdict word. Alert ids are ``f"{key}:{epoch_seconds}"`` (``key`` is ``site/asset/sensor``
or ``site/host/app``), so the id spans several topic levels: subscribe to
``oddwatch/feedback/#``.

Learning (pure functions on the flows' existing state objects):

- sensors, :func:`apply_sensor_feedback`: a false positive raises the series' threshold
  floor (``calibration.min_threshold``) just above the alert's peak score, so the same score
  no longer alerts (a stronger anomaly still does), and closes the alert if it is still open
  without an MQTT message (the returned close :class:`~oddwatch.records.Alert` is for the
  InfluxDB rows only);
- logs, :func:`apply_log_feedback`: a false positive admits the window's vector to the group's
  novelty index as normal (similar windows then score low) and learns its score into the
  calibration.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from oddwatch.records import Alert, IngestError, Message, Outgoing, Point, excerpt

if TYPE_CHECKING:  # imported for types only: keeps this module light for the CLI
    from oddwatch.core.log_pipeline import GroupNovelty, WindowResult
    from oddwatch.core.series import SeriesState
    from oddwatch.settings import Settings

VERDICTS = ("false_positive", "true_positive", "ack")
LABELS = {"false_positive": "false_positive", "true_positive": "true_positive", "ack": "unsure"}
ALIASES = {"fp": "false_positive", "tp": "true_positive", "acknowledged": "ack", "unsure": "ack"}
DEFAULT_PREFIX = "oddwatch/feedback"
MAX_PAYLOAD_BYTES = 4096
FP_MARGIN = 0.02  # the new floor is this far above the false positive's peak score
MAX_FLOOR = 0.999  # scores are < 1: never mute a series entirely
RECENT_WINDOWS = 64


@dataclass(frozen=True, slots=True)
class Feedback:
    """An operator's verdict on one alert; ``ts`` is when it arrived (UTC)."""

    alert_id: str
    verdict: str  # one of VERDICTS
    user: str
    comment: str
    ts: datetime

    @property
    def label(self) -> str:
        """The ``feedback`` measurement's label: ``ack`` is written as ``unsure``."""
        return LABELS[self.verdict]


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """What applying feedback changed; ``str()`` gives the description.

    ``alert`` is the close transition of an alert that the feedback closed quietly: write its
    ``alert`` rows to InfluxDB (so the open row gets its end) but do not publish it on MQTT.
    """

    description: str
    applied: bool = False
    alert: Alert | None = None

    def __str__(self) -> str:
        return self.description


def is_quiet(alert: Alert) -> bool:
    """True for an alert written to InfluxDB but not published: one closed by feedback."""
    return alert.details.get("closed_by") == "feedback"


# ---------------------------------------------------------------- ids and parsing
def split_alert_id(alert_id: str) -> tuple[str, int]:
    """``(key, epoch_seconds)`` of an alert id ``site/x/y:epoch``; ValueError naming it otherwise.

    >>> split_alert_id("s1/pump1/temp:1767225600")
    ('s1/pump1/temp', 1767225600)
    """
    key, sep, epoch = alert_id.rpartition(":")
    parts = key.split("/")
    if not sep or not epoch.isdigit() or len(parts) != 3 or not all(parts):
        raise ValueError(
            f"alert id {alert_id!r} is not 'site/asset/sensor:epoch' or 'site/host/app:epoch' "
            "(copy it from the alert's alert_id)"
        )
    return key, int(epoch)


def route_key(alert_id: str) -> str:
    """The series or log-group key an alert id belongs to (the flows' state key).

    >>> route_key("s1/web01/nginx:1767225600")
    's1/web01/nginx'
    """
    return split_alert_id(alert_id)[0]


def normalise_verdict(word: str) -> str:
    """A verdict from what an operator typed (case, ``-`` or ``_``, a few aliases).

    >>> normalise_verdict("False-Positive"), normalise_verdict("ACK"), normalise_verdict("tp")
    ('false_positive', 'ack', 'true_positive')
    """
    v = word.strip().lower().replace("-", "_").replace(" ", "_")
    v = ALIASES.get(v, v)
    if v not in VERDICTS:
        raise ValueError(f"verdict {word!r} is not one of {', '.join(VERDICTS)} (or false-positive, fp, tp)")
    return v


def topic_prefix(topic_filter: str) -> str:
    """The fixed part of a feedback topic filter.

    >>> topic_prefix("oddwatch/feedback/#"), topic_prefix("$share/g/oddwatch/feedback/+")
    ('oddwatch/feedback', 'oddwatch/feedback')
    """
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    levels = topic_filter.split("/")
    while levels and levels[-1] in ("#", "+"):
        levels.pop()
    return "/".join(levels)


def parse_feedback(msg: Message, *, prefix: str = DEFAULT_PREFIX, stream: str = "feedback") -> Feedback | IngestError:
    """Parse one feedback message; bad input comes back as an :class:`IngestError`.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> fb = parse_feedback(Message("oddwatch/feedback/s1/pump1/temp:1767225600",
    ...                             b'{"verdict": "false_positive", "user": "ana"}', t))
    >>> fb.alert_id, fb.verdict, fb.user, fb.label
    ('s1/pump1/temp:1767225600', 'false_positive', 'ana', 'false_positive')
    >>> parse_feedback(Message("oddwatch/feedback/s1/pump1/temp:1767225600", b"ack", t)).label
    'unsure'
    >>> parse_feedback(Message("oddwatch/feedback/nope", b"ack", t)).reason
    'unknown_topic'
    """

    def error(reason: str, detail: str) -> IngestError:
        return IngestError(stream, "parse_feedback", reason, msg.topic, excerpt(msg.payload), detail, msg.received)

    head = prefix.rstrip("/") + "/"
    if not msg.topic.startswith(head):
        return error("unknown_topic", f"topic {msg.topic!r} is not under the feedback prefix {head!r}")
    alert_id = msg.topic[len(head):]
    try:
        split_alert_id(alert_id)
    except ValueError as exc:
        return error("unknown_topic", str(exc))
    if len(msg.payload) > MAX_PAYLOAD_BYTES:
        return error("too_large", f"feedback for {alert_id}: {len(msg.payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        text = msg.payload.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        return error("bad_encoding", f"feedback for {alert_id} is not UTF-8: {exc}")
    if not text:
        return error("empty", f"feedback for {alert_id} has an empty payload; send a verdict")
    body: Any
    if text.startswith(("{", "[", '"')):
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            return error("bad_json", f"feedback for {alert_id} is not valid JSON: {exc}")
    else:
        body = {"verdict": text}
    if isinstance(body, str):
        body = {"verdict": body}
    if not isinstance(body, dict) or not isinstance(body.get("verdict"), str):
        return error("bad_type", f"feedback for {alert_id} needs a JSON object with a string 'verdict', got {text[:80]!r}")
    user, comment = body.get("user", ""), body.get("comment", "")
    if not isinstance(user, str) or not isinstance(comment, str):
        return error("bad_type", f"feedback for {alert_id}: 'user' and 'comment' must be strings, got "
                                 f"{user!r} and {comment!r}")
    try:
        verdict = normalise_verdict(body["verdict"])
    except ValueError as exc:
        return error("bad_type", f"feedback for {alert_id}: {exc}")
    return Feedback(alert_id, verdict, user[:256], comment[:1024], msg.received)


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


# ---------------------------------------------------------------- sending (CLI)
def feedback_message(alert_id: str, verdict: str, user: str = "", comment: str = "", *,
                     prefix: str = DEFAULT_PREFIX) -> Outgoing:
    """The MQTT message an operator's feedback travels in (validated first).

    >>> m = feedback_message("s1/pump1/temp:1767225600", "false-positive", "ana")
    >>> m.topic, json.loads(m.payload)["verdict"]
    ('oddwatch/feedback/s1/pump1/temp:1767225600', 'false_positive')
    """
    split_alert_id(alert_id)
    body = {"verdict": normalise_verdict(verdict), "user": user, "comment": comment}
    return Outgoing(f"{prefix.rstrip('/')}/{alert_id}", json.dumps(body).encode(), qos=1)


def send_feedback(settings: Settings, alert_id: str, verdict: str, user: str = "", comment: str = "",
                  *, timeout_s: float = 10.0) -> Outgoing:
    """Publish feedback on ``settings.mqtt`` and wait for the broker's acknowledgement."""
    import os

    from oddwatch.connectors.mqtt import MqttError, MqttPublisher

    msg = feedback_message(alert_id, verdict, user, comment, prefix=topic_prefix(settings.mqtt.feedback_topic))
    with MqttPublisher(settings.mqtt, f"{settings.mqtt.client_id}-feedback-{os.getpid()}") as pub:
        pub.publish(msg.topic, msg.payload, qos=msg.qos)
        if not pub.wait_all(timeout_s):
            raise MqttError(f"feedback for {alert_id}: broker {pub.where} did not acknowledge within {timeout_s} s")
    return msg


def wait_applied(settings: Settings, alert_id: str, since_ns: int, timeout_s: float = 5.0) -> list[str]:
    """The sources (``sensor``, ``log``) whose flow applied feedback on *alert_id* since *since_ns*.

    A flow that knows the alert's series or log source writes a ``feedback`` point when it
    applies the verdict; polls InfluxDB for it up to *timeout_s* (empty list: none did).
    Raises :class:`oddwatch.connectors.influx.InfluxError` when InfluxDB cannot be asked.
    """
    import time

    from oddwatch.connectors.influx import InfluxQuery

    quoted = alert_id.replace("\\", "\\\\").replace("'", "\\'")
    q = (f"SELECT \"count\", \"source\" FROM \"feedback\" WHERE alert_id = '{quoted}' "
         f"AND time >= {int(since_ns)}")
    client = InfluxQuery(settings.influx)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            rows = client.query(q)
            if rows or time.monotonic() >= deadline:
                return sorted({str(r.get("source", "unknown")) for r in rows})
            time.sleep(0.25)
    finally:
        client.close()


# ---------------------------------------------------------------- learning: sensors
def _sensor_peak(state: SeriesState, alert_id: str, epoch: int) -> float | None:
    """The peak score of one of the series' recent alerts, if this state still knows it."""
    recent: Mapping[str, float] = getattr(state, "recent_alerts", None) or {}  # proposed in series.py
    peaks = [float(recent[alert_id])] if alert_id in recent else []
    tr = state.tracker
    if tr.is_open and tr.opened_at is not None and int(tr.opened_at.timestamp()) == epoch:
        peak = getattr(tr, "peak_score", None)  # proposed public name ...
        peak = getattr(tr, "_peak", None) if peak is None else peak  # ... of today's private field
        if peak is not None:
            peaks.append(float(peak))
    return max(peaks) if peaks else None


def apply_sensor_feedback(state: SeriesState, fb: Feedback, *, margin: float = FP_MARGIN) -> FeedbackResult:
    """Learn an operator's verdict into one series' state.

    A false positive raises the threshold floor (``state.calibration.min_threshold``) to the
    alert's peak score plus ``margin`` (at most ``MAX_FLOOR``), so the same score no longer
    alerts while a stronger anomaly still does; the floor survives recalibration. If the alert
    is still open it is closed without an MQTT message (``result.alert`` holds the close for
    InfluxDB). Other verdicts change nothing.
    """
    key, epoch = split_alert_id(fb.alert_id)
    if key != state.key:
        raise ValueError(f"apply_sensor_feedback: feedback for {fb.alert_id!r} routed to series {state.key!r}")
    if fb.verdict != "false_positive":
        return FeedbackResult(f"{fb.verdict} on {fb.alert_id} noted; nothing learnt")
    peak = _sensor_peak(state, fb.alert_id, epoch)
    if peak is None:
        return FeedbackResult(f"false positive on {fb.alert_id}: alert no longer known to series {key} "
                              "(too old or before a restart); threshold unchanged")
    cal = state.calibration
    old = cal.min_threshold
    floor = min(max(old, peak + margin), MAX_FLOOR)
    cal.min_threshold = floor
    parts = [f"false positive on {fb.alert_id} (peak score {peak:.3f}): threshold floor of {key} "
             f"{old:.3f} -> {floor:.3f}"]
    close = _quiet_close(state, fb, epoch, peak)
    if close is not None:
        parts.append("open alert closed")
    return FeedbackResult("; ".join(parts), True, close)


def _quiet_close(state: SeriesState, fb: Feedback, epoch: int, peak: float) -> Alert | None:
    tr = state.tracker
    if not (tr.is_open and tr.opened_at is not None and int(tr.opened_at.timestamp()) == epoch):
        return None
    opened = tr.opened_at
    ts = max(fb.ts, opened)
    tr.is_open = False
    tr.closed_at = ts  # cooldown from now on, as after any close
    severity = "critical" if peak >= state.params.critical_score else "warning"
    where = f"{state.sensor} on {state.site}/{state.asset}"
    who = f" by {fb.user}" if fb.user else ""
    return Alert(
        alert_id=fb.alert_id, source="sensor", kind="close", severity=severity, site=state.site,
        subject=state.asset, title=f"{where}: closed as a false positive",
        text=(f"{where}: alert open since {opened.isoformat()} marked a false positive{who}"
              f"{': ' + fb.comment if fb.comment else ''}; threshold floor now {state.calibration.min_threshold:.3f} "
              f"(peak score {peak:.3f})."),
        score=peak, threshold=state.calibration.threshold, opened_at=opened, ts=ts,
        details={"key": state.key, "sensor": state.sensor, "peak_score": peak, "closed_by": "feedback",
                 "user": fb.user, "open_severity": severity},
    )


# ---------------------------------------------------------------- learning: logs
def window_meta(result: WindowResult) -> dict[str, Any]:
    """What feedback needs of an anomalous window, from its :class:`WindowResult`.

    Its explanation (present on anomalous windows) carries the template counts.
    """
    ex = result.explanation
    return {"source": result.source, "window_id": result.window_id, "start": result.start, "end": result.end,
            "lines": result.lines, "score": result.score, "template_counts": dict(ex.get("template_counts", {})),
            "examples": [r.get("example", "") for r in ex.get("rare_templates", [])][:3]}


class RecentWindows:
    """The last ``capacity`` anomalous windows of a log group, found again by alert id.

    A log alert's id is ``f"{source}:{int(opened_at)}"`` where ``opened_at`` is the end of the
    window that opened it; the windows of one alert are those ending from then on until the
    next alert opened.

    >>> rw = RecentWindows(capacity=2)
    >>> for end in (100.5, 160.0, 220.0):
    ...     rw.add({"window_id": f"w{end}", "end": end, "template_counts": {1: 1}})
    >>> [m["window_id"] for m in rw.find("s/h/a:160")], len(rw)
    (['w160.0', 'w220.0'], 2)
    """

    def __init__(self, capacity: int = RECENT_WINDOWS) -> None:
        if capacity < 1:
            raise ValueError(f"RecentWindows: capacity = {capacity!r} must be >= 1")
        self.capacity = capacity
        self._by_end: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._opens: list[int] = []  # epochs of alert opens seen (bounded like the windows)

    def __len__(self) -> int:
        return len(self._by_end)

    def add(self, meta: Mapping[str, Any], *, opened_alert: bool = False) -> None:
        """Remember one anomalous window (``opened_alert``: it opened an alert)."""
        self._by_end[str(meta["window_id"])] = dict(meta)
        if opened_alert:
            self._opens.append(int(meta["end"]))
            del self._opens[: -self.capacity]
        while len(self._by_end) > self.capacity:
            self._by_end.popitem(last=False)

    def find(self, alert_id: str) -> list[dict[str, Any]]:
        """The remembered windows of an alert, oldest first."""
        epoch = split_alert_id(alert_id)[1]
        later = [e for e in self._opens if e > epoch]
        stop = min(later) if later else math.inf
        return [m for m in self._by_end.values() if epoch <= int(m["end"]) < stop]


def apply_log_feedback(group: GroupNovelty, meta: Mapping[str, Any], fb: Feedback) -> FeedbackResult:
    """Learn an operator's verdict on one log window into its group's novelty state.

    A false positive adds the window's vector (from its template counts) to the novelty index
    as a normal window, drops the matching candidate, and learns the window's score into the
    calibration, so similar windows score low from now on. Templates the group no longer knows
    are left out of the vector. Other verdicts change nothing.
    """
    key, _ = split_alert_id(fb.alert_id)
    if key != group.source:
        raise ValueError(f"apply_log_feedback: feedback for {fb.alert_id!r} routed to log group {group.source!r}")
    wid = meta.get("window_id", "?")
    if fb.verdict != "false_positive":
        return FeedbackResult(f"{fb.verdict} on {fb.alert_id} (window {wid}) noted; nothing learnt")
    counts = {int(t): int(c) for t, c in dict(meta.get("template_counts", {})).items() if int(t) in group.table}
    if not counts or group.index is None or group.candidates is None:
        return FeedbackResult(f"false positive on {fb.alert_id}: window {wid} of {key} cannot be rebuilt "
                              "(templates or index no longer known); nothing learnt")
    vec = group.vector(counts)
    score, _, _ = group.index.score(vec)
    added = score >= group.params.dedupe_distance or not len(group.index)
    if added:
        entry = {"source": key, "window_id": str(wid), "start": meta.get("start", 0.0), "end": meta.get("end", 0.0),
                 "lines": meta.get("lines", 0), "examples": list(meta.get("examples", [])),
                 "template_counts": counts, "support": 1, "first_seen": group.n_windows, "feedback": fb.alert_id}
        group.index.add(vec, entry)
    dist, ckey, _ = group.candidates.score(vec)
    if ckey is not None and dist < group.params.admit_distance:
        group.candidates.remove(ckey)
    learnt = float(meta.get("score", score))
    group.calibration.learn_one(learnt)
    what = "added to the normal index" if added else "already in the normal index"
    return FeedbackResult(f"false positive on {fb.alert_id}: window {wid} of {key} (novelty {learnt:.3f}) {what}; "
                          f"index size {len(group.index)}", True)
