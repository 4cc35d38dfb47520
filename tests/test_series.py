"""SeriesState: decisions, explanations, snapshots, and every injected fault kind."""

from __future__ import annotations

import copy
import math
import pickle
import random
from datetime import UTC, datetime, timedelta

import pytest

from oddwatch import datasets
from oddwatch.core.series import SeriesOutput, SeriesParams, SeriesState
from oddwatch.records import Reading
from oddwatch.settings import AlertSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAULT_AT = 2000
NAB = datasets.path("nab")


def signal(kind: str, n: int = 2600, seed: int = 0) -> list[float]:
    """A daily-seasonal noisy sensor with one injected fault at FAULT_AT (1-min readings)."""
    rng = random.Random(seed)
    out: list[float] = []
    for i in range(n):
        sigma = 0.3 * (6 if kind == "noise_burst" and FAULT_AT <= i < FAULT_AT + 60 else 1)
        v = 50 + 2 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, sigma)
        if kind == "spike" and i == FAULT_AT:
            v += 15
        if kind == "level_shift" and i >= FAULT_AT:
            v += 6
        if kind == "slow_drift" and i >= FAULT_AT:
            v += 0.01 * (i - FAULT_AT)
        if kind == "stuck" and FAULT_AT <= i < FAULT_AT + 100:
            v = out[FAULT_AT - 1]
        out.append(v)
    return out


def run(values: list[float], state: SeriesState | None = None, start: int = 0) -> list[SeriesOutput]:
    st = state or SeriesState("site1", "pump7", "temp")
    return [
        st.step(Reading("site1", "pump7", "temp", T0 + timedelta(minutes=start + i), v, unit="C"))
        for i, v in enumerate(values)
    ]


def detections(outs: list[SeriesOutput]) -> list[int]:
    return [i for i, o in enumerate(outs) if o.is_anomaly]


@pytest.mark.parametrize("seed", [0, 1])
def test_clean_signal_raises_no_alert(seed: int) -> None:
    assert detections(run(signal("none", seed=seed))) == []


@pytest.mark.parametrize(
    ("kind", "within"),
    [("spike", 3), ("level_shift", 3), ("slow_drift", 400), ("stuck", 10), ("noise_burst", 30)],
)
def test_each_fault_kind_opens_one_alert_soon_after_it_starts(kind: str, within: int) -> None:
    # a drift of 0.01/reading is caught once it leaves the seasonal envelope (about +3 units)
    outs = run(signal(kind))
    found = detections(outs)
    assert found, f"{kind}: no alert"
    assert FAULT_AT <= found[0] <= FAULT_AT + within, f"{kind}: first alert at {found[0]}"
    assert all(i >= FAULT_AT for i in found), f"{kind}: alert before the fault: {found}"
    assert outs[found[0]].score >= outs[found[0]].threshold


def test_constant_sensor_that_changes_alerts() -> None:
    outs = run([20.0] * 1000 + [20.5] * 50)
    assert detections(outs) == [1000]


def test_one_detection_per_event_with_hysteresis() -> None:
    outs = run(signal("level_shift"))
    assert len([i for i in detections(outs) if FAULT_AT <= i < FAULT_AT + 100]) == 1


def test_no_alert_during_warmup() -> None:
    values = [10.0 + (50.0 if i % 37 == 0 else 0.0) for i in range(SeriesParams().warmup)]
    assert detections(run(values)) == []


def test_alert_explains_itself_and_closes_with_the_same_id() -> None:
    outs = run(signal("spike"))
    alerts = [o.alert for o in outs if o.alert is not None]
    opened, closed = alerts[0], alerts[1]
    assert opened.kind == "open" and closed.kind == "close"
    assert opened.alert_id == closed.alert_id == f"site1/pump7/temp:{int(opened.opened_at.timestamp())}"
    assert opened.opened_at == T0 + timedelta(minutes=FAULT_AT)
    assert "temp on site1/pump7: sudden jump" in opened.title and "above expected" in opened.title
    assert "usual 49.13 C, +15.4 C" in opened.title  # sizes in the sensor's unit, beside its usual value
    assert opened.details["check"] == "sudden jump"
    for needle in ("far from the median", "Next: check the sensor", "Anomaly score", "threshold", "since 2026-01-02"):
        assert needle in opened.text
    assert float(opened.details["expected_low"]) < float(opened.details["value"])  # type: ignore[arg-type]
    assert closed.state == "closed" and "back to normal" in closed.title


def test_score_is_computed_before_learning() -> None:
    a, b = SeriesState("s", "a", "x"), SeriesState("s", "a", "x")
    values = signal("none")[:1500]
    run(values, a)
    run(values, b)
    r = Reading("s", "a", "x", T0 + timedelta(minutes=1500), 49.0)
    assert a.step(r).score == b.detector.score_one({"value": 49.0})


@pytest.mark.parametrize("cut", [1900, FAULT_AT + 3])  # before the fault, and with an alert open
@pytest.mark.parametrize("copier", [lambda s: pickle.loads(pickle.dumps(s)), copy.deepcopy])
def test_snapshot_round_trip_gives_identical_outputs(copier, cut: int) -> None:  # type: ignore[no-untyped-def]
    values = signal("spike")
    st = SeriesState("site1", "pump7", "temp")
    run(values[:cut], st)
    clone = copier(st)
    assert run(values[cut:], clone, cut) == run(values[cut:], st, cut)


def test_custom_params_and_alert_settings_are_used() -> None:
    params = SeriesParams(min_threshold=0.99)
    st = SeriesState("s", "a", "x", params, AlertSettings(open_after=3))
    assert st.calibration.min_threshold == 0.99 and st.tracker.open_after == 3
    assert detections(run(signal("level_shift"), st)) == []


@pytest.mark.shared_data
@pytest.mark.skipif(not (NAB / "data").is_dir(), reason=datasets.missing_message("nab"))
def test_no_alert_on_nab_artificial_no_anomaly() -> None:
    for path in sorted((NAB / "data" / "artificialNoAnomaly").glob("*.csv")):
        st = SeriesState("nab", "artificialNoAnomaly", path.stem)
        lines = path.read_text().splitlines()[1:]
        for line in lines:
            ts, value = line.split(",")[:2]
            t = datetime.fromisoformat(ts).replace(tzinfo=UTC)
            out = st.step(Reading("nab", "artificialNoAnomaly", path.stem, t, float(value)))
            assert not out.is_anomaly, f"{path.name}: alert at {ts}"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [({"ref_q": 1.5}, "ref_q = 1.5"), ({"window": 21}, "window = 21"), ({"q": 0.0}, "q = 0.0")],
)
def test_bad_params_are_named(overrides: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        SeriesParams(**overrides)


def plant_alerts(seed: int) -> tuple[dict[str, int | None], int]:
    """Run the demo plant scenario (16 series, 900 readings each); alert delay per fault kind."""
    from simulators.plant import PlantSimulation

    sim = PlantSimulation(seed=seed, rate=16 / 3.0, duration_s=900 * 3.0, start=T0, n_series=16,
                          day_s=400 * 3.0, warmup_frac=0.4)
    states: dict[str, SeriesState] = {}
    opened: dict[str, list[datetime]] = {}
    for r in sim:
        st = states.get(r.series) or states.setdefault(r.series, SeriesState(*r.series.split("/")))
        if st.step(Reading(st.site, st.asset, st.sensor, r.ts, r.value)).is_anomaly:
            opened.setdefault(r.series, []).append(r.ts)
    grace = timedelta(seconds=10 * 3.0)
    delays: dict[str, int | None] = {}
    matched = 0
    for f in sim.plan.faults:
        hits = [t for t in opened.get(f.series, []) if f.start <= t <= f.end + grace]
        matched += len(hits)
        delays[f.kind] = round((hits[0] - f.start).total_seconds() / 3.0) if hits else None
    return delays, sum(len(v) for v in opened.values()) - matched


@pytest.mark.parametrize("seed", [2, 4])
def test_plant_scenario_every_fault_kind_alerts_with_few_false_alerts(seed: int) -> None:
    delays, false_alerts = plant_alerts(seed)
    missed = [kind for kind, delay in delays.items() if delay is None]
    assert not missed, f"seed {seed}: no alert for {missed} (delays {delays})"
    for kind in ("spike", "noise_burst", "stuck"):
        assert delays[kind] is not None and delays[kind] <= 10, f"seed {seed}: {kind} alerted late: {delays}"
    assert false_alerts <= 1, f"seed {seed}: {false_alerts} false alerts"


def test_a_sustained_step_is_not_back_to_normal() -> None:
    """A step that lasts: the alert names a level shift and closes as 'settled at a new level'."""
    values = [50.0 + 0.3 * math.sin(i / 7) + (6.0 if i >= 1500 else 0.0) for i in range(2500)]
    st = SeriesState("site1", "pump7", "temp")
    alerts = [o.alert for i, v in enumerate(values)
              if (o := st.step(Reading("site1", "pump7", "temp", T0 + timedelta(minutes=i), v))).alert]
    opened = [a for a in alerts if a.kind == "open"]
    closed = [a for a in alerts if a.kind == "close"]
    assert opened and opened[0].details["check"] in ("level shift", "sudden jump")
    assert closed and "settled at a new level" in closed[0].title and "back to normal" not in closed[0].title
