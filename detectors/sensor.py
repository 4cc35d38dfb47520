"""The combined sensor detector: subsequence novelty, local point/level/spread checks, stuck values.

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
* **point**, **level**, **spread** — three local statistics: the distance of the value from
  the median of the last ``point_window`` values (spikes), of the mean of the last
  ``level_k`` values from the median of the ``level_window`` values before them (level
  shifts), and the mean absolute step over the last ``spread_window`` values (noise
  bursts). Each alerts at ``max(*_level x its local_q quantile, local_max_level x its
  maximum)`` over its own past values whose windows do not overlap the current one: the
  quantile term sets the false-alert rate on ordinary noise, the maximum term keeps a
  naturally spiky series (a spike every few hundred readings) quiet. The shape novelty
  dilutes one odd value among the shape's noisy coordinates and can match a shifted level
  with a shape from another phase of a cycle; these do not. Levels tuned on the plant
  simulator (``scripts/plant_quick.py``: about 0.5 false alerts per 32 series x 1200
  readings) and checked on NAB (``scripts/nab_quick.py``).

Every component is expressed as a ratio where ``alert_ratio`` is the alert level; the
largest is squashed to [0, 1) with 0.5 at ``alert_ratio``. Cost: one (window/paa x memory)
float64 vec-mat and a few sorted-window updates per reading, about 25-40 microseconds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from detectors.hst import HSTDetector
from detectors.zscore import RollingWindow

LOCAL = ("point", "level", "spread", "hst")  # components scaled by their own past values


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
    point_window: int = 16  # recent values whose median the value is compared with
    level_k: int = 4  # latest values averaged into the current level
    level_window: int = 12  # values before those whose median is the previous level
    spread_window: int = 10  # latest absolute steps averaged into the current spread
    local_window: int = 2000  # past values of each local statistic kept for its reference
    local_q: float = 0.9  # quantile of a local statistic's past values ...
    point_level: float = 2.6  # ... times which the component alerts (0 turns it off)
    level_level: float = 2.8
    spread_level: float = 2.0
    local_max_level: float = 1.3  # and never below this multiple of its past maximum (0: off)
    # River HalfSpaceTrees component, scaled like the local ones; off by default (0): measured
    # with 1.5 it changed nothing on the plant faults, NAB 70.32 -> 70.02, and its ~40 us per
    # reading took the 1,000 readings/s latency p99 from 0.98 s to 4.3 s (docs/benchmarks.md).
    hst_level: float = 0.0
    hst_min_score: float = 0.8  # HST scores under this never alert (its scale jumps when its window swaps)
    hst_trees: int = 5
    hst_height: int = 3
    hst_window: int = 250
    hst_learn_every: int = 4
    seed: int = 42

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
            ("point_window", self.point_window >= 1, "must be >= 1"),
            ("level_k", self.level_k >= 1, "must be >= 1"),
            ("level_window", self.level_window >= 1, "must be >= 1"),
            ("spread_window", self.spread_window >= 1, "must be >= 1"),
            ("local_window", self.local_window >= 2, "must be >= 2"),
            ("local_q", 0.0 < self.local_q <= 1.0, "must be in (0, 1]"),
            ("local_max_level", self.local_max_level >= 0, "must be >= 0 (0: no maximum term)"),
            ("point_level", self.point_level >= 0, "must be >= 0 (0 turns the component off)"),
            ("level_level", self.level_level >= 0, "must be >= 0 (0 turns the component off)"),
            ("spread_level", self.spread_level >= 0, "must be >= 0 (0 turns the component off)"),
            ("hst_level", self.hst_level >= 0, "must be >= 0 (0 turns the component off)"),
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
        # local statistics: recent values, the level's lagged window, recent absolute steps
        self._recent = RollingWindow(p.point_window)
        self._lag: deque[float] = deque()  # the latest level_k - 1 values
        self._old = RollingWindow(p.level_window)  # the level_window values before them
        self._steps: deque[float] = deque()  # the latest spread_window - 1 absolute steps
        self._local_refs = {name: RollingWindow(p.local_window) for name in LOCAL}
        # statistics wait here until their window no longer overlaps the present
        self._local_pending: dict[str, deque[float]] = {name: deque() for name in LOCAL}
        self._local_lag = {"point": 1, "level": p.level_k, "spread": p.spread_window, "hst": 1}
        self._hst = HSTDetector(n_trees=p.hst_trees, height=p.hst_height, window_size=p.hst_window,
                                learn_every=p.hst_learn_every, seed=p.seed) if p.hst_level > 0 else None
        self._local_cache: tuple[float, dict[str, float]] | None = None

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

    def _local(self, v: float) -> dict[str, float]:
        """The local statistics of ``v`` with the recent values (absent when too early)."""
        if self._local_cache is not None and self._local_cache[0] == v:
            return self._local_cache[1]
        p = self.params
        out: dict[str, float] = {}
        if len(self._recent) >= p.point_window:
            out["point"] = abs(v - self._recent.median)
        if len(self._old) >= p.level_window:
            out["level"] = abs((sum(self._lag) + v) / p.level_k - self._old.median)
        if self._prev is not None and len(self._steps) >= p.spread_window - 1:
            out["spread"] = (sum(self._steps) + abs(v - self._prev)) / p.spread_window
        if self._hst is not None and self._seen >= p.hst_window:
            out["hst"] = self._hst.score_one({self._hst.feature: v})
        self._local_cache = (v, out)
        return out

    def components(self, x: dict[str, float]) -> dict[str, float]:
        """Component ratios for ``x`` (``alert_ratio`` is the alert level; 0 when too early)."""
        p = self.params
        v = x.get(self.feature)
        out = {"novelty": 0.0, "stuck": 0.0, "point": 0.0, "level": 0.0, "spread": 0.0, "hst": 0.0}
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
        floor = 1e-9 * (1.0 + abs(v))
        levels = {"point": p.point_level, "level": p.level_level, "spread": p.spread_level, "hst": p.hst_level}
        for name, stat in self._local(v).items():
            past = self._local_refs[name]
            if name == "hst" and stat < p.hst_min_score:
                continue  # HST's scale jumps when its reference window swaps: only high scores count
            if levels[name] > 0 and stat > 0 and len(past) >= p.ref_min_samples:
                ref = max(levels[name] * past.quantile(p.local_q), p.local_max_level * past.sorted[-1])
                out[name] = p.alert_ratio * stat / max(ref, floor)
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
        for name, stat in self._local(v).items():
            pending = self._local_pending[name]
            pending.append(stat)
            if len(pending) >= self._local_lag[name]:
                self._local_refs[name].append(pending.popleft())
        self._local_cache = None
        if self._hst is not None:
            self._hst.learn_one({self._hst.feature: v})
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
        if self._prev is not None and p.spread_window > 1:
            self._steps.append(abs(v - self._prev))
            if len(self._steps) > p.spread_window - 1:
                self._steps.popleft()
        self._lag.append(v)
        if len(self._lag) > p.level_k - 1:
            self._old.append(self._lag.popleft())
        self._recent.append(v)
        self._prev = v

    @staticmethod
    def _half_norm(shape: np.ndarray) -> float:
        return 0.5 * float(shape @ shape)

    def __getstate__(self) -> dict[str, object]:
        """Pickle without the scratch buffer and the derived norms (rebuilt on load)."""
        state = self.__dict__.copy()
        for name in ("_dots", "_half_norms", "_cache", "_local_cache"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._dots = np.zeros(self.params.memory, dtype=np.float64)
        self._half_norms = np.zeros(self.params.memory, dtype=np.float64)
        for j in range(self._filled):
            self._half_norms[j] = self._half_norm(np.ascontiguousarray(self._mem[:, j]))
        self._cache = None
        self._local_cache = None

    def expected_range(self) -> tuple[float, float]:
        """``median +- range_sigmas * robust scale`` of recent values (NaNs before data)."""
        if not len(self._values):
            return (math.nan, math.nan)
        med = self._values.median
        half = self.params.range_sigmas * self._values.robust_scale()
        return (med - half, med + half)
