"""Online threshold calibration: a high quantile of the scores seen so far.

A detector's raw score is turned into an alert decision by comparing it with a threshold
learnt from the same stream, without labels: the ``q`` quantile of the scores seen so far
(River's streaming P² estimator, constant memory), plus a margin, never below a floor.
During warm-up the threshold is not trusted and callers must not alert.
"""

from __future__ import annotations

import math
from collections import deque

from river import stats


class QuantileThreshold:
    """Streaming high-quantile threshold with warm-up, floor and margin.

    Parameters
    ----------
    q
        Quantile of the scores seen so far used as the threshold, in (0, 1).
    warmup
        Number of scores to learn before :attr:`warm` becomes True (no alerts before).
    min_threshold
        Floor of the threshold, so that a quiet stream never alerts on small scores.
    margin
        Added to the quantile (in score units).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> cal = QuantileThreshold(q=0.99, warmup=100, min_threshold=0.2)
    >>> cal.warm
    False
    >>> for _ in range(1000):
    ...     cal.learn_one(rng.random() * 0.3)
    >>> cal.warm
    True
    >>> 0.25 < cal.threshold < 0.31
    True
    >>> 0.95 >= cal.threshold  # a spike scoring 0.95 is above it
    True
    """

    def __init__(
        self, *, q: float = 0.99, warmup: int = 100, min_threshold: float = 0.5, margin: float = 0.0
    ) -> None:
        if not 0.0 < q < 1.0:
            raise ValueError(f"QuantileThreshold: q = {q!r} must be in (0, 1)")
        if warmup < 0:
            raise ValueError(f"QuantileThreshold: warmup = {warmup!r} must be >= 0")
        if not math.isfinite(min_threshold):
            raise ValueError(f"QuantileThreshold: min_threshold = {min_threshold!r} must be finite")
        if not math.isfinite(margin) or margin < 0:
            raise ValueError(f"QuantileThreshold: margin = {margin!r} must be finite and >= 0")
        self.q = q
        self.warmup = warmup
        self.min_threshold = min_threshold
        self.margin = margin
        self.n = 0
        self._quantile = stats.Quantile(q)

    def learn_one(self, score: float) -> None:
        """Learn one score; non-finite scores are ignored."""
        if not math.isfinite(score):
            return
        self._quantile.update(score)
        self.n += 1

    def reset(self, *, warmup: int | None = None) -> None:
        """Forget the scores learnt so far and warm up again (``warmup`` replaces the setting).

        >>> cal = QuantileThreshold(warmup=2)
        >>> for s in (0.1, 0.2, 0.3):
        ...     cal.learn_one(s)
        >>> cal.reset(warmup=5)
        >>> cal.warm, cal.n, cal.warmup, cal.threshold
        (False, 0, 5, 0.5)
        """
        if warmup is not None:
            if warmup < 0:
                raise ValueError(f"QuantileThreshold.reset: warmup = {warmup!r} must be >= 0")
            self.warmup = warmup
        self.n = 0
        self._quantile = stats.Quantile(self.q)

    @property
    def warm(self) -> bool:
        """True once ``warmup`` scores have been learnt (alerts allowed)."""
        return self.n >= self.warmup

    @property
    def threshold(self) -> float:
        """The current threshold: ``max(min_threshold, quantile + margin)``."""
        value = self._quantile.get() if self.n else None
        if value is None or not math.isfinite(value):
            return self.min_threshold
        return max(self.min_threshold, float(value) + self.margin)

    def __repr__(self) -> str:
        return (
            f"QuantileThreshold(q={self.q}, warmup={self.warmup}, min_threshold={self.min_threshold}, "
            f"margin={self.margin}, n={self.n}, threshold={self.threshold:.4g})"
        )


class AnomalyLikelihood:
    """Numenta-style anomaly likelihood of a stream of raw scores, on a log scale in [0, 1].

    The mean of the last ``short_window`` raw scores is compared with the distribution
    (mean and standard deviation) of that short-term mean over the last ``long_window``
    readings. The upper tail probability ``p`` of a normal fit gives the score
    ``log10(p) / -10`` (clipped to [0, 1]): 0.5 means ``p = 1e-5``. This turns raw scores
    of very different scales into comparable surprise levels, so one threshold serves every
    series. ``score_one`` does not change the state; call ``learn_one`` after it.

    Not in the default sensor pipeline: on NAB, dividing the nearest-neighbour distance by
    a quantile of its own history (:class:`detectors.sensor.SensorDetector`) did better
    (about 53 vs 49.5 in the same alerting setup), and a short-term mean dilutes one-reading
    spikes. Kept for raw scores that have no natural scale.

    Parameters
    ----------
    short_window
        Readings averaged into the short-term mean.
    long_window
        Readings over which the short-term mean's distribution is estimated.
    min_samples
        Readings needed before scoring (scores 0 before).
    min_std
        Floor of the long-term standard deviation.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> lik = AnomalyLikelihood(short_window=5, long_window=500)
    >>> for _ in range(600):
    ...     lik.learn_one(rng.random() * 0.2)
    >>> lik.score_one(0.1) < 0.1
    True
    >>> for _ in range(4):
    ...     lik.learn_one(0.9)
    >>> lik.score_one(0.9) > 0.5
    True
    """

    def __init__(
        self, *, short_window: int = 10, long_window: int = 2000, min_samples: int = 100, min_std: float = 0.01
    ) -> None:
        if short_window < 1 or long_window < 2 or long_window < short_window:
            raise ValueError(
                f"AnomalyLikelihood: short_window = {short_window!r}, long_window = {long_window!r}: "
                "need 1 <= short_window <= long_window and long_window >= 2"
            )
        self.short_window = short_window
        self.long_window = long_window
        self.min_samples = min_samples
        self.min_std = min_std
        self._short: deque[float] = deque()
        self._short_sum = 0.0
        self._long: deque[float] = deque()
        self._sum = 0.0
        self._sum2 = 0.0
        self._n_updates = 0

    def _short_mean_with(self, raw: float) -> float:
        total = self._short_sum + raw
        n = len(self._short) + 1
        if len(self._short) == self.short_window:
            total -= self._short[0]
            n -= 1
        return total / n

    def tail_probability(self, raw: float) -> float:
        """Upper-tail probability of the short-term mean including ``raw`` (1 before warm-up)."""
        n = len(self._long)
        if n < max(self.min_samples, 2) or not math.isfinite(raw):
            return 1.0
        mean = self._sum / n
        var = max(self._sum2 / n - mean * mean, 0.0)
        std = max(math.sqrt(var), self.min_std)
        z = (self._short_mean_with(raw) - mean) / std
        return 0.5 * math.erfc(z / math.sqrt(2.0))

    def score_one(self, raw: float) -> float:
        p = self.tail_probability(raw)
        return min(1.0, max(0.0, math.log10(p + 1e-10) / -10.0))

    def learn_one(self, raw: float) -> None:
        if not math.isfinite(raw):
            return
        m = self._short_mean_with(raw)
        if len(self._short) == self.short_window:
            self._short_sum -= self._short.popleft()
        self._short.append(raw)
        self._short_sum += raw
        if len(self._long) == self.long_window:
            old = self._long.popleft()
            self._sum -= old
            self._sum2 -= old * old
        self._long.append(m)
        self._sum += m
        self._sum2 += m * m
        self._n_updates += 1
        if self._n_updates % 10_000 == 0:  # drop accumulated rounding error
            self._short_sum = math.fsum(self._short)
            self._sum = math.fsum(self._long)
            self._sum2 = math.fsum(v * v for v in self._long)
