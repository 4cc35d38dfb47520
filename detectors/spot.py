"""Alert thresholds from a false-alert budget: peaks over threshold on the tail of the scores.

A budget in operator terms ("one false alert per week") becomes a probability per reading
once the stream's reading rate is known (estimated here from the readings' own timestamps).
That probability is far out in the tail (1 Hz and one a week: 1.7e-6), where a quantile of
the scores seen so far cannot reach. Following SPOT (Siffer et al., KDD 2017), the scores
above a high initial quantile ``u`` are modelled by a generalized Pareto distribution
(fitted by the method of moments) and the threshold is extrapolated to the target
probability. Scores are first mapped to an unbounded scale, ``z = -log(1 - score)`` (for the
sensor scores ``r / (r + 1)`` this is ``log(1 + r)``), and exceedances of ``u`` are
declustered: a run of exceedances less than ``gap`` readings apart is one episode and only
its peak is kept, so a correlated burst counts once, as an alert would.

Until ``min_peaks`` episodes are seen (a cold start) the tail is not trusted and the
threshold is ``COLD_FACTOR`` times the highest score seen so far on the tail scale (never
below the floor, at most ``cold_cap``): a stream a few minutes old does not page on its first
noise. A new highest score still comes about once in ``n`` readings, so a cold start raises
about ``log(n2 / n1)`` false alerts per sensor between readings ``n1`` and ``n2``.
"""

from __future__ import annotations

import math

import numpy as np
from river import stats

WEEK_S = 7 * 86400.0
COLD_FACTOR = 1.0  # a cold start pages beyond the highest score so far (1.25 cost faults in tests/test_series.py)


def gpd_moments(m: float, v: float, xi_max: float = 0.5) -> tuple[float, float]:
    """Generalised Pareto shape and scale ``(xi, sigma)`` of excesses with mean *m* > 0 and
    variance *v* > 0 (method of moments), the shape clipped to ``[-0.5, xi_max]``.

    >>> gpd_moments(1.0, 1.0)  # an exponential tail
    (0.0, 1.0)
    """
    ratio = m * m / v
    return min(max(0.5 * (1.0 - ratio), -0.5), xi_max), 0.5 * m * (ratio + 1.0)


def gpd_level(u: float, xi: float, sigma: float, r: float) -> float:
    """The level a generalised Pareto tail over *u* exceeds with *r* times the probability of *u*.

    >>> round(gpd_level(0.0, 0.0, 1.0, math.exp(-2)), 6)
    2.0
    """
    if abs(xi) < 1e-6:
        return u - sigma * math.log(r)
    return u + sigma / xi * (r ** (-xi) - 1.0)


def to_tail(score: float) -> float:
    """The unbounded scale the tail is fitted on: ``-log(1 - score)`` (scores in [0, 1]).

    >>> round(to_tail(0.5), 4), to_tail(0.0)
    (0.6931, 0.0)
    """
    return -math.log1p(-min(max(score, 0.0), 1.0 - 1e-12))


def from_tail(z: float) -> float:
    """The inverse of :func:`to_tail`.

    >>> from_tail(to_tail(0.75))
    0.75
    """
    return -math.expm1(-z) if z > 0 else 0.0


class TailThreshold:
    """Budget-driven threshold: GPD tail of declustered exceedances, with a floor and warm-up.

    Parameters
    ----------
    per_week
        False alerts per week the threshold aims at (exceedance episodes of the stream's
        normal scores). ``0`` turns the tail off: the threshold is the floor and quantile.
    warmup
        Scores to learn before :attr:`warm` (no alerts before).
    min_threshold
        Floor of the threshold (the alert level of the scores).
    q, margin
        A ``q`` quantile of the scores plus ``margin`` also bounds the threshold from below
        (``q = 0.5``: a series scoring above the floor half the time is judged against its median).
    init_q
        Quantile of the tail scale above which exceedances are modelled.
    gap
        Readings below ``u`` that end an exceedance episode.
    min_peaks
        Episodes needed before the tail is trusted (cold start: the highest score so far).
    max_peaks
        Episode peaks kept (the most recent).
    cold_cap
        During a cold start the threshold follows the highest score seen, up to this score.
    cold_s
        A cold start ends after this many seconds of readings at the latest (6 h), so a stream
        of one reading every few minutes is judged by the floor and its quantile, not held by
        its highest score for days.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> cal = TailThreshold(per_week=1.0, warmup=100)
    >>> t0 = 1_700_000_000.0
    >>> scores = [abs(rng.gauss(0.0, 0.15)) for _ in range(20000)]  # 1 Hz, 5.6 hours
    >>> for i, s in enumerate(scores):
    ...     cal.learn_one(s, t0 + i)
    >>> cal.warm, round(cal.rate_hz, 3)
    (True, 1.0)
    >>> max(scores) < cal.threshold < 0.8  # once a week is beyond the highest of 5.6 hours
    True
    >>> cal.threshold_for(100.0) < cal.threshold  # a looser budget gives a lower threshold
    True
    """

    def __init__(
        self, *, per_week: float = 1.0, warmup: int = 300, min_threshold: float = 0.5, q: float = 0.5,
        margin: float = 0.0, init_q: float = 0.98, gap: int = 10, min_peaks: int = 20, max_peaks: int = 256,
        cold_cap: float = 0.9, cold_s: float = 21600.0,
    ) -> None:
        if not (math.isfinite(per_week) and per_week >= 0):
            raise ValueError(f"TailThreshold: per_week = {per_week!r} must be finite and >= 0 (0: off)")
        if warmup < 0:
            raise ValueError(f"TailThreshold: warmup = {warmup!r} must be >= 0")
        if not math.isfinite(min_threshold):
            raise ValueError(f"TailThreshold: min_threshold = {min_threshold!r} must be finite")
        if not 0.0 < q < 1.0 or not 0.0 < init_q < 1.0:
            raise ValueError(f"TailThreshold: q = {q!r} and init_q = {init_q!r} must be in (0, 1)")
        if not math.isfinite(margin) or margin < 0:
            raise ValueError(f"TailThreshold: margin = {margin!r} must be finite and >= 0")
        if gap < 1 or min_peaks < 3 or max_peaks < min_peaks:
            raise ValueError(f"TailThreshold: gap = {gap!r} must be >= 1 and 3 <= min_peaks = {min_peaks!r} "
                             f"<= max_peaks = {max_peaks!r}")
        self.per_week = per_week
        self.warmup = warmup
        self.min_threshold = min_threshold
        self.q = q
        self.margin = margin
        self.init_q = init_q
        self.gap = gap
        self.min_peaks = min_peaks
        self.max_peaks = max_peaks
        self.cold_cap = cold_cap
        self.cold_s = cold_s
        self.reset()

    # -- learning
    def reset(self, *, warmup: int | None = None) -> None:
        """Forget the scores learnt so far and warm up again (``warmup`` replaces the setting).

        The floor ``min_threshold`` (maybe raised by operator feedback) and the reading rate
        are kept.
        """
        if warmup is not None:
            if warmup < 0:
                raise ValueError(f"TailThreshold.reset: warmup = {warmup!r} must be >= 0")
            self.warmup = warmup
        self.n = 0
        self._quantile = stats.Quantile(self.q)
        self._u = stats.Quantile(self.init_q)
        self._max_z = 0.0
        self._peaks = np.zeros(self.max_peaks)  # episode peaks on the tail scale, a ring
        self._peak_at = np.zeros(self.max_peaks, dtype=np.int64)  # reading index of each peak
        self._k = 0  # peaks stored (<= max_peaks)
        self._head = 0
        self._episode = 0.0  # peak of the running episode (0: none)
        self._below = 0
        self._fit: tuple[float, float, float, float] | None = None  # (u, xi, sigma, episodes per reading)
        self._cache: dict[float, float] = {}
        self._fit_at = -1
        if not hasattr(self, "_t0"):
            self._t0: float | None = None
            self._t1: float | None = None
            self._nt = 0
            self.exceeded = 0  # episodes over the threshold in force (the achieved rate's count)
            self._over = False
            self._over_below = 0

    def learn_one(self, score: float, t: float | None = None) -> None:
        """Learn one score; ``t`` (epoch seconds) feeds the reading-rate estimate."""
        if not math.isfinite(score):
            return
        if t is not None and math.isfinite(t):
            if self._t0 is None:
                self._t0 = t
            self._t1 = t
            self._nt += 1
        if self.warm:  # count the achieved episodes over the threshold in force
            if score >= self.threshold:
                if not self._over:
                    self.exceeded += 1
                self._over, self._over_below = True, 0
            elif self._over:
                self._over_below += 1
                if self._over_below >= self.gap:
                    self._over = False
        z = to_tail(score)
        self._quantile.update(score)
        self._u.update(z)
        self.n += 1
        self._max_z = max(self._max_z, z)
        u = self._u.get() or 0.0
        if z > u:
            self._episode = max(self._episode, z)
            self._below = 0
        elif self._episode > 0.0:
            self._below += 1
            if self._below >= self.gap:
                self._push(self._episode)
                self._episode = 0.0

    def _push(self, z: float) -> None:
        self._peaks[self._head] = z
        self._peak_at[self._head] = self.n
        self._head = (self._head + 1) % self.max_peaks
        self._k = min(self._k + 1, self.max_peaks)
        self._fit_at = -1

    # -- what it knows
    @property
    def warm(self) -> bool:
        """True once ``warmup`` scores have been learnt (alerts allowed)."""
        return self.n >= self.warmup

    @property
    def rate_hz(self) -> float:
        """Readings per second, from the timestamps given to :meth:`learn_one` (0 before two)."""
        if self._t0 is None or self._t1 is None or self._nt < 2 or self._t1 <= self._t0:
            return 0.0
        return (self._nt - 1) / (self._t1 - self._t0)

    def achieved_per_week(self) -> float:
        """Episodes over the threshold in force per week of readings so far (NaN before a rate)."""
        rate = self.rate_hz
        if rate <= 0.0 or self._nt < 2:
            return math.nan
        weeks = (self._nt / rate) / WEEK_S
        return self.exceeded / weeks if weeks > 0 else math.nan

    def _fitted(self) -> tuple[float, float, float, float] | None:
        if self._fit_at == self.n or (self._fit_at >= 0 and self.n - self._fit_at < 64):
            return self._fit
        self._fit_at, self._cache = self.n, {}
        self._fit = None
        u = self._u.get()
        if u is None or self._k < self.min_peaks:
            return None
        peaks = self._peaks[: self._k]
        excess = peaks[peaks > u] - u
        if len(excess) < self.min_peaks:
            return None
        oldest = int(self._peak_at[: self._k].min()) if self._k == self.max_peaks else 0
        per_reading = len(excess) / max(self.n - oldest, 1)
        m, v = float(excess.mean()), float(excess.var())
        if not m > 0.0:
            return None
        xi, sigma = gpd_moments(m, v) if v > 0.0 else (0.0, m)
        self._fit = (float(u), xi, sigma, per_reading)
        return self._fit

    def tail_level(self, per_week: float) -> float | None:
        """The score exceeded by normal episodes ``per_week`` times a week (None: not known yet)."""
        fit = self._fitted()
        rate = self.rate_hz
        if fit is None or rate <= 0.0 or per_week <= 0.0:
            return None
        per_week = float(f"{per_week:.2g}")  # budgets within a few % share one level (and its cache)
        cached = self._cache.get(per_week)
        if cached is not None:
            return cached
        if len(self._cache) > 16:
            self._cache.clear()
        u, xi, sigma, per_reading = fit
        target = per_week / (WEEK_S * rate)  # episodes per reading
        z = u if target >= per_reading else gpd_level(u, xi, sigma, target / per_reading)
        self._cache[per_week] = level = from_tail(z)
        return level

    def threshold_for(self, per_week: float) -> float:
        """The threshold for a budget of ``per_week`` false alerts per week."""
        base = self.min_threshold
        qv = self._quantile.get() if self.n else None
        if qv is not None and math.isfinite(qv):
            base = max(base, float(qv) + self.margin)
        if per_week <= 0.0:
            return base
        tail = self.tail_level(per_week)
        if tail is None and self.cold:  # cold start: the highest score seen so far (times COLD_FACTOR), up to cold_cap
            return max(base, min(from_tail(COLD_FACTOR * self._max_z), self.cold_cap)) if self.n else base
        return base if tail is None else max(base, tail)

    @property
    def cold(self) -> bool:
        """True while the highest score so far bounds the threshold: fewer than ``min_peaks``
        episodes and, where timestamps are given, less than ``cold_s`` seconds of readings (a
        slow stream is not held for weeks of readings).

        >>> th = TailThreshold(per_week=1.0, warmup=0, cold_s=3600.0)
        >>> th.learn_one(0.1, 0.0); th.cold
        True
        >>> th.learn_one(0.1, 7200.0); th.cold
        False
        """
        return self._t0 is None or self._t1 is None or self._t1 - self._t0 < self.cold_s

    @property
    def threshold(self) -> float:
        """The threshold for this calibration's own budget ``per_week``."""
        return self.threshold_for(self.per_week)

    def __repr__(self) -> str:
        return (f"TailThreshold(per_week={self.per_week}, n={self.n}, peaks={self._k}, "
                f"rate_hz={self.rate_hz:.4g}, threshold={self.threshold:.4g})")
