"""An alert threshold from a false-alert budget: the score normal windows pass with probability ``p``.

A quantile threshold lets a fixed share of readings through, so a stream's false alerts grow
with its reading rate. Here the caller sets the share from an operator's budget (``p =
false alerts per week / windows per week``), which is usually far beyond what an empirical
quantile of the recent scores can resolve; the far tail is extrapolated by peaks over
threshold (SPOT, Siffer et al., KDD 2017): the scores above the ``1 - tail`` quantile ``u``
are fitted with a generalised Pareto distribution (method of moments), and the threshold is
``u + sigma / xi * ((p n / k) ** -xi - 1)`` for ``k`` peaks among ``n`` scores.

>>> import random
>>> rng = random.Random(3)
>>> th = TailThreshold(p=1e-4, warmup=50, min_threshold=0.0)
>>> for _ in range(2000):
...     th.learn_one(rng.expovariate(20.0))  # mean 0.05: P(X > t) = exp(-20 t)
>>> 0.35 < th.threshold < 0.6  # exact: ln(1e4) / 20 = 0.46
True
>>> th.warm, TailThreshold(p=1e-4, warmup=50).threshold
(True, 0.5)
"""

from __future__ import annotations

import math

import numpy as np

from detectors.spot import gpd_level, gpd_moments


class TailThreshold:
    """The score exceeded with probability ``p`` by the last ``capacity`` normal scores.

    Parameters
    ----------
    p
        Target probability of a normal score at or above the threshold, in (0, 1).
    warmup
        Scores learnt before :attr:`warm` (no alerts before).
    min_threshold
        Floor of the threshold.
    capacity
        Recent scores kept (a ring of float32).
    tail
        Share of the scores above the peaks level ``u``.
    refit_every
        Scores between two fits (the threshold is cached in between).
    """

    def __init__(self, *, p: float, warmup: int = 20, min_threshold: float = 0.5, capacity: int = 2000,
                 tail: float = 0.1, refit_every: int = 25) -> None:
        if not 0.0 < p < 1.0:
            raise ValueError(f"TailThreshold: p = {p!r} must be in (0, 1)")
        if warmup < 0 or capacity < 10 or refit_every < 1 or not 0.0 < tail < 1.0:
            raise ValueError(f"TailThreshold: warmup = {warmup!r} (>= 0), capacity = {capacity!r} (>= 10), "
                             f"tail = {tail!r} (in (0, 1)), refit_every = {refit_every!r} (>= 1)")
        self.p = p
        self.warmup = warmup
        self.min_threshold = min_threshold
        self.capacity = capacity
        self.tail = tail
        self.refit_every = refit_every
        self.n = 0
        self._buf = np.zeros(0, dtype=np.float32)
        self._pos = 0
        self._value = min_threshold

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_buf"] = self._buf.copy()
        return state

    def learn_one(self, score: float) -> None:
        """Learn one normal score; non-finite scores are ignored."""
        if not math.isfinite(score):
            return
        if len(self._buf) < self.capacity:
            self._buf = np.append(self._buf, np.float32(score))
        else:
            self._buf[self._pos] = score
            self._pos = (self._pos + 1) % self.capacity
        self.n += 1
        if self.n % self.refit_every == 0 or self.n == self.warmup:
            self._value = max(self.min_threshold, self.fit())

    def reset(self, *, warmup: int | None = None) -> None:
        """Forget the scores learnt so far and warm up again."""
        if warmup is not None:
            self.warmup = warmup
        self.n, self._pos, self._buf, self._value = 0, 0, np.zeros(0, dtype=np.float32), self.min_threshold

    def fit(self) -> float:
        """The tail estimate of the score exceeded with probability ``p`` (-inf without scores)."""
        x = np.sort(self._buf.astype(np.float64))
        n = len(x)
        if n == 0:
            return -math.inf
        if self.p * n >= 10:  # the empirical quantile resolves it
            return float(x[min(n - 1, int(math.floor((1.0 - self.p) * n)))])
        k = max(5, int(self.tail * n))
        if k >= n:
            return float(x[-1])
        u = float(x[n - k - 1])
        peaks = x[n - k:] - u
        m, v = float(peaks.mean()), float(peaks.var())
        if m <= 0:
            return u
        if v <= 0:
            return float(x[-1])
        xi, sigma = gpd_moments(m, v, xi_max=0.0)  # at most an exponential tail: few peaks overfit heavy ones
        return gpd_level(u, xi, sigma, self.p * n / k)

    @property
    def warm(self) -> bool:
        return self.n >= self.warmup

    @property
    def threshold(self) -> float:
        return self._value

    def __repr__(self) -> str:
        return f"TailThreshold(p={self.p:.3g}, n={self.n}, threshold={self.threshold:.4g})"
