"""Bounded per-key state: which series or log sources a flow keeps, and which it evicts.

Anyone who can publish on a topic can create a new key (a sensor series, a log source), and
each key holds detector state. :class:`Admission` keeps at most ``capacity`` keys: a new key
beyond it takes the place of the least recently seen key if that one has been idle for at
least ``idle_s``, and is refused (an ``over_capacity`` ingest error) otherwise.
:class:`AdmitStep` applies it to a parse step's output; the flows discard the state of an
evicted key when its :class:`Evict` marker reaches the key's stateful step.

The object is pure and picklable; each Bytewax worker holds its own, so the cap applies per
worker process thread.

>>> adm = Admission(capacity=2, idle_s=60)
>>> adm.admit("a", 0.0), adm.admit("b", 10.0), adm.admit("c", 20.0)
((True, None), (True, None), (False, None))
>>> adm.admit("c", 61.0)  # "a" was last seen 61 s ago: evicted
(True, 'a')
>>> sorted(adm)
['b', 'c']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from oddwatch.records import IngestError, Message, Stream, excerpt
from oddwatch.settings import LogSettings, SensorSettings


@dataclass(frozen=True, slots=True)
class Evict:
    """Drop the state of ``key``: it was idle and its place went to a new key."""

    key: str
    idle_s: float


class Admission:
    """At most ``capacity`` keys; the least recently seen gives way once idle ``idle_s``.

    Parameters
    ----------
    capacity
        The most keys kept at once (at least 1).
    idle_s
        Seconds a key must have been silent before a new key may take its place.
    """

    def __init__(self, *, capacity: int, idle_s: float) -> None:
        if capacity < 1:
            raise ValueError(f"Admission: capacity = {capacity!r} must be at least 1")
        if idle_s < 0:
            raise ValueError(f"Admission: idle_s = {idle_s!r} must be >= 0")
        self.capacity = capacity
        self.idle_s = idle_s
        self._last_seen: OrderedDict[str, float] = OrderedDict()  # least recently seen first

    def __len__(self) -> int:
        return len(self._last_seen)

    def __iter__(self) -> Iterator[str]:
        return iter(self._last_seen)

    def admit(self, key: str, now: float) -> tuple[bool, str | None]:
        """``(admitted, evicted key or None)`` for an item of *key* seen at *now* (epoch s)."""
        seen = self._last_seen
        if key in seen:
            seen[key] = max(seen[key], now)
            seen.move_to_end(key)
            return True, None
        evicted = None
        if len(seen) >= self.capacity:
            oldest, last = next(iter(seen.items()))
            if now - last < self.idle_s:
                return False, None
            del seen[oldest]
            evicted = oldest
        seen[key] = now
        return True, evicted

    def idle_for(self, key: str, now: float) -> float:
        """Seconds since *key* was last seen (0 for an unknown key)."""
        return max(0.0, now - self._last_seen.get(key, now))

    def oldest_idle_s(self, now: float) -> float:
        """How long the least recently seen key has been idle (0 when empty)."""
        return max(0.0, now - next(iter(self._last_seen.values()), now))


class AdmitStep:
    """A parse step's output with keys beyond capacity refused and evictions marked.

    Wraps ``parse(msg) -> [item | IngestError]`` where items have a ``key``: an admitted
    item passes (preceded by an :class:`Evict` for the key it replaced); a refused one
    becomes an ``over_capacity`` :class:`IngestError` naming the key and the setting.

    >>> from datetime import datetime
    >>> from oddwatch.records import UTC, Reading
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> parse = lambda m: [Reading("s1", "a", m.topic, t, 1.0)]
    >>> step = AdmitStep(parse, Admission(capacity=1, idle_s=3600), stream="sensor",
    ...                  step="parse_reading", setting="[sensors].max_series")
    >>> step(Message("temp", b"1", t))[0].key
    's1/a/temp'
    >>> err, = step(Message("rpm", b"1", t))
    >>> err.reason, err.detail[:60]
    ('over_capacity', 's1/a/rpm is a new key, but [sensors].max_series = 1 keys are')
    """

    def __init__(self, parse: Callable[[Message], list[Any]], admission: Admission, *, stream: Stream,
                 step: str, setting: str) -> None:
        self.parse = parse
        self.admission = admission
        self.stream = stream
        self.step = step
        self.setting = setting

    def __call__(self, msg: Message) -> list[Any]:
        now = msg.received.timestamp()
        out: list[Any] = []
        for position, item in enumerate(self.parse(msg)):
            key = getattr(item, "key", None)
            if isinstance(item, IngestError) or not isinstance(key, str):
                out.append(item)
                continue
            idle = self.admission.oldest_idle_s(now)
            admitted, evicted = self.admission.admit(key, now)
            if evicted is not None:
                out.append(Evict(evicted, idle))
            out.append(item if admitted else self._refused(msg, key, idle, position))
        return out

    def _refused(self, msg: Message, key: str, idle: float, position: int) -> IngestError:
        adm = self.admission
        detail = (f"{key} is a new key, but {self.setting} = {adm.capacity} keys are in use and the least "
                  f"recently seen has been idle only {idle:.0f} s (< {adm.idle_s:g} s); raise the setting "
                  "or check who publishes on this topic")
        return IngestError(stream=self.stream, step=self.step, reason="over_capacity", topic=msg.topic,
                           payload=excerpt(msg.payload), detail=detail,
                           ts=msg.received + timedelta(microseconds=position))  # distinct, as spread_errors


def admit_series(parse: Callable[[Message], list[Any]], settings: SensorSettings) -> AdmitStep:
    """The sensor flow's parse step bounded by ``[sensors].max_series`` and ``idle_evict_s``."""
    return AdmitStep(parse, Admission(capacity=settings.max_series, idle_s=settings.idle_evict_s),
                     stream="sensor", step="parse_reading", setting="[sensors].max_series")


def admit_sources(parse: Callable[[Message], list[Any]], settings: LogSettings) -> AdmitStep:
    """The log flow's parse step bounded by ``[logs].max_sources`` and ``idle_evict_s``."""
    return AdmitStep(parse, Admission(capacity=settings.max_sources, idle_s=settings.idle_evict_s),
                     stream="log", step="parse_log", setting="[logs].max_sources")
