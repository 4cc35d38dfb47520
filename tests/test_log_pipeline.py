"""Tests of a log source's decision object (cheap hashing embedder, no model)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from detectors.embedders import HashingEmbedder, TemplateEmbeddingCache
from oddwatch.core.log_pipeline import LogParams, WindowResult
from oddwatch.core.logsource import Decided, LogOutput, LogSourceState

NORMAL = (
    "Receiving block blk_{b} src: /10.0.0.1:50010 dest: /10.0.0.2:50010",
    "PacketResponder 1 for block blk_{b} terminating",
    "Received block blk_{b} of size 67108864 from /10.0.0.1",
)
KEY = "site/host/app"


def _params(**kw: object) -> LogParams:
    base: dict[str, object] = {"model": "hashing", "window_mode": "session", "session_gap_s": 10.0, "warmup": 5}
    base.update(kw)
    return LogParams(**base)  # type: ignore[arg-type]


def _state(**kw: object) -> LogSourceState:
    return LogSourceState(KEY, _params(**kw), embeddings=TemplateEmbeddingCache(HashingEmbedder(dim=64)))


def _cache(state: LogSourceState) -> TemplateEmbeddingCache:
    return state._embeddings  # type: ignore[return-value]  # the cache the test bound


def _results(outputs: list[LogOutput]) -> list[WindowResult]:
    return [o.result for o in outputs if isinstance(o, Decided)]


def _session(state: LogSourceState, b: int, ts: float, lines: tuple[str, ...] = NORMAL) -> list[WindowResult]:
    return _results(state.step([(ts, line.format(b=b)) for line in lines]))


def _normal_stream(state: LogSourceState, n: int, start: int = 0) -> list[WindowResult]:
    out: list[WindowResult] = []
    for i in range(start, start + n):
        out += _session(state, i, 100.0 * i)
    return out


def test_normal_windows_pass_and_a_new_template_alerts_with_an_explanation() -> None:
    state = _state()
    normal = _normal_stream(state, 60)
    assert len(normal) == 59 and not any(r.is_anomaly for r in normal)
    assert all(r.score < 0.01 for r in normal[1:])
    bad = NORMAL + ("writeBlock blk_{b} received exception java.io.IOException: Could not read from stream",)
    _session(state, 999, 6000.0, bad)
    (result,) = _normal_stream(state, 1, start=61)  # closes the bad session
    assert result.window_id.startswith("site/host/app:blk_999")
    assert result.is_anomaly and result.score >= result.threshold and 0 <= result.score <= 1
    expl = result.explanation
    (rare,) = expl["rare_templates"]
    assert "received exception" in rare["template"] and "blk_999" in rare["example"]
    assert 1 <= len(expl["nearest_normal"]["examples"]) <= 3
    assert expl["threshold"] == result.threshold
    assert not result.admitted


def test_windows_of_known_templates_cost_no_model_call() -> None:
    state = _state()
    _normal_stream(state, 20)
    calls = _cache(state).model_calls
    _normal_stream(state, 50, start=20)
    assert _cache(state).model_calls == calls


def test_drain_template_change_recomputes_cache_and_index_entries_at_once() -> None:
    state = _state(dedupe_distance=0.0)
    for i in range(30):
        _session(state, i, 100.0 * i, ("user alice logged in to blk_{b}", "session closed for blk_{b}"))
    group = state.novelty
    assert group.index is not None and len(group.index) > 0
    before = group.recomputed
    # Drain3 generalises "user alice ..." to "user <*> ..." on this line: a template change
    results = _results(state.step([(3000.0, "user bob logged in to blk_77")]))
    assert group.recomputed > before, "index entries using the changed template were recomputed"
    assert "user <*> logged in to <BLK>" in _cache(state)  # the new text was embedded immediately
    tid = next(t for t, (text, _) in group.table.items() if text.startswith("user <*>"))
    np.testing.assert_allclose(group.table[tid][1], _cache(state).embed(["user <*> logged in to <BLK>"])[0])
    for key, meta in group.index.items():
        want = group.vector(meta["template_counts"])
        want /= np.linalg.norm(want)
        np.testing.assert_allclose(group.index.vector(key), want, atol=1e-5)
    assert all(not r.is_anomaly for r in results)


def test_model_change_reembeds_every_template_and_rebuilds_the_index() -> None:
    state = _state()
    _normal_stream(state, 30)
    group = state.novelty
    n_entries = len(group.index or []) + len(group.candidates or [])
    assert state.bind(TemplateEmbeddingCache(HashingEmbedder(dim=64, seed=0))) == 0  # same model: nothing to do
    assert state.bind(TemplateEmbeddingCache(HashingEmbedder(dim=32, seed=7))) == n_entries
    assert group.index is not None and group.index.dim == 32 + state.params.count_dims
    assert group.model == ("hashing-32-7", None)
    after = _normal_stream(state, 10, start=30)
    assert after and not any(r.is_anomaly for r in after)


def test_the_new_templates_of_a_batch_are_embedded_in_one_model_call() -> None:
    state = _state()
    lines = [(10.0 * b, line.format(b=b)) for b in range(3) for line in NORMAL]
    _results(state.step(lines) + state.flush())
    assert _cache(state).model_calls == 1 and _cache(state).batch_sizes == [3]
    other = LogSourceState("site/host/other", _params(), embeddings=_cache(state))  # the worker's cache
    assert len(_results(other.step(lines) + other.flush())) == 3
    assert _cache(state).model_calls == 1  # the other source's templates were cached


def test_decisions_do_not_depend_on_where_batches_end() -> None:
    lines = [(100.0 * i + j, line.format(b=i)) for i in range(40) for j, line in enumerate(NORMAL)]
    lines += [(4000.0, "writeBlock blk_999 received exception java.io.IOException"), (4100.0, NORMAL[0].format(b=1))]
    one, batched = _state(), _state()
    by_line = [o for ln in lines for o in one.step([ln])] + one.flush()
    by_batch = [o for i in range(0, len(lines), 17) for o in batched.step(lines[i:i + 17])] + batched.flush()
    assert by_line == by_batch
    assert any(r.is_anomaly for r in _results(by_line))


def test_state_pickles_without_its_model_and_resumes_without_reembedding() -> None:
    state = _state()
    _normal_stream(state, 20)
    restored: LogSourceState = pickle.loads(pickle.dumps(state))
    assert restored._embeddings is None
    with pytest.raises(RuntimeError, match="no embeddings bound"):
        restored.step([(5000.0, "x blk_1")])
    fresh = TemplateEmbeddingCache(HashingEmbedder(dim=64))
    restored.bind(fresh)
    assert _normal_stream(restored, 10, start=20) == _normal_stream(state, 10, start=20)
    assert fresh.model_calls == 0  # known templates: the state holds their vectors


def test_params_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="count_weight = 2"):
        _state(count_weight=2.0)
    with pytest.raises(ValueError, match="weighting = 'bm25'"):
        _state(weighting="bm25")
