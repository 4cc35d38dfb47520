"""A source that stops sending: a gap between two lines far longer than its usual gaps.

Lines of a busy source arrive roughly as a Poisson process, so a gap of ``factor`` times the
mean gap has probability about ``exp(-factor)``; ``factor = 20`` is about 2e-9. The gap is
only seen when the source sends again (or, live, when the flow notices the silence), so the
alert is late by design; it says when the silence started.

>>> watch = SilenceWatch(min_gaps=10)
>>> [watch.update(float(t)) for t in range(0, 100, 2)][-1] is None
True
>>> watch.update(400.0)
(98.0, 400.0, 2.0)
"""

from __future__ import annotations


class SilenceWatch:
    """Mean gap between a source's lines (event time, seconds); picklable.

    Parameters
    ----------
    factor
        A gap this many times the mean gap is a silence.
    min_gaps
        Gaps learnt before any silence is reported.
    min_silence_s
        Shorter gaps are never a silence, however regular the source.
    alpha
        Weight of the newest gap in the mean.
    """

    def __init__(self, *, factor: float = 20.0, min_gaps: int = 50, min_silence_s: float = 60.0,
                 alpha: float = 0.02) -> None:
        if factor <= 1:
            raise ValueError(f"SilenceWatch: factor = {factor!r} must be > 1")
        self.factor = factor
        self.min_gaps = min_gaps
        self.min_silence_s = min_silence_s
        self.alpha = alpha
        self.last: float | None = None
        self.mean_gap = 0.0
        self.gaps = 0

    def is_silent(self, gap: float) -> bool:
        """Whether a gap of *gap* seconds is a silence for this source."""
        return self.gaps >= self.min_gaps and gap >= max(self.factor * self.mean_gap, self.min_silence_s)

    def update(self, ts: float) -> tuple[float, float, float] | None:
        """Learn a line at *ts*; ``(silence start, end, usual gap)`` when it ends a silence."""
        if self.last is None or ts <= self.last:
            self.last = ts if self.last is None else self.last
            return None
        gap = ts - self.last
        start, self.last = self.last, ts
        if self.is_silent(gap):
            return start, ts, self.mean_gap  # not learnt: a silence is not a usual gap
        self.gaps += 1
        a = max(self.alpha, 1.0 / self.gaps)
        self.mean_gap += a * (gap - self.mean_gap)
        return None
