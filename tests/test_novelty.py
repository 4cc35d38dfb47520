"""Tests of the usearch novelty index."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from detectors.novelty import NoveltyIndex


def _rand(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_scores_are_distances_in_unit_range() -> None:
    idx = NoveltyIndex(dim=8, k=3)
    assert idx.score(np.ones(8)) == (1.0, None, pytest.approx(np.zeros(0)))
    rows = _rand(20, 8)
    for i, row in enumerate(rows):
        assert idx.add(row, {"i": i}) == i
    score, key, dist = idx.score(rows[5])
    assert key == 5 and score == pytest.approx(0.0, abs=1e-5) and len(dist) == 3
    far, _, _ = idx.score(-rows[5])
    assert 0.1 < far <= 1.0


def test_pickle_round_trip() -> None:
    idx = NoveltyIndex(dim=8, search_dims=4)
    rows = _rand(30, 8)
    for i, row in enumerate(rows):
        idx.add(row, {"i": i})
    again = pickle.loads(pickle.dumps(idx))
    assert len(again) == 30 and again.meta(7) == {"i": 7}
    for row in _rand(5, 8, seed=1):
        assert again.score(row)[:2] == pytest.approx(idx.score(row)[:2])
    assert again.add(rows[0]) == 30  # keys continue


def test_eviction_oldest_and_none() -> None:
    rows = _rand(5, 8)
    idx = NoveltyIndex(dim=8, capacity=3, eviction="oldest")
    for row in rows:
        idx.add(row)
    assert [k for k, _ in idx.items()] == [2, 3, 4] and idx.evicted == 2
    assert idx.score(rows[0])[1] != 0
    full = NoveltyIndex(dim=8, capacity=2, eviction="none")
    assert full.add(rows[0]) == 0 and full.add(rows[1]) == 1 and full.add(rows[2]) is None
    assert len(full) == 2


def test_two_stage_search_agrees_with_full_search() -> None:
    rows = _rand(300, 64)
    exact = NoveltyIndex(dim=64, k=1)
    staged = NoveltyIndex(dim=64, k=1, search_dims=32, oversample=16)
    for row in rows:
        exact.add(row)
        staged.add(row)
    queries = rows[:50] + 0.05 * _rand(50, 64, seed=3)
    agree = sum(exact.score(q)[1] == staged.score(q)[1] for q in queries)
    assert agree >= 48
    s, _, _ = staged.score(queries[0])
    assert s == pytest.approx(exact.score(queries[0])[0], abs=1e-4)  # rescored at full size


def test_replace_keeps_key_and_metadata() -> None:
    idx = NoveltyIndex(dim=4)
    key = idx.add(np.array([1.0, 0, 0, 0]), {"w": 1})
    idx.replace(key, np.array([0, 1.0, 0, 0]))
    assert idx.meta(key) == {"w": 1}
    assert idx.score(np.array([0, 1.0, 0, 0]))[0] == pytest.approx(0.0, abs=1e-6)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="eviction = 'lru'"):
        NoveltyIndex(dim=4, eviction="lru")
    with pytest.raises(ValueError, match="search_dims = 9"):
        NoveltyIndex(dim=4, search_dims=9)
    with pytest.raises(ValueError, match="5 dims"):
        NoveltyIndex(dim=4).score(np.ones(5))
