"""Noise bursts: the mean absolute step over the latest values against its own past."""

from __future__ import annotations

from detectors.ring import Ring
from detectors.scaled import SelfScaled


class SpreadDetector(SelfScaled):
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
        super().__init__(feature=feature, lag=window, level=level, q=q, max_level=max_level,
                         ref_window=ref_window, min_samples=min_samples)
        self.window = window
        self._prev: float | None = None
        self._steps = Ring(window - 1) if window > 1 else None  # the latest window - 1 steps

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

    def update(self, v: float) -> None:
        if self._prev is not None and self._steps is not None:
            self._steps.append(abs(v - self._prev))
        self._prev = v
