"""Tests of the three-stage log scoring core (cheap hashing embedder, no model)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from detectors.embedders import HashingEmbedder, TemplateEmbeddingCache
from oddwatch.core.log_pipeline import (
    GroupNovelty,
    GroupTemplates,
    LogParams,
    LogScorer,
    WindowResult,
    embed_batch,
)

NORMAL = (
    "Receiving block blk_{b} src: /10.0.0.1:50010 dest: /10.0.0.2:50010",
    "PacketResponder 1 for block blk_{b} terminating",
    "Received block blk_{b} of size 67108864 from /10.0.0.1",
)


def _params(**kw: object) -> LogParams:
    base: dict[str, object] = {"model": "hashing", "window_mode": "session", "session_gap_s": 10.0, "warmup": 5}
    base.update(kw)
    return LogParams(**base)  # type: ignore[arg-type]


def _session(scorer: LogScorer, b: int, ts: float, lines: tuple[str, ...] = NORMAL) -> list[WindowResult]:
    out: list[WindowResult] = []
    for line in lines:
        out += scorer.process(ts, "site/host/app", line.format(b=b))
    return out


def _normal_stream(scorer: LogScorer, n: int, start: int = 0) -> list[WindowResult]:
    out: list[WindowResult] = []
    for i in range(start, start + n):
        out += _session(scorer, i, 100.0 * i)
    return out


def test_normal_windows_pass_and_a_new_template_alerts_with_an_explanation() -> None:
    scorer = LogScorer(_params())
    normal = _normal_stream(scorer, 60)
    assert len(normal) == 59 and not any(r.is_anomaly for r in normal)
    assert all(r.score < 0.01 for r in normal[1:])
    bad = NORMAL + ("writeBlock blk_{b} received exception java.io.IOException: Could not read from stream",)
    _session(scorer, 999, 6000.0, bad)
    (result,) = _normal_stream(scorer, 1, start=61)  # closes the bad session
    assert result.window_id.startswith("site/host/app:blk_999")
    assert result.is_anomaly and result.score >= result.threshold and 0 <= result.score <= 1
    expl = result.explanation
    (rare,) = expl["rare_templates"]
    assert "received exception" in rare["template"] and "blk_999" in rare["example"]
    assert 1 <= len(expl["nearest_normal"]["examples"]) <= 3
    assert expl["threshold"] == result.threshold
    assert not result.admitted


def test_windows_of_known_templates_cost_no_model_call() -> None:
    scorer = LogScorer(_params())
    _normal_stream(scorer, 20)
    calls = scorer.cache.model_calls
    _normal_stream(scorer, 50, start=20)
    assert scorer.cache.model_calls == calls
    assert scorer.cache.hit_rate > 0.9


def test_drain_template_change_recomputes_cache_and_index_entries_at_once() -> None:
    scorer = LogScorer(_params(dedupe_distance=0.0))
    for i in range(30):
        _session(scorer, i, 100.0 * i, ("user alice logged in to blk_{b}", "session closed for blk_{b}"))
    group = scorer.novelty["site/host/app"]
    assert group.index is not None and len(group.index) > 0
    before = group.recomputed
    # Drain3 generalises "user alice ..." to "user <*> ..." on this line: a template change
    results = scorer.process(3000.0, "site/host/app", "user bob logged in to blk_77")
    assert group.recomputed > before, "index entries using the changed template were recomputed"
    assert "user <*> logged in to <BLK>" in scorer.cache  # the new text was embedded immediately
    tid = next(t for t, (text, _) in group.table.items() if text.startswith("user <*>"))
    np.testing.assert_allclose(group.table[tid][1], scorer.cache.embed(["user <*> logged in to <BLK>"])[0])
    for key, meta in group.index.items():
        want = group.vector(meta["template_counts"])
        want /= np.linalg.norm(want)
        np.testing.assert_allclose(group.index.vector(key), want, atol=1e-5)
    assert all(not r.is_anomaly for r in results)


def test_model_change_reembeds_every_template_and_rebuilds_the_index() -> None:
    scorer = LogScorer(_params())
    _normal_stream(scorer, 30)
    group = scorer.novelty["site/host/app"]
    n_entries = len(group.index or []) + len(group.candidates or [])
    assert scorer.set_embedder(HashingEmbedder(dim=64, seed=0)) == 0  # same model: nothing to do
    assert scorer.set_embedder(HashingEmbedder(dim=32, seed=7)) == n_entries
    assert group.index is not None and group.index.dim == 32 + scorer.params.count_dims
    assert group.model == ("hashing-32-7", None)
    after = _normal_stream(scorer, 10, start=30)
    assert after and not any(r.is_anomaly for r in after)


def test_embed_batch_embeds_distinct_templates_of_all_groups_once() -> None:
    cache = TemplateEmbeddingCache(HashingEmbedder(dim=16))
    groups = {k: GroupTemplates(k, _params()) for k in ("a", "b")}
    windows = []
    for g in groups.values():
        for line in NORMAL:
            g.process(0.0, line.format(b=1))
        windows += g.flush()
    embedded, _ = embed_batch(cache, windows)
    assert cache.model_calls == 1 and cache.batch_sizes == [3]
    assert len(embedded) == 2 and all(len(e.vectors) == 3 for e in embedded)


def test_group_state_pickles() -> None:
    scorer = LogScorer(_params())
    _normal_stream(scorer, 20)
    templates = pickle.loads(pickle.dumps(scorer.templates["site/host/app"]))
    novelty: GroupNovelty = pickle.loads(pickle.dumps(scorer.novelty["site/host/app"]))
    original = scorer.novelty["site/host/app"]
    assert len(templates.miner) == len(scorer.templates["site/host/app"].miner)
    windows = templates.process(5000.0, "x blk_1")[0]
    (ew,), _ = embed_batch(scorer.cache, windows)
    assert novelty.process(ew).score == pytest.approx(original.process(ew).score)


def test_params_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="count_weight = 2"):
        LogScorer(_params(count_weight=2.0))
    with pytest.raises(ValueError, match="weighting = 'bm25'"):
        LogScorer(_params(weighting="bm25"))
