"""The combined sensor detector: subsequence novelty plus a stuck-value check.

* **novelty** — the last ``window`` values (averaged in blocks of ``paa``) form a shape;
  its distance to the nearest shape in a bounded memory of past shapes (a ring buffer of the
  last ``memory`` ones, excluding the overlapping recent ones) says how new the current
  behaviour is. The distance is divided by the ``ref_q`` quantile of the series' own
  recent nearest-neighbour distances, so one setting serves quiet and noisy series alike.
  Spikes, level shifts, drifts out of the seen range, noise bursts and broken seasonal
  patterns all make new shapes.
* **stuck** — a run of identical values is scored by how improbable such a run is given
  how often this series repeats a value (``-log10 P``), so flat-lined sensors score high
  while naturally quantised series do not.

Both are expressed as a ratio where ``alert_ratio`` is the alert level and squashed to
[0, 1) with 0.5 at ``alert_ratio``. Cost: one (window/paa x memory) float64 vec-mat per
reading, about 10-20 microseconds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from detectors.zscore import RollingWindow


@dataclass
class SensorDetectorParams:
    """Every tunable of :class:`SensorDetector`, with its default."""

    window: int = 20  # readings in one shape
    paa: int = 2  # readings averaged into one shape coordinate (window % paa == 0)
    memory: int = 4000  # past shapes kept for the nearest-neighbour search
    min_memory: int = 20  # shapes needed before the novelty component scores
    ref_window: int = 4000  # past nearest-neighbour distances kept for the reference
    ref_q: float = 0.95  # quantile of past distances the current distance is divided by
    ref_min_samples: int = 50  # past distances needed before scoring
    alert_ratio: float = 1.4  # ratio that maps to a score of 0.5 (the alert level)
    stuck_min_run: int = 3  # unchanged readings before the stuck component may score
    stuck_surprise: float = 10.0  # -log10 P(run) that maps to alert_ratio
    range_window: int = 400  # recent values behind expected_range()
    range_sigmas: float = 4.0  # expected range = median +- range_sigmas * robust scale

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first setting whose value cannot work."""
        checks = [
            ("window", self.window >= 2 and self.paa >= 1 and self.window % self.paa == 0,
             f"must be >= 2 and a multiple of paa = {self.paa!r}"),
            ("memory", self.memory >= self.min_memory >= 1, f"must be >= min_memory = {self.min_memory!r} >= 1"),
            ("ref_window", self.ref_window >= 2, "must be >= 2"),
            ("ref_q", 0.0 < self.ref_q < 1.0, "must be in (0, 1)"),
            ("alert_ratio", self.alert_ratio > 0, "must be > 0"),
            ("stuck_min_run", self.stuck_min_run >= 1, "must be >= 1"),
            ("stuck_surprise", self.stuck_surprise > 0, "must be > 0"),
            ("range_window", self.range_window >= 1, "must be >= 1"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"sensor detector setting {name} = {getattr(self, name)!r}: {why}")


class SensorDetector:
    """Combined detector for one numeric sensor series (feature ``value``).

    Parameters
    ----------
    params
        The tunables (defaults from :class:`SensorDetectorParams`).
    feature
        Key of the value in the input dicts; dicts without it score 0 and are not learnt.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> det = SensorDetector()
    >>> for i in range(1000):
    ...     x = {"value": 20 + math.sin(i / 20) + rng.gauss(0, 0.2)}
    ...     s = det.score_one(x)
    ...     det.learn_one(x)
    >>> s < 0.5
    True
    >>> det.score_one({"value": 40.0}) > 0.8
    True
    """

    def __init__(self, params: SensorDetectorParams | None = None, *, feature: str = "value") -> None:
        self.params = p = params or SensorDetectorParams()
        p.validate()
        self.feature = feature
        self._dim = p.window // p.paa
        self._buf = np.zeros(p.window, dtype=np.float64)  # last values - offset; newest at the end
        self._offset = 0.0  # the first value: shapes are stored relative to it (conditioning)
        self._seen = 0
        self._pending: deque[np.ndarray] = deque()  # shapes inside the exclusion zone
        self._mem = np.zeros((self._dim, p.memory), dtype=np.float64)  # one shape per column
        self._half_norms = np.zeros(p.memory, dtype=np.float64)
        self._dots = np.zeros(p.memory, dtype=np.float64)
        self._filled = 0
        self._pos = 0
        self._dists = RollingWindow(p.ref_window)  # past non-zero nearest-neighbour distances
        self._zero_dists = 0  # readings whose shape had an exact match
        self._values = RollingWindow(p.range_window)
        self._prev: float | None = None
        self._run = 0
        self._n = 0
        self._n_same = 0
        self._cache: tuple[float, np.ndarray | None, float] | None = None

    # -- components -------------------------------------------------------------------
    def _shape(self, v: float) -> np.ndarray | None:
        """Block means of the last ``window - 1`` values and ``v`` (None when too early)."""
        p = self.params
        if self._seen < p.window - 1:
            return None
        buf = np.empty(p.window, dtype=np.float64)
        buf[:-1] = self._buf[1:]
        buf[-1] = v - self._offset
        if p.paa == 1:
            return buf
        return np.add.reduce(buf.reshape(self._dim, p.paa), axis=1) * (1.0 / p.paa)

    def _novelty(self, v: float) -> tuple[np.ndarray | None, float]:
        """The current shape and its nearest-neighbour distance (0 when too early)."""
        if self._cache is not None and self._cache[0] == v:
            return self._cache[1], self._cache[2]
        shape = self._shape(v)
        dist = 0.0
        if shape is not None and self._filled >= self.params.min_memory:
            n = self._filled
            # min |m - s|^2 = |s|^2 - 2 max(m.s - |m|^2 / 2) over the stored shapes m
            dots = self._dots[:n]
            np.dot(shape, self._mem[:, :n], out=dots)
            np.subtract(dots, self._half_norms[:n], out=dots)
            d2 = float(shape @ shape) - 2.0 * float(dots.max())
            dist = math.sqrt(max(d2, 0.0) / self._dim)
        self._cache = (v, shape, dist)
        return shape, dist

    def components(self, x: dict[str, float]) -> dict[str, float]:
        """Component ratios for ``x`` (``alert_ratio`` is the alert level; 0 when too early)."""
        p = self.params
        v = x.get(self.feature)
        out = {"novelty": 0.0, "stuck": 0.0}
        if v is None or not math.isfinite(v):
            return out
        v = float(v)
        _, dist = self._novelty(v)
        ref: float | None = None
        if len(self._dists) >= p.ref_min_samples:
            ref = self._dists.quantile(p.ref_q)
        elif self._zero_dists >= p.ref_min_samples:
            ref = 0.0  # a series that so far repeated itself exactly: any change is new
        if ref is not None:
            out["novelty"] = dist / max(ref, 1e-9 * (1.0 + abs(v)))
        if self._prev is not None and v == self._prev and self._run + 1 >= p.stuck_min_run:
            p_same = (self._n_same + 1.0) / (self._n + 2.0)
            surprise = -(self._run + 1) * math.log10(p_same)
            out["stuck"] = p.alert_ratio * surprise / p.stuck_surprise
        return out

    # -- protocol ---------------------------------------------------------------------
    def score_one(self, x: dict[str, float]) -> float:
        ratio = max(self.components(x).values())
        return ratio / (ratio + self.params.alert_ratio) if ratio > 0 else 0.0

    def learn_one(self, x: dict[str, float]) -> None:
        v = x.get(self.feature)
        if v is None or not math.isfinite(v):
            return
        v = float(v)
        p = self.params
        shape, dist = self._novelty(v)
        self._cache = None
        if dist > 0.0:
            self._dists.append(dist)
        elif shape is not None and self._filled >= p.min_memory:
            self._zero_dists += 1
        if shape is not None:
            self._pending.append(shape)
            if len(self._pending) > p.window:  # only shapes that no longer overlap the present
                old = self._pending.popleft()
                self._mem[:, self._pos] = old
                self._half_norms[self._pos] = self._half_norm(old)
                self._pos = (self._pos + 1) % p.memory
                self._filled = min(self._filled + 1, p.memory)
        if self._prev is not None:
            same = v == self._prev
            self._run = self._run + 1 if same else 0
            self._n_same += same
            self._n += 1
        if self._seen == 0:
            self._offset = v
        self._buf[:-1] = self._buf[1:]
        self._buf[-1] = v - self._offset
        self._seen += 1
        self._values.append(v)
        self._prev = v

    @staticmethod
    def _half_norm(shape: np.ndarray) -> float:
        return 0.5 * float(shape @ shape)

    def __getstate__(self) -> dict[str, object]:
        """Pickle without the scratch buffer and the derived norms (rebuilt on load)."""
        state = self.__dict__.copy()
        for name in ("_dots", "_half_norms", "_cache"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._dots = np.zeros(self.params.memory, dtype=np.float64)
        self._half_norms = np.zeros(self.params.memory, dtype=np.float64)
        for j in range(self._filled):
            self._half_norms[j] = self._half_norm(np.ascontiguousarray(self._mem[:, j]))
        self._cache = None

    def expected_range(self) -> tuple[float, float]:
        """``median +- range_sigmas * robust scale`` of recent values (NaNs before data)."""
        if not len(self._values):
            return (math.nan, math.nan)
        med = self._values.median
        half = self.params.range_sigmas * self._values.robust_scale()
        return (med - half, med + half)
