"""Robust rolling z-score: distance to the rolling median in robust standard deviations."""

from __future__ import annotations

import bisect
import math
from collections import deque

from detectors.ring import sorted_quantile

IQR_TO_SIGMA = 1.349  # IQR of a standard normal distribution


class RollingWindow:
    """A fixed-size window kept both in arrival order and sorted (O(log n) quantiles).

    >>> w = RollingWindow(3)
    >>> for v in [5.0, 1.0, 3.0, 9.0]:
    ...     w.append(v)
    >>> w.sorted, w.median
    ([1.0, 3.0, 9.0], 3.0)
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"RollingWindow: size = {size!r} must be >= 1")
        self.size = size
        self.items: deque[float] = deque()
        self.sorted: list[float] = []

    def __len__(self) -> int:
        return len(self.items)

    def append(self, value: float) -> None:
        if len(self.items) == self.size:
            old = self.items.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
        self.items.append(value)
        bisect.insort(self.sorted, value)

    def quantile(self, q: float) -> float:
        """Nearest-rank-by-interpolation quantile (numpy's default 'linear' method)."""
        return sorted_quantile(self.sorted, q)

    @property
    def median(self) -> float:
        return self.quantile(0.5)

    def robust_scale(self) -> float:
        """IQR / 1.349: a robust standard deviation (equals sigma for normal data)."""
        return (self.quantile(0.75) - self.quantile(0.25)) / IQR_TO_SIGMA


def squash(z: float, z_half: float) -> float:
    """Map a non-negative z to [0, 1): ``z / (z + z_half)`` (0.5 at ``z_half``).

    >>> squash(3.0, 3.0)
    0.5
    """
    if not z > 0.0:
        return 0.0
    if math.isinf(z):
        return 1.0
    return z / (z + z_half)


class RollingZScore:
    """Robust z-score of one feature against its last ``window`` values.

    The centre is the rolling median and the scale the rolling IQR / 1.349 (a robust
    standard deviation like the MAD, but kept in O(log n) per reading from one sorted
    window). The z-score is mapped to [0, 1) by ``z / (z + z_half)``.

    Parameters
    ----------
    feature
        Key of the value in the input dict; a dict without it scores 0 and is not learnt.
    window
        Number of past values kept.
    min_samples
        Values needed before scoring (scores 0 before).
    z_half
        The z-score that maps to 0.5.
    min_scale
        Floor of the scale, relative to ``1 + |median|``, so that flat signals do not
        divide by zero.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> det = RollingZScore(window=100)
    >>> for _ in range(200):
    ...     det.learn_one({"value": 10 + rng.gauss(0, 1)})
    >>> det.score_one({"value": 10.5}) < 0.3
    True
    >>> det.score_one({"value": 25.0}) > 0.8
    True
    """

    def __init__(
        self,
        *,
        feature: str = "value",
        window: int = 288,
        min_samples: int = 10,
        z_half: float = 3.0,
        min_scale: float = 1e-6,
    ) -> None:
        if window < 2:
            raise ValueError(f"RollingZScore: window = {window!r} must be >= 2")
        if z_half <= 0:
            raise ValueError(f"RollingZScore: z_half = {z_half!r} must be > 0")
        self.feature = feature
        self.window = window
        self.min_samples = min_samples
        self.z_half = z_half
        self.min_scale = min_scale
        self._win = RollingWindow(window)

    def zscore(self, x: dict[str, float]) -> float:
        """The robust z-score of ``x[feature]`` (0 when missing or not enough history)."""
        v = x.get(self.feature)
        if v is None or not math.isfinite(v) or len(self._win) < max(self.min_samples, 2):
            return 0.0
        med = self._win.median
        scale = max(self._win.robust_scale(), self.min_scale * (1.0 + abs(med)))
        return abs(v - med) / scale

    def learn_one(self, x: dict[str, float]) -> None:
        v = x.get(self.feature)
        if v is not None and math.isfinite(v):
            self._win.append(float(v))

    def score_one(self, x: dict[str, float]) -> float:
        return squash(self.zscore(x), self.z_half)
