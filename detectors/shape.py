"""Shape novelty: the distance of the latest subsequence to its nearest neighbour in the past."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from detectors.ring import Ring, SortedRing
from detectors.scaled import ValueDetector

_scratch = threading.local()  # per-thread buffer for the dot products of one search


def _scratch_buffer(n: int) -> np.ndarray:
    buf: np.ndarray | None = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < n:
        buf = _scratch.buf = np.empty(max(n, 1024), dtype=np.float64)
    return buf[:n]


class ShapeNovelty(ValueDetector):
    """How new the shape of the last ``window`` values is, relative to the series' own past.

    The last ``window`` values, averaged in blocks of ``paa``, form a shape; its RMS distance
    to the nearest of the last ``memory`` shapes that do not overlap it says how new the
    current behaviour is. The distance is divided by the ``q`` quantile of the series' own
    past nearest-neighbour distances, so one setting serves quiet and noisy series alike, and
    by ``level`` (the alert level). Spikes, level shifts, drifts out of the seen range, noise
    bursts and broken seasonal patterns all make new shapes. A series that so far repeated
    itself exactly alerts on any change.

    State: the values behind the remembered shapes, relative to the first value, in a
    ``float32`` ring (``4 (memory + 2 window)`` bytes pickled). Derived from it: the shape
    matrix (``8 (window / paa)`` bytes per remembered shape, grown as shapes arrive), their
    half squared norms, and the last ``window`` shapes, which do not yet count because they
    overlap the present. Each shape is built once, when its last value is scored; a loaded
    detector rebuilds the derived state in a few vectorised steps on its first score.
    Cost: one ``(window / paa) x memory`` vec-mat per reading.

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
        self._stale = False

    def _init_derived(self) -> None:
        self._mem = np.zeros((self._dim, 0), dtype=np.float64)  # one remembered shape per column
        self._half_norms = np.zeros(0, dtype=np.float64)
        self._filled = 0
        # the shapes of the last window readings (row = reading index % window), not yet remembered
        self._recent = np.zeros((self.window, self._dim), dtype=np.float64)
        self._recent_half_norms = np.zeros(self.window, dtype=np.float64)
        self._means = Ring(self.window)  # the block mean ending at each of the last window readings
        self._cache: tuple[float, int, np.ndarray | None, float, float] | None = None

    def _paa(self, windows: np.ndarray) -> np.ndarray:
        """Shapes of the rows of ``windows`` (each ``window`` values): block means of ``paa`` values."""
        if self.paa == 1:
            return np.array(windows, dtype=np.float64)
        total = windows[:, 0 :: self.paa].astype(np.float64)  # summed left to right, block by block
        for j in range(1, self.paa):
            total += windows[:, j :: self.paa]
        total *= 1.0 / self.paa
        return total

    def _block_mean(self, last: list[float]) -> float:
        """The mean of the last ``paa`` values (as :meth:`_paa` sums them)."""
        if self.paa == 1:
            return last[0]
        total = last[0]
        for c in last[1:]:
            total += c
        return total * (1.0 / self.paa)

    @staticmethod
    def _half_norms_of(shapes: np.ndarray) -> np.ndarray:
        """``|shape|^2 / 2`` of each row, summed left to right (as :meth:`_half_norm`)."""
        total = shapes[:, 0] * shapes[:, 0]
        for j in range(1, shapes.shape[1]):
            total += shapes[:, j] * shapes[:, j]
        return 0.5 * total

    @staticmethod
    def _half_norm(shape: np.ndarray) -> float:
        """``|shape|^2 / 2``, summed left to right (as :meth:`_half_norms_of`)."""
        total = 0.0
        for c in shape.tolist():
            total += c * c
        return 0.5 * total

    def _grow(self, slots: int) -> None:
        """Room for at least ``slots`` remembered shapes (doubling, at most ``memory``)."""
        cap = min(self.memory, max(slots, 2 * self._mem.shape[1], 64))
        mem = np.zeros((self._dim, cap), dtype=np.float64)
        mem[:, : self._filled] = self._mem[:, : self._filled]
        half = np.zeros(cap, dtype=np.float64)
        half[: self._filled] = self._half_norms[: self._filled]
        self._mem, self._half_norms = mem, half

    def _remember(self, shape: np.ndarray, half_norm: float, count: int) -> None:
        """Store the ``count``-th remembered shape (0-based) in its memory slot."""
        slot = count % self.memory
        if slot >= self._mem.shape[1]:
            self._grow(slot + 1)
        self._mem[:, slot] = shape
        self._half_norms[slot] = half_norm
        self._filled = min(count + 1, self.memory)

    def _rebuild(self) -> None:
        """The derived state from the values ring (after a load)."""
        self._init_derived()
        self._stale = False
        w = self.window
        values = self._vals.values()
        first = self._seen - len(values)  # index of values[0] in the series
        start = max(first, 0)  # first value of the oldest shape still known
        p = self.paa
        for end in range(max(self._seen - w, start + p - 1), self._seen):
            self._means.append(self._block_mean(values[end - p + 1 - first : end + 1 - first].tolist()))
        if self._seen - start < w:
            return
        shapes = self._paa(sliding_window_view(values, w)[start - first :])  # shapes ending at start + w - 1, ...
        halves = self._half_norms_of(shapes)
        ends = np.arange(start + w - 1, self._seen)
        recent = len(shapes) - min(w, len(shapes))  # the last w shapes overlap the present
        rows = ends[recent:] % w
        self._recent[rows] = shapes[recent:]
        self._recent_half_norms[rows] = halves[recent:]
        if recent:
            counts = ends[:recent] - (w - 1)  # the count each was remembered as
            self._grow(min(int(counts[-1]) + 1, self.memory))
            slots = counts % self.memory
            self._mem[:, slots] = shapes[:recent].T
            self._half_norms[slots] = halves[:recent]
            self._filled = min(int(counts[-1]) + 1, self.memory)

    def shape(self, v: float) -> np.ndarray | None:
        """The shape ending with value ``v`` (None while fewer than ``window - 1`` values are known)."""
        if self._seen < self.window - 1:
            return None
        if self._stale:
            self._rebuild()
        p = self.paa
        last = self._vals.last(p - 1).tolist() if p > 1 else []
        last.append(float(np.float32(v - self._offset)))  # as the ring will store it
        shape = np.empty(self._dim, dtype=np.float64)
        shape[:-1] = self._means.last(self.window - p)[::p]
        shape[-1] = self._block_mean(last)
        return shape

    def distance(self, v: float) -> tuple[np.ndarray | None, float]:
        """The shape ending with ``v`` and its RMS distance to the nearest remembered one (0 when too early)."""
        shape, dist, _ = self._search(v)
        return shape, dist

    def _search(self, v: float) -> tuple[np.ndarray | None, float, float]:
        """:meth:`distance` and the shape's half squared norm, computed once per reading."""
        cache = self._cache
        if cache is not None and cache[0] == v and cache[1] == self._seen:
            return cache[2], cache[3], cache[4]
        if self._stale:
            self._rebuild()
        shape = self.shape(v)
        dist = half = 0.0
        if shape is not None:
            half = self._half_norm(shape)
            n = self._filled
            if n >= self.min_memory:
                # min |m - s|^2 = |s|^2 - 2 max(m.s - |m|^2 / 2) over the remembered shapes m
                dots = _scratch_buffer(n)
                np.dot(shape, self._mem[:, :n], out=dots)
                np.subtract(dots, self._half_norms[:n], out=dots)
                d2 = 2.0 * (half - float(dots.max()))
                dist = math.sqrt(max(d2, 0.0) / self._dim)
        self._cache = (v, self._seen, shape, dist, half)
        return shape, dist, half

    def ratio_value(self, v: float) -> float:
        """The distance over ``level x`` the reference quantile (1 = alert; 0 when too early)."""
        _, dist = self.distance(v)
        if len(self._dists) >= self.min_samples:
            ref = self._dists.quantile(self.q)
        elif self._zero_dists >= self.min_samples:
            ref = 0.0  # a series that so far repeated itself exactly: any change is new
        else:
            return 0.0
        return dist / max(ref, 1e-9 * (1.0 + abs(v))) / self.level

    def learn_value(self, v: float) -> None:
        shape, dist, half = self._search(v)
        self._cache = None
        if dist > 0.0:
            self._dists.append(dist)
        elif shape is not None and self._filled >= self.min_memory:
            self._zero_dists += 1
        if self._seen == 0:
            self._offset = v
        self._vals.append(v - self._offset)
        if self._seen >= self.paa - 1:
            self._means.append(self._block_mean(self._vals.last(self.paa).tolist()))
        if shape is not None:
            # the shape ending window readings ago no longer overlaps the present: remember it
            row = self._seen % self.window
            count = self._seen - 2 * self.window + 1  # shapes remembered before it
            if count >= 0:
                self._remember(self._recent[row], float(self._recent_half_norms[row]), count)
            self._recent[row] = shape
            self._recent_half_norms[row] = half
        self._seen += 1

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the derived state (rebuilt from the values on the first score after a load)."""
        state = self.__dict__.copy()
        for name in ("_mem", "_half_norms", "_filled", "_recent", "_recent_half_norms", "_means", "_cache",
                     "_stale"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_derived()
        self._stale = True
