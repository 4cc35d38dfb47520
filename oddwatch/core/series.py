"""The per-series pipeline: detector -> calibration -> alert hysteresis.

Used by both the live sensor flow (one :class:`SeriesState` per key in a Bytewax
``stateful_map``) and the offline evaluator (``oddwatch eval series``), so both make the
same decisions. Each reading is scored BEFORE it is learnt.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass

from detectors.drift import DriftEvent, DriftWatch
from detectors.sensor import SensorDetector
from oddwatch.core.alerts import AlertTracker, Transition
from oddwatch.core.drift import recalibrate
from oddwatch.core.feedback import Feedback, FeedbackDone, apply_sensor_feedback
from oddwatch.core.sensor_text import CHECKS, DEFAULT_CHECK, check_of, next_step
from oddwatch.params import SeriesParams
from oddwatch.records import Alert, Reading, Severity, alert_id, severity
from oddwatch.settings import AlertSettings


@dataclass(frozen=True, slots=True)
class SeriesOutput:
    """What the pipeline decided at one reading.

    Attributes
    ----------
    score
        The detector's score in [0, 1] (computed before learning the reading). With
        ``onset_score`` it is the onset score: the detector's score where an alert could
        open at this reading; where it could not (warm-up, an alert already open, the quiet readings
        after one), the detector's score capped just below the alert level
        ``min_threshold``, since that episode is already reported. It peaks where alerts open and falls back after; it is what
        dashboards graph.
    threshold
        The calibrated threshold in force at this reading.
    is_anomaly
        True exactly when an alert OPENED at this reading: one detection per anomalous
        event (hysteresis, warm-up and cooldown applied). This is the live flow's decision
        and what the NAB "own decisions" score uses.
    expected_low, expected_high
        The range the detector expected the value in (for explanations and dashboards).
    alert
        The open or close transition caused by this reading, if any.
    """

    score: float
    threshold: float
    is_anomaly: bool
    expected_low: float
    expected_high: float
    alert: Alert | None = None
    drift: DriftEvent | None = None  # a lasting change of the score level or input rate
    recalibrated: bool = False  # the threshold was re-fitted because of ``drift``
    raw_score: float = 0.0  # the detector's score, uncapped (calibration and drift watch learn it)


RECENT_ALERTS = 16  # alerts per series whose peak score operator feedback can still use


class SeriesState:
    """Detector, threshold calibration and alert hysteresis for one sensor series.

    Examples
    --------
    >>> import math, random
    >>> from datetime import datetime, timedelta, timezone
    >>> rng = random.Random(5)
    >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> st = SeriesState("s1", "pump1", "temp")
    >>> outs = []
    >>> for i in range(1500):
    ...     v = 50 + math.sin(i / 30) + rng.gauss(0, 0.1) + (15 if 1200 <= i < 1210 else 0)
    ...     outs.append(st.step(Reading("s1", "pump1", "temp", t0 + timedelta(minutes=i), v)))
    >>> [i for i, o in enumerate(outs) if o.is_anomaly]
    [1200]
    >>> print(outs[1200].alert.title)
    temp on s1/pump1: sudden jump, 65.63 (usual 50.08, +15.6, above expected 45.75 to 54.4)
    """

    def __deepcopy__(self, memo: dict[int, object]) -> SeriesState:
        """A copy through pickle: Bytewax deep-copies each changed state at every snapshot, and
        a pickle round trip (buffers pickle only their filled part) is about 10 times faster."""
        copied: SeriesState = pickle.loads(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
        return copied

    def __init__(
        self,
        site: str,
        asset: str,
        sensor: str,
        params: SeriesParams | None = None,
        alerts: AlertSettings | None = None,
    ) -> None:
        self.site = site
        self.asset = asset
        self.sensor = sensor
        self.params = p = params or SeriesParams()
        alerts = alerts or AlertSettings()
        self.detector = SensorDetector(p.detector_params())
        self.calibration = p.calibration(alerts.series_false_alerts_per_week)
        self.tracker = AlertTracker(alerts.open_after, alerts.close_after, alerts.cooldown_s)
        self.drift = DriftWatch(delta=p.drift_delta, min_samples=p.drift_min_samples) if p.drift else None
        self.recent_alerts: dict[str, float] = {}  # alert_id -> peak score (oddwatch.core.feedback)
        self.since_close = p.quiet_after_alert  # readings since the last alert closed
        self.open_severity: Severity = "warning"  # the open alert's severity, kept until it closes
        self.last_value = math.nan  # the latest reading's value
        self.open_range = (math.nan, math.nan)  # the range expected when the open alert opened

    @property
    def key(self) -> str:
        return f"{self.site}/{self.asset}/{self.sensor}"

    def apply_feedback(self, fb: Feedback) -> FeedbackDone:
        """Learn an operator's verdict (:func:`oddwatch.core.feedback.apply_sensor_feedback`)."""
        return FeedbackDone(fb, self.site, (apply_sensor_feedback(self, fb),))

    def step(self, reading: Reading) -> SeriesOutput:
        """Score ``reading``, decide, then learn it."""
        x = {"value": reading.value}
        score = self.detector.score_one(x)
        if not math.isfinite(score):
            score = 0.0
        threshold = self.calibration.threshold
        armed = self.calibration.warm and self.since_close >= self.params.quiet_after_alert
        can_open = armed and not self.tracker.is_open
        low, high = self.detector.expected_range()
        transition = self.tracker.update(reading.ts, score, threshold, armed)
        self.since_close = 0 if transition is not None and transition.kind == "close" else self.since_close + 1
        alert = self._alert(transition, reading, low, high) if transition else None
        self.detector.learn_one(x)
        self.last_value = reading.value
        self.calibration.learn_one(score, reading.ts.timestamp())
        if transition is not None and alert is not None:
            self.recent_alerts[alert.alert_id] = float(transition.peak_score)
            while len(self.recent_alerts) > RECENT_ALERTS:
                del self.recent_alerts[next(iter(self.recent_alerts))]
        drift = self.drift.update(reading.ts, score) if self.drift is not None else None
        recalibrated = drift is not None and drift.kind == "score"
        if recalibrated:
            recalibrate(self.calibration, warmup=self.params.rewarm or None)
        return SeriesOutput(
            score=score if can_open or not self.params.onset_score
            else min(score, math.nextafter(self.params.min_threshold, 0.0)),
            threshold=threshold,
            is_anomaly=transition is not None and transition.kind == "open",
            expected_low=low,
            expected_high=high,
            alert=alert,
            drift=drift,
            recalibrated=recalibrated,
            raw_score=score,
        )

    def _alert(self, t: Transition, r: Reading, low: float, high: float) -> Alert:
        where = f"{self.sensor} on {self.site}/{self.asset}"
        unit = f" {r.unit}" if r.unit else ""
        since = t.opened_at.isoformat()
        check = ""
        rng = f"expected {low:.4g} to {high:.4g}{unit}"
        if t.kind == "open":
            self.open_range = (low, high)
            name = check_of(self, r.value)
            check, why, todo = CHECKS.get(name, DEFAULT_CHECK)
            p = self.params
            why = why.format(window=p.window, point_window=p.point_window, level_k=p.level_k,
                             level_window=p.level_window)
            usual = 0.5 * (low + high)
            moved = f"usual {usual:.4g}{unit}, {r.value - usual:+.3g}{unit}" if math.isfinite(usual) else ""
            side = "above" if r.value > high else "below" if r.value < low else "within"
            title = f"{where}: {check}, {r.value:.4g}{unit} ({moved}, {side} {rng})" if moved else f"{where}: {check}"
            text = (
                f"{where}: {check}: {why}. Value {r.value:.4g}{unit}{', ' + moved if moved else ''}; {rng}. "
                f"Next: {next_step(name)}. Anomaly score {t.score:.3f} >= threshold {t.threshold:.3f} "
                f"since {since}."
            )
        else:
            olow, ohigh = self.open_range
            settled = math.isfinite(olow) and not olow <= r.value <= ohigh
            if settled:
                title = f"{where}: settled at a new level"
                text = (
                    f"{where}: alert open since {since} closed after {t.readings} readings as the checks "
                    f"adapted, but the value {r.value:.4g}{unit} has not returned to the range before the alert "
                    f"({olow:.4g} to {ohigh:.4g}{unit}). Next: confirm the new level is intended (a setpoint "
                    "or load change); if not, it is still a fault."
                )
            else:
                title = f"{where}: back to normal"
                text = (
                    f"{where}: alert open since {since} closed after {t.readings} readings; "
                    f"value {r.value:.4g}{unit}, {rng}."
                )
        peak_severity = severity(t.peak_score, self.params.critical_score)
        if t.kind == "open":
            self.open_severity = peak_severity
        open_severity = self.open_severity  # one severity from open to close
        return Alert(
            alert_id=alert_id(self.key, t.opened_at),
            source="sensor",
            kind=t.kind,
            severity=open_severity,
            site=self.site,
            subject=self.asset,
            title=title,
            text=text,
            score=t.score,
            threshold=t.threshold,
            opened_at=t.opened_at,
            ts=r.ts,
            details={
                "key": self.key,
                "sensor": self.sensor,
                "value": r.value,
                "expected_low": low,
                "expected_high": high,
                "peak_score": t.peak_score,
                **({"check": check} if check else {}),
                "peak_severity": peak_severity,
            },
        )
