"""Contract tests run over every sensor detector, plus streaming statistics vs numpy."""

from __future__ import annotations

import copy
import math
import pickle
import random
from collections.abc import Callable

import numpy as np
import pytest

from detectors.base import AnomalyDetector
from detectors.hst import HSTDetector
from detectors.level import LevelShiftDetector
from detectors.point import PointDetector
from detectors.ring import Ring, SortedRing
from detectors.sensor import SensorDetector, SensorDetectorParams
from detectors.shape import ShapeNovelty
from detectors.spread import SpreadDetector
from detectors.stuck import StuckDetector
from detectors.zscore import RollingWindow, RollingZScore

FACTORIES: dict[str, Callable[[], AnomalyDetector]] = {
    "zscore": lambda: RollingZScore(window=50),
    "hst": lambda: HSTDetector(window_size=50, seed=7),
    "shape": lambda: ShapeNovelty(memory=200, ref_window=100),
    "point": lambda: PointDetector(ref_window=100),
    "level": lambda: LevelShiftDetector(ref_window=100),
    "spread": lambda: SpreadDetector(ref_window=100),
    "stuck": lambda: StuckDetector(),
    "sensor": lambda: SensorDetector(SensorDetectorParams(memory=200, ref_window=100)),
    "sensor+hst": lambda: SensorDetector(SensorDetectorParams(memory=200, ref_window=100, hst_level=1.5,
                                                              hst_window=50)),
}


def stream(n: int = 400, seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        v = 10 + math.sin(i / 15) + rng.gauss(0, 0.2)
        if i in (150, 300):
            v += 20  # spikes
        if 200 <= i < 220:
            v = 10.0  # a stuck stretch
        out.append({"value": v})
    return out


def run(det: AnomalyDetector, xs: list[dict[str, float]]) -> list[float]:
    scores = []
    for x in xs:
        scores.append(det.score_one(x))
        det.learn_one(x)
    return scores


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Callable[[], AnomalyDetector]:
    return FACTORIES[request.param]


def test_follows_protocol(factory: Callable[[], AnomalyDetector]) -> None:
    assert isinstance(factory(), AnomalyDetector)


def test_scores_finite_and_in_unit_interval(factory: Callable[[], AnomalyDetector]) -> None:
    xs = stream() + [{"value": 1e12}, {"value": -1e12}, {"value": 0.0}] + [{"value": 5.0}] * 50
    scores = run(factory(), xs)
    assert all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in scores)


def test_spike_scores_above_typical(factory: Callable[[], AnomalyDetector], request: pytest.FixtureRequest) -> None:
    scores = run(factory(), stream())
    typical = float(np.median(scores[100:]))
    if request.node.callspec.params["factory"] == "stuck":
        assert scores[215] > typical  # the stuck detector's anomaly is the stuck stretch
    else:
        assert scores[300] > typical


@pytest.mark.parametrize("copier", [lambda d: pickle.loads(pickle.dumps(d)), copy.deepcopy])
def test_copy_round_trip_gives_same_next_scores(
    factory: Callable[[], AnomalyDetector], copier: Callable[[AnomalyDetector], AnomalyDetector]
) -> None:
    xs = stream()
    det = factory()
    run(det, xs[:250])
    clone = copier(det)
    assert run(clone, xs[250:]) == run(det, xs[250:])


def test_same_seed_same_scores(factory: Callable[[], AnomalyDetector]) -> None:
    xs = stream(seed=3)
    assert run(factory(), xs) == run(factory(), xs)


def test_input_not_mutated(factory: Callable[[], AnomalyDetector]) -> None:
    det = factory()
    for x in stream(200):
        before = dict(x)
        det.score_one(x)
        det.learn_one(x)
        assert x == before


def test_score_one_does_not_learn(factory: Callable[[], AnomalyDetector]) -> None:
    xs = stream()
    a, b = factory(), factory()
    run(a, xs[:200])
    run(b, xs[:200])
    for x in xs[200:220]:
        a.score_one(x)
        a.score_one({"value": x["value"] + 1.0})
    assert run(a, xs[220:]) == run(b, xs[220:])


def test_missing_and_new_keys_tolerated(factory: Callable[[], AnomalyDetector]) -> None:
    det = factory()
    run(det, stream(150))
    for x in ({}, {"other": 1.0}, {"value": 10.0, "extra": 3.0}, {"value": math.nan}):
        s = det.score_one(x)
        det.learn_one(x)
        assert math.isfinite(s) and 0.0 <= s <= 1.0


# -- streaming statistics vs a numpy batch oracle ---------------------------------------


def test_rolling_window_quantiles_match_numpy() -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(size=500)
    win = RollingWindow(64)
    for i, v in enumerate(data):
        win.append(float(v))
        ref = data[max(0, i - 63) : i + 1]
        for q in (0.1, 0.25, 0.5, 0.9):
            assert win.quantile(q) == pytest.approx(np.quantile(ref, q), abs=1e-12)


def test_rolling_zscore_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(5, 2, size=300)
    det = RollingZScore(window=100)
    for v in data:
        det.learn_one({"value": float(v)})
    ref = data[-100:]
    med = np.median(ref)
    scale = (np.quantile(ref, 0.75) - np.quantile(ref, 0.25)) / 1.349
    assert det.zscore({"value": 12.0}) == pytest.approx(abs(12.0 - med) / scale)


def test_sensor_nearest_neighbour_matches_brute_force() -> None:
    p = SensorDetectorParams(window=8, paa=2, memory=50, min_memory=5)
    det = SensorDetector(p)
    rng = np.random.default_rng(3)
    data = rng.normal(size=120)
    for v in data:
        det.learn_one({"value": float(v)})
    new = 0.7
    last = np.append(data[-(p.window - 1) :], new).reshape(4, 2).mean(axis=1)
    # shapes that no longer overlap the present: those ending before the last window readings
    ends = range(p.window - 1, len(data) - p.window)
    shapes = [data[e - p.window + 1 : e + 1].reshape(4, 2).mean(axis=1) for e in ends][-p.memory :]
    brute = min(np.sqrt(np.mean((s - last) ** 2)) for s in shapes)
    _, dist = det.parts["novelty"].distance(new)
    assert dist == pytest.approx(brute, rel=1e-3, abs=1e-5)


def test_sensor_local_statistics_match_numpy() -> None:
    p = SensorDetectorParams()
    det = SensorDetector(p)
    rng = np.random.default_rng(4)
    data = np.cumsum(rng.normal(size=300))
    for v in data:
        det.learn_one({"value": float(v)})
    new = 1.5
    stats = {name: det.parts[name].statistic(new) for name in ("point", "level", "spread")}
    assert stats["point"] == pytest.approx(abs(new - np.median(data[-p.point_window :])))
    recent = np.append(data[-(p.level_k - 1) :], new)
    before = data[-(p.level_k - 1) - p.level_window : -(p.level_k - 1)]
    assert stats["level"] == pytest.approx(abs(recent.mean() - np.median(before)))
    steps = np.abs(np.diff(np.append(data[-p.spread_window :], new)))
    assert stats["spread"] == pytest.approx(steps.mean())


def test_sensor_point_component_is_relative_to_the_series_own_spikes() -> None:
    # a series that spikes by +5 every 97 readings: its usual spike is no news, +25 is
    rng = random.Random(8)
    det = SensorDetector()
    for i in range(2000):
        x = {"value": 10 + rng.gauss(0, 0.1) + (5.0 if i % 97 == 0 else 0.0)}
        det.score_one(x)
        det.learn_one(x)
    alert = det.params.alert_ratio
    assert det.components({"value": 15.0})["point"] < alert
    assert det.components({"value": 35.0})["point"] > alert
    assert det.score_one({"value": 35.0}) > 0.5


def test_rings_match_numpy_and_pickle_only_their_values() -> None:
    rng = np.random.default_rng(5)
    data = rng.normal(size=300)
    ring, srt = Ring(64), SortedRing(64, np.float32)
    for i, v in enumerate(data):
        ring.append(float(v))
        srt.append(float(v))
        ref = data[max(0, i - 63) : i + 1]
        assert ring.last(5).tolist() == ref[-5:].tolist()
        assert srt.quantile(0.9) == pytest.approx(np.quantile(ref.astype(np.float32), 0.9), rel=1e-6)
    clone = pickle.loads(pickle.dumps(srt))
    assert clone.sorted == srt.sorted and clone.values().tolist() == srt.values().tolist()
    assert len(pickle.dumps(srt)) < 64 * 4 + 400


def test_shape_memory_is_rebuilt_exactly_on_load() -> None:
    det = ShapeNovelty(window=8, paa=2, memory=50, min_memory=5, ref_window=100)
    for x in stream(300):
        det.learn_one(x)
    clone = pickle.loads(pickle.dumps(det))
    clone.distance(1.0)  # the derived state is rebuilt on the first score after a load
    n = det._filled
    assert clone._filled == n == 50
    assert np.array_equal(clone._mem[:, :n], det._mem[:, :n])
    assert np.array_equal(clone._half_norms[:n], det._half_norms[:n])
    assert np.array_equal(clone._recent, det._recent)
    assert np.array_equal(clone._recent_half_norms, det._recent_half_norms)


def test_sensor_state_of_a_long_series_pickles_small() -> None:
    det = SensorDetector()
    rng = random.Random(9)
    for i in range(12000):
        det.learn_one({"value": 10 + math.sin(i / 40) + rng.gauss(0, 0.3)})
    assert len(pickle.dumps(det)) < 64_000  # about 56 KB at the defaults


@pytest.mark.parametrize("paa", [1, 2, 4])
@pytest.mark.parametrize("n", [0, 5, 15, 40, 70, 300])
def test_shape_state_is_rebuilt_exactly_at_any_fill(paa: int, n: int) -> None:
    # before the first shape, with shapes not yet remembered, memory filling, memory wrapped
    det = ShapeNovelty(window=8, paa=paa, memory=30, min_memory=5, ref_window=100)
    xs = stream(n + 60, seed=paa)
    run(det, xs[:n])
    clone = pickle.loads(pickle.dumps(det))
    assert run(clone, xs[n:]) == run(det, xs[n:])
    m = det._filled
    assert clone._filled == m
    assert np.array_equal(clone._mem[:, :m], det._mem[:, :m])
    assert np.array_equal(clone._half_norms[:m], det._half_norms[:m])
    assert np.array_equal(clone._recent, det._recent)


@pytest.mark.parametrize("size", [1, 3, 16, 17, 40])
def test_rings_round_trip_at_any_fill(size: int) -> None:
    data = np.random.default_rng(size).normal(size=3 * size + 5)
    for n in range(len(data)):
        ring, srt = Ring(size), SortedRing(size, np.float32)
        for v in data[:n]:
            ring.append(float(v))
            srt.append(float(v))
        ring2, srt2 = pickle.loads(pickle.dumps(ring)), pickle.loads(pickle.dumps(srt))
        for v in data[n:]:
            assert ring2.append(float(v)) == ring.append(float(v))
            assert srt2.append(float(v)) == srt.append(float(v))
            assert ring2.last(size).tolist() == ring.last(size).tolist() == data[: n + 1][-size:].tolist()
            assert srt2.sorted == srt.sorted and srt2.values().tolist() == srt.values().tolist()
            break


def test_a_short_series_allocates_little() -> None:
    import tracemalloc

    tracemalloc.start()
    det = SensorDetector()
    for x in stream(60):
        det.score_one(x)
        det.learn_one(x)
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert used < 40_000  # buffers grow with the series (full ones take about 470 KB)
