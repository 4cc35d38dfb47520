"""QuantileThreshold and AnomalyLikelihood: semantics, pickling, numpy oracles."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

from detectors.calibration import AnomalyLikelihood, QuantileThreshold


def test_not_warm_before_warmup_then_warm() -> None:
    cal = QuantileThreshold(warmup=5)
    for i in range(4):
        cal.learn_one(0.1 * i)
        assert not cal.warm
    cal.learn_one(0.9)
    assert cal.warm


def test_threshold_floor_before_any_data_and_for_small_scores() -> None:
    cal = QuantileThreshold(min_threshold=0.6)
    assert cal.threshold == 0.6
    for _ in range(500):
        cal.learn_one(0.01)
    assert cal.threshold == 0.6


@pytest.mark.parametrize("q", [0.9, 0.99])
def test_quantile_close_to_numpy(q: float) -> None:
    rng = np.random.default_rng(0)
    data = rng.beta(2, 8, size=20_000)
    cal = QuantileThreshold(q=q, min_threshold=0.0)
    for v in data:
        cal.learn_one(float(v))
    assert cal.threshold == pytest.approx(np.quantile(data, q), rel=0.05)


def test_margin_is_added() -> None:
    a, b = QuantileThreshold(min_threshold=0.0), QuantileThreshold(min_threshold=0.0, margin=0.1)
    for v in np.linspace(0, 1, 1000):
        a.learn_one(float(v))
        b.learn_one(float(v))
    assert b.threshold == pytest.approx(a.threshold + 0.1)


def test_non_finite_scores_ignored() -> None:
    cal = QuantileThreshold(warmup=1)
    cal.learn_one(math.nan)
    cal.learn_one(math.inf)
    assert not cal.warm and cal.n == 0


@pytest.mark.parametrize("copier", [lambda c: pickle.loads(pickle.dumps(c)), copy.deepcopy])
def test_round_trip(copier) -> None:  # type: ignore[no-untyped-def]
    cal = QuantileThreshold(warmup=10)
    for v in np.linspace(0, 1, 300):
        cal.learn_one(float(v))
    clone = copier(cal)
    for v in (0.2, 0.95, 0.4):
        cal.learn_one(v)
        clone.learn_one(v)
    assert (clone.threshold, clone.warm, clone.n) == (cal.threshold, cal.warm, cal.n)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"q": 1.0}, "q = 1.0"), ({"warmup": -1}, "warmup = -1"), ({"margin": -0.1}, "margin = -0.1")],
)
def test_bad_arguments_named(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        QuantileThreshold(**kwargs)


def test_likelihood_tail_probability_matches_batch() -> None:
    rng = np.random.default_rng(4)
    raw = rng.random(400) * 0.3
    lik = AnomalyLikelihood(short_window=5, long_window=200, min_samples=10, min_std=1e-6)
    for r in raw:
        lik.learn_one(float(r))
    padded = np.concatenate([raw, [0.8]])
    # short means as the stream saw them (growing window at the start), then the last 200
    means = np.array([padded[max(0, i - 4) : i + 1].mean() for i in range(len(padded))])
    ref = means[:-1][-200:]
    z = (means[-1] - ref.mean()) / ref.std()
    expected = 0.5 * math.erfc(z / math.sqrt(2))
    assert lik.tail_probability(0.8) == pytest.approx(expected, rel=1e-6)
    assert 0.0 <= lik.score_one(0.8) <= 1.0


def test_reset_forgets_and_warms_up_again() -> None:
    cal = QuantileThreshold(warmup=10, min_threshold=0.0)
    for v in np.linspace(0, 1, 200):
        cal.learn_one(float(v))
    cal.reset(warmup=3)
    assert (cal.warm, cal.n, cal.warmup) == (False, 0, 3)
    for _ in range(3):
        cal.learn_one(0.1)
    assert cal.warm and cal.threshold == pytest.approx(0.1)
