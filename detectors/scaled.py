"""The shared frame of the sensor components: one value per reading, scaled by the series' own past.

:class:`ValueDetector` gives River's protocol to a detector written as two methods over a
finite value (``ratio_value``, ``learn_value``). :class:`SelfScaled` is a local statistic
divided by its alert level from its own past values (:class:`detectors.ring.SelfReference`);
a subclass defines the statistic and the windows behind it.
"""

from __future__ import annotations

import math

from detectors.ring import SelfReference


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


class ValueDetector:
    """River's ``score_one``/``learn_one`` over one feature, from ``ratio_value``/``learn_value``.

    Dicts without a finite ``feature`` score 0 and are not learnt. The ratio is to the alert
    level (1 = alert); the score is :func:`ratio_to_score` of it.
    """

    feature: str

    def ratio_value(self, v: float) -> float:
        """The ratio to the alert level for a finite value ``v``."""
        raise NotImplementedError

    def learn_value(self, v: float) -> None:
        """Learn a finite value ``v``."""
        raise NotImplementedError

    def ratio(self, x: dict[str, float]) -> float:
        """The ratio to the alert level for ``x`` (0 when its value is missing)."""
        v = value_of(x, self.feature)
        return 0.0 if v is None else self.ratio_value(v)

    def score_one(self, x: dict[str, float]) -> float:
        return ratio_to_score(self.ratio(x))

    def learn_one(self, x: dict[str, float]) -> None:
        v = value_of(x, self.feature)
        if v is not None:
            self.learn_value(v)


class SelfScaled(ValueDetector):
    """A local statistic over its alert level, ``max(level x q-quantile, max_level x maximum)``
    of its own past values, which join the reference ``lag`` readings after they were computed.

    A subclass defines :meth:`statistic` (None while too few values are known) and
    :meth:`update` (the windows behind it). The statistic computed by ``score_one`` is reused
    by the ``learn_one`` of the same value.

    Parameters
    ----------
    feature
        Key of the value in the input dicts.
    lag
        Readings after which a value of the statistic no longer overlaps the present.
    level, q, max_level
        The alert level (``level = 0`` turns the detector off).
    ref_window
        Past values of the statistic kept.
    min_samples
        Past values needed before scoring.
    """

    def __init__(self, *, feature: str, lag: int, level: float, q: float, max_level: float, ref_window: int,
                 min_samples: int) -> None:
        self.feature = feature
        self.level = level
        self.q = q
        self.max_level = max_level
        self.ref_window = ref_window
        self.min_samples = min_samples
        self._ref = SelfReference(lag=lag, size=ref_window, q=q, level=level, max_level=max_level,
                                  min_samples=min_samples)
        self._cache: tuple[float, float | None] | None = None  # (value, statistic) between score and learn

    def statistic(self, v: float) -> float | None:
        """The statistic with ``v`` as the newest value (None while too few values are known)."""
        raise NotImplementedError

    def update(self, v: float) -> None:
        """Add ``v`` to the windows behind the statistic."""
        raise NotImplementedError

    def _statistic(self, v: float) -> float | None:
        cache = self._cache
        if cache is not None and cache[0] == v:
            return cache[1]
        stat = self.statistic(v)
        self._cache = (v, stat)
        return stat

    def ratio_value(self, v: float) -> float:
        stat = self._statistic(v)
        return 0.0 if stat is None else self._ref.ratio(stat, 1e-9 * (1.0 + abs(v)))

    def learn_value(self, v: float) -> None:
        stat = self._statistic(v)
        self._cache = None
        if stat is not None:
            self._ref.learn(stat)
        self.update(v)
