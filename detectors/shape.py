"""Shape novelty: the distance of the latest subsequence to its nearest neighbour in the past."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.point import ratio_to_score, value_of
from detectors.ring import Ring, SortedRing


class ShapeNovelty:
    """How new the shape of the last ``window`` values is, relative to the series' own past.

    The last ``window`` values, averaged in blocks of ``paa``, form a shape; its RMS distance
    to the nearest of the last ``memory`` shapes that do not overlap it says how new the
    current behaviour is. The distance is divided by the ``q`` quantile of the series' own
    past nearest-neighbour distances, so one setting serves quiet and noisy series alike, and
    by ``level`` (the alert level). Spikes, level shifts, drifts out of the seen range, noise
    bursts and broken seasonal patterns all make new shapes. A series that so far repeated
    itself exactly alerts on any change.

    State: the values behind the remembered shapes, relative to the first value, in a
    ``float32`` ring (``4 (memory + 2 window)`` bytes pickled); the shape matrix is rebuilt
    from it on load. Cost: one ``(window / paa) x memory`` vec-mat per reading.

    Parameters
    ----------
    feature
        Key of the value in the input dicts; dicts without it score 0 and are not learnt.
    window
        Readings in one shape.
    paa
        Readings averaged into one shape coordinate (``window % paa == 0``).
    memory
        Past shapes kept for the nearest-neighbour search.
    min_memory
        Shapes needed before scoring.
    ref_window
        Past nearest-neighbour distances kept for the reference.
    q
        Quantile of past distances the current distance is divided by.
    level
        The ratio to that quantile at which the detector alerts (score 0.5).
    min_samples
        Past distances needed before scoring.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(5)
    >>> det = ShapeNovelty(memory=500)
    >>> for i in range(1000):
    ...     det.learn_one({"value": math.sin(i / 10) + rng.gauss(0, 0.1)})
    >>> det.score_one({"value": math.sin(100.0)}) < 0.5 < det.score_one({"value": 3.0})
    True
    """

    def __init__(self, *, feature: str = "value", window: int = 20, paa: int = 2, memory: int = 4000,
                 min_memory: int = 20, ref_window: int = 4000, q: float = 0.95, level: float = 1.4,
                 min_samples: int = 50) -> None:
        if window < 2 or paa < 1 or window % paa:
            raise ValueError(f"ShapeNovelty: window = {window!r} must be >= 2 and a multiple of paa = {paa!r}")
        if not memory >= min_memory >= 1:
            raise ValueError(f"ShapeNovelty: memory = {memory!r} must be >= min_memory = {min_memory!r} >= 1")
        if not 0.0 < q < 1.0 or not level > 0:
            raise ValueError(f"ShapeNovelty: q = {q!r} must be in (0, 1) and level = {level!r} > 0")
        self.feature = feature
        self.window = window
        self.paa = paa
        self.memory = memory
        self.min_memory = min_memory
        self.ref_window = ref_window
        self.q = q
        self.level = level
        self.min_samples = min_samples
        self._dim = window // paa
        self._vals = Ring(memory + 2 * window - 1, np.float32)  # values - offset, oldest first
        self._offset = 0.0  # the first value (shapes are relative to it, for conditioning)
        self._seen = 0
        self._dists = SortedRing(ref_window, np.float32)  # past non-zero nearest-neighbour distances
        self._zero_dists = 0  # readings whose shape had an exact match
        self._init_derived()

    def _init_derived(self) -> None:
        self._mem = np.zeros((self._dim, self.memory), dtype=np.float64)  # one shape per column
        self._half_norms = np.zeros(self.memory, dtype=np.float64)
        self._dots = np.zeros(self.memory, dtype=np.float64)
        self._filled = 0
        self._cache: tuple[float, int, np.ndarray | None, float] | None = None

    def _paa(self, values: np.ndarray) -> np.ndarray:
        buf = np.asarray(values, dtype=np.float64)
        if self.paa == 1:
            return buf.copy()
        return np.add.reduce(buf.reshape(self._dim, self.paa), axis=1) * (1.0 / self.paa)

    def _remember(self, shape: np.ndarray, count: int) -> None:
        """Store the ``count``-th remembered shape (0-based) in its memory slot."""
        slot = count % self.memory
        self._mem[:, slot] = shape
        self._half_norms[slot] = 0.5 * float(shape @ shape)
        self._filled = min(count + 1, self.memory)

    def shape(self, v: float) -> np.ndarray | None:
        """The shape ending with value ``v`` (None while fewer than ``window - 1`` values are known)."""
        if self._seen < self.window - 1:
            return None
        buf = np.empty(self.window, dtype=np.float64)
        buf[:-1] = self._vals.last(self.window - 1)
        buf[-1] = np.float32(v - self._offset)
        return self._paa(buf)

    def distance(self, v: float) -> tuple[np.ndarray | None, float]:
        """The shape ending with ``v`` and its RMS distance to the nearest remembered one (0 when too early)."""
        if self._cache is not None and self._cache[0] == v and self._cache[1] == self._seen:
            return self._cache[2], self._cache[3]
        shape = self.shape(v)
        dist = 0.0
        n = self._filled
        if shape is not None and n >= self.min_memory:
            # min |m - s|^2 = |s|^2 - 2 max(m.s - |m|^2 / 2) over the remembered shapes m
            dots = self._dots[:n]
            np.dot(shape, self._mem[:, :n], out=dots)
            np.subtract(dots, self._half_norms[:n], out=dots)
            d2 = float(shape @ shape) - 2.0 * float(dots.max())
            dist = math.sqrt(max(d2, 0.0) / self._dim)
        self._cache = (v, self._seen, shape, dist)
        return shape, dist

    def ratio(self, x: dict[str, float]) -> float:
        """The distance over ``level x`` the reference quantile (1 = alert; 0 when too early)."""
        v = value_of(x, self.feature)
        return 0.0 if v is None else self.ratio_value(v)

    def ratio_value(self, v: float) -> float:
        """:meth:`ratio` for a finite value ``v``."""
        _, dist = self.distance(v)
        if len(self._dists) >= self.min_samples:
            ref = self._dists.quantile(self.q)
        elif self._zero_dists >= self.min_samples:
            ref = 0.0  # a series that so far repeated itself exactly: any change is new
        else:
            return 0.0
        return dist / max(ref, 1e-9 * (1.0 + abs(v))) / self.level

    def score_one(self, x: dict[str, float]) -> float:
        return ratio_to_score(self.ratio(x))

    def learn_one(self, x: dict[str, float]) -> None:
        v = value_of(x, self.feature)
        if v is not None:
            self.learn_value(v)

    def learn_value(self, v: float) -> None:
        """:meth:`learn_one` for a finite value ``v``."""
        shape, dist = self.distance(v)
        self._cache = None
        if dist > 0.0:
            self._dists.append(dist)
        elif shape is not None and self._filled >= self.min_memory:
            self._zero_dists += 1
        if self._seen == 0:
            self._offset = v
        self._vals.append(v - self._offset)
        self._seen += 1
        # the shape ending window readings ago no longer overlaps the present: remember it
        count = self._seen - 2 * self.window  # shapes remembered before it
        if count >= 0:
            self._remember(self._paa(self._vals.last(2 * self.window)[: self.window]), count)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the shape matrix and scratch buffers (rebuilt from the values on load)."""
        state = self.__dict__.copy()
        for name in ("_mem", "_half_norms", "_dots", "_filled", "_cache"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_derived()
        values = self._vals.values()
        first = self._seen - len(values)  # index of values[0] in the series
        shapes = max(self._seen - 2 * self.window + 1, 0)  # shapes remembered so far
        for count in range(max(shapes - self.memory, 0), shapes):
            end = count + self.window  # one past the shape's last value index
            self._remember(self._paa(values[end - self.window - first : end - first]), count)
