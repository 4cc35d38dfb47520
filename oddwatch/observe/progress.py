"""The publishing loop of the simulators and the replayer: pacing and a tiny progress bar.

:class:`Pacer` sleeps so that messages go out at N times real time against their timestamps,
and never faster than a rate limit. :class:`Progress` draws one line on stderr with the count,
rate and ETA, at most a few times a second. :func:`publish_stream` puts them together around
any publisher with :class:`oddwatch.connectors.mqtt.MqttPublisher`'s methods.

>>> import io
>>> out = io.StringIO()
>>> bar = Progress(total=4, stream=out, label="replay", min_interval_s=0.0)
>>> for _ in range(4):
...     bar.update()
>>> bar.close()
>>> "4/4" in out.getvalue() and "100.0%" in out.getvalue()
True
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TextIO, TypeVar

T = TypeVar("T")


class Publisher(Protocol):
    """What the publishing loop needs from :class:`oddwatch.connectors.mqtt.MqttPublisher`."""

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> Any: ...

    def wait_all(self, timeout: float) -> Any: ...

    def close(self) -> None: ...


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``.

    >>> format_duration(75), format_duration(3725.2)
    ('1:15', '1:02:05')
    """
    s = int(round(max(0.0, seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_rate(per_s: float) -> str:
    """A compact rate.

    >>> format_rate(12.3), format_rate(45678)
    ('12.3/s', '45.7k/s')
    """
    return f"{per_s / 1000:.1f}k/s" if per_s >= 1000 else f"{per_s:.1f}/s"


class Progress:
    """A one-line progress display: ``label  done/total  pct  rate  ETA``.

    Parameters
    ----------
    total
        Expected count, or None when unknown (no percentage nor ETA).
    stream
        Where to draw (stderr by default); ``enabled=False`` draws nothing.
    min_interval_s
        Least time between redraws; when the stream is not a terminal, at least 5 s, and each
        update is a line of its own (so log files stay readable).
    """

    def __init__(self, total: int | None = None, *, label: str = "", stream: TextIO | None = None,
                 enabled: bool = True, min_interval_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval_s = min_interval_s if self.tty or min_interval_s == 0 else max(5.0, min_interval_s)
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._last_draw = float("-inf")

    def update(self, n: int = 1) -> None:
        """Count *n* more items and redraw if it is time to."""
        self.done += n
        now = self.clock()
        if self.enabled and now - self._last_draw >= self.min_interval_s:
            self._last_draw = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The text of the bar."""
        elapsed = max(1e-9, (self.clock() if now is None else now) - self.started)
        rate = self.done / elapsed
        parts = [self.label] if self.label else []
        if self.total:
            total = max(self.total, self.done)  # an estimated total may be passed
            pct = 100.0 * self.done / total
            eta = (total - self.done) / rate if rate > 0 else float("inf")
            parts += [f"{self.done}/{total}", f"{pct:5.1f}%", format_rate(rate),
                      f"ETA {format_duration(eta) if eta != float('inf') else '?'}"]
        else:
            parts += [str(self.done), format_rate(rate), f"elapsed {format_duration(elapsed)}"]
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.line(now) + "\x1b[K" if self.tty else self.line(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw(self.clock())
            if self.tty:
                self.stream.write("\n")
            self.stream.flush()


class Pacer:
    """Sleeps so that items go out at *speed* times real time and at most *rate_limit* per second.

    Parameters
    ----------
    speed
        N times real time against the items' timestamps; None: ignore timestamps.
    rate_limit
        Most items per second; None or 0: no limit.

    >>> p = Pacer(speed=None, rate_limit=None)
    >>> p.wait(None); p.count
    1
    """

    def __init__(self, *, speed: float | None = 1.0, rate_limit: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"pacing speed must be > 0 or None (as fast as allowed), got {speed!r}")
        if rate_limit is not None and rate_limit < 0:
            raise ValueError(f"pacing rate_limit must be >= 0 or None, got {rate_limit!r}")
        self.speed, self.rate_limit = speed, rate_limit or None
        self.clock, self.sleep = clock, sleep
        self.count = 0
        self._t0: float | None = None
        self._ts0: datetime | None = None

    def wait(self, ts: datetime | None) -> None:
        """Block until the item stamped *ts* is due."""
        now = self.clock()
        if self._t0 is None:
            self._t0 = now
        due = self._t0
        if self.speed is not None and ts is not None:
            if self._ts0 is None:
                self._ts0 = ts
            due = max(due, self._t0 + (ts - self._ts0).total_seconds() / self.speed)
        if self.rate_limit:
            due = max(due, self._t0 + self.count / self.rate_limit)
        if due > now:
            self.sleep(due - now)
        self.count += 1


def publish_stream(items: Iterable[T], publisher: Publisher, *, topic_of: Callable[[T], str],
                   payload_of: Callable[[T], bytes], ts_of: Callable[[T], datetime | None],
                   speed: float | None = 1.0, rate_limit: float | None = None, qos: int = 1,
                   progress: Progress | None = None, max_items: int | None = None,
                   wait_timeout_s: float = 30.0) -> dict[str, Any]:
    """Publish every item, paced; returns counts. Ctrl-C stops early and still flushes.

    Returns
    -------
    dict
        ``published`` (messages handed to the client), ``bytes``, ``elapsed_s``, ``rate``
        (messages per second achieved), ``interrupted`` and ``flushed`` (what ``wait_all``
        returned: whether every QoS > 0 message was acknowledged in time).
    """
    pacer = Pacer(speed=speed, rate_limit=rate_limit)
    published = size = 0
    interrupted = False
    t0 = time.monotonic()
    try:
        for item in items:
            if max_items is not None and published >= max_items:
                break
            pacer.wait(ts_of(item))
            payload = payload_of(item)
            publisher.publish(topic_of(item), payload, qos=qos)
            published += 1
            size += len(payload)
            if progress is not None:
                progress.update()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        flushed = publisher.wait_all(wait_timeout_s)
        if progress is not None:
            progress.close()
    elapsed = time.monotonic() - t0
    return {"published": published, "bytes": size, "elapsed_s": round(elapsed, 3),
            "rate": round(published / elapsed, 1) if elapsed > 0 else 0.0,
            "interrupted": interrupted, "flushed": bool(flushed)}
