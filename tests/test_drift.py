"""Tests of detectors.drift.DriftWatch and oddwatch.core.drift (drift point, recalibration)."""

from __future__ import annotations

import copy
import math
import pickle
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from detectors.calibration import QuantileThreshold
from detectors.drift import DriftEvent, DriftWatch
from oddwatch.core.drift import recalibrate
from oddwatch.core.series import SeriesParams, SeriesState
from oddwatch.records import UTC, Reading
from oddwatch.schema import drift_point
from oddwatch.settings import AlertSettings
from tests.stubs import Scripted

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def scores(seed: int, n: int, *, shift_at: int | None = None, shift: float = 0.3,
           rate_at: int | None = None) -> Iterator[tuple[datetime, float]]:
    """Skewed anomaly-like scores (mostly low, rare spikes) once a minute with jitter."""
    rng = random.Random(seed)
    t = T0
    for i in range(n):
        s = rng.betavariate(2, 12) + (rng.random() < 0.01) * rng.random() * 0.6
        if shift_at is not None and i >= shift_at:
            s += shift
        period = 30.0 if rate_at is not None and i >= rate_at else 60.0
        t += timedelta(seconds=period + rng.gauss(0, 2))
        yield t, min(1.0, s)


def events(watch: DriftWatch, stream: Iterator[tuple[datetime, float]]) -> list[tuple[int, DriftEvent]]:
    return [(i, e) for i, (t, s) in enumerate(stream) if (e := watch.update(t, s)) is not None]


@pytest.mark.parametrize("detector", ["adwin", "page_hinkley"])
def test_level_change_gives_one_score_event(detector: str) -> None:
    found = events(DriftWatch(detector=detector), scores(1, 4000, shift_at=2000))
    assert [e.kind for _, e in found] == ["score"]
    i, ev = found[0]
    assert 2000 <= i < 2150
    assert ev.before_mean == pytest.approx(0.16, abs=0.03) and ev.after_mean == pytest.approx(0.46, abs=0.06)
    assert 0.2 < ev.magnitude < 0.4 and ev.samples == i + 1


@pytest.mark.parametrize("detector", ["adwin", "page_hinkley"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stationary_stream_gives_no_event(detector: str, seed: int) -> None:
    assert events(DriftWatch(detector=detector), scores(seed, 5000)) == []


def test_rate_change_gives_one_rate_event() -> None:
    found = events(DriftWatch(), scores(3, 4000, rate_at=2000))
    assert [e.kind for _, e in found] == ["rate"]
    i, ev = found[0]
    assert 2000 <= i < 2100
    assert ev.before_mean == pytest.approx(1.0, rel=0.05) and ev.after_mean > 1.3  # readings per minute


def test_simultaneous_events_both_reported() -> None:
    w = DriftWatch(min_samples=10)
    found = events(w, scores(4, 3000, shift_at=1500, shift=0.5, rate_at=1500))
    assert sorted(e.kind for _, e in found) == ["rate", "score"]


def test_rate_watch_off_and_nan_skipped() -> None:
    w = DriftWatch(rate=False)
    assert events(w, scores(3, 3000, rate_at=1000)) == []
    assert w.update(T0, math.nan) is None


def test_pickle_and_deepcopy_continue_identically() -> None:
    stream = list(scores(5, 3000, shift_at=2000))
    w = DriftWatch()
    for t, s in stream[:1000]:
        w.update(t, s)
    for clone in (pickle.loads(pickle.dumps(w)), copy.deepcopy(w)):
        a = [w2.update(t, s) for w2 in (clone,) for t, s in stream[1000:]]
        assert [e.kind for e in a if e] == ["score"]


def test_bad_settings_name_the_value() -> None:
    with pytest.raises(ValueError, match="detector = 'cusum'"):
        DriftWatch(detector="cusum")
    with pytest.raises(ValueError, match="delta = 2"):
        DriftWatch(delta=2)
    with pytest.raises(ValueError, match="min_samples = 0"):
        DriftWatch(min_samples=0)


def test_drift_point() -> None:
    ev = DriftEvent("rate", T0, 60.0, 30.0, 500)
    p = drift_point(["s1", "web01", "nginx"], ev, stream="log", threshold=0.2)
    assert p.measurement == "drift" and p.ts == T0
    assert p.tags == {"stream": "log", "site": "s1"}
    assert p.fields == {"key": "s1/web01/nginx", "kind": "rate", "score": 0.5, "threshold": 0.2,
                        "before_mean": 60.0, "after_mean": 30.0, "samples": 500.0, "recalibrated": False}
    assert all(isinstance(v, (float, bool, str)) for v in p.fields.values())
    with pytest.raises(ValueError, match="stream = 'x'"):
        drift_point(["s1"], ev, stream="x")
    with pytest.raises(ValueError, match="key_parts"):
        drift_point([], ev)


def test_recalibrate_keeps_floor_and_uses_reset_when_present() -> None:
    cal = QuantileThreshold(q=0.99, warmup=10, min_threshold=0.6)
    for i in range(100):
        cal.learn_one(i / 100)
    recalibrate(cal, warmup=5)
    assert cal.n == 0 and not cal.warm and cal.threshold == 0.6

    class WithReset(QuantileThreshold):
        def reset(self, *, warmup: int | None = None) -> None:
            self.called = warmup

    c2 = WithReset()
    recalibrate(c2, warmup=7)
    assert c2.called == 7
    with pytest.raises(ValueError, match="warmup = -1"):
        recalibrate(cal, warmup=-1)


def _regime_change(values: list[float], change: int, with_drift: bool) -> tuple[list[int], int]:
    """Alert opens (reading indexes) after ``change``, and readings with an alert open after it."""
    alerts = AlertSettings(open_after=1, close_after=10, cooldown_s=300.0,  # pinned: defaults get tuned
                           series_false_alerts_per_week=0.0)  # the quantile alone: the budget also adapts
    params = SeriesParams(warmup=300, q=0.999, min_threshold=0.5, quiet_after_alert=0)
    if hasattr(params, "drift"):  # once SeriesState watches drift itself: the test drives it here
        params.drift = False
    st = SeriesState("s1", "pump1", "temp", params, alerts)
    st.detector = Scripted(values)  # type: ignore[assignment]
    watch = DriftWatch()
    opens: list[int] = []
    open_readings = 0
    for i in range(len(values)):
        ts = T0 + timedelta(minutes=i)
        out = st.step(Reading("s1", "pump1", "temp", ts, 0.0))
        if i >= change:
            open_readings += st.tracker.is_open
            if out.alert is not None and out.alert.kind == "open":
                opens.append(i)
        ev = watch.update(ts, out.raw_score)  # what SeriesState's own drift watch learns
        if with_drift and ev is not None and ev.kind == "score":
            recalibrate(st.calibration, warmup=None)
    return opens, open_readings


def test_recalibration_after_scores_rise_stops_alert_flood() -> None:
    """Scores step up to 0.5-0.6 (a new regime): the old threshold keeps firing for hours."""
    rng = random.Random(11)
    values = [rng.betavariate(2, 12) if i < 3000 else 0.5 + 0.1 * rng.random() for i in range(6000)]
    flood, flood_open = _regime_change(values, 3000, False)
    calm, calm_open = _regime_change(values, 3000, True)
    assert flood[0] == calm[0] == 3000  # the change itself is alerted either way
    assert len(flood) >= 15 and len(calm) <= 6, (flood, calm)
    assert calm_open < 0.7 * flood_open


def test_recalibration_after_scores_fall_restores_sensitivity() -> None:
    """A noisy regime then a quiet one with six clear anomalies (0.75): found only after re-fitting."""
    rng = random.Random(11)
    values = [rng.betavariate(2, 4) if i < 3000 else (0.75 if i % 500 == 250 else rng.betavariate(2, 12))
              for i in range(6000)]
    missed, _ = _regime_change(values, 3000, False)
    found, _ = _regime_change(values, 3000, True)
    anomalies = [i for i in range(3000, 6000) if i % 500 == 250]
    assert missed == []
    assert set(anomalies[1:]) <= set(found)  # the first falls in the re-warm-up
