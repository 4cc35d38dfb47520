"""Alert hysteresis for one series: open after N high readings, close after M low, cooldown.

Pure and picklable (it lives inside Bytewax state). Times are the readings' own timestamps,
so replays and live runs make the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert state change: ``kind`` is ``"open"`` or ``"close"``.

    ``opened_at`` is the timestamp of the first of the consecutive readings at or above the
    threshold that opened the alert; ``peak_score`` the highest score seen while open.
    """

    kind: Literal["open", "close"]
    ts: datetime
    opened_at: datetime
    score: float
    threshold: float
    peak_score: float
    readings: int  # readings since the alert opened (0 on open)


class AlertTracker:
    """Hysteresis and cooldown for one series.

    Parameters
    ----------
    open_after
        Consecutive readings at or above the threshold (while armed) that open an alert.
    close_after
        Consecutive readings below the threshold that close an open alert.
    cooldown_s
        Seconds after a close during which no new alert opens.

    Examples
    --------
    >>> from datetime import datetime, timedelta, timezone
    >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> tr = AlertTracker(open_after=2, close_after=2, cooldown_s=60)
    >>> scores = [0.1, 0.9, 0.95, 0.2, 0.1, 0.9, 0.9]
    >>> [(i, t.kind) for i, s in enumerate(scores)
    ...  if (t := tr.update(t0 + timedelta(seconds=10 * i), s, 0.5, True))]
    [(2, 'open'), (4, 'close')]
    """

    def __init__(self, open_after: int = 1, close_after: int = 1, cooldown_s: float = 0.0) -> None:
        if open_after < 1:
            raise ValueError(f"AlertTracker: open_after = {open_after!r} must be >= 1")
        if close_after < 1:
            raise ValueError(f"AlertTracker: close_after = {close_after!r} must be >= 1")
        if cooldown_s < 0:
            raise ValueError(f"AlertTracker: cooldown_s = {cooldown_s!r} must be >= 0")
        self.open_after = open_after
        self.close_after = close_after
        self.cooldown_s = cooldown_s
        self.is_open = False
        self.opened_at: datetime | None = None
        self.closed_at: datetime | None = None
        self._first_above: datetime | None = None
        self._above = 0
        self._below = 0
        self._peak = 0.0
        self._readings = 0

    def in_cooldown(self, ts: datetime) -> bool:
        """True while no alert may open because one closed less than ``cooldown_s`` ago."""
        return self.closed_at is not None and (ts - self.closed_at).total_seconds() < self.cooldown_s

    @property
    def peak_score(self) -> float:
        """The highest score since the open alert opened (0 when none is open)."""
        return self._peak if self.is_open else 0.0

    def close(self, ts: datetime, score: float = 0.0, threshold: float = 0.0) -> Transition | None:
        """Close the open alert now (an operator said it is a false positive); None if none is open.

        The cooldown starts at *ts*, as after any close.
        """
        if not self.is_open:
            return None
        self.is_open = False
        self.closed_at = ts
        self._below = 0
        opened = self.opened_at or ts
        return Transition("close", ts, opened, score, threshold, self._peak, self._readings)

    def update(self, ts: datetime, score: float, threshold: float, armed: bool) -> Transition | None:
        """Feed one reading's score; return the transition it causes, if any."""
        high = score >= threshold
        if self.is_open:
            self._readings += 1
            self._peak = max(self._peak, score)
            self._below = 0 if high else self._below + 1
            if self._below < self.close_after:
                return None
            self.is_open = False
            self.closed_at = ts
            opened = self.opened_at or ts
            return Transition("close", ts, opened, score, threshold, self._peak, self._readings)
        if not (high and armed) or self.in_cooldown(ts):
            self._above = 0
            self._first_above = None
            return None
        if self._above == 0:
            self._first_above = ts
        self._above += 1
        if self._above < self.open_after:
            return None
        self.is_open = True
        self.opened_at = self._first_above or ts
        self._above = 0
        self._below = 0
        self._peak = score
        self._readings = 0
        return Transition("open", ts, self.opened_at, score, threshold, score, 0)
