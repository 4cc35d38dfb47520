"""Pure windowing of one source's templated log lines.

Modes (``LogWindowParams.mode``):

- ``"tumbling"``: back-to-back windows of ``size_s`` seconds of event time (``by="time"``) or
  ``size_lines`` lines (``by="count"``);
- ``"sliding"``: windows of that size starting every ``slide_s`` seconds / ``slide_lines``
  lines (a line belongs to every window covering it);
- ``"session"``: one window per id found in the line by ``session_regex`` (for HDFS the
  block id ``blk_-?\\d+``; a line naming several ids belongs to each, a line naming none to
  the session ``"-"``), closed once no line of it arrived for ``session_gap_s`` of event time,
  when it reaches ``max_session_lines``, or at end of stream (:meth:`WindowAssembler.flush`).
  With ``session_memory_s`` a session closed by its gap is remembered that long after its
  last line: when it sends again (a later burst, e.g. an HDFS block verified or deleted hours
  after it was written), the new window continues it and holds the whole session so far
  (``ClosedWindow.bursts`` counts its bursts), so a lone late line is judged in the context
  of its session rather than as a session of its own.

Event time only moves forward: the watermark is the largest timestamp seen; late lines join
the windows still open. Timestamps are seconds (floats) so the core stays cheap.

Examples
--------
>>> asm = WindowAssembler("hdfs", LogWindowParams(mode="session", session_gap_s=10))
>>> asm.add(0.0, 1, "open blk_1")
[]
>>> asm.add(1.0, 2, "close blk_1 blk_2")
[]
>>> [(w.window_id, w.lines, dict(w.template_counts)) for w in asm.add(30.0, 1, "x blk_3")]
[('hdfs:blk_1:0', 2, {1: 1, 2: 1}), ('hdfs:blk_2:1', 1, {2: 1})]
>>> [w.window_id for w in asm.flush()]
['hdfs:blk_3:30']

A later burst of a remembered session carries the whole session:

>>> asm = WindowAssembler("hdfs", LogWindowParams(mode="session", session_gap_s=10, session_memory_s=1000))
>>> _ = asm.add(0.0, 1, "open blk_1"), asm.add(1.0, 2, "write blk_1"), asm.add(50.0, 3, "x blk_2")
>>> [(w.window_id, w.lines, w.bursts, dict(w.template_counts)) for w in asm.add(500.0, 4, "verify blk_1")]
[('hdfs:blk_2:50', 1, 1, {3: 1})]
>>> [(w.window_id, w.start, w.lines, w.bursts, dict(w.template_counts)) for w in asm.flush()]
[('hdfs:blk_1:500', 0.0, 3, 2, {1: 1, 2: 1, 4: 1})]
"""

from __future__ import annotations

import heapq
import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from oddwatch.params import LogWindowParams

NO_SESSION = "-"


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A finished window: what the novelty stage needs, and examples for explanations."""

    source: str
    window_id: str
    start: float  # event time, seconds since the epoch
    end: float
    lines: int
    template_counts: Mapping[int, int]
    examples: Mapping[int, tuple[str, ...]]  # template id -> first lines of that template
    bursts: int = 1  # session windows: bursts of the session this window holds (its last one ends it)
    levels: Mapping[int, int] = field(default_factory=dict)  # template id -> worst level rank of its lines (>0 only)

    @property
    def start_dt(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)

    @property
    def end_dt(self) -> datetime:
        return datetime.fromtimestamp(self.end, UTC)


@dataclass
class _Open:
    wid: str
    start: float
    end: float
    deadline: float  # close once the watermark passes it
    lines: int = 0
    bursts: int = 1
    counts: dict[int, int] = field(default_factory=dict)
    examples: dict[int, list[str]] = field(default_factory=dict)
    ranks: dict[int, int] = field(default_factory=dict)

    def add(self, ts: float, tid: int, line: str, n_examples: int, rank: int = 0) -> None:
        self.lines += 1
        if rank > 0 and rank > self.ranks.get(tid, 0):
            self.ranks[tid] = rank
        self.start = min(self.start, ts)
        self.end = max(self.end, ts)
        self.counts[tid] = self.counts.get(tid, 0) + 1
        ex = self.examples.setdefault(tid, [])
        if len(ex) < n_examples:
            ex.append(line)

    def close(self, source: str) -> ClosedWindow:
        return ClosedWindow(
            source, self.wid, self.start, self.end, self.lines,
            dict(self.counts),
            {k: tuple(v) for k, v in self.examples.items()}, self.bursts, dict(self.ranks),
        )


class WindowAssembler:
    """Windows of one source; picklable state for a Bytewax ``stateful_map``.

    Parameters
    ----------
    source
        The source (group) key, copied into every window.
    params
        Window settings.
    """

    def __init__(self, source: str, params: LogWindowParams | None = None) -> None:
        self.source = source
        self.params = params or LogWindowParams()
        self.params.validate()
        self._regex = re.compile(self.params.session_regex)
        self._open: OrderedDict[str, _Open] = OrderedDict()  # by deadline order (mostly)
        self._done: OrderedDict[str, _Open] = OrderedDict()  # sessions closed by their gap, remembered
        self.watermark = -math.inf
        self.count = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_regex"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._regex = re.compile(self.params.session_regex)

    def __len__(self) -> int:
        return len(self._open)

    def next_deadline(self) -> float:
        """The earliest event time at which an open window closes by time (inf: none does)."""
        if not self._open or (self.params.by == "count" and self.params.mode != "session"):
            return math.inf
        if self.params.mode == "session":
            return next(iter(self._open.values())).deadline
        return min(w.deadline for w in self._open.values())

    def add(self, ts: float, template_id: int, line: str, rank: int = 0) -> list[ClosedWindow]:
        """Add one line (*rank*: its level's rank, :func:`level_rank`); returns the windows
        this line's event time closed."""
        p = self.params
        closed = self.advance(ts)
        self.count += 1
        if p.mode == "session":
            keys = self._regex.findall(line) or [NO_SESSION]
            for key in dict.fromkeys(keys):
                win = self._open.pop(key, None)
                if win is None:
                    win = self._done.pop(key, None)
                    if win is None:
                        win = _Open(f"{self.source}:{key}:{ts:.0f}", ts, ts, 0.0)
                    else:
                        win.wid, win.bursts = f"{self.source}:{key}:{ts:.0f}", win.bursts + 1
                win.deadline = max(win.deadline, ts + p.session_gap_s)
                win.add(ts, template_id, line, p.examples_per_template, rank)
                self._open[key] = win  # most recently active last
                if win.lines >= p.max_session_lines:
                    closed.append(self._close(key))
        else:
            for key, _start, end in self._windows_of(ts):
                win = self._open.get(key)
                if win is None:
                    win = self._open[key] = _Open(key, ts, ts, end)
                win.add(ts, template_id, line, p.examples_per_template, rank)
                if p.by == "count" and self.count >= end:
                    closed.append(self._close(key))
        while len(self._open) > p.max_open_windows:
            closed.append(self._close(next(iter(self._open))))
        return closed

    def _windows_of(self, ts: float) -> list[tuple[str, float, float]]:
        p = self.params
        if p.by == "time":
            size, slide, pos = p.size_s, (p.size_s if p.mode == "tumbling" else p.slide_s), ts
        else:
            size = float(p.size_lines)
            slide = size if p.mode == "tumbling" else float(p.slide_lines)
            pos = float(self.count - 1)
        out = []
        first = math.floor((pos - size) / slide) + 1
        last = math.floor(pos / slide)
        for i in range(first, last + 1):
            start = i * slide
            if start <= pos < start + size:
                label = f"{start:.0f}" if float(start).is_integer() else f"{start:.3f}"
                out.append((f"{self.source}:{p.by}:{label}", start, start + size))
        return out

    def _close(self, key: str, *, remember: bool = False) -> ClosedWindow:
        win = self._open.pop(key)
        if remember and self.params.session_memory_s > 0:
            self._done[key] = win
            while len(self._done) > self.params.max_open_windows:
                self._done.popitem(last=False)
        return win.close(self.source)

    def advance(self, ts: float) -> list[ClosedWindow]:
        """Move event time to *ts* and return the windows that are now complete."""
        if ts <= self.watermark:
            return []
        self.watermark = ts
        if self.params.by == "count" and self.params.mode != "session":
            return []
        due = [k for k, w in self._open.items() if w.deadline <= ts] if self.params.mode != "session" else []
        if self.params.mode == "session":
            for key, win in self._open.items():  # sessions are ordered by last activity
                if win.deadline > ts:
                    break
                due.append(key)
            while self._done and next(iter(self._done.values())).end + self.params.session_memory_s <= ts:
                self._done.popitem(last=False)
        return [self._close(k, remember=self.params.mode == "session") for k in due]

    def flush(self) -> list[ClosedWindow]:
        """Close every open window (end of stream)."""
        self._done.clear()
        return [self._close(k) for k in list(self._open)]


class FleetWindows:
    """The windows of every source of one fleet: a :class:`WindowAssembler` per source, closed
    by the fleet's event time (the largest timestamp of any of its sources), so a source that
    went quiet still has its windows decided when the others move on.

    At most ``max_sources`` sources are held; beyond it the least recently active one has its
    open windows closed and is forgotten.

    >>> fw = FleetWindows("s1/*/app", LogWindowParams(size_s=60))
    >>> fw.add(0.0, 1, "a", "s1/h1/app"), fw.add(10.0, 1, "b", "s1/h2/app")
    ([], [])
    >>> [w.window_id for w in fw.add(61.0, 1, "c", "s1/h2/app")]
    ['s1/h1/app:time:0', 's1/h2/app:time:0']
    >>> sorted(fw.sources())
    ['s1/h1/app', 's1/h2/app']
    """

    def __init__(self, fleet: str, params: LogWindowParams | None = None, *, max_sources: int = 10000) -> None:
        if max_sources < 1:
            raise ValueError(f"FleetWindows[{fleet}]: max_sources = {max_sources!r} must be >= 1")
        self.fleet = fleet
        self.params = params or LogWindowParams()
        self.params.validate()
        self.max_sources = max_sources
        self._by: OrderedDict[str, WindowAssembler] = OrderedDict()  # least recently active first
        self._due: list[tuple[float, str]] = []  # heap of (next deadline, source), stale entries allowed
        self._next: dict[str, float] = {}
        self.watermark = -math.inf
        self.evicted = 0

    def __len__(self) -> int:
        return sum(len(a) for a in self._by.values())

    def sources(self) -> list[str]:
        return list(self._by)

    def has(self, source: str) -> bool:
        return source in self._by

    def _schedule(self, source: str, asm: WindowAssembler) -> None:
        d = asm.next_deadline()
        if d == self._next.get(source, math.inf):
            return
        self._next[source] = d
        if math.isfinite(d):
            heapq.heappush(self._due, (d, source))
            if len(self._due) > 4 * len(self._by) + 1024:  # drop stale entries
                self._due = [(t, s) for s, t in self._next.items() if math.isfinite(t)]
                heapq.heapify(self._due)

    def add(self, ts: float, template_id: int, line: str, source: str, rank: int = 0) -> list[ClosedWindow]:
        """One line of *source*; returns the windows of any source that event time closed."""
        closed = self.advance(ts)
        asm = self._by.get(source)
        if asm is None:
            asm = self._by[source] = WindowAssembler(source, self.params)
            while len(self._by) > self.max_sources:
                closed += self.drop(next(iter(self._by)))
                self.evicted += 1
        else:
            self._by.move_to_end(source)
        closed += asm.add(ts, template_id, line, rank)
        self._schedule(source, asm)
        return closed

    def advance(self, ts: float) -> list[ClosedWindow]:
        """Move the fleet's event time to *ts*: the windows of every source now complete."""
        if ts <= self.watermark:
            return []
        self.watermark = ts
        out: list[ClosedWindow] = []
        while self._due and self._due[0][0] <= ts:
            d, source = heapq.heappop(self._due)
            asm = self._by.get(source)
            if asm is None or self._next.get(source) != d:
                continue
            self._next.pop(source, None)
            out += asm.advance(ts)
            self._schedule(source, asm)
        return out

    def drop(self, source: str) -> list[ClosedWindow]:
        """Close every open window of *source* and forget it."""
        asm = self._by.pop(source, None)
        self._next.pop(source, None)
        return asm.flush() if asm is not None else []

    def flush(self) -> list[ClosedWindow]:
        """Close every open window (end of stream)."""
        out: list[ClosedWindow] = []
        for asm in self._by.values():
            out += asm.flush()
        self._next.clear()
        self._due.clear()
        return out
