"""Stuck sensors: a run of identical values scored by how improbable it is for this series."""

from __future__ import annotations

import math

from detectors.scaled import ValueDetector


class StuckDetector(ValueDetector):
    """A run of ``r`` identical values scored by ``-log10 P(run) = -r log10 p``.

    ``p`` is the series' own frequency of a value equal to the one before (with a +1/+2
    prior), so a flat-lined sensor scores high while a naturally quantised series does not.

    Parameters
    ----------
    feature
        Key of the value in the input dicts; dicts without it score 0 and are not learnt.
    min_run
        Identical readings (the current one included) before the detector may score.
    surprise
        The ``-log10 P(run)`` at the alert level (score 0.5).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(4)
    >>> det = StuckDetector()
    >>> for i in range(500):
    ...     det.learn_one({"value": 10 + rng.gauss(0, 1)})
    >>> for i in range(6):  # the value stops changing
    ...     det.learn_one({"value": 10.5})
    >>> det.score_one({"value": 10.5}) > 0.5
    True
    """

    def __init__(self, *, feature: str = "value", min_run: int = 3, surprise: float = 10.0) -> None:
        if min_run < 1:
            raise ValueError(f"StuckDetector: min_run = {min_run!r} must be >= 1")
        if not surprise > 0:
            raise ValueError(f"StuckDetector: surprise = {surprise!r} must be > 0")
        self.feature = feature
        self.min_run = min_run
        self.surprise = surprise
        self._prev: float | None = None
        self._run = 0  # readings equal to the one before, in a row
        self._n = 0  # readings with a reading before them
        self._n_same = 0  # ... equal to it

    def ratio_value(self, v: float) -> float:
        """``-log10 P(run)`` over ``surprise`` (1 = alert; 0 when not in a run)."""
        if self._prev is None or v != self._prev or self._run + 1 < self.min_run:
            return 0.0
        p_same = (self._n_same + 1.0) / (self._n + 2.0)
        return -(self._run + 1) * math.log10(p_same) / self.surprise

    def learn_value(self, v: float) -> None:
        if self._prev is not None:
            same = v == self._prev
            self._run = self._run + 1 if same else 0
            self._n_same += same
            self._n += 1
        self._prev = v
