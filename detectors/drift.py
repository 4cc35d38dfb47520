"""Drift watch: slow or sudden change in a stream's score level and in its input rate.

Two River drift detectors per stream (``river.drift.ADWIN`` by default, or ``PageHinkley``):

- **score**: the detector's scores. A lasting change of their level (a new operating regime,
  a re-mounted sensor, a noisier log source) makes a threshold learnt on the old regime
  either flood operators with alerts or miss anomalies: the caller re-fits it.
- **rate**: the log of the inter-arrival time between updates (geometric mean, so a doubled
  rate is the same step whatever the period). A source that slows down, speeds up or starts
  batching is reported too. Inter-arrival times are clipped to ``[min_gap_s, max_gap_s]``.

After a detection a channel starts afresh (new detector, new segment) and reports nothing
for ``min_samples`` updates, so one change gives one event; changes smaller than
``min_score_change`` / ``min_rate_change`` are detected but not reported. Pure, picklable,
event-time based.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from river import drift

DETECTORS = ("adwin", "page_hinkley")


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """A detected change: ``kind`` is ``"score"`` or ``"rate"``.

    ``before_mean`` and ``after_mean`` are the mean score (``score``) or the input rate in
    updates per minute (``rate``) before and after the change; ``samples`` is the number of
    updates in the segment that ended.
    """

    kind: str
    ts: datetime
    before_mean: float
    after_mean: float
    samples: int = 0

    @property
    def magnitude(self) -> float:
        """The size of the change in [0, 1]: absolute for scores, relative for rates.

        >>> from datetime import datetime, timezone
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> DriftEvent("score", t, 0.1, 0.4).magnitude, DriftEvent("rate", t, 60.0, 30.0).magnitude
        (0.3, 0.5)
        """
        a, b = self.before_mean, self.after_mean
        if self.kind == "rate":
            top = max(abs(a), abs(b))
            d = abs(a - b) / top if top > 0 else 0.0
        else:
            d = abs(a - b)
        return round(min(1.0, max(0.0, d)), 12)


class _Channel:
    """One watched value: a River detector plus the segment's running mean."""

    def __init__(self, make: drift.ADWIN | drift.PageHinkley, min_samples: int, recent: int) -> None:
        self.proto = make
        self.detector = make.clone()
        self.min_samples = min_samples
        self.n = 0
        self.total = 0.0
        self.recent: deque[float] = deque(maxlen=recent)

    def update(self, x: float) -> tuple[float, float, int] | None:
        """Feed one value; on drift (before, after, segment length) and a fresh start."""
        self.detector.update(x)
        self.n += 1
        self.total += x
        self.recent.append(x)
        if not self.detector.drift_detected or self.n < self.min_samples:
            return None
        after = math.fsum(self.recent) / len(self.recent)  # the newest values: the new regime
        if isinstance(self.detector, drift.ADWIN) and 0 < self.detector.width < self.n:
            k, kept = int(self.detector.width), float(self.detector.estimation) * self.detector.width
        else:
            k, kept = len(self.recent), math.fsum(self.recent)
        before = (self.total - kept) / (self.n - k) if self.n > k else after  # what ADWIN dropped
        n = self.n
        self.detector = self.proto.clone()
        self.n, self.total = 0, 0.0
        self.recent.clear()
        return before, after, n


class DriftWatch:
    """Watch a stream's score level and input rate for lasting change.

    Parameters
    ----------
    detector
        ``"adwin"`` (default) or ``"page_hinkley"``.
    delta
        ADWIN's confidence (smaller: fewer false alarms, later detection) or Page-Hinkley's
        tolerated deviation.
    min_samples
        Updates of a segment (since the start or the last event) before a change is reported.
    threshold
        Page-Hinkley's alarm level (in the watched value's units: scores, log seconds).
    min_score_change
        Score drifts smaller than this (absolute change of the mean score) are not reported:
        anomaly scores are autocorrelated (seasonal shapes, a detector settling), so ADWIN
        also finds small real but harmless shifts (0.07 on a clean seasonal series).
    min_rate_change
        Rate drifts smaller than this (relative change of the rate) are not reported.
    rate
        Also watch the input rate.
    min_gap_s, max_gap_s
        Inter-arrival times are clipped to this range (a burst or an outage is one value).

    Examples
    --------
    >>> import random
    >>> from datetime import datetime, timedelta, timezone
    >>> rng = random.Random(0)
    >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> watch = DriftWatch()
    >>> events = []
    >>> for i in range(4000):
    ...     level = 0.1 if i < 2000 else 0.4
    ...     ev = watch.update(t0 + timedelta(seconds=10 * i), level + rng.random() * 0.1)
    ...     if ev:
    ...         events.append((i, ev.kind, round(ev.before_mean, 2), round(ev.after_mean, 2)))
    >>> [(e[1], e[2], e[3]) for e in events], 2000 <= events[0][0] < 2100
    ([('score', 0.15, 0.46)], True)
    """

    def __init__(
        self, *, detector: str = "adwin", delta: float = 0.002, min_samples: int = 100, threshold: float = 20.0,
        min_score_change: float = 0.1, min_rate_change: float = 0.25, rate: bool = True,
        min_gap_s: float = 0.001, max_gap_s: float = 3600.0,
    ) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"DriftWatch: detector = {detector!r} must be one of {DETECTORS}")
        if not 0.0 < delta < 1.0:
            raise ValueError(f"DriftWatch: delta = {delta!r} must be in (0, 1)")
        if min_samples < 1:
            raise ValueError(f"DriftWatch: min_samples = {min_samples!r} must be >= 1")
        if not 0.0 < min_gap_s < max_gap_s:
            raise ValueError(f"DriftWatch: min_gap_s = {min_gap_s!r}, max_gap_s = {max_gap_s!r}: "
                             "need 0 < min_gap_s < max_gap_s")
        self.detector = detector
        self.delta = delta
        self.min_samples = min_samples
        self.threshold = threshold
        self.min_score_change = min_score_change
        self.min_rate_change = min_rate_change
        self.rate = rate
        self.min_gap_s = min_gap_s
        self.max_gap_s = max_gap_s
        recent = max(1, min(30, min_samples))
        self._score = _Channel(self._make(), min_samples, recent)
        self._rate = _Channel(self._make(), min_samples, recent) if rate else None
        self.last_ts: datetime | None = None
        self.n = 0
        self.events = 0
        self._pending: DriftEvent | None = None

    def _make(self) -> drift.ADWIN | drift.PageHinkley:
        if self.detector == "adwin":
            return drift.ADWIN(delta=self.delta)
        return drift.PageHinkley(min_instances=self.min_samples, delta=self.delta, threshold=self.threshold)

    def update(self, ts: datetime, score: float) -> DriftEvent | None:
        """Feed one scored update; returns a drift event when one is detected.

        Non-finite scores are skipped (the rate still counts). When score and rate change
        at the same update, the rate event is returned by the next update.
        """
        self.n += 1
        events: list[DriftEvent] = []
        if math.isfinite(score):
            found = self._score.update(float(score))
            if found is not None:
                ev = DriftEvent("score", ts, found[0], found[1], found[2])
                if ev.magnitude >= self.min_score_change:
                    events.append(ev)
        if self._rate is not None and self.last_ts is not None:
            gap = min(max((ts - self.last_ts).total_seconds(), self.min_gap_s), self.max_gap_s)
            found = self._rate.update(math.log(gap))
            if found is not None:
                per_min = [60.0 / math.exp(v) for v in found[:2]]
                ev = DriftEvent("rate", ts, per_min[0], per_min[1], found[2])
                if ev.magnitude >= self.min_rate_change:
                    events.append(ev)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        if self._pending is not None:
            events.insert(0, self._pending)
            self._pending = None
        if not events:
            return None
        self._pending = events[1] if len(events) > 1 else None
        self.events += 1
        return events[0]

    def __repr__(self) -> str:
        return (f"DriftWatch(detector={self.detector!r}, delta={self.delta}, min_samples={self.min_samples}, "
                f"n={self.n}, events={self.events})")
