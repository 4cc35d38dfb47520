"""The sensors of one asset decide together: one asset alert per fault, not one page per sensor.

:class:`AssetSensorsState` keeps a :class:`~oddwatch.core.series.SeriesState` per sensor of an
asset (``site/asset``); each still scores its readings (the scores written per sensor) and its
own checks become evidence. The asset pages, with one alert naming the sensors that moved most:

- when ``[alerts] asset_min_sensors`` sensors (2) rise over their evidence level within
  ``asset_window_s`` of each other, or
- when one sensor alone reaches the level its share of the asset's budget allows
  (``false_alerts_per_week / 2 / n`` sensors): overwhelming evidence. During a sensor's cold
  start (fewer than ``tail_min_peaks`` episodes) both levels are the highest score it showed
  so far (at most ``tail_cold_cap``), never below the alert level.

Both levels follow from the asset's budget ``[alerts] false_alerts_per_week`` and each
sensor's tail (:class:`detectors.spot.TailThreshold`): a pair of independent sensors over a
level they each exceed ``r`` times a week coincide about ``n**2 * r**2 * window`` times a week,
so ``r = sqrt(budget / 2 / (n**2 * window))``; a single sensor pages at ``budget / 2 / n``.
Readings need not be time-aligned: each sensor's latest time over its evidence level is kept
in event time. Sensors may join late (counted from their first reading) or stop (not counted
after ``STALE_S`` without a reading).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from datetime import datetime

from oddwatch.core.feedback import FP_MARGIN, MAX_FLOOR, Feedback, FeedbackResult, split_alert_id
from oddwatch.core.sensor_text import Moved, asset_close_text, asset_open_text
from oddwatch.core.series import SeriesOutput, SeriesState
from oddwatch.params import SeriesParams
from oddwatch.records import Alert, Reading, Severity, alert_id, severity
from oddwatch.settings import AlertSettings

WEEK_S = 7 * 86400.0
STALE_S = 86400.0  # a sensor silent this long no longer counts among the asset's sensors
NAMED = 3  # sensors an asset alert names


@dataclass(frozen=True, slots=True)
class AssetOutput:
    """What the asset decided at one reading: the reading's own series output, and the asset's alert."""

    series: SeriesOutput
    alert: Alert | None = None  # the asset alert's open or close caused by this reading
    sensors: tuple[str, ...] = ()  # on an open: the sensors it names, the strongest first


@dataclass
class _Evidence:
    """One sensor's latest time over its evidence level, and its peak since the asset alert opened."""

    last_high: datetime | None = None
    peak: Moved | None = None
    seen: datetime | None = None
    since_close: int = 1 << 30  # readings since the asset's last close


@dataclass
class _Open:
    opened_at: datetime
    members: dict[str, Moved] = field(default_factory=dict)
    peak_score: float = 0.0
    below: int = 0
    named: tuple[str, ...] = ()
    alert_id: str = ""


class AssetSensorsState:
    """Every sensor of one asset, and the asset's one alert (pure, picklable).

    Examples
    --------
    >>> import random
    >>> from datetime import datetime, timedelta, timezone
    >>> rng = random.Random(3)
    >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> st = AssetSensorsState("s1", "pump1")
    >>> opens = []
    >>> for i in range(3000):  # 1 Hz: a step on three of four sensors at 2500
    ...     for k in range(4):
    ...         v = 10 * k + rng.gauss(0, 0.1) + (5 if k < 3 and i >= 2500 else 0)
    ...         o = st.step(Reading("s1", "pump1", f"t{k}", t0 + timedelta(seconds=i), v))
    ...         if o.alert is not None:
    ...             opens.append((i, o.alert.kind, o.alert.details["sensors"]))
    >>> fault = [a for a in opens if a[0] >= 2500]
    >>> fault[0]  # one alert for the step; t0's step alone is overwhelming, t1 and t2 join it
    (2500, 'open', ['t0'])
    >>> fault[1][1], sorted(fault[1][2]), len(fault)
    ('close', ['t0', 't1', 't2'], 2)
    """

    def __init__(self, site: str, asset: str, params: SeriesParams | None = None,
                 alerts: AlertSettings | None = None) -> None:
        self.site = site
        self.asset = asset
        self.params = params or SeriesParams()
        self.alerts = alerts or AlertSettings()
        self.series: dict[str, SeriesState] = {}
        self.evidence: dict[str, _Evidence] = {}
        self.open: _Open | None = None
        self.open_severity: Severity = "warning"
        self.recent_alerts: dict[str, tuple[float, dict[str, float]]] = {}  # id -> (peak, sensor -> score)

    def __deepcopy__(self, memo: dict[int, object]) -> AssetSensorsState:
        """A copy through pickle (Bytewax deep-copies states at snapshots; see SeriesState)."""
        copied: AssetSensorsState = pickle.loads(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
        return copied

    @property
    def key(self) -> str:
        return f"{self.site}/{self.asset}"

    def evict(self, sensor: str) -> None:
        """Forget one sensor (idle, its place went to a new series); an open alert keeps its members."""
        self.series.pop(sensor, None)
        self.evidence.pop(sensor, None)

    @property
    def is_open(self) -> bool:
        return self.open is not None

    def _levels(self, st: SeriesState, n: int) -> tuple[float, float]:
        """(evidence level, single-sensor level) of one sensor on an asset of *n* sensors."""
        a = self.alerts
        budget = a.false_alerts_per_week
        cal = st.calibration
        if budget <= 0:
            t = cal.threshold_for(0.0)
            return t, t
        rate = cal.rate_hz
        window_weeks = max(a.asset_window_s, 2.0 / rate if rate > 0 else 0.0) / WEEK_S
        pair = math.sqrt(budget / 2.0 / (n * n * max(window_weeks, 1e-12))) if n > 1 else budget
        evidence = cal.threshold_for(pair)
        tail = cal.tail_level(budget / 2.0 / n)
        # a cold start (no tail yet): the evidence level, the highest score seen so far, also for one alone
        single = cal.threshold_for(budget / 2.0 / n) if tail is not None else evidence
        return evidence, max(single, evidence) if n > 1 else evidence

    def step(self, reading: Reading) -> AssetOutput:
        """Score *reading* on its sensor's series, then decide for the asset."""
        st = self.series.get(reading.sensor)
        if st is None:
            st = self.series[reading.sensor] = SeriesState(self.site, self.asset, reading.sensor,
                                                           self.params, self.alerts)
            self.evidence[reading.sensor] = _Evidence()
        ev = self.evidence[reading.sensor]
        n = sum(1 for name, e in self.evidence.items() if name == reading.sensor
                or (e.seen is not None and (reading.ts - e.seen).total_seconds() < STALE_S))
        evidence_level, single_level = self._levels(st, n)
        low, high = st.detector.expected_range()
        out = st.step(reading)
        ev.seen = reading.ts
        ev.since_close += 1
        score = out.raw_score
        armed = st.calibration.warm and ev.since_close > self.params.quiet_after_alert
        hit = armed and score >= evidence_level
        if hit:
            ev.last_high = reading.ts
            moved = Moved.of(st, reading, score, evidence_level, low, high)
            if ev.peak is None or moved.strength > ev.peak.strength:
                ev.peak = moved
        alert = self._decide(reading, st, hit, score, single_level, armed)
        return AssetOutput(out, alert, self.open.named if alert is not None and alert.kind == "open"
                           and self.open is not None else ())

    def _raised(self, now: datetime) -> list[str]:
        w = self.alerts.asset_window_s
        out = []
        for name, e in self.evidence.items():
            if e.last_high is None:
                continue
            st = self.series[name]
            rate = st.calibration.rate_hz
            window = max(w, 2.0 / rate if rate > 0 else 0.0)
            if (now - e.last_high).total_seconds() <= window:
                out.append(name)
        return out

    def _decide(self, r: Reading, st: SeriesState, hit: bool, score: float, single: float,
                armed: bool) -> Alert | None:
        if self.open is not None:
            op = self.open
            if hit:
                op.below = 0
                op.peak_score = max(op.peak_score, score)
                peak = self.evidence[r.sensor].peak
                if peak is not None:  # a sensor joins the open alert (named in its close)
                    op.members[r.sensor] = peak
                    op.named = tuple(sorted(op.members, key=lambda k: -op.members[k].strength)[:NAMED])
                return None
            op.below += 1
            if self._raised(r.ts) or op.below < self.alerts.close_after:
                return None
            return self._close(r)
        raised = self._raised(r.ts)
        strong = armed and score >= single
        if len(raised) < self.alerts.asset_min_sensors and not strong:
            for name in self.evidence:  # stale peaks do not join a later alert
                e = self.evidence[name]
                if name not in raised:
                    e.peak = None
            return None
        members = {name: p for name in raised if (p := self.evidence[name].peak) is not None}
        if strong and r.sensor not in members:
            members[r.sensor] = Moved.of(st, r, score, single, *st.detector.expected_range())
        first = min((self.evidence[name].last_high or r.ts) for name in members) if members else r.ts
        opened_at = min(first, r.ts)
        named = tuple(sorted(members, key=lambda k: -members[k].strength)[:NAMED])
        self.open = _Open(opened_at, dict(members), max(m.score for m in members.values()), 0, named)
        peak_severity = severity(self.open.peak_score, self.params.critical_score)
        self.open_severity = peak_severity
        title, text = asset_open_text(self.key, [members[k] for k in named], len(members), len(self.evidence))
        aid = alert_id(f"{self.key}/{named[0]}", opened_at)  # named after its strongest sensor
        self.open.alert_id = aid
        self.recent_alerts[aid] = (self.open.peak_score, {k: m.score for k, m in members.items()})
        while len(self.recent_alerts) > 16:
            del self.recent_alerts[next(iter(self.recent_alerts))]
        return Alert(
            alert_id=aid, source="sensor", kind="open", severity=peak_severity, site=self.site,
            subject=self.asset, title=title, text=text, score=self.open.peak_score,
            threshold=min(m.level for m in members.values()), opened_at=opened_at, ts=r.ts,
            details={"key": aid.rsplit(":", 1)[0], "sensors": list(named), "sensor": named[0], "moved": len(members),
                     "check": members[named[0]].check, "value": members[named[0]].value,
                     "expected_low": members[named[0]].low, "expected_high": members[named[0]].high,
                     "peak_score": self.open.peak_score, "peak_severity": peak_severity},
        )

    def _close(self, r: Reading, *, by: str = "") -> Alert:
        op = self.open
        assert op is not None  # callers check
        self.open = None
        for e in self.evidence.values():
            e.since_close = 0
            e.peak = None
            e.last_high = None
        now = {k: self.series[k].detector.expected_range() for k in op.members if k in self.series}
        latest = {k: self.series[k].last_value for k in op.members if k in self.series}
        title, text = asset_close_text(self.key, op.opened_at, list(op.members.values()), latest, now, by)
        return Alert(
            alert_id=op.alert_id, source="sensor", kind="close",
            severity=self.open_severity, site=self.site, subject=self.asset, title=title, text=text,
            score=op.peak_score, threshold=0.0, opened_at=op.opened_at, ts=r.ts,
            details={"key": op.alert_id.rsplit(":", 1)[0], "sensors": list(op.named), "peak_score": op.peak_score,
                     **({"closed_by": by} if by else {})},
        )

    def apply_feedback(self, fb: Feedback) -> FeedbackResult:
        """A false positive on an asset alert raises the named sensors' floors above their peaks
        and closes the alert quietly if it is still open; feedback on a sensor's id goes to it."""
        key, epoch = split_alert_id(fb.alert_id)
        if fb.alert_id not in self.recent_alerts:
            from oddwatch.core.feedback import apply_sensor_feedback

            sensor = key.rsplit("/", 1)[-1]
            st = self.series.get(sensor)
            if st is None:
                return FeedbackResult(f"{fb.verdict} on {fb.alert_id}: sensor {key} unknown; nothing learnt")
            return apply_sensor_feedback(st, fb)
        if fb.verdict != "false_positive":
            return FeedbackResult(f"{fb.verdict} on {fb.alert_id} noted; nothing learnt")
        known = self.recent_alerts.get(fb.alert_id)
        if known is None:
            return FeedbackResult(f"false positive on {fb.alert_id}: alert no longer known to asset {key}; "
                                  "thresholds unchanged")
        parts = []
        for sensor, peak in known[1].items():
            if sensor not in self.series:
                continue
            cal = self.series[sensor].calibration
            old = cal.min_threshold
            cal.min_threshold = min(max(old, peak + FP_MARGIN), MAX_FLOOR)
            parts.append(f"{sensor} {old:.3f} -> {cal.min_threshold:.3f}")
        msg = f"false positive on {fb.alert_id}: threshold floors of {key}: " + ", ".join(parts)
        close = None
        if self.open is not None and self.open.alert_id == fb.alert_id:
            ts = max(fb.ts, self.open.opened_at)
            close = self._close(Reading(self.site, self.asset, "", ts, math.nan), by="feedback")
            msg += "; open alert closed"
        return FeedbackResult(msg, True, close)
