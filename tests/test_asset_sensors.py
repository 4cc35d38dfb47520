"""Alert budgets (detectors/spot.py) and assets deciding together (oddwatch/core/asset_sensors.py)."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta

import pytest

from detectors.spot import TailThreshold
from oddwatch.core.asset_sensors import AssetSensorsState
from oddwatch.core.feedback import Feedback
from oddwatch.records import Alert, Reading

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _ar_scores(n: int, seed: int) -> list[float]:
    """Correlated normal scores (AR(1)), as a detector's scores on normal data are."""
    rng = random.Random(seed)
    x, out = 0.0, []
    for _ in range(n):
        x = 0.8 * x + rng.gauss(0.0, 0.6)
        out.append(abs(x) / (abs(x) + 3.0))
    return out


@pytest.mark.parametrize(("step_s", "low", "high"), [(1.0, 0.5, 2.5), (60.0, 0.7, 1.4)])
def test_budget_holds_whatever_the_reading_rate(step_s: float, low: float, high: float) -> None:
    """The same scores at 1 Hz and once a minute: the achieved episode rate stays near the budget."""
    cal = TailThreshold(per_week=70.0, warmup=300, min_threshold=0.0, q=0.01)
    for i, s in enumerate(_ar_scores(200_000, 1)):
        cal.learn_one(s, 1e9 + i * step_s)
    assert low * 70.0 <= cal.achieved_per_week() <= high * 70.0


def test_cold_start_threshold_is_beyond_the_highest_score_so_far() -> None:
    cal = TailThreshold(per_week=1.0, warmup=10, cold_cap=0.8)
    for i, s in enumerate([0.1, 0.6, 0.2] * 10):
        cal.learn_one(s, float(i))
    assert cal.warm and cal.tail_level(1.0) is None and 0.6 <= cal.threshold < 0.7
    cal.learn_one(0.95, 31.0)
    assert cal.threshold == 0.8  # capped: a fault early in a stream's life does not blind it
    with pytest.raises(ValueError, match="per_week"):
        TailThreshold(per_week=-1.0)


def _run(state: AssetSensorsState, n: int, sensors: int, value, every: int = 1) -> list[tuple[int, Alert]]:
    alerts = []
    for i in range(n):
        for k in range(sensors):
            if i % every and k % 2:  # odd sensors read less often: readings not time-aligned
                continue
            ts = T0 + timedelta(seconds=i, milliseconds=37 * k)
            out = state.step(Reading("s1", "pump1", f"t{k}", ts, value(i, k)))
            if out.alert is not None:
                alerts.append((i, out.alert))
    return alerts


def test_one_noisy_channel_does_not_page_and_a_shared_fault_opens_one_alert() -> None:
    rng = random.Random(2)

    def value(i: int, k: int) -> float:
        v = 10.0 * k + rng.gauss(0.0, 0.1)
        if k == 5 and i >= 1500 and i % 97 == 0:  # a noisy channel: repeated moderate blips
            v += rng.gauss(0.0, 0.4)
        if k < 3 and i >= 2600:  # a fault moves three sensors
            v += 0.6 * (i - 2600) ** 0.5
        return v

    st = AssetSensorsState("s1", "pump1")
    alerts = _run(st, 2700, 6, value, every=3)
    opens = [(i, a) for i, a in alerts if a.kind == "open"]
    assert len(opens) == 1 and opens[0][0] >= 2600, [(i, a.title) for i, a in opens]
    a = opens[0][1]
    assert a.details["sensors"][0] in ("t0", "t1", "t2")
    assert a.alert_id.startswith(f"s1/pump1/{a.details['sensors'][0]}:")  # named after its strongest sensor
    assert "usual" in a.text and "Next:" in a.text


def test_one_sensor_with_overwhelming_evidence_pages_on_an_asset_of_60() -> None:
    rng = random.Random(3)
    st = AssetSensorsState("s1", "pump1")
    alerts = _run(st, 700, 60, lambda i, k: k + rng.gauss(0.0, 0.1) + (8.0 if k == 42 and i == 650 else 0.0))
    opens = [(i, a.details["sensors"]) for i, a in alerts if a.kind == "open"]
    assert opens == [(650, ["t42"])]


def test_sensors_join_late_stop_and_the_state_pickles() -> None:
    rng = random.Random(4)
    st = AssetSensorsState("s1", "pump1")

    def value(i: int, k: int) -> float:
        return k + rng.gauss(0.0, 0.1) + (6.0 if k == 2 and i == 1400 else 0.0)

    for i in range(1500):
        for k in range(3):
            if (k == 2 and i < 600) or (k == 0 and i > 900):  # t2 joins late, t0 stops
                continue
            out = st.step(Reading("s1", "pump1", f"t{k}", T0 + timedelta(seconds=i), value(i, k)))
            if out.alert is not None and out.alert.kind == "open":
                assert (i, out.sensors) == (1400, ("t2",))
                opened = out.alert
    copy = pickle.loads(pickle.dumps(st))
    assert copy.key == "s1/pump1" and set(copy.series) == {"t0", "t1", "t2"}
    fb = Feedback(opened.alert_id, "false_positive", "ana", "", opened.ts + timedelta(seconds=5))
    res = copy.apply_feedback(fb)
    assert res.applied and copy.series["t2"].calibration.min_threshold > 0.5
    if res.alert is not None:
        assert res.alert.kind == "close" and res.alert.alert_id == opened.alert_id
    copy.evict("t0")
    assert "t0" not in copy.series
