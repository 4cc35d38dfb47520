"""Level shifts: the mean of the latest values against the median of the values before them."""

from __future__ import annotations

from detectors.ring import Ring, SortedRing
from detectors.scaled import SelfScaled


class LevelShiftDetector(SelfScaled):
    """Level shifts: ``|mean of the latest k values - median of the window values before|``.

    Scaled like :class:`detectors.point.PointDetector` by its own past values, which join
    the reference once their ``k`` values no longer overlap the present.

    Parameters
    ----------
    feature
        Key of the value in the input dicts; dicts without it score 0 and are not learnt.
    k
        Latest values (the current one included) averaged into the current level.
    window
        Values before those whose median is the previous level.
    level, q, max_level, ref_window, min_samples
        As for :class:`detectors.point.PointDetector`.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(2)
    >>> det = LevelShiftDetector()
    >>> for i in range(500):
    ...     det.learn_one({"value": 10 + rng.gauss(0, 1)})
    >>> for i in range(3):  # the level moves by 6 sigma
    ...     det.learn_one({"value": 16 + rng.gauss(0, 1)})
    >>> det.score_one({"value": 16.0}) > 0.5
    True
    """

    def __init__(self, *, feature: str = "value", k: int = 4, window: int = 12, level: float = 2.8,
                 q: float = 0.9, max_level: float = 1.3, ref_window: int = 1500, min_samples: int = 50) -> None:
        if k < 1 or window < 1:
            raise ValueError(f"LevelShiftDetector: k = {k!r} and window = {window!r} must be >= 1")
        super().__init__(feature=feature, lag=k, level=level, q=q, max_level=max_level, ref_window=ref_window,
                         min_samples=min_samples)
        self.k = k
        self.window = window
        self._lag = Ring(k - 1) if k > 1 else None  # the latest k - 1 values
        self._old = SortedRing(window)  # the window values before them

    def statistic(self, v: float) -> float | None:
        """The level difference for a current value ``v`` (None while too few values are known)."""
        if len(self._old) < self.window:
            return None
        total = v if self._lag is None else v + float(self._lag.last(self.k - 1).sum())
        return abs(total / self.k - self._old.median)

    def update(self, v: float) -> None:
        old = v if self._lag is None else self._lag.append(v)
        if old is not None:
            self._old.append(old)
