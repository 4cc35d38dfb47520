"""The log scoring core: templates -> windows -> template embeddings -> novelty -> decision.

The components of a log source's decision object
(:class:`oddwatch.core.logsource.LogSourceState`, which runs them in order):

1. :class:`GroupTemplates`: lines -> Drain3 template ids -> windows (:class:`TemplatedWindow`,
   with the window's kind) and template-change events (:class:`TemplateChange`).
2. Embeddings: the state attaches the embedding of every template a window or change uses
   (:class:`EmbeddedWindow`, :class:`EmbeddedChange`); only templates never embedded reach the
   model.
3. :class:`GroupNovelty`: window vector -> novelty score against a usearch index of normal
   windows -> calibrated threshold -> decision, admission of normal windows, and explanation
   data.

The window vector (measured on HDFS, see ``scripts/bench_logs.py`` and the report) is the
concatenation of two unit parts, weighted by ``count_weight``:

- semantic: the sum of the window's template embeddings weighted by ``(1 + log count) * idf``
  (idf over this group's windows), normalised;
- counts: ``(1 + log count) * idf`` of each template id hashed into ``count_dims`` slots,
  normalised, so that a missing step or an unusual count moves the vector even when the
  templates are semantically close.

The score is the cosine distance to the nearest normal window, clipped to [0, 1]. A window
is admitted to the index when it scores under the threshold (and is not a near duplicate of
an entry) and every template in it is common (in at least ``rare_fraction`` of the group's
windows so far and ``rare_min_windows``): a window with a rare template is never learnt. A
shape that scores high but keeps recurring is promoted to normal once its templates are common
and it recurred steadily (``promote_min`` times, in ``promote_rate`` of the windows since it
first appeared) or in a burst (``burst_min`` times, in ``burst_rate`` of them): anomalies are
rare, so a new common shape (e.g. the deletion phase of HDFS blocks, which starts hours into a
log) stops alerting. The calibrator learns the scores of windows judged normal only, so
alerts never raise the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from detectors.calibration import QuantileThreshold
from detectors.embedders import Embedder, HashingEmbedder, SentenceTransformerEmbedder
from detectors.novelty import NoveltyIndex
from detectors.templates import TemplateMinerState
from oddwatch.core.log_windows import ClosedWindow, FleetWindows, WindowAssembler
from oddwatch.params import LogParams

ModelKey = tuple[str, int | None]


def build_embedder(params: LogParams) -> Embedder:
    """The embedder named by ``params.model`` (``"hashing"`` is the cheap test embedder)."""
    if params.model == "hashing":
        return HashingEmbedder(dim=params.truncate_dim or 64)
    return SentenceTransformerEmbedder(
        params.model, device=params.device, truncate_dim=params.truncate_dim or None,
        prompt=params.prompt or None, prompt_name=params.prompt_name or None, batch_size=params.batch_size,
        dtype=params.dtype, max_seq_length=params.max_seq_length or None, revision=params.revision or None,
        trust_remote_code=params.trust_remote_code, allow_download=params.allow_download,
    )


# ---------------------------------------------------------------- new templates per minute
class NewTemplateBudget:
    """How many new templates a source may make (or send to the model) per minute of event time.

    >>> b = NewTemplateBudget(per_min=3)
    >>> b.take(2, 60.0), b.take(2, 90.0), b.take(2, 119.0), b.take(2, 120.0)
    (2, 1, 0, 2)
    >>> NewTemplateBudget(per_min=0).take(1000, 0.0)  # no limit
    1000
    """

    def __init__(self, per_min: int) -> None:
        self.per_min = per_min
        self.minute = -1  # minute number of the current count
        self.used = 0
        self.flagged = False  # a Flooded output was emitted for this minute

    def _at(self, now: float) -> None:
        minute = int(now // 60) if math.isfinite(now) else self.minute
        if minute != self.minute:
            self.minute, self.used, self.flagged = minute, 0, False

    def take(self, n: int, now: float) -> int:
        """How many of *n* new templates may be taken at event time *now* (counted as used)."""
        if self.per_min <= 0:
            return n
        self._at(now)
        k = max(0, min(n, self.per_min - self.used))
        self.used += k
        return k

    def spent(self, now: float) -> bool:
        """True when the minute of event time *now* has no new template left."""
        if self.per_min <= 0:
            return False
        self._at(now)
        return self.used >= self.per_min


# ---------------------------------------------------------------- stage 1: templates, windows
WINDOW_KINDS = ("session", "time", "count")


def window_kind(params: LogParams) -> str:
    """What a source's windows span: ``"session"``, ``"time"`` (a fixed event-time span, where a
    template's count per window has a usual rate) or ``"count"`` (a fixed number of lines).

    >>> window_kind(LogParams()), window_kind(LogParams(window_mode="session"))
    ('time', 'session')
    """
    return "session" if params.window_mode == "session" else params.window_by


@dataclass(frozen=True, slots=True)
class TemplatedWindow:
    """A closed window with the current text of each of its templates and its kind
    (:func:`window_kind`)."""

    window: ClosedWindow
    templates: Mapping[int, str]
    kind: str = "session"


@dataclass(frozen=True, slots=True)
class TemplateChange:
    """Drain3 changed a template's text: its embedding and the entries using it are stale."""

    source: str
    template_id: int
    old: str
    new: str


UNKNOWN_TEMPLATE = 0  # the template id of lines not mined while a source is over its new-template budget
UNKNOWN_TEXT = "<unknown template>"


@dataclass(frozen=True, slots=True)
class Unmined:
    """The first line of a minute that a source's template budget left unmined."""

    minute: float  # start of the minute, epoch seconds
    line: str
    source: str = ""  # the source that sent it


class GroupTemplates:
    """Stage 1 for one source group: templates and window assembly (picklable).

    Once Drain3 has created ``max_new_templates_per_min`` templates in a minute of event time,
    the rest of that minute's lines of a shape not seen before are not mined (Drain3 compares
    a line with every template of its tree node, so a flood of unique lines costs a thousand
    comparisons a line): they count as :data:`UNKNOWN_TEMPLATE`, and the minute's first one is
    kept in :attr:`unmined` for the caller to report.
    """

    def __init__(self, source: str, params: LogParams | None = None) -> None:
        self.source = source
        self.params = params or LogParams()
        self.miner = TemplateMinerState(
            max_clusters=self.params.max_templates, sim_th=self.params.template_sim_th,
            depth=self.params.template_depth,
        )
        self.windows = FleetWindows(source, self.params.window_params(), max_sources=self.params.max_fleet_sources)
        self.kind = window_kind(self.params)
        self._texts: dict[int, str] = {}
        self.budget = NewTemplateBudget(self.params.max_new_templates_per_min)
        self.unmined: list[Unmined] = []  # taken (and cleared) by the caller
        self.unmined_lines = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "budget" not in state:  # pickled before the new-template budget
            self.budget = NewTemplateBudget(self.params.max_new_templates_per_min)
            self.unmined, self.unmined_lines = [], 0
        if isinstance(self.windows, WindowAssembler):  # pickled before fleets: one source's windows
            fleet = FleetWindows(self.source, self.windows.params, max_sources=self.params.max_fleet_sources)
            fleet._by[self.windows.source] = self.windows
            fleet.watermark = self.windows.watermark
            fleet._schedule(self.windows.source, self.windows)
            self.windows = fleet  # type: ignore[assignment]

    def process(self, ts: float, line: str, source: str | None = None, rank: int = 0,
                ) -> tuple[list[TemplatedWindow], list[TemplateChange]]:
        """One line (event time in epoch seconds) of *source* (default: the group's key), with its
        level's rank -> windows it closed (of any source of the group), template changes."""
        src = self.source if source is None else source
        match = self.miner.add(line, learn=not self.budget.spent(ts))
        if match is None:
            self.unmined_lines += 1
            if not self.budget.flagged:
                self.budget.flagged = True
                self.unmined.append(Unmined(self.budget.minute * 60.0, line, src))
            return [self._templated(w) for w in self.windows.add(ts, UNKNOWN_TEMPLATE, line, src, rank)], []
        if match.change_type == "cluster_created":
            self.budget.take(1, ts)
        changes: list[TemplateChange] = []
        if match.change_type == "cluster_template_changed":
            old = self._texts.get(match.template_id, "")
            changes.append(TemplateChange(self.source, match.template_id, old, match.template))
        self._texts[match.template_id] = match.template
        if len(self._texts) > 2 * self.params.max_templates:
            self._texts = self.miner.templates()
        closed = self.windows.add(ts, match.template_id, line, src, rank)
        return [self._templated(w) for w in closed], changes

    def drop(self, source: str) -> list[TemplatedWindow]:
        """Close the open windows of *source* and forget its windowing (its templates stay)."""
        return [self._templated(w) for w in self.windows.drop(source)]

    def advance(self, ts: float) -> list[TemplatedWindow]:
        """Move event time forward without a line (idle sources still close windows)."""
        return [self._templated(w) for w in self.windows.advance(ts)]

    def flush(self) -> list[TemplatedWindow]:
        """Close every open window (end of stream)."""
        return [self._templated(w) for w in self.windows.flush()]

    def _templated(self, win: ClosedWindow) -> TemplatedWindow:
        texts = {tid: UNKNOWN_TEXT if tid == UNKNOWN_TEMPLATE else
                 self.miner.template(tid) or self._texts.get(tid, f"<template {tid}>")
                 for tid in win.template_counts}
        return TemplatedWindow(win, dict(texts), self.kind)


# ---------------------------------------------------------------- embedded windows and changes
@dataclass(frozen=True, slots=True)
class EmbeddedWindow:
    """A window with one embedding per template, and which model made them."""

    window: ClosedWindow
    templates: Mapping[int, str]
    vectors: Mapping[int, np.ndarray]
    model: ModelKey


@dataclass(frozen=True, slots=True)
class EmbeddedChange:
    """A template change with the new text's embedding."""

    change: TemplateChange
    vector: np.ndarray
    model: ModelKey


# ---------------------------------------------------------------- stage 3: novelty
@dataclass(frozen=True, slots=True)
class WindowResult:
    """The decision on one window, with what an alert needs to explain itself."""

    source: str
    window_id: str
    start: float
    end: float
    lines: int
    templates: int
    score: float
    threshold: float
    is_anomaly: bool
    warm: bool
    admitted: bool
    explanation: Mapping[str, Any] = field(default_factory=dict)

    @property
    def start_dt(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)


def _slot(template_id: int, dims: int) -> int:
    return (template_id * 2654435761) % dims


class GroupNovelty:
    """Stage 3 for one source group: window vector, novelty score, calibration, admission."""

    # a window with a template never seen before alerts from this score on, whatever the
    # calibrated threshold (set under a false-alert budget: a new message is news itself)
    new_threshold: float | None = None

    def __init__(self, source: str, params: LogParams | None = None) -> None:
        self.source = source
        self.params = params or LogParams()
        p = self.params
        self.calibration = QuantileThreshold(q=p.q, warmup=p.warmup, min_threshold=p.min_threshold,
                                             margin=p.margin)
        self.index: NoveltyIndex | None = None
        self.candidates: NoveltyIndex | None = None
        self.model: ModelKey | None = None
        self.table: dict[int, tuple[str, np.ndarray]] = {}  # template id -> (text, embedding)
        self.df: dict[int, int] = {}  # template id -> windows containing it
        self.n_windows = 0
        self.recomputed = 0  # stored vectors recomputed after template or model changes

    # -- vectors
    def _idf(self, tid: int) -> float:
        return math.log((1.0 + self.n_windows) / (1.0 + self.df.get(tid, 0))) + 1.0

    def _weight(self, tid: int, count: int) -> float:
        w = self.params.weighting
        if w == "count":
            return float(count)
        tf = {"tfidf": float(count), "logtfidf": 1.0 + math.log(count), "idf": 1.0}[w]
        return tf * self._idf(tid)

    def vector(self, counts: Mapping[int, int]) -> np.ndarray:
        """The window vector of template counts, using this group's embeddings and idf."""
        p = self.params
        dim = next(iter(self.table.values()))[1].shape[0]
        sem = np.zeros(dim, dtype=np.float32)
        cnt = np.zeros(p.count_dims, dtype=np.float32)
        for tid, c in counts.items():
            w = self._weight(tid, c)
            sem += w * self.table[tid][1]
            cnt[_slot(tid, p.count_dims)] += w if p.weighting != "count" else 1.0 + math.log(c)
        parts = []
        for part, share in ((sem, 1.0 - p.count_weight), (cnt, p.count_weight)):
            norm = float(np.linalg.norm(part))
            parts.append(part * (math.sqrt(share) / norm if norm > 0 else 0.0))
        return np.concatenate(parts).astype(np.float32)

    def _ensure_index(self, dim: int) -> None:
        p = self.params
        full = dim + p.count_dims
        if self.index is None or self.index.dim != full:
            self.index = NoveltyIndex(dim=full, k=p.index_k, capacity=p.index_capacity, eviction=p.eviction,
                                      search_dims=p.search_dims or None)
            self.candidates = NoveltyIndex(dim=full, k=1, capacity=p.candidates, eviction="oldest")

    # -- events
    def apply_change(self, ec: EmbeddedChange) -> int:
        """A template's text changed: take its new embedding, recompute the entries using it."""
        tid = ec.change.template_id
        self.table[tid] = (ec.change.new, np.asarray(ec.vector, dtype=np.float32))
        if self.model is not None and ec.model != self.model:
            return 0  # a model change is handled by reembed()
        return self._recompute(lambda meta: tid in meta["template_counts"])

    def learn_normal(self, counts: Mapping[int, int], meta: Mapping[str, Any], score: float | None = None,
                     ) -> tuple[bool, int] | None:
        """An operator's false positive: learn a window of these template counts as normal.

        Adds the window's vector to the novelty index (unless an entry is a near duplicate),
        drops the matching candidate, and learns *score* (default: the vector's score now) into
        the calibration, so similar windows score low from now on. Templates this group holds
        no embedding of are left out. Returns ``(added, index size)``, or None when nothing
        can be rebuilt (no known template, no index yet).
        """
        counts = {int(t): int(c) for t, c in counts.items() if int(t) in self.table}
        if not counts or self.index is None or self.candidates is None:
            return None
        vec = self.vector(counts)
        now, _, _ = self.index.score(vec)
        added = now >= self.params.dedupe_distance or not len(self.index)
        if added:
            entry = {"source": self.source, "window_id": "", "start": 0.0, "end": 0.0, "lines": 0, "examples": [],
                     **dict(meta), "template_counts": counts, "support": 1, "first_seen": self.n_windows}
            self.index.add(vec, entry)
        dist, ckey, _ = self.candidates.score(vec)
        if ckey is not None and dist < self.params.admit_distance:
            self.candidates.remove(ckey)
        self.calibration.learn_one(float(now if score is None else score))
        return added, len(self.index)

    def reembed(self, model: ModelKey, embed: Callable[[list[str]], np.ndarray]) -> int:
        """The model (or truncate_dim) changed: re-embed every template, rebuild the index."""
        ids = list(self.table)
        rows: Any = embed([self.table[t][0] for t in ids]) if ids else []
        self.table = {t: (self.table[t][0], np.asarray(r, dtype=np.float32)) for t, r in zip(ids, rows, strict=True)}
        self.model = model
        if self.index is None or not ids:
            return 0
        old, old_c = self.index, self.candidates
        self.index = None
        self._ensure_index(len(rows[0]))
        n = 0
        for store, new in ((old, self.index), (old_c, self.candidates)):
            for _, meta in (store.items() if store is not None else []):
                new.add(self.vector(meta["template_counts"]), meta)  # type: ignore[union-attr]
                n += 1
        self.recomputed += n
        return n

    def _recompute(self, which: Callable[[dict[str, Any]], bool]) -> int:
        n = 0
        for store in (self.index, self.candidates):
            if store is None:
                continue
            for key, meta in store.items():
                if which(meta):
                    store.replace(key, self.vector(meta["template_counts"]))
                    n += 1
        self.recomputed += n
        return n

    # -- scoring
    def process(self, ew: EmbeddedWindow) -> WindowResult:
        """Score one window, update calibration and index, and explain the decision."""
        p = self.params
        if self.model is not None and ew.model != self.model:
            raise RuntimeError(
                f"GroupNovelty[{self.source}]: window {ew.window.window_id} embedded by {ew.model}, "
                f"group state by {self.model}; call reembed() after changing the model"
            )
        self.model = ew.model
        changed = [tid for tid, text in ew.templates.items() if tid in self.table and self.table[tid][0] != text]
        for tid, text in ew.templates.items():
            self.table[tid] = (text, np.asarray(ew.vectors[tid], dtype=np.float32))
        if changed:
            self._recompute(lambda meta: any(t in meta["template_counts"] for t in changed))
        win = ew.window
        dim = next(iter(ew.vectors.values())).shape[0]
        self._ensure_index(dim)
        assert self.index is not None and self.candidates is not None  # for mypy: set above
        vec = self.vector(win.template_counts)
        score, nearest, _ = self.index.score(vec)
        threshold = self.calibration.threshold
        warm = self.calibration.warm
        is_anomaly = warm and (score >= threshold or (
            self.new_threshold is not None and score >= self.new_threshold
            and any(self.df.get(tid, 0) == 0 for tid in win.template_counts)))
        common = self._common(win.template_counts)
        normal = nearest is None or (common and score < min(threshold, p.admit_distance))
        if normal:
            admitted = self._admit(vec, win, score)
            self.calibration.learn_one(score)
        else:
            admitted = self._candidate(vec, win, common)
        explanation = self._explain(win, ew, nearest, score, threshold) if is_anomaly else {}
        self.n_windows += 1
        for tid in win.template_counts:
            self.df[tid] = self.df.get(tid, 0) + 1
        if p.refresh_every and self.n_windows % p.refresh_every == 0:
            self._recompute(lambda meta: True)
        return WindowResult(win.source, win.window_id, win.start, win.end, win.lines,
                            len(win.template_counts), score, threshold, is_anomaly, warm, admitted,
                            dict(explanation))

    def _meta(self, win: ClosedWindow) -> dict[str, Any]:
        lines = [ex[0] for ex in win.examples.values() if ex][: self.params.explain_lines]
        return {"source": win.source, "window_id": win.window_id, "start": win.start, "end": win.end,
                "lines": win.lines, "examples": lines, "template_counts": dict(win.template_counts),
                "support": 1, "first_seen": self.n_windows}

    def _admit(self, vec: np.ndarray, win: ClosedWindow, score: float) -> bool:
        assert self.index is not None
        if len(self.index) and score < self.params.dedupe_distance:
            return False
        self.index.add(vec, self._meta(win))
        return True

    def _common(self, counts: Mapping[int, int]) -> bool:
        """True when every template is in at least ``rare_fraction`` of the windows so far."""
        need = max(float(self.params.rare_min_windows), self.params.rare_fraction * self.n_windows)
        return all(self.df.get(tid, 0) >= need for tid in counts)

    def _candidate(self, vec: np.ndarray, win: ClosedWindow, common: bool) -> bool:
        """Track a high-scoring shape; promote it to normal once it is common."""
        assert self.index is not None and self.candidates is not None
        p = self.params
        dist, key, _ = self.candidates.score(vec)
        if key is None or dist >= p.candidate_radius:
            self.candidates.add(vec, self._meta(win))
            return False
        meta = self.candidates.meta(key)
        meta["support"] += 1
        seen = self.n_windows - meta["first_seen"] + 1
        support = meta["support"]
        steady = support >= p.promote_min and support >= p.promote_rate * seen
        burst = support >= p.burst_min and support >= p.burst_rate * seen
        if common and (steady or burst):
            self.candidates.remove(key)
            self.index.add(vec, meta)
            return True
        return False

    def _explain(self, win: ClosedWindow, ew: EmbeddedWindow, nearest: int | None, score: float,
                 threshold: float) -> dict[str, Any]:
        p = self.params
        rare = []
        for tid in win.template_counts:
            share = self.df.get(tid, 0) / max(1, self.n_windows)
            if share < p.rare_fraction:
                ex = win.examples.get(tid, ())
                rare.append({"template_id": tid, "template": ew.templates[tid], "windows_seen": self.df.get(tid, 0),
                             "example": ex[0] if ex else ""})
        near: dict[str, Any] = {}
        if nearest is not None and self.index is not None:
            m = self.index.meta(nearest)
            near = {"window_id": m["window_id"], "start": m["start"], "end": m["end"],
                    "examples": list(m["examples"])[: p.explain_lines],
                    "template_counts": dict(m["template_counts"])}
        return {"score": score, "threshold": threshold, "rare_templates": rare, "nearest_normal": near,
                "template_counts": dict(win.template_counts)}
