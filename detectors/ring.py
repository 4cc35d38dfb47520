"""Compact streaming buffers: a numpy ring of the newest values and its sorted view.

Both pickle only the filled part of their buffer (in its storage dtype); the sorted view
is derived state, rebuilt on load.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

_START = 16  # values a new buffer holds before it grows


def sorted_quantile(s: Sequence[float], q: float) -> float:
    """The ``q`` quantile of the sorted values ``s`` by linear interpolation (numpy's default).

    >>> sorted_quantile([1.0, 2.0, 4.0], 0.75)
    3.0
    """
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class Ring:
    """The newest ``size`` values in a numpy buffer, readable oldest first without copying.

    While it fills, the values sit in order in a buffer that doubles as needed (a series that
    never fills it allocates little). Once full, every value is written twice (at ``pos`` and
    ``pos + size``) so that the newest ``k`` values are always one contiguous slice.

    Parameters
    ----------
    size
        Values kept.
    dtype
        Storage type; ``float32`` halves the memory and pickled bytes of references whose
        precision does not matter (quantiles of past statistics).

    Examples
    --------
    >>> r = Ring(3)
    >>> [r.append(v) for v in (1.0, 2.0, 3.0, 4.0)]
    [None, None, None, 1.0]
    >>> r.last(2).tolist(), len(r)
    ([3.0, 4.0], 3)
    """

    def __init__(self, size: int, dtype: Any = np.float64) -> None:
        if size < 1:
            raise ValueError(f"Ring: size = {size!r} must be >= 1")
        self.size = size
        self._buf = np.zeros(min(size, _START), dtype=dtype)
        self._pos = 0
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, value: float) -> float | None:
        """Add ``value``; return the value it pushed out (None while not full)."""
        pos, buf, size = self._pos, self._buf, self.size
        if self._n < size:  # filling: the values in order at [0, n)
            if pos == len(buf):
                buf = self._buf = np.concatenate((buf, np.zeros(min(len(buf), size - len(buf)), buf.dtype)))
            buf[pos] = value
            self._n = pos = pos + 1
            if pos < size:
                self._pos = pos
            else:  # full: mirror the values
                self._buf = np.concatenate((buf, buf))
                self._pos = 0
            return None
        old = float(buf[pos])
        buf[pos] = value
        buf[pos + size] = value
        self._pos = pos + 1 if pos + 1 < size else 0
        return old

    def last(self, k: int) -> np.ndarray:
        """The newest ``min(k, len)`` values, oldest first (a view: do not keep it)."""
        end = self._pos + self.size if self._n == self.size else self._pos
        return self._buf[end - min(k, self._n) : end]

    def values(self) -> np.ndarray:
        """A copy of every value held, oldest first."""
        return self.last(self._n).copy()

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "values": self.values()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        values = state["values"]
        self.size = size = state["size"]
        n = self._n = len(values)
        if n < size:
            self._buf = np.zeros(max(n, min(size, _START)), dtype=values.dtype)
            self._buf[:n] = values
            self._pos = n
        else:
            self._buf = np.concatenate((values, values))
            self._pos = 0


_TYPECODES = {np.dtype(np.float64): "d", np.dtype(np.float32): "f"}


class SortedRing:
    """The newest ``size`` values, in arrival order and sorted (O(log n) search, quantiles).

    The arrival order (for eviction) is a numpy buffer written once per value; the sorted
    view is an :class:`array.array` in the storage type (4 or 8 bytes a value, where a list
    of floats takes 32). Pickles like :class:`Ring`: the values held, oldest first.

    Examples
    --------
    >>> w = SortedRing(3)
    >>> for v in [5.0, 1.0, 3.0, 9.0]:
    ...     _ = w.append(v)
    >>> w.sorted.tolist(), w.median, w.quantile(1.0), w.values().tolist()
    ([1.0, 3.0, 9.0], 3.0, 9.0, [1.0, 3.0, 9.0])
    """

    def __init__(self, size: int, dtype: Any = np.float64) -> None:
        if size < 1:
            raise ValueError(f"SortedRing: size = {size!r} must be >= 1")
        self.size = size
        self._buf = np.zeros(min(size, _START), dtype=dtype)  # doubles as needed while filling
        if self._buf.dtype not in _TYPECODES:
            raise ValueError(f"SortedRing: dtype = {dtype!r} must be float64 or float32")
        self._type = self._buf.dtype.type
        self._pos = 0
        self._n = 0
        self.sorted: array[float] = array(_TYPECODES[self._buf.dtype])

    def __len__(self) -> int:
        return self._n

    def append(self, value: float) -> float | None:
        """Add ``value``; return the value it pushed out (None while not full)."""
        value = float(self._type(value))  # as stored, so the sorted view matches a reload
        pos, s = self._pos, self.sorted
        old = None
        if self._n == self.size:
            old = float(self._buf[pos])
            del s[bisect.bisect_left(s, old)]
        else:
            self._n += 1
            if pos == len(self._buf):
                grow = min(pos, self.size - pos)
                self._buf = np.concatenate((self._buf, np.zeros(grow, self._buf.dtype)))
        self._buf[pos] = value
        self._pos = pos + 1 if pos + 1 < self.size else 0
        s.insert(bisect.bisect_right(s, value), value)
        return old

    def values(self) -> np.ndarray:
        """A copy of every value held, oldest first."""
        if self._n < self.size:
            return self._buf[: self._n].copy()
        return np.concatenate((self._buf[self._pos :], self._buf[: self._pos]))

    def quantile(self, q: float) -> float:
        """Quantile by linear interpolation (numpy's default method)."""
        return sorted_quantile(self.sorted, q)

    @property
    def median(self) -> float:
        return self.quantile(0.5)

    @property
    def max(self) -> float:
        return self.sorted[-1]

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "values": self.values()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        values = state["values"]
        SortedRing.__init__(self, state["size"], values.dtype)
        n = len(values)
        self._buf = np.zeros(max(n, len(self._buf)), dtype=values.dtype)
        self._buf[:n] = values
        self._n = n
        self._pos = n % self.size
        self.sorted = array(_TYPECODES[self._buf.dtype], np.sort(values).tobytes())


class SelfReference:
    """Past values of a statistic, and the alert level they set for its present value.

    A value joins the reference ``lag`` readings after it was computed, once its window no
    longer overlaps the present. The alert level is ``max(level x the q-quantile, max_level x
    the maximum)`` of the reference: the quantile term sets the false-alert rate on ordinary
    noise, the maximum term keeps a series that is naturally spiky quiet.

    Examples
    --------
    >>> ref = SelfReference(lag=1, size=100, q=0.9, level=2.0, max_level=1.0, min_samples=10)
    >>> for i in range(100):
    ...     ref.learn(1.0 + (i % 2))  # 1, 2, 1, 2, ...: quantile 2, maximum 2
    >>> ref.ratio(2.0), ref.ratio(8.0)  # alert level max(2.0 x 2, 1.0 x 2) = 4
    (0.5, 2.0)
    """

    def __init__(self, *, lag: int, size: int, q: float, level: float, max_level: float,
                 min_samples: int) -> None:
        if lag < 1:
            raise ValueError(f"SelfReference: lag = {lag!r} must be >= 1")
        self.q = q
        self.level = level
        self.max_level = max_level
        self.min_samples = min_samples
        self._delay = Ring(lag - 1) if lag > 1 else None
        self.past = SortedRing(size, np.float32)

    def learn(self, stat: float) -> None:
        if self._delay is not None:
            old = self._delay.append(stat)
            if old is None:
                return
            stat = old
        self.past.append(stat)

    def ratio(self, stat: float, floor: float = 0.0) -> float:
        """``stat`` over its alert level (1 = the alert level; 0 before ``min_samples``)."""
        past = self.past
        if self.level <= 0 or stat <= 0 or len(past) < self.min_samples:
            return 0.0
        ref = max(self.level * past.quantile(self.q), self.max_level * past.sorted[-1])
        return stat / max(ref, floor, 1e-300)
