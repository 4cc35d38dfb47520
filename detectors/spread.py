"""Noise bursts: the mean absolute step over the latest values against its own past."""

from __future__ import annotations

from detectors.point import ratio_to_score, value_of
from detectors.ring import Ring, SelfReference


class SpreadDetector:
    """Noise bursts: the mean of the latest ``window`` absolute steps ``|v_t - v_(t-1)|``.

    Scaled like :class:`detectors.point.PointDetector` by its own past values, which join
    the reference once their steps no longer overlap the present.

    Parameters
    ----------
    feature
        Key of the value in the input dicts; dicts without it score 0 and are not learnt.
    window
        Latest absolute steps averaged (the current one included).
    level, q, max_level, ref_window, min_samples
        As for :class:`detectors.point.PointDetector`.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> det = SpreadDetector()
    >>> for i in range(500):
    ...     det.learn_one({"value": 10 + rng.gauss(0, 1)})
    >>> for i in range(9):  # the noise grows fivefold
    ...     det.learn_one({"value": 10 + rng.gauss(0, 5)})
    >>> det.score_one({"value": 10 + rng.gauss(0, 5)}) > 0.5
    True
    """

    def __init__(self, *, feature: str = "value", window: int = 10, level: float = 2.0, q: float = 0.9,
                 max_level: float = 1.3, ref_window: int = 1500, min_samples: int = 50) -> None:
        if window < 1:
            raise ValueError(f"SpreadDetector: window = {window!r} must be >= 1")
        self.feature = feature
        self.window = window
        self.level = level
        self.q = q
        self.max_level = max_level
        self.ref_window = ref_window
        self.min_samples = min_samples
        self._prev: float | None = None
        self._steps = Ring(window - 1) if window > 1 else None  # the latest window - 1 steps
        self._ref = SelfReference(lag=window, size=ref_window, q=q, level=level, max_level=max_level,
                                  min_samples=min_samples)
        self._cache: tuple[float, float | None] | None = None  # (value, statistic) between score and learn

    def statistic(self, v: float) -> float | None:
        """The mean absolute step with ``v`` as the newest value (None while too early)."""
        if self._prev is None:
            return None
        step = abs(v - self._prev)
        if self._steps is None:
            return step
        if len(self._steps) < self.window - 1:
            return None
        return (float(self._steps.last(self.window - 1).sum()) + step) / self.window

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
        if self._prev is not None and self._steps is not None:
            self._steps.append(abs(v - self._prev))
        self._prev = v
