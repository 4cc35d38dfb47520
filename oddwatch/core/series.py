"""The per-series pipeline: detector -> calibration -> alert hysteresis.

Used by both the live sensor flow (one :class:`SeriesState` per key in a Bytewax
``stateful_map``) and the offline evaluator (``oddwatch eval series``), so both make the
same decisions. Each reading is scored BEFORE it is learnt.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass

from detectors.calibration import QuantileThreshold
from detectors.drift import DriftEvent, DriftWatch
from detectors.sensor import SensorDetector
from oddwatch.core.alerts import AlertTracker, Transition
from oddwatch.core.drift import recalibrate
from oddwatch.core.feedback import Feedback, FeedbackDone, apply_sensor_feedback
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


RECENT_ALERTS = 16

# What each detector component means to an operator: (the check, what it saw).
CHECKS = {
    "point": ("spike", "the value is far from the median of its last {point_window} readings"),
    "level": ("level shift", "the mean of its last {level_k} readings moved away from the {level_window} before"),
    "spread": ("noise", "the readings jump from one to the next far more than usual"),
    "stuck": ("stuck value", "the same value repeats longer than this series ever did"),
    "novelty": ("unusual pattern", "the shape of its last {window} readings is unlike any it showed before"),
    "hst": ("outlier", "Half-Space Trees find the value rare among recent readings"),
}  # alerts per series whose peak score operator feedback can still use


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
    temp on s1/pump1: spike, value 65.63 above its expected range [45.75, 54.4]
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
        self.calibration = QuantileThreshold(
            q=p.q, warmup=p.warmup, min_threshold=p.min_threshold, margin=p.margin
        )
        self.tracker = AlertTracker(alerts.open_after, alerts.close_after, alerts.cooldown_s)
        self.drift = DriftWatch(delta=p.drift_delta, min_samples=p.drift_min_samples) if p.drift else None
        self.recent_alerts: dict[str, float] = {}  # alert_id -> peak score (oddwatch.core.feedback)
        self.since_close = p.quiet_after_alert  # readings since the last alert closed
        self.open_severity: Severity = "warning"  # the open alert's severity, kept until it closes

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
        self.calibration.learn_one(score)
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

    def _check(self, r: Reading) -> tuple[str, float]:
        """The component that scores this reading highest, and its size against its usual one."""
        components = getattr(self.detector, "components", None)  # stand-in detectors in tests lack it
        parts: dict[str, float] = components({"value": r.value}) if components else {}
        if not parts:
            return "", 0.0
        name = max(parts, key=lambda k: parts[k])
        return name, parts[name]

    def _alert(self, t: Transition, r: Reading, low: float, high: float) -> Alert:
        where = f"{self.sensor} on {self.site}/{self.asset}"
        unit = f" {r.unit}" if r.unit else ""
        since = t.opened_at.isoformat()
        check = ""
        if t.kind == "open":
            name, size = self._check(r)
            check, why = CHECKS.get(name, ("anomaly", "the reading is unlike the series' past"))
            p = self.params
            why = why.format(window=p.window, point_window=p.point_window, level_k=p.level_k,
                             level_window=p.level_window)
            if r.value > high:
                where_value = f"above its expected range [{low:.4g}, {high:.4g}]{unit}"
            elif r.value < low:
                where_value = f"below its expected range [{low:.4g}, {high:.4g}]{unit}"
            else:
                where_value = f"inside its range [{low:.4g}, {high:.4g}]{unit} but {why}"
            title = f"{where}: {check}, value {r.value:.4g}{unit} {where_value.split(' but ')[0]}"
            text = (
                f"{where}: {check}: {why}. Value {r.value:.4g}{unit}, {where_value}; this measure is "
                f"{size:.1f} times its usual size (alerts from {p.alert_ratio:g}). Anomaly score "
                f"{t.score:.3f} >= threshold {t.threshold:.3f} since {since}."
            )
        else:
            title = f"{where}: back to normal"
            text = (
                f"{where}: alert open since {since} closed after {t.readings} readings "
                f"(peak score {t.peak_score:.3f}, threshold {t.threshold:.3f}); "
                f"value {r.value:.4g}{unit}, expected [{low:.4g}, {high:.4g}]{unit}."
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
