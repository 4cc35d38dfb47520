"""The per-series pipeline: detector -> calibration -> alert hysteresis.

Used by both the live sensor flow (one :class:`SeriesState` per key in a Bytewax
``stateful_map``) and the offline evaluator (``oddwatch eval series``), so both make the
same decisions. Each reading is scored BEFORE it is learnt.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import asdict, dataclass, fields

from detectors.calibration import QuantileThreshold
from detectors.drift import DriftEvent, DriftWatch
from detectors.sensor import SensorDetector, SensorDetectorParams
from oddwatch.core.alerts import AlertTracker, Transition
from oddwatch.core.drift import recalibrate
from oddwatch.records import Alert, Reading
from oddwatch.settings import AlertSettings


@dataclass
class SeriesParams(SensorDetectorParams):
    """Every tunable of the per-series pipeline (config section ``[series]``).

    The detector's tunables are inherited from
    :class:`detectors.sensor.SensorDetectorParams`; the fields below calibrate the alert
    threshold: ``max(min_threshold, q-quantile of past scores + margin)``, no alert during
    the first ``warmup`` readings. The detector's score is already relative to the series'
    own history (0.5 = its ``alert_ratio``), so ``min_threshold`` is the alert level and the
    quantile only raises it for a series that scores above it more than ``1 - q`` of the
    time (measured on NAB: higher ``q`` values cost 6-10 points).
    """

    q: float = 0.5
    warmup: int = 300
    min_threshold: float = 0.5
    margin: float = 0.0
    critical_score: float = 0.9  # alerts whose score reaches this are "critical"
    drift: bool = True  # watch score level and input rate; re-fit the threshold after a score drift
    drift_delta: float = 0.002  # ADWIN confidence: smaller gives fewer, later drift events
    drift_min_samples: int = 300  # readings of a regime before a drift of it is reported
    rewarm: int = 1  # readings without alerts after a re-fit (0: warmup); NAB standard -0.1 (1), -4 (50)

    def validate(self) -> None:
        """Raise ValueError naming the first setting whose value cannot work."""
        super().validate()
        QuantileThreshold(q=self.q, warmup=self.warmup, min_threshold=self.min_threshold, margin=self.margin)

    def detector_params(self) -> SensorDetectorParams:
        names = {f.name for f in fields(SensorDetectorParams)}
        return SensorDetectorParams(**{k: v for k, v in asdict(self).items() if k in names})


@dataclass(frozen=True, slots=True)
class SeriesOutput:
    """What the pipeline decided at one reading.

    Attributes
    ----------
    score
        The detector's score in [0, 1] for this reading (computed before learning it).
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
    temp on s1/pump1: value 65.63 above expected range
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

    @property
    def key(self) -> str:
        return f"{self.site}/{self.asset}/{self.sensor}"

    def step(self, reading: Reading) -> SeriesOutput:
        """Score ``reading``, decide, then learn it."""
        x = {"value": reading.value}
        score = self.detector.score_one(x)
        if not math.isfinite(score):
            score = 0.0
        threshold = self.calibration.threshold
        armed = self.calibration.warm
        low, high = self.detector.expected_range()
        transition = self.tracker.update(reading.ts, score, threshold, armed)
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
            score=score,
            threshold=threshold,
            is_anomaly=transition is not None and transition.kind == "open",
            expected_low=low,
            expected_high=high,
            alert=alert,
            drift=drift,
            recalibrated=recalibrated,
        )

    def _alert(self, t: Transition, r: Reading, low: float, high: float) -> Alert:
        where = f"{self.sensor} on {self.site}/{self.asset}"
        if r.value > high:
            position = "above expected range"
        elif r.value < low:
            position = "below expected range"
        else:
            position = "within expected range (unusual pattern)"
        unit = f" {r.unit}" if r.unit else ""
        since = t.opened_at.isoformat()
        if t.kind == "open":
            title = f"{where}: value {r.value:.4g}{unit} {position}"
            text = (
                f"{where}: value {r.value:.4g}{unit}, expected [{low:.4g}, {high:.4g}]{unit}; "
                f"anomaly score {t.score:.3f} >= threshold {t.threshold:.3f} since {since}."
            )
        else:
            title = f"{where}: back to normal"
            text = (
                f"{where}: alert open since {since} closed after {t.readings} readings "
                f"(peak score {t.peak_score:.3f}, threshold {t.threshold:.3f}); "
                f"value {r.value:.4g}{unit}, expected [{low:.4g}, {high:.4g}]{unit}."
            )
        return Alert(
            alert_id=f"{self.key}:{int(t.opened_at.timestamp())}",
            source="sensor",
            kind=t.kind,
            severity="critical" if t.peak_score >= self.params.critical_score else "warning",
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
            },
        )
