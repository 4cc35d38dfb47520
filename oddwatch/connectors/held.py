"""The one meter connectors set for back-pressure: ``held{reason}`` is 1 while a connector holds
its flow back instead of dropping (the spool is full, the WAL's disk is full).

The command injects its :class:`oddwatch.observe.metrics.Metrics` ``held`` gauge; connectors
import nothing from ``oddwatch.observe``. :data:`NOT_HELD` counts nothing.

>>> NOT_HELD.labels(reason="spool_full").set(1)
"""

from __future__ import annotations

from typing import Protocol


class Level(Protocol):
    def set(self, value: float) -> None: ...


class HeldMeter(Protocol):
    """A gauge labelled by ``reason``."""

    def labels(self, *, reason: str) -> Level: ...


class _Nothing:
    def set(self, value: float) -> None:
        pass


class _NotHeld:
    def labels(self, *, reason: str) -> Level:
        return _Nothing()


NOT_HELD: HeldMeter = _NotHeld()
