"""River Half-Space Trees over a few shape features of one series, learnt on a subsample."""

from __future__ import annotations

import math

from river import anomaly


class HSTDetector:
    """Half-Space Trees over (value, first difference, deviation from an EW mean).

    An optional component of :class:`detectors.sensor.SensorDetector` (``[series] hst_level``,
    off by default), scaled by its own past scores and only counted from ``hst_min_score``
    up: alone it separates NAB's anomalies far less well than the other components (River's
    out-of-the-box HST scores 4.97 there), and it costs about 40 us per reading.

    Each feature is min-max scaled with running extremes (clipped to [0, 1]), as River's
    trees assume inputs in the unit cube. Learning every ``learn_every``-th reading keeps the
    cost down (scoring is still done on every reading).

    Parameters
    ----------
    feature
        Key of the value in the input dict; dicts without it score 0 and are not learnt.
    n_trees, height, window_size
        Passed to :class:`river.anomaly.HalfSpaceTrees`.
    learn_every
        Learn one reading in this many.
    alpha
        Speed of the exponential mean behind the deviation feature.
    seed
        Random seed of the trees.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> det = HSTDetector(seed=1)
    >>> for i in range(1200):
    ...     x = {"value": 10 + math.sin(i / 10) + rng.gauss(0, 0.1)}
    ...     det.learn_one(x)
    >>> normal, spike = det.score_one({"value": 10.2}), det.score_one({"value": 60.0})
    >>> spike > normal + 0.05
    True
    """

    def __init__(
        self,
        *,
        feature: str = "value",
        n_trees: int = 10,
        height: int = 3,
        window_size: int = 250,
        learn_every: int = 2,
        alpha: float = 0.05,
        seed: int | None = 42,
    ) -> None:
        if learn_every < 1:
            raise ValueError(f"HSTDetector: learn_every = {learn_every!r} must be >= 1")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"HSTDetector: alpha = {alpha!r} must be in (0, 1]")
        self.feature = feature
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.learn_every = learn_every
        self.alpha = alpha
        self.seed = seed
        self._hst = anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self._lo: dict[str, float] = {}
        self._hi: dict[str, float] = {}
        self._prev: float | None = None
        self._ew: float | None = None
        self._n = 0

    def _raw_features(self, v: float) -> dict[str, float]:
        prev = v if self._prev is None else self._prev
        ew = v if self._ew is None else self._ew
        return {"value": v, "diff": v - prev, "dev": v - ew}

    def _scaled(self, raw: dict[str, float]) -> dict[str, float]:
        out = {}
        for k, v in raw.items():
            lo, hi = self._lo.get(k, v), self._hi.get(k, v)
            out[k] = 0.5 if hi <= lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))
        return out

    def score_one(self, x: dict[str, float]) -> float:
        v = x.get(self.feature)
        if v is None or not math.isfinite(v) or self._n < self.window_size:
            return 0.0
        score = float(self._hst.score_one(self._scaled(self._raw_features(float(v)))))
        return min(1.0, max(0.0, score)) if math.isfinite(score) else 0.0

    def learn_one(self, x: dict[str, float]) -> None:
        v = x.get(self.feature)
        if v is None or not math.isfinite(v):
            return
        v = float(v)
        raw = self._raw_features(v)
        for k, r in raw.items():
            self._lo[k] = min(self._lo.get(k, r), r)
            self._hi[k] = max(self._hi.get(k, r), r)
        if self._n % self.learn_every == 0:
            self._hst.learn_one(self._scaled(raw))
        self._n += 1
        self._prev = v
        self._ew = v if self._ew is None else self._ew + self.alpha * (v - self._ew)
