"""How surprising each template's count in a time window is, given its usual rate.

A burst of a message that is normally rare is not *new*, so a novelty index can miss it;
its count is what is unusual. Each template's count per window is tracked with an
exponentially weighted mean and variance (windows without it count as 0), and a window's score is the
largest Poisson surprise ``-log10 P(X >= count | mean)`` over its known templates, squashed
to [0, 1) with 0.5 at ``level`` (``level = 8``: a count that rate would produce once in 10^8
windows).

>>> rates = TemplateRates(min_windows=20)
>>> for i in range(200):
...     rates.learn_one({1: 10, 2: 1 if i % 20 == 0 else 0})
>>> normal, _ = rates.score_one({1: 12})
>>> burst, top = rates.score_one({1: 10, 2: 15})
>>> normal < 0.2 < 0.5 < burst, top
(True, 2)
"""

from __future__ import annotations

import math

from scipy.stats import nbinom


def poisson_surprise(count: int, mean: float) -> float:
    """``-log10 P(X >= count)`` for ``X ~ Poisson(mean)``.

    >>> round(poisson_surprise(0, 1.0), 3), round(poisson_surprise(3, 0.1), 2)
    (0.0, 3.81)
    """
    if count <= 0:
        return 0.0
    # P(X >= c) = 1 - sum_{k < c} pmf(k); for large c sum the upper tail directly (log space)
    if count > mean:
        log_pmf = -mean + count * math.log(mean) - math.lgamma(count + 1)
        total, term, k = 0.0, 1.0, count
        while term > 1e-12 * total or total == 0.0:
            total += term
            k += 1
            term *= mean / k
            if k > count + 10_000:
                break
        log_tail = log_pmf + math.log(total)
    else:
        cdf, pmf = 0.0, math.exp(-mean)
        for k in range(count):
            cdf += pmf
            pmf *= mean / (k + 1)
        log_tail = math.log(max(1e-300, 1.0 - cdf))
    return max(0.0, -log_tail / math.log(10))


def poisson_lower_surprise(count: int, mean: float) -> float:
    """``-log10 P(X <= count)`` for ``X ~ Poisson(mean)`` (0 when the count is not below the mean).

    >>> round(poisson_lower_surprise(0, 2.0), 3), round(poisson_lower_surprise(1, 2.0), 3), poisson_lower_surprise(3, 2.0)
    (0.869, 0.391, 0.0)
    """
    if count >= mean:
        return 0.0
    cdf, pmf = 0.0, math.exp(-mean)
    for k in range(count + 1):
        cdf += pmf
        pmf *= mean / (k + 1)
    return max(0.0, -math.log10(max(cdf, 1e-300)))


def count_surprise(count: int, mean: float, min_rate: float = 0.05) -> float:
    """How unlikely a template's count in a window is given its usual mean count: the
    Poisson tail above (``-log10 P(X >= count)``) or below (``-log10 P(X <= count)``),
    whichever side the count is on. 3 times where it is usually 2 is noise; 15 is not.

    >>> round(count_surprise(3, 2.0), 2), round(count_surprise(1, 2.0), 2), count_surprise(15, 2.0) > 8
    (0.49, 0.39, True)
    """
    mean = max(mean, min_rate)
    if count > mean:
        return poisson_surprise(count, mean)
    return poisson_lower_surprise(count, mean)


class TemplateRates:
    """Per-template counts per window of one source; picklable.

    Parameters
    ----------
    alpha
        Weight of the newest window in each template's mean count.
    min_windows
        Windows learnt before any score.
    min_rate
        Floor of a template's mean count, so one occurrence of a very rare template is not
        a burst.
    level
        Surprise (``-log10`` probability) that scores 0.5.
    """

    def __init__(self, *, alpha: float = 0.02, min_windows: int = 30, min_rate: float = 0.05,
                 level: float = 8.0) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"TemplateRates: alpha = {alpha!r} must be in (0, 1]")
        if level <= 0:
            raise ValueError(f"TemplateRates: level = {level!r} must be > 0")
        self.alpha = alpha
        self.min_windows = min_windows
        self.min_rate = min_rate
        self.level = level
        self.mean: dict[int, float] = {}
        self.var: dict[int, float] = {}  # exponentially weighted variance of each template's count
        self.windows = 0

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("var", {})  # pickled before the variance was kept: Poisson

    def surprise(self, tid: int, count: int) -> float:
        """``-log10`` of the tail probability of *count* on its side of the template's mean: a
        Poisson tail, or a negative binomial one where the count varies more than a Poisson
        count would (busy traffic whose rate wanders), so its usual variability is no burst.

        >>> r = TemplateRates(alpha=0.1)
        >>> for i in range(100):
        ...     r.learn_one({1: 20 + (15 if i % 2 else -15), 2: 20})
        >>> r.surprise(1, 60) < 2.0 < 8.0 < r.surprise(2, 60)  # 60 against 20 +- 15 and 20 +- 0
        True
        """
        mean = max(self.mean.get(tid, 0.0), self.min_rate)
        var = self.var.get(tid, 0.0)
        if var <= 1.05 * mean:
            return count_surprise(count, mean, self.min_rate)
        n = mean * mean / (var - mean)
        p = n / (n + mean)
        if count > mean:
            log_tail = float(nbinom.logsf(count - 1, n, p))
        elif count < mean:
            log_tail = float(nbinom.logcdf(count, n, p))
        else:
            return 0.0
        return max(0.0, -log_tail / math.log(10))

    def score_one(self, counts: dict[int, int]) -> tuple[float, int | None]:
        """The window's score in [0, 1) and the template behind it (None when nothing is known)."""
        if self.windows < self.min_windows:
            return 0.0, None
        best, top = 0.0, None
        for tid, count in counts.items():
            mean = self.mean.get(tid)
            if mean is None:
                continue  # never seen: the novelty index's job
            surprise = self.surprise(tid, count) if count > mean else 0.0
            if surprise > best:
                best, top = surprise, tid
        return best / (best + self.level), top

    def expected(self, tid: int) -> float:
        """The usual count of a template per window."""
        return self.mean.get(tid, 0.0)

    def learn_one(self, counts: dict[int, int]) -> None:
        """Learn one window's counts (templates absent from it count 0)."""
        a = self.alpha
        var = self.var
        for tid in [*self.mean, *(t for t in counts if t not in self.mean)]:
            m = self.mean.get(tid, 0.0)
            d = counts.get(tid, 0) - m
            self.mean[tid] = m + a * d
            var[tid] = (1.0 - a) * (var.get(tid, 0.0) + a * d * d)
        self.windows += 1
