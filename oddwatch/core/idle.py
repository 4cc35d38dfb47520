"""Event time of a stream that went quiet: the idle-time estimate of a decision object.

A source whose lines stop keeps open windows that no later line closes. :class:`IdleClock`
estimates its event time from wall time: the latest event time seen plus the wall time it has
been silent beyond ``idle_s``. Only silence beyond that period counts, so a worker busy
elsewhere (a model call) does not close a window whose next lines are still queued. Pure
(wall times are passed in), small and picklable.

>>> clock = IdleClock(idle_s=5.0)
>>> clock.seen(1000.0, wall=50.0)
>>> clock.estimate(wall=54.0) is None  # silent 4 s: within the idle period
True
>>> clock.estimate(wall=62.0)  # silent 12 s: 7 s beyond it
1007.0
>>> clock.seen(990.0, wall=63.0)  # an older line: event time never moves back
>>> clock.estimate(wall=70.0)
1002.0
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class IdleClock:
    """The latest event time seen and the wall time it was seen at (both epoch seconds)."""

    idle_s: float
    last_event: float | None = None
    last_wall: float | None = None

    def __post_init__(self) -> None:
        if self.idle_s < 0:
            raise ValueError(f"IdleClock: idle_s = {self.idle_s!r} must be >= 0")

    def seen(self, event: float, *, wall: float) -> None:
        """A line with event time *event* arrived at wall time *wall*."""
        self.last_event = event if self.last_event is None else max(self.last_event, event)
        self.last_wall = wall

    def estimate(self, *, wall: float) -> float | None:
        """The estimated event time at wall time *wall*; None while silent no longer than ``idle_s``."""
        if self.last_event is None or self.last_wall is None:
            return None
        silent = wall - self.last_wall - self.idle_s
        return self.last_event + silent if silent > 0 else None

    def next_check(self, *, wall: float) -> float | None:
        """When to check again (wall time), or None before any line."""
        return None if self.last_wall is None else wall + self.idle_s
