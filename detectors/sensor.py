"""The sensor ensemble: shape novelty, robust point, level, spread and stuck detectors in one.

Each component is its own River-style detector in ``detectors/`` and reports a ratio to its
own alert level, relative to the series' own history:

* :class:`detectors.shape.ShapeNovelty` -- the last readings' shape against its nearest
  neighbour in a bounded memory of past shapes (spikes, shifts, drifts out of the seen range,
  noise bursts, broken seasonal patterns);
* :class:`detectors.point.PointDetector`, :class:`detectors.level.LevelShiftDetector`,
  :class:`detectors.spread.SpreadDetector` -- local statistics (distance from the recent
  median, a shift of the recent mean, the mean absolute step) against their own past values.
  The shape novelty dilutes one odd value among the shape's noisy coordinates and can match
  a shifted level with a shape from another phase of a cycle; these do not;
* :class:`detectors.stuck.StuckDetector` -- an improbably long run of identical values;
* optionally River's Half-Space Trees (:class:`detectors.hst.HSTDetector`), scaled like the
  local statistics (off by default: about 40 us per reading for no measured gain).

The largest ratio is the score, squashed to [0, 1) with 0.5 at the alert level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from detectors.hst import HSTDetector
from detectors.level import LevelShiftDetector
from detectors.point import PointDetector
from detectors.ring import SelfReference, SortedRing
from detectors.scaled import ratio_to_score, value_of
from detectors.shape import ShapeNovelty
from detectors.spread import SpreadDetector
from detectors.stuck import StuckDetector
from detectors.zscore import IQR_TO_SIGMA

COMPONENTS = ("novelty", "stuck", "point", "level", "spread", "hst")


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
    local_window: int = 1500  # past values of each local statistic kept for its reference
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
    """Ensemble detector for one numeric sensor series (feature ``value``).

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
        local: dict[str, Any] = dict(feature=feature, q=p.local_q, max_level=p.local_max_level,
                                     ref_window=p.local_window, min_samples=p.ref_min_samples)
        self.parts: dict[str, Any] = {
            "novelty": ShapeNovelty(feature=feature, window=p.window, paa=p.paa, memory=p.memory,
                                    min_memory=p.min_memory, ref_window=p.ref_window, q=p.ref_q,
                                    level=p.alert_ratio, min_samples=p.ref_min_samples),
            "stuck": StuckDetector(feature=feature, min_run=p.stuck_min_run, surprise=p.stuck_surprise),
        }
        if p.point_level > 0:
            self.parts["point"] = PointDetector(window=p.point_window, level=p.point_level, **local)
        if p.level_level > 0:
            self.parts["level"] = LevelShiftDetector(k=p.level_k, window=p.level_window, level=p.level_level,
                                                     **local)
        if p.spread_level > 0:
            self.parts["spread"] = SpreadDetector(window=p.spread_window, level=p.spread_level, **local)
        self._hst: HSTDetector | None = None
        if p.hst_level > 0:
            self._hst = HSTDetector(feature=feature, n_trees=p.hst_trees, height=p.hst_height,
                                    window_size=p.hst_window, learn_every=p.hst_learn_every, seed=p.seed)
            self._hst_ref = SelfReference(lag=1, size=p.local_window, q=p.local_q, level=p.hst_level,
                                          max_level=p.local_max_level, min_samples=p.ref_min_samples)
        self._seen = 0
        self._values = SortedRing(p.range_window)  # recent values behind expected_range()

    def components(self, x: dict[str, float]) -> dict[str, float]:
        """Each component's ratio for ``x``, scaled so that ``alert_ratio`` is the alert level."""
        out = dict.fromkeys(COMPONENTS, 0.0)
        v = value_of(x, self.feature)
        if v is None:
            return out
        a = self.params.alert_ratio
        for name, part in self.parts.items():
            out[name] = a * part.ratio_value(v)
        if self._hst is not None and self._seen >= self.params.hst_window:
            stat = self._hst.score_one(x)
            if stat >= self.params.hst_min_score:  # HST's scale jumps when its window swaps
                out["hst"] = a * self._hst_ref.ratio(stat, 1e-9 * (1.0 + abs(v)))
        return out

    def score_one(self, x: dict[str, float]) -> float:
        v = value_of(x, self.feature)
        if v is None:
            return 0.0
        ratio = 0.0
        for part in self.parts.values():
            r = part.ratio_value(v)
            if r > ratio:
                ratio = r
        if self._hst is not None:
            ratio = max(ratio, self.components(x)["hst"] / self.params.alert_ratio)
        return ratio_to_score(ratio)

    def learn_one(self, x: dict[str, float]) -> None:
        v = value_of(x, self.feature)
        if v is None:
            return
        for part in self.parts.values():
            part.learn_value(v)
        if self._hst is not None:
            if self._seen >= self.params.hst_window:
                self._hst_ref.learn(self._hst.score_one(x))
            self._hst.learn_one(x)
        self._seen += 1
        self._values.append(v)

    def expected_range(self) -> tuple[float, float]:
        """``median +- range_sigmas * robust scale`` of recent values (NaNs before data)."""
        w = self._values
        if not len(w):
            return (math.nan, math.nan)
        med = w.median
        half = self.params.range_sigmas * (w.quantile(0.75) - w.quantile(0.25)) / IQR_TO_SIGMA
        return (med - half, med + half)
