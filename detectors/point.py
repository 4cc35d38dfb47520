"""Robust point check: the distance of a value from the median of the values just before it."""

from __future__ import annotations

from detectors.ring import SortedRing
from detectors.scaled import SelfScaled, ratio_to_score, value_of

__all__ = ["PointDetector", "ratio_to_score", "value_of"]


class PointDetector(SelfScaled):
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
        super().__init__(feature=feature, lag=1, level=level, q=q, max_level=max_level, ref_window=ref_window,
                         min_samples=min_samples)
        self.window = window
        self._recent = SortedRing(window)

    def statistic(self, v: float) -> float | None:
        """``|v - median of the last window values|`` (None while fewer are known)."""
        if len(self._recent) < self.window:
            return None
        return abs(v - self._recent.median)

    def update(self, v: float) -> None:
        self._recent.append(v)
