"""Novelty against a usearch index of windows judged normal.

The score of a vector is its distance to the nearest stored normal window, clipped to
[0, 1]: 0 is a window seen before, 1 is nothing alike (for ``metric="cos"`` the raw distance
is ``1 - cosine``). Each stored entry keeps metadata (a window summary: source, start, end,
example lines, template counts) so that an alert can show the nearest normal window, and so
that a caller can recompute an entry's vector when the embedding of one of its templates
changes (:meth:`NoveltyIndex.replace`).

Capacity and eviction: at most ``capacity`` entries. ``eviction="oldest"`` removes the entry
added first (FIFO, so the index follows slow drift); ``eviction="none"`` refuses new entries
once full (``add`` returns None).

Two-stage search (``search_dims``): a second index holds only the first ``search_dims``
components of each vector (Matryoshka truncation, re-normalised); a query first takes
``k * oversample`` candidates there, then rescored exactly at full size. It only helps models
trained for truncation (Matryoshka); all-MiniLM-L6-v2 is not, measure before enabling.

Examples
--------
>>> import numpy as np
>>> idx = NoveltyIndex(dim=4, k=2)
>>> idx.score(np.array([1.0, 0, 0, 0]))[0]  # empty index: everything is new
1.0
>>> idx.add(np.array([1.0, 0, 0, 0]), {"source": "a"})
0
>>> round(idx.score(np.array([1.0, 0.01, 0, 0]))[0], 3)
0.0
>>> round(idx.score(np.array([0, 1.0, 0, 0]))[0], 3)
1.0
>>> import pickle
>>> again = pickle.loads(pickle.dumps(idx))
>>> len(again), again.meta(0)
(1, {'source': 'a'})
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from usearch.index import Index

EVICTIONS = ("oldest", "none")


def _unit(vec: np.ndarray) -> np.ndarray:
    vec = np.asarray(vec, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


class NoveltyIndex:
    """Nearest-normal-window novelty with bounded capacity, metadata and pickling.

    Parameters
    ----------
    dim
        Vector size.
    metric
        usearch metric: ``"cos"`` (default), ``"l2sq"`` or ``"ip"``; vectors are stored
        L2-normalised, so cosine and inner product rank alike.
    k
        Neighbours returned by :meth:`score` (the score uses the nearest).
    capacity
        Most entries kept.
    eviction
        ``"oldest"`` (FIFO) or ``"none"`` (refuse when full).
    search_dims
        Two-stage search on the first ``search_dims`` components, rescored at full size;
        None searches at full size directly.
    oversample
        Candidates per neighbour taken in the first stage.
    """

    def __init__(
        self,
        *,
        dim: int,
        metric: str = "cos",
        k: int = 5,
        capacity: int = 10000,
        eviction: str = "oldest",
        search_dims: int | None = None,
        oversample: int = 8,
    ) -> None:
        if dim < 1:
            raise ValueError(f"NoveltyIndex: dim = {dim!r} must be >= 1")
        if k < 1:
            raise ValueError(f"NoveltyIndex: k = {k!r} must be >= 1")
        if capacity < 1:
            raise ValueError(f"NoveltyIndex: capacity = {capacity!r} must be >= 1")
        if eviction not in EVICTIONS:
            raise ValueError(f"NoveltyIndex: eviction = {eviction!r} must be one of {EVICTIONS}")
        if search_dims is not None and not 0 < search_dims <= dim:
            raise ValueError(f"NoveltyIndex: search_dims = {search_dims!r} must be in 1..dim={dim}")
        self.dim = dim
        self.metric = metric
        self.k = k
        self.capacity = capacity
        self.eviction = eviction
        self.search_dims = search_dims if search_dims != dim else None
        self.oversample = oversample
        self._meta: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._next_key = 0
        self.evicted = 0
        self._full = self._new_index(dim)
        self._coarse = self._new_index(self.search_dims) if self.search_dims else None

    def _new_index(self, ndim: int) -> Index:
        return Index(ndim=ndim, metric=self.metric, dtype="f32")

    def __len__(self) -> int:
        return len(self._meta)

    def _check(self, vec: np.ndarray) -> np.ndarray:
        vec = _unit(vec)
        if vec.shape[0] != self.dim:
            raise ValueError(f"NoveltyIndex: vector has {vec.shape[0]} dims, index has dim={self.dim}")
        return vec

    def _distance(self, a: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.metric == "l2sq":
            return ((rows - a) ** 2).sum(axis=1)
        return 1.0 - rows @ a

    def search(self, vec: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest entries: (keys, distances), nearest first."""
        vec = self._check(vec)
        k = min(k or self.k, len(self))
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self._coarse is None:
            found = self._full.search(vec, k)
            return np.asarray(found.keys, dtype=np.int64), np.asarray(found.distances, dtype=np.float32)
        coarse = self._coarse.search(_unit(vec[: self.search_dims]), min(len(self), k * self.oversample))
        keys = np.asarray(coarse.keys, dtype=np.int64)
        rows = np.vstack(self._full.get(keys)).astype(np.float32)  # type: ignore[arg-type]
        dist = self._distance(vec, rows)
        order = np.argsort(dist, kind="stable")[:k]
        return keys[order], dist[order].astype(np.float32)

    def score(self, vec: np.ndarray) -> tuple[float, int | None, np.ndarray]:
        """Novelty in [0, 1] (distance to the nearest entry), its key, and the k distances."""
        keys, dist = self.search(vec)
        if len(keys) == 0:
            return 1.0, None, dist
        return float(np.clip(dist[0], 0.0, 1.0)), int(keys[0]), dist

    def add(self, vec: np.ndarray, meta: dict[str, Any] | None = None) -> int | None:
        """Store a normal window; returns its key, or None when full with ``eviction="none"``."""
        vec = self._check(vec)
        if len(self) >= self.capacity:
            if self.eviction == "none":
                return None
            oldest = next(iter(self._meta))
            self.remove(oldest)
            self.evicted += 1
        key = self._next_key
        self._next_key += 1
        self._put(key, vec)
        self._meta[key] = dict(meta or {})
        return key

    def _put(self, key: int, vec: np.ndarray) -> None:
        self._full.add(key, vec)
        if self._coarse is not None:
            self._coarse.add(key, _unit(vec[: self.search_dims]))

    def remove(self, key: int) -> None:
        """Forget one entry."""
        if key not in self._meta:
            raise KeyError(f"NoveltyIndex: no entry with key {key!r}")
        self._full.remove(key)
        if self._coarse is not None:
            self._coarse.remove(key)
        del self._meta[key]

    def replace(self, key: int, vec: np.ndarray) -> None:
        """Recompute an entry's vector in place (same key, same metadata, same age)."""
        if key not in self._meta:
            raise KeyError(f"NoveltyIndex: no entry with key {key!r}")
        vec = self._check(vec)
        self._full.remove(key)
        if self._coarse is not None:
            self._coarse.remove(key)
        self._put(key, vec)

    def meta(self, key: int) -> dict[str, Any]:
        """The metadata stored with an entry."""
        return self._meta[key]

    def items(self) -> list[tuple[int, dict[str, Any]]]:
        """(key, metadata) of every entry, oldest first."""
        return list(self._meta.items())

    def vector(self, key: int) -> np.ndarray:
        """The stored (normalised) vector of an entry."""
        return np.asarray(self._full.get(key), dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_full"] = bytes(self._full.save() or b"")
        state["_coarse"] = None if self._coarse is None else bytes(self._coarse.save() or b"")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        full = Index.restore(state["_full"])
        if full is None:
            raise ValueError(f"NoveltyIndex: cannot restore a snapshot of dim={self.dim} (corrupt bytes)")
        self._full = full
        self._coarse = None if state["_coarse"] is None else Index.restore(state["_coarse"])

    def __repr__(self) -> str:
        return (
            f"NoveltyIndex(dim={self.dim}, metric={self.metric!r}, k={self.k}, size={len(self)}, "
            f"capacity={self.capacity}, eviction={self.eviction!r}, search_dims={self.search_dims})"
        )
