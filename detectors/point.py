"""Robust point check: the distance of a value from the median of the values just before it."""

from __future__ import annotations

import math

from detectors.ring import SelfReference, SortedRing


def ratio_to_score(ratio: float) -> float:
    """Map a ratio to its alert level (1 = alert) to [0, 1): ``r / (r + 1)``, 0.5 at the level.

    >>> ratio_to_score(1.0), ratio_to_score(0.0)
    (0.5, 0.0)
    """
    if not ratio > 0.0:
        return 0.0
    return 1.0 if math.isinf(ratio) else ratio / (ratio + 1.0)


def value_of(x: dict[str, float], feature: str) -> float | None:
    """``x[feature]`` as a float, or None when it is missing or not finite."""
    v = x.get(feature)
    if v is None or not math.isfinite(v):
        return None
    return float(v)


class PointDetector:
    """Spikes: ``|value - median of the last window values|`` against its own past.

    The statistic is divided by its alert level, ``max(level x its q-quantile, max_level x
    its maximum)`` over past readings (:class:`detectors.ring.SelfReference`), so a series
    that spikes every few hundred readings does not alert on its usual spikes.

    Parameters
    ----------
    feature
        Key of the value in the input dicts; dicts without it score 0 and are not learnt.
    window
        Recent values whose median the value is compared with.
    level, q, max_level
        The alert level: ``max(level x q-quantile, max_level x maximum)`` of past values of
        the statistic (``level = 0`` turns the detector off).
    ref_window
        Past values of the statistic kept.
    min_samples
        Past values needed before scoring.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> det = PointDetector()
    >>> for i in range(500):
    ...     det.learn_one({"value": 10 + rng.gauss(0, 1)})
    >>> det.score_one({"value": 11.0}) < 0.5 < det.score_one({"value": 25.0})
    True
    """

    def __init__(self, *, feature: str = "value", window: int = 16, level: float = 2.6, q: float = 0.9,
                 max_level: float = 1.3, ref_window: int = 1500, min_samples: int = 50) -> None:
        if window < 1:
            raise ValueError(f"PointDetector: window = {window!r} must be >= 1")
        self.feature = feature
        self.window = window
        self.level = level
        self.q = q
        self.max_level = max_level
        self.ref_window = ref_window
        self.min_samples = min_samples
        self._recent = SortedRing(window)
        self._ref = SelfReference(lag=1, size=ref_window, q=q, level=level, max_level=max_level,
                                  min_samples=min_samples)
        self._cache: tuple[float, float | None] | None = None  # (value, statistic) between score and learn

    def statistic(self, v: float) -> float | None:
        """``|v - median of the last window values|`` (None while fewer are known)."""
        if len(self._recent) < self.window:
            return None
        return abs(v - self._recent.median)

    def ratio(self, x: dict[str, float]) -> float:
        """The statistic over its alert level (1 = alert; 0 when unknown)."""
        v = value_of(x, self.feature)
        return 0.0 if v is None else self.ratio_value(v)

    def ratio_value(self, v: float) -> float:
        """:meth:`ratio` for a finite value ``v``."""
        if self._cache is not None and self._cache[0] == v:
            stat = self._cache[1]
        else:
            stat = self.statistic(v)
            self._cache = (v, stat)
        return 0.0 if stat is None else self._ref.ratio(stat, 1e-9 * (1.0 + abs(v)))

    def score_one(self, x: dict[str, float]) -> float:
        return ratio_to_score(self.ratio(x))

    def learn_one(self, x: dict[str, float]) -> None:
        v = value_of(x, self.feature)
        if v is not None:
            self.learn_value(v)

    def learn_value(self, v: float) -> None:
        """:meth:`learn_one` for a finite value ``v``."""
        stat = self._cache[1] if self._cache is not None and self._cache[0] == v else self.statistic(v)
        self._cache = None
        if stat is not None:
            self._ref.learn(stat)
        self._recent.append(v)
