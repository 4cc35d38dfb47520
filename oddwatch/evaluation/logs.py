"""``oddwatch eval logs``: run the live log decision objects over a labelled log file.

Lines are read in file order and decided online from the first line (no training, no labels)
by one :class:`~oddwatch.core.logsource.LogSourceState` per source, the object the log
dataflow steps (:func:`decide_lines`); labels are joined afterwards by session id. A session's decision is the OR over its windows
(a block split into several windows is anomalous when any of them alerted) and its score the
maximum. Outputs ``OUT/windows.csv`` (``id,start,end,lines,score,threshold,is_anomaly,label``)
and ``OUT/summary.json`` (precision/recall/F1 of the decisions, AUROC/AUPRC of the scores,
alerts per hour of log time, alerts opened by the hysteresis, lines/s).

Examples
--------
>>> auroc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1])
1.0
>>> round(auprc([0.1, 0.9, 0.8, 0.3], [0, 1, 0, 1]), 3)
0.833
>>> parse_hdfs("081109 203530 147 INFO dfs.DataNode: Receiving blk_1")[1]
'INFO dfs.DataNode: Receiving blk_1'
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from detectors.embedders import Embedder, TemplateEmbeddingCache
from oddwatch.core.log_pipeline import LogParams, WindowResult, build_embedder
from oddwatch.core.logsource import Decided, LogOutput, LogSourceState, RawLine, TemplateVectors
from oddwatch.records import Alert
from oddwatch.settings import AlertSettings

FORMATS = ("hdfs", "raw", "jsonl", "bgl")
_DAYS: dict[str, float] = {}


def parse_hdfs(line: str) -> tuple[float, str]:
    """``081109 203530 147 INFO comp: msg`` -> (epoch seconds UTC, ``INFO comp: msg``)."""
    date, clock, _pid, rest = line.rstrip("\n").split(" ", 3)
    ts = datetime.strptime(date + clock, "%y%m%d%H%M%S").replace(tzinfo=UTC).timestamp()
    return ts, rest


def _parse_bgl(line: str) -> tuple[float, str, str]:
    # "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-... RAS KERNEL INFO msg"
    parts = line.rstrip("\n").split(" ", 9)
    label = parts[0]
    return float(parts[1]), " ".join(parts[6:]) if len(parts) > 6 else line, label


def read_lines(path: str | Path, fmt: str = "hdfs", source: str = "logs") -> Iterator[tuple[float, str, str, str]]:
    """(ts, source key, message, line label or "") per line; bad lines are skipped."""
    if fmt not in FORMATS:
        raise ValueError(f"eval logs: fmt = {fmt!r} must be one of {FORMATS}")
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                if fmt == "hdfs":
                    ts, msg = parse_hdfs(line)
                    yield ts, source, msg, ""
                elif fmt == "raw":
                    yield float(n), source, line.rstrip("\n"), ""
                elif fmt == "jsonl":
                    obj = json.loads(line)
                    ts_raw = obj.get("ts", n)
                    ts = (datetime.fromisoformat(ts_raw).timestamp() if isinstance(ts_raw, str) else float(ts_raw))
                    yield ts, str(obj.get("source", source)), str(obj.get("msg", obj.get("message", ""))), str(
                        obj.get("label", "")
                    )
                else:
                    ts, msg, label = _parse_bgl(line)
                    yield ts, source, msg, "" if label == "-" else label
            except (ValueError, IndexError, json.JSONDecodeError):
                continue


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


def read_labels(path: str | Path) -> dict[str, int]:
    """``BlockId,Label`` (or any two columns id,label) -> {id: 1 if anomalous}."""
    out: dict[str, int] = {}
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if len(row) < 2 or row[0] in ("BlockId", "id"):
                continue
            out[row[0]] = 0 if row[1].strip().lower() in ("normal", "0", "-", "false") else 1
    return out


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
    """Decide ``(ts, source key, message)`` items with one :class:`LogSourceState` per source.

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

    for ts, key, msg in items:
        batch = pending.setdefault(key, [])
        batch.append((ts, msg))
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
    session_regex: str | None = r"blk_-?\d+",
    out_dir: str | Path | None = None,
    params: LogParams | None = None,
    alerts: AlertSettings | None = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Decide *path* online and compare the decisions with per-session *labels*.

    Parameters
    ----------
    path
        The log file.
    fmt
        ``hdfs``, ``raw``, ``jsonl`` or ``bgl``.
    labels
        CSV of ``id,label`` per session (``Normal``/``Anomaly``); None: only per-line labels
        of ``bgl``/``jsonl`` are used, if any.
    session_regex
        Regex of the session id (replaces ``params.session_regex``); None keeps ``params``.
    out_dir
        Where ``windows.csv`` and ``summary.json`` go; None writes nothing.
    params
        Detector settings (``[log_detector]``).
    alerts
        Alert hysteresis settings (``[alerts]``: ``log_close_after``, ``log_cooldown_s``).
    embedder
        The model; built from ``params.model`` when None.
    """
    params = params or LogParams()
    if session_regex is not None:
        params = dataclasses.replace(params, session_regex=session_regex)
    params.validate()
    cache = TemplateEmbeddingCache(embedder or build_embedder(params), capacity=params.cache_capacity)
    regex = re.compile(params.session_regex)
    label_of = read_labels(labels) if labels is not None else {}
    t0 = time.perf_counter()
    n_lines = 0
    first_ts = last_ts = None

    def counted() -> Iterator[tuple[float, str, str]]:
        nonlocal n_lines, first_ts, last_ts
        for ts, source, msg, _line_label in read_lines(path, fmt):
            n_lines += 1
            first_ts = ts if first_ts is None else first_ts
            last_ts = ts
            yield ts, source, msg

    states: dict[str, LogSourceState] = {}
    outputs = decide_lines(counted(), params, cache, alerts=alerts, states=states)
    elapsed = time.perf_counter() - t0
    results: list[WindowResult] = [o.result for o in outputs if isinstance(o, Decided)]
    opened = sum(1 for o in outputs if isinstance(o, Alert) and o.kind == "open")

    def session_of(window_id: str) -> str:
        found = regex.search(window_id)
        return found.group(0) if found else window_id

    sessions: dict[str, list[WindowResult]] = {}
    for r in results:
        sessions.setdefault(session_of(r.window_id), []).append(r)
    ids = [s for s in sessions if s in label_of]
    y = [label_of[s] for s in ids]
    pred = [any(r.is_anomaly for r in sessions[s]) for s in ids]
    score = [max(r.score for r in sessions[s]) for s in ids]
    hours = max((last_ts or 0.0) - (first_ts or 0.0), 1.0) / 3600.0
    summary: dict[str, Any] = {
        "file": str(path), "format": fmt, "lines": n_lines, "windows": len(results),
        "sessions": len(sessions), "labelled_sessions": len(ids), "anomalous_sessions": int(sum(y)),
        **prf(pred, y), "auroc": auroc(score, y), "auprc": auprc(score, y),
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
                sid = session_of(r.window_id)
                w.writerow([r.window_id, f"{r.start:.0f}", f"{r.end:.0f}", r.lines, f"{r.score:.6f}",
                            f"{r.threshold:.6f}", int(r.is_anomaly), label_of.get(sid, "")])
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
