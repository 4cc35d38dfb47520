"""Alerts read back from InfluxDB: ``oddwatch alerts``, ``oddwatch explain`` and the report.

Everything is InfluxQL on ``/query`` (:class:`oddwatch.connectors.influx.InfluxQuery`), so it
works on InfluxDB 1.x, 2.x (v1 compatibility) and 3.x. The rows read are those of
docs/schema.md: ``alert`` (``kind=open`` rows, rewritten with ``time_end`` on close),
``sensor_score`` and ``log_window``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_POINTS = 5000


class Query(Protocol):
    def query(self, q: str, epoch: str | None = "ns", *, database: str | None = None) -> list[dict[str, Any]]: ...


class ReviewError(Exception):
    """A bad argument or an alert that is not there (the message says what to do)."""


def parse_since(text: str) -> timedelta:
    """A duration like ``30m``, ``2h``, ``7d`` as a timedelta.

    >>> parse_since("2h"), parse_since("90s")
    (datetime.timedelta(seconds=7200), datetime.timedelta(seconds=90))
    >>> parse_since("2 hours")
    Traceback (most recent call last):
    ...
    oddwatch.review.ReviewError: --since '2 hours' is not a duration like 30m, 2h, 7d (units s, m, h, d, w)
    """
    m = DURATION.match(text.strip())
    if not m:
        raise ReviewError(f"--since {text!r} is not a duration like 30m, 2h, 7d (units s, m, h, d, w)")
    return timedelta(seconds=int(m.group(1)) * SECONDS[m.group(2)])


def quote(value: str) -> str:
    r"""An InfluxQL string literal.

    >>> quote("it's")
    "'it\\'s'"
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ts(ns: int | float) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _ms(ms: float | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000.0, UTC)


@dataclass(frozen=True)
class AlertRow:
    """One alert as stored (its ``kind=open`` row)."""

    alert_id: str
    source: str
    site: str
    subject: str
    severity: str
    state: str
    title: str
    text: str
    score: float
    threshold: float
    opened_at: datetime
    closed_at: datetime | None
    peak_severity: str = ""  # the severity of the highest score while open ("" when not stored)
    alert_ids: tuple[str, ...] = ()  # an incident's alerts

    @property
    def worst_severity(self) -> str:
        """``critical`` when the alert opened or peaked critical, else the severity it opened with."""
        return "critical" if "critical" in (self.severity, self.peak_severity) else self.severity

    @property
    def key(self) -> str:
        """The series or log source of the alert (``site/asset/sensor`` or ``site/host/app``)."""
        return self.alert_id.rsplit(":", 1)[0]

    @classmethod
    def from_incident(cls, row: dict[str, Any]) -> AlertRow:
        """An ``incident`` row in the shape of an alert (source ``incident``, subject the asset)."""
        closed = str(row.get("state") or "") == "closed"
        return cls(
            alert_id=str(row.get("incident_id") or ""), source="incident", site=str(row.get("site") or ""),
            subject=str(row.get("asset") or ""), severity=str(row.get("severity") or ""),
            state=str(row.get("state") or ""), title=str(row.get("title") or ""),
            text=str(row.get("text") or ""), score=float(row.get("alerts") or 0.0), threshold=0.0,
            opened_at=_ts(row["time"]), closed_at=_ms(row.get("time_end")) if closed else None,
            peak_severity=str(row.get("peak_severity") or ""),
            alert_ids=tuple(str(row.get("alert_ids") or "").split()),
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AlertRow:
        return cls(
            alert_id=str(row.get("alert_id") or ""), source=str(row.get("source") or ""),
            site=str(row.get("site") or ""), subject=str(row.get("subject") or ""),
            severity=str(row.get("severity") or ""), state=str(row.get("state") or ""),
            title=str(row.get("title") or ""), text=str(row.get("text") or ""),
            score=float(row.get("score") or 0.0), threshold=float(row.get("threshold") or 0.0),
            opened_at=_ts(row["time"]), closed_at=_ms(row.get("time_end")),
            peak_severity=str(row.get("peak_severity") or ""),
        )


def list_alerts(query: Query, *, since: timedelta = timedelta(hours=2), open_only: bool = False,
                site: str | None = None, now: datetime | None = None) -> list[AlertRow]:
    """The alerts opened in the last *since* (newest first), optionally only open ones or one site."""
    start = (now or datetime.now(UTC)) - since
    where = [f'"kind" = {quote("open")}', f"time >= {quote(rfc3339(start))}"]
    if site:
        where.append(f'"site" = {quote(site)}')
    rows = query.query(f'SELECT * FROM "alert" WHERE {" AND ".join(where)} GROUP BY * ORDER BY time DESC')
    alerts = [AlertRow.from_row(r) for r in rows if r.get("alert_id")]
    incidents = query.query(f'SELECT * FROM "incident" WHERE {" AND ".join(where[1:])} GROUP BY *')
    alerts += [AlertRow.from_incident(r) for r in incidents if r.get("incident_id")]
    alerts.sort(key=lambda a: a.opened_at, reverse=True)
    return [a for a in alerts if a.state == "open"] if open_only else alerts


def find_alert(query: Query, alert_id: str) -> AlertRow:
    """The alert with *alert_id* (its open row), or a :class:`ReviewError`."""
    key, sep, epoch = alert_id.rpartition(":")
    if sep and epoch.isdigit() and key.count("/") == 1:  # an incident: SITE/ASSET:EPOCH
        rows = query.query(f'SELECT * FROM "incident" WHERE "incident_id" = {quote(alert_id)} GROUP BY *')
        if not rows:
            raise ReviewError(f"no incident {alert_id!r} in InfluxDB: list them with `oddwatch alerts --since 7d`")
        return AlertRow.from_incident(rows[0])
    if not sep or not epoch.isdigit() or key.count("/") != 2:
        raise ReviewError(f"alert id {alert_id!r} is not SITE/ASSET/SENSOR:EPOCH or SITE/HOST/APP:EPOCH "
                          "(see `oddwatch alerts`)")
    opened = datetime.fromtimestamp(int(epoch), UTC)
    rows = query.query(
        f'SELECT * FROM "alert" WHERE "kind" = {quote("open")} AND "alert_id" = {quote(alert_id)} '
        f"AND time >= {quote(rfc3339(opened))} AND time < {quote(rfc3339(opened + timedelta(seconds=1)))} GROUP BY *")
    if not rows:
        raise ReviewError(f"no alert {alert_id!r} in InfluxDB: list the alerts with `oddwatch alerts --since 7d`")
    return AlertRow.from_row(rows[0])


@dataclass
class Story:
    """What ``oddwatch explain`` shows: the alert, lines of text, and the data to plot."""

    alert: AlertRow
    lines: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    png: bytes | None = None


def _period(alert: AlertRow, now: datetime) -> tuple[datetime, datetime]:
    end = alert.closed_at or now
    length = max(end - alert.opened_at, timedelta(minutes=5))
    return alert.opened_at - 3 * length, end + length


def sensor_story(query: Query, alert: AlertRow, now: datetime | None = None, plot: bool = True) -> Story:
    """Values around a sensor alert against the expected band and the threshold."""
    site, asset, sensor = alert.key.split("/", 2)
    start, end = _period(alert, now or datetime.now(UTC))
    rows = query.query(
        'SELECT "value", "score", "threshold", "expected_low", "expected_high", "is_anomaly" FROM "sensor_score" '
        f'WHERE "site" = {quote(site)} AND "asset" = {quote(asset)} AND "sensor" = {quote(sensor)} '
        f"AND time >= {quote(rfc3339(start))} AND time <= {quote(rfc3339(end))} LIMIT {MAX_POINTS}")
    story = Story(alert, [f"{alert.title} [{alert.severity}, {alert.state}]", alert.text], rows)
    closed = f"closed {alert.closed_at:%Y-%m-%d %H:%M:%S}Z" if alert.closed_at else "still open"
    story.lines.append(f"Opened {alert.opened_at:%Y-%m-%d %H:%M:%S}Z, {closed}.")
    if not rows:
        story.lines.append(f"No sensor_score points for {alert.key} between {start:%H:%M} and {end:%H:%M}Z "
                           "(expired by the retention policy?).")
        return story
    during = [r for r in rows if alert.opened_at <= _ts(r["time"]) <= (alert.closed_at or end)]
    before = [r for r in rows if _ts(r["time"]) < alert.opened_at]
    if before:
        vals = [float(r["value"]) for r in before]
        banded = [r for r in before if _band(r) is not None]
        expected = "no expected range yet (warming up)"
        if banded:
            low, high = _band(banded[-1]) or (math.nan, math.nan)
            expected = f"expected about [{low:.4g}, {high:.4g}]"
        story.lines.append(f"Before: {len(before)} readings, values {min(vals):.4g} to {max(vals):.4g}, {expected}.")
    if during:
        peak = max(during, key=lambda r: _num(r, "score"))
        above = sum(1 for r in during if _num(r, "score") >= _num(r, "threshold"))
        band = _band(peak)
        expected = f"expected [{band[0]:.4g}, {band[1]:.4g}]" if band else "no expected range stored"
        story.lines.append(
            f"During: {len(during)} readings, {above} at or above the threshold; peak score "
            f"{_num(peak, 'score'):.3f} (threshold {_num(peak, 'threshold'):.3f}) at "
            f"{_ts(peak['time']):%Y-%m-%d %H:%M:%S}Z with value {_num(peak, 'value'):.4g}, {expected}.")
    if plot:
        from oddwatch.plots import sensor_png

        times = [_ts(r["time"]) for r in rows]
        story.png = sensor_png(times, [_num(r, "value") for r in rows],
                               [_num(r, "expected_low") for r in rows], [_num(r, "expected_high") for r in rows],
                               [_num(r, "score") for r in rows], [_num(r, "threshold") for r in rows],
                               title=alert.title, opened=alert.opened_at, closed=alert.closed_at)
    return story


def _num(row: dict[str, Any], name: str) -> float:
    """A numeric field of a row, NaN where it is not stored (the expected range while warming up)."""
    value = row.get(name)
    return math.nan if value is None else float(value)


def _band(row: dict[str, Any]) -> tuple[float, float] | None:
    """The expected range of a ``sensor_score`` row, or None where it was not stored."""
    low, high = _num(row, "expected_low"), _num(row, "expected_high")
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def log_story(query: Query, alert: AlertRow, now: datetime | None = None, plot: bool = True) -> Story:
    """A log alert's explanation and the windows of its source around it."""
    site, host, app = alert.key.split("/", 2)
    start, end = _period(alert, now or datetime.now(UTC))
    rows = query.query(
        'SELECT "novelty", "threshold", "lines", "templates", "is_anomaly", "window_id", "novel_template", "example" '
        f'FROM "log_window" WHERE "site" = {quote(site)} AND "host" = {quote(host)} AND "app" = {quote(app)} '
        f"AND time >= {quote(rfc3339(start))} AND time <= {quote(rfc3339(end))} LIMIT {MAX_POINTS}")
    story = Story(alert, [f"{alert.title} [{alert.severity}, {alert.state}]"], rows)
    # The text holds the explanation sentence by sentence: window, burst, templates, nearest normal.
    story.lines += [s.strip() for s in re.split(r"(?<=\.) (?=[A-Z])", alert.text) if s.strip()]
    closed = f"closed {alert.closed_at:%Y-%m-%d %H:%M:%S}Z" if alert.closed_at else "still open"
    story.lines.append(f"Opened {alert.opened_at:%Y-%m-%d %H:%M:%S}Z, {closed}.")
    novel: dict[str, list[Any]] = {}
    for r in rows:
        if r.get("novel_template"):
            entry = novel.setdefault(str(r["novel_template"]), [0, str(r.get("example") or ""), 0])
            entry[0] += 1
            entry[2] += int(r.get("lines") or 0)
    anomalous = sum(1 for r in rows if r.get("is_anomaly"))
    story.lines.append(f"{len(rows)} windows of {alert.key} around the alert, {anomalous} above the threshold.")
    for template, (windows, example, lines) in sorted(novel.items(), key=lambda kv: -kv[1][0]):
        story.lines.append(f"  new template '{template}' in {windows} window(s) ({lines} lines), e.g. '{example}'")
    if plot and rows:
        from oddwatch.plots import log_png

        story.png = log_png([_ts(r["time"]) for r in rows], [float(r["novelty"]) for r in rows],
                            [float(r["threshold"]) for r in rows], [float(r.get("lines") or 0) for r in rows],
                            title=alert.title, opened=alert.opened_at, closed=alert.closed_at)
    return story


def story(query: Query, alert: AlertRow, now: datetime | None = None, plot: bool = True) -> Story:
    """The story of *alert*, sensor or log, or of an incident."""
    if alert.source == "incident":
        return incident_story(query, alert)
    if alert.source == "log":
        return log_story(query, alert, now, plot)
    return sensor_story(query, alert, now, plot)


def incident_story(query: Query, incident: AlertRow) -> Story:
    """An incident's story in time order, and the alerts it joined with their explanations."""
    rows = query.query(f'SELECT "alert_ids", "sources" FROM "incident" WHERE "incident_id" = {quote(incident.alert_id)}')
    ids = str(rows[0].get("alert_ids") or "").split() if rows else []
    state = f"closed {incident.closed_at:%Y-%m-%d %H:%M:%S}Z" if incident.closed_at else "open"
    lines = [f"incident {incident.alert_id} on {incident.site}/{incident.subject} ({incident.severity}, {state}): "
             f"{incident.title}", "", "What happened, in time order:"]
    lines += [f"  {step.strip()}" for step in incident.text.split(" | ") if step.strip()]
    if ids:
        lines += ["", "Its alerts (oddwatch explain ALERT_ID for each):"] + [f"  {i}" for i in ids]
    return Story(incident, lines)


def format_alerts(alerts: list[AlertRow]) -> str:
    """The alert list for a terminal: one header line and the explanation per alert."""
    if not alerts:
        return "no alerts"
    out = []
    for a in alerts:
        closed = f"closed {a.closed_at:%H:%M:%S}Z" if a.closed_at else "OPEN"
        out.append(f"{a.opened_at:%Y-%m-%d %H:%M:%S}Z  {a.severity:<8} {closed:<15} {a.alert_id}\n"
                   f"    {a.title}\n    {a.text}")
    return "\n".join(out)
