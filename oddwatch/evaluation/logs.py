"""``oddwatch eval logs``: run the live log decision objects over a labelled log file.

Lines are read in file order (:mod:`oddwatch.evaluation.corpora`) and decided online from the
first line (no training, no labels) by one :class:`~oddwatch.core.logsource.LogSourceState` per
source, the object the log dataflow steps (:func:`decide_lines`); labels are joined afterwards, at one of two levels:

- ``session`` (with a ``labels`` CSV of ``id,label``, e.g. HDFS blocks; needs session
  windows, set by ``session_regex``): a session's decision is the OR over its windows (a block
  split into several windows is anomalous when any of them alerted) and its score the maximum;
- ``window`` (per-line labels, BGL/Thunderbird/JSON lines): the detector's own windows per
  source (node), fixed by time or by lines; a window is labelled when any of its lines is.
  The labels are never shown to the detector: :class:`WindowLabels` rebuilds the same windows
  from the labels alone.

Outputs ``OUT/windows.csv`` (``id,start,end,lines,score,threshold,is_anomaly,label``) and
``OUT/summary.json`` (precision/recall/F1 of the decisions, AUROC/AUPRC of the scores, alerts
per hour of log time, lines/s).

Examples
--------
>>> auroc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1])
1.0
>>> round(auprc([0.1, 0.9, 0.8, 0.3], [0, 1, 0, 1]), 3)
0.833
>>> wl = WindowLabels(LogWindowParams(mode="tumbling", by="count", size_lines=2))
>>> for label in ("", "KERNDTLB", "", ""):
...     wl.add(0.0, "node1", label)
>>> wl.flush()
{'node1:count:0': 1, 'node1:count:2': 0}
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.embedders import Embedder, TemplateEmbeddingCache
from oddwatch.core.log_pipeline import LogParams, WindowResult, build_embedder
from oddwatch.core.log_windows import LogWindowParams, WindowAssembler
from oddwatch.core.logsource import Decided, LogOutput, LogSourceState, RawLine, TemplateVectors, fleet_key
from oddwatch.evaluation.corpora import LOG_FORMATS, read_log, read_session_labels
from oddwatch.records import Alert
from oddwatch.settings import AlertSettings

FORMATS = LOG_FORMATS


class WindowLabels:
    """The detector's windows rebuilt from line labels alone: {window id: 1 if any line is labelled}."""

    def __init__(self, params: LogWindowParams) -> None:
        self.params = LogWindowParams(**{**vars(params), "examples_per_template": 0})
        self._windows: dict[str, WindowAssembler] = {}
        self.labels: dict[str, int] = {}

    def add(self, ts: float, source: str, label: str, line: str = "") -> None:
        """One line (its text only matters to session windows, for the session id)."""
        asm = self._windows.get(source)
        if asm is None:
            asm = self._windows[source] = WindowAssembler(source, self.params)
        self._take(asm.add(ts, 1 if label else 0, line))

    def flush(self) -> dict[str, int]:
        for asm in self._windows.values():
            self._take(asm.flush())
        return self.labels

    def _take(self, windows: Sequence[Any]) -> None:
        for w in windows:
            self.labels[w.window_id] = int(w.template_counts.get(1, 0) > 0)


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (ties count one half), NaN without both classes."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks of ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def auprc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Average precision (area under the precision-recall curve, step-wise), NaN without positives."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    # evaluate only at the last element of each group of tied scores
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    precision = tp[last] / (last + 1)
    recall = tp[last] / y.sum()
    prev = np.r_[0.0, recall[:-1]]
    return float(((recall - prev) * precision).sum())


def prf(pred: Sequence[bool], labels: Sequence[int]) -> dict[str, float]:
    """Precision, recall, F1 and counts of binary decisions."""
    p = np.asarray(pred, dtype=bool)
    y = np.asarray(labels, dtype=bool)
    tp, fp, fn = int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


read_labels = read_session_labels


def template_hit_rate(cache: TemplateEmbeddingCache, states: dict[str, LogSourceState]) -> float:
    """Template lookups served without the model: the states' own vectors, then the cache."""
    held = sum(st.templates_held for st in states.values())
    total = held + cache.hits + cache.misses
    return (held + cache.hits) / total if total else 0.0


def decide_lines(
    items: Iterable[tuple[float, str, str]],
    params: LogParams,
    embeddings: TemplateVectors,
    *,
    alerts: AlertSettings | None = None,
    batch_lines: int | None = None,
    states: dict[str, LogSourceState] | None = None,
) -> list[LogOutput]:
    """Decide ``(ts, source key, message)`` items with one :class:`LogSourceState` per fleet of
    sources (:func:`~oddwatch.core.logsource.fleet_key`), as the flow keys them.

    Each source's lines go to its state in batches of ``batch_lines`` (default
    ``params.micro_batch``), its new templates embedded in one call per batch, as in the
    flow; every open window is decided at the end. Outputs are in order within a source.
    *states* (filled here) gives the caller the states afterwards.
    """
    size = batch_lines or params.micro_batch
    states = {} if states is None else states
    pending: dict[str, list[RawLine]] = {}
    out: list[LogOutput] = []

    def run(key: str) -> None:
        state = states.get(key)
        if state is None:
            state = states[key] = LogSourceState(key, params, alerts=alerts, embeddings=embeddings)
        out.extend(state.step(pending.pop(key)))

    for ts, source, msg in items:
        key = fleet_key(source, params.fleet)
        batch = pending.setdefault(key, [])
        batch.append((ts, msg, source, None))
        if len(batch) >= size:
            run(key)
    for key in list(pending):
        run(key)
    for state in states.values():
        out.extend(state.flush())
    return out


def evaluate_logs(
    path: str | Path,
    *,
    fmt: str = "hdfs",
    labels: Path | str | None = None,
    session_regex: str | None = None,
    out_dir: str | Path | None = None,
    params: LogParams | None = None,
    alerts: AlertSettings | None = None,
    embedder: Embedder | None = None,
    states: dict[str, LogSourceState] | None = None,
) -> dict[str, Any]:
    """Decide *path* online and compare the decisions with per-session *labels*.

    Parameters
    ----------
    path
        The log file.
    fmt
        One of :data:`FORMATS` (``hdfs``, ``bgl``, ``thunderbird``, ``jsonl``, ``raw``).
    labels
        CSV of ``id,label`` per session (``Normal``/``Anomaly``): session-level metrics, which
        need session windows. None: window-level metrics from the per-line labels of
        ``bgl``/``thunderbird``/``jsonl`` (a window is anomalous when any line in it is).
    session_regex
        Regex of the session id: sets ``window_mode = "session"`` with it; None keeps
        ``params`` (the ``[log_detector]`` windows).
    out_dir
        Where ``windows.csv`` and ``summary.json`` go; None writes nothing.
    params
        Detector settings (``[log_detector]``).
    alerts
        Alert hysteresis settings (``[alerts]``: ``log_close_after``, ``log_cooldown_s``).
    embedder
        The model; built from ``params.model`` when None.
    states
        Filled with the decision object of every source, for callers that inspect them.
    """
    params = params or LogParams()
    if session_regex is not None:
        params = dataclasses.replace(params, window_mode="session", session_regex=session_regex)
    if labels is not None and params.window_mode != "session":
        raise ValueError(
            f"eval logs: per-session labels ({labels}) need session windows, but window_mode = "
            f"{params.window_mode!r}; pass --session-regex (HDFS blocks: 'blk_-?\\d+')"
        )
    params.validate()
    cache = TemplateEmbeddingCache(embedder or build_embedder(params), capacity=params.cache_capacity)
    regex = re.compile(params.session_regex)
    label_of = read_session_labels(labels) if labels is not None else {}
    line_labels = WindowLabels(params.window_params()) if labels is None else None
    t0 = time.perf_counter()
    n_lines = labelled_lines = 0
    first_ts = last_ts = None

    first_seen: dict[str, int] = {}  # session id -> the line it first appears on (labelled sessions only)

    def counted() -> Iterator[tuple[float, str, str]]:
        nonlocal n_lines, labelled_lines, first_ts, last_ts
        for ts, source, msg, line_label in read_log(path, fmt):
            if label_of:
                for sid in regex.findall(msg):
                    first_seen.setdefault(sid if isinstance(sid, str) else sid[0], n_lines)
            n_lines += 1
            first_ts = ts if first_ts is None else first_ts
            last_ts = ts
            if line_labels is not None:
                line_labels.add(ts, source, line_label, msg)
                labelled_lines += bool(line_label)
            yield ts, source, msg

    states = {} if states is None else states
    outputs = decide_lines(counted(), params, cache, alerts=alerts, states=states)
    elapsed = time.perf_counter() - t0
    results: list[WindowResult] = [o.result for o in outputs if isinstance(o, Decided)]
    opened = sum(1 for o in outputs if isinstance(o, Alert) and o.kind == "open")
    hours = max((last_ts or 0.0) - (first_ts or 0.0), 1.0) / 3600.0
    if line_labels is not None:
        window_label = line_labels.flush()
        metrics = window_metrics(results, window_label)
        metrics["labelled_lines"] = labelled_lines

        def label_of_window(r: WindowResult) -> int | str:
            return window_label.get(r.window_id, "")
    else:
        metrics = session_metrics(results, label_of, regex)
        # The same online run, scored apart on the sessions first seen in each half of the file:
        # settings tuned on the first half are measured on the second (scripts/cv_hdfs.py).
        half = n_lines // 2
        for name, part in (("first_half", {s for s, n in first_seen.items() if n < half}),
                           ("second_half", {s for s, n in first_seen.items() if n >= half})):
            metrics[name] = {k: v for k, v in session_metrics(results, label_of, regex, only=part).items()
                             if k in ("labelled_sessions", "anomalous_sessions", "precision", "recall", "f1",
                                      "auroc", "auprc")}

        def label_of_window(r: WindowResult) -> int | str:
            return label_of.get(session_of(r.window_id, regex), "")
    summary: dict[str, Any] = {
        "file": str(path), "format": fmt, "lines": n_lines, "windows": len(results), **metrics,
        "alerts": int(sum(r.is_anomaly for r in results)),
        "alerts_per_hour": sum(r.is_anomaly for r in results) / hours,
        "alerts_opened": opened,
        "log_hours": hours, "seconds": elapsed, "lines_per_s": n_lines / elapsed if elapsed else 0.0,
        "model_calls": cache.model_calls, "cache_hit_rate": template_hit_rate(cache, states),
        "templates": sum(len(st.templates.miner) for st in states.values()),
        "params": {k: v for k, v in vars(params).items()},
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with (out / "windows.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "start", "end", "lines", "score", "threshold", "is_anomaly", "label"])
            for r in results:
                w.writerow([r.window_id, f"{r.start:.0f}", f"{r.end:.0f}", r.lines, f"{r.score:.6f}",
                            f"{r.threshold:.6f}", int(r.is_anomaly), label_of_window(r)])
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def session_of(window_id: str, regex: re.Pattern[str]) -> str:
    """The session id inside a window id (the window id itself when none)."""
    found = regex.search(window_id)
    return found.group(0) if found else window_id


def session_metrics(results: Sequence[WindowResult], label_of: dict[str, int], regex: re.Pattern[str],
                    only: set[str] | None = None) -> dict[str, Any]:
    """Session-level metrics: a session alerts when any of its windows did; its score is the maximum.

    *only* restricts the scored sessions (e.g. to those first seen in part of a file).
    """
    sessions: dict[str, list[WindowResult]] = {}
    for r in results:
        sessions.setdefault(session_of(r.window_id, regex), []).append(r)
    ids = [s for s in sessions if s in label_of and (only is None or s in only)]
    y = [label_of[s] for s in ids]
    pred = [any(r.is_anomaly for r in sessions[s]) for s in ids]
    score = [max(r.score for r in sessions[s]) for s in ids]
    return {"level": "session", "sessions": len(sessions), "labelled_sessions": len(ids),
            "anomalous_sessions": int(sum(y)), **prf(pred, y), "auroc": auroc(score, y), "auprc": auprc(score, y),
            "best_f1": best_f1(score, y)}


def window_metrics(results: Sequence[WindowResult], label_of: dict[str, int]) -> dict[str, Any]:
    """Window-level metrics: each window's decision and score against its label (any labelled line)."""
    y = [label_of.get(r.window_id, 0) for r in results]
    pred = [r.is_anomaly for r in results]
    score = [r.score for r in results]
    return {"level": "window", "anomalous_windows": int(sum(y)), **prf(pred, y), "false_alerts": int(
        sum(p and not t for p, t in zip(pred, y, strict=True))), "auroc": auroc(score, y), "auprc": auprc(score, y),
        "best_f1": best_f1(score, y)}


def best_f1(scores: Sequence[float], labels: Sequence[int]) -> dict[str, float]:
    """The best F1 over all thresholds (a diagnostic: the threshold is chosen with the labels).

    >>> best_f1([0.1, 0.4, 0.35, 0.8], [0, 1, 0, 1])
    {'f1': 1.0, 'threshold': 0.4}
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if not y.any():
        return {"f1": float("nan"), "threshold": float("nan")}
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    precision = tp[last] / (last + 1)
    recall = tp[last] / y.sum()
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    i = int(np.argmax(f1))
    return {"f1": float(f1[i]), "threshold": float(s[last[i]])}
