"""Operator feedback on alerts: parse it, write it, and learn from false positives.

An operator answers an alert on MQTT topic ``oddwatch/feedback/<alert_id>`` (the CLI:
``oddwatch feedback ALERT_ID false-positive``) with a JSON payload
``{"verdict": "false_positive" | "ack" | "true_positive", "user": ..., "comment": ...}`` or a
bare verdict word. Alert ids are ``f"{key}:{epoch_seconds}"`` (``key`` is ``site/asset/sensor``
or ``site/host/app``), so the id spans several topic levels: subscribe to
``oddwatch/feedback/#``.

Learning:

- sensors, :meth:`oddwatch.core.series.SeriesState.apply_feedback` (through
  :func:`apply_sensor_feedback`): a false positive raises the series' threshold
  floor (``calibration.min_threshold``) just above the alert's peak score, so the same score
  no longer alerts (a stronger anomaly still does), and closes the alert if it is still open
  without an MQTT message (the returned close :class:`~oddwatch.records.Alert` is for the
  InfluxDB rows only);
- logs, :meth:`oddwatch.core.logsource.LogSourceState.apply_feedback`: a false positive admits
  the alert's windows to the source's novelty index as normal (similar windows then score low),
  learns their scores into the calibration and closes the alert quietly if still open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from oddwatch.records import Alert, IngestError, Message, Outgoing, Stream, excerpt, severity

if TYPE_CHECKING:  # imported for types only: keeps this module light for the CLI
    from oddwatch.core.series import SeriesState

VERDICTS = ("false_positive", "true_positive", "ack", "missed")  # missed: an incident nobody was alerted to
LABELS = {"false_positive": "false_positive", "true_positive": "true_positive", "ack": "unsure", "missed": "missed"}
ALIASES = {"fp": "false_positive", "tp": "true_positive", "acknowledged": "ack", "unsure": "ack",
           "confirmed": "true_positive"}
DEFAULT_PREFIX = "oddwatch/feedback"
MAX_PAYLOAD_BYTES = 4096
FP_MARGIN = 0.02  # the new floor is this far above the false positive's peak score
MAX_FLOOR = 0.999  # scores are < 1: never mute a series entirely
RECENT_WINDOWS = 64  # anomalous windows a log source remembers for feedback


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


@dataclass(frozen=True, slots=True)
class FeedbackDone:
    """Operator feedback applied to one series or log source: what each part of it changed."""

    feedback: Feedback
    site: str
    results: tuple[FeedbackResult, ...]

    @property
    def alert(self) -> Alert | None:
        """The quiet close of the alert this feedback closed, if any (InfluxDB rows only)."""
        return next((r.alert for r in self.results if r.alert is not None), None)


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


def parse_feedback(msg: Message, *, prefix: str = DEFAULT_PREFIX, stream: Stream = "feedback") -> Feedback | IngestError:
    """Parse one feedback message; bad input comes back as an :class:`IngestError`, never raises.

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
    try:
        return _parse_feedback(msg, prefix, stream)
    except Exception as exc:  # the last resort: one message never stops the flow
        from oddwatch.ingest.guard import failure  # lazy: keeps this module light for the CLI

        return failure(stream, "parse_feedback", msg, exc)


def _parse_feedback(msg: Message, prefix: str, stream: Stream) -> Feedback | IngestError:
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
        except (RecursionError, ValueError):
            return error("bad_json", f"feedback for {alert_id} is JSON nested too deeply or with a number too long")
    else:
        body = {"verdict": text}
    if isinstance(body, str):
        body = {"verdict": body}
    if not isinstance(body, dict) or not isinstance(body.get("verdict"), str):
        return error("bad_type", f"feedback for {alert_id} needs a JSON object with a string 'verdict', got {text[:80]!r}")
    user, comment = body.get("user", ""), body.get("comment", "")
    if not isinstance(user, str) or not isinstance(comment, str):
        return error("bad_type", f"feedback for {alert_id}: 'user' and 'comment' must be strings, got "
                                 f"{type(user).__name__} and {type(comment).__name__}")
    try:
        verdict = normalise_verdict(body["verdict"])
    except ValueError as exc:
        return error("bad_type", f"feedback for {alert_id}: {exc}")
    return Feedback(alert_id, verdict, user[:256], comment[:1024], msg.received)




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


# ---------------------------------------------------------------- learning: sensors
def _sensor_peak(state: SeriesState, alert_id: str, epoch: int) -> float | None:
    """The peak score of one of the series' recent alerts, if this state still knows it."""
    recent = state.recent_alerts
    peaks = [float(recent[alert_id])] if alert_id in recent else []
    tr = state.tracker
    if tr.is_open and tr.opened_at is not None and int(tr.opened_at.timestamp()) == epoch:
        peaks.append(tr.peak_score)
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
    tr.close(ts)  # the cooldown runs from now on, as after any close
    peak_severity = severity(peak, state.params.critical_score)
    open_severity = state.open_severity  # the open row's severity tag
    where = f"{state.sensor} on {state.site}/{state.asset}"
    who = f" by {fb.user}" if fb.user else ""
    return Alert(
        alert_id=fb.alert_id, source="sensor", kind="close", severity=open_severity, site=state.site,
        subject=state.asset, title=f"{where}: closed as a false positive",
        text=(f"{where}: alert open since {opened.isoformat()} marked a false positive{who}"
              f"{': ' + fb.comment if fb.comment else ''}; threshold floor now {state.calibration.min_threshold:.3f} "
              f"(peak score {peak:.3f})."),
        score=peak, threshold=state.calibration.threshold, opened_at=opened, ts=ts,
        details={"key": state.key, "sensor": state.sensor, "peak_score": peak, "closed_by": "feedback",
                 "user": fb.user, "open_severity": open_severity, "peak_severity": peak_severity},
    )
