"""The Numenta Anomaly Benchmark (NAB v1.1) scorer, reimplemented with numpy.

It follows numenta/NAB ``nab/sweeper.py`` (``calcSweepScore``, ``calcScoreByThreshold``),
``nab/optimizer.py`` (one threshold for the whole corpus, swept over the sorted unique
scores) and ``nab/runner.py`` (normalisation with the null and perfect scores):

- the first ``min(floor(0.15 n), 750)`` rows of each file are probationary and not scored;
- a row is a detection when ``score >= threshold``;
- a detection at row ``i`` in a window of rows ``[L, R]`` (``W = R - L + 1`` rows) is worth
  ``tpWeight * S(-(R - i + 1) / W) / S(-1)``, with ``S(x) = 2 / (1 + exp(5 x)) - 1`` (and
  ``-1`` for ``x >= 3``); only the best (earliest) detection of a window counts, and an
  undetected window costs ``-fnWeight``;
- a detection outside every window costs ``fpWeight * S(|prevR - i| / (prevW - 1))`` after a
  window has closed and ``-fpWeight`` before the first window;
- the normalised score is ``100 (raw - null) / (perfect - null)`` with
  ``null = -fnWeight * windows`` and ``perfect = tpWeight * windows``.

Two deliberate, documented differences from the reference code, both on inputs NAB itself
never meets: a window whose limits are not exact row timestamps is mapped to the rows it
contains (NAB requires exact timestamps), and a one-row window followed by a false positive
counts as far away (NAB divides by zero). Windows with no scored row count neither in the raw
score nor in ``null``/``perfect``, so a perfect detector always scores 100.

Results are ``{"category/file.csv": (timestamps, scores)}``, keyed like
``labels/combined_windows.json``; timestamps may be ISO strings, datetimes (naive = UTC) or a
``datetime64`` array, in row order (NAB scores by row index; its files are not all sorted).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from oddwatch.evaluation import corpora

PROBATION_PERCENT = 0.15
PROBATION_MAX_ROWS = 750  # NAB: probationPercent * 5000
NO_DETECTION_THRESHOLD = 1.1  # NAB's first sweep threshold: nothing detected
PROBATIONARY = -2  # row label: not scored
OUTSIDE = -1  # row label: outside every window

Window = tuple[datetime, datetime]
Results = Mapping[str, tuple[Sequence[Any] | np.ndarray, Sequence[float] | np.ndarray]]


@dataclass(frozen=True)
class Profile:
    """One NAB application profile (a cost matrix)."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


@dataclass(frozen=True)
class ProfileScore:
    """The NAB score of a corpus for one profile at one threshold.

    ``tp``, ``fp``, ``fn`` and ``tn`` are NAB's row counts over the scored rows; ``per_file``
    holds each file's raw score at the threshold.
    """

    profile: str
    threshold: float
    score: float
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows: int
    windows_detected: int
    per_file: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class EventMetrics:
    """Event-level view of 0/1 decisions over the scored rows.

    An alert is a run of consecutive detected rows; it is true when one of its rows lies in a
    window, false otherwise. A window is detected when a detected row lies in it; its delay is
    the time from the window start to that first row. Precision is 0 when there is no alert.
    """

    windows: int
    detected: int
    alerts: int
    true_alerts: int
    false_alerts: int
    precision: float
    recall: float
    f1: float
    mean_delay_s: float | None
    false_alerts_per_day: float
    scored_days: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


@dataclass
class _File:
    key: str
    ts: np.ndarray  # datetime64[us]
    scores: np.ndarray  # float64
    label: np.ndarray  # PROBATIONARY, OUTSIDE or the window index in the file
    in_window: np.ndarray  # S(pos) / S(-1) for window rows (times tpWeight later)
    past_window: np.ndarray  # S(pos past the previous window) (times fpWeight later)
    bounds: list[tuple[int, int]]  # (L, R) row indices of each window with a scored row
    starts: list[np.datetime64]  # window start timestamps, same order


def scaled_sigmoid(x: float | np.ndarray) -> float | np.ndarray:
    """NAB's scaled sigmoid: ``2 / (1 + exp(5 x)) - 1``, and -1 for ``x >= 3``.

    >>> round(float(scaled_sigmoid(-1.0)), 5)
    0.98661
    >>> float(scaled_sigmoid(0.0)), float(scaled_sigmoid(3.0))
    (0.0, -1.0)
    """
    arr = np.asarray(x, dtype=float)
    out = np.where(arr >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(arr, 3.0))) - 1.0)
    return float(out) if np.ndim(out) == 0 else out


def probation_rows(n: int) -> int:
    """Rows NAB leaves unscored at the start of a file of *n* rows.

    >>> probation_rows(4032), probation_rows(22695)
    (604, 750)
    """
    return int(min(math.floor(PROBATION_PERCENT * n), PROBATION_MAX_ROWS))


def to_datetime64(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Timestamps as a ``datetime64[us]`` array in UTC (naive values are taken as UTC).

    >>> to_datetime64(["2014-04-01 00:05:00"])[0]
    np.datetime64('2014-04-01T00:05:00.000000')
    """
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[us]")
    items = list(values)
    if items and isinstance(items[0], datetime):
        items = [v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v for v in items]
        return np.array(items, dtype="datetime64[us]")
    try:
        return np.array(items, dtype="datetime64[us]")
    except ValueError:
        parsed = [datetime.fromisoformat(str(v).replace("Z", "+00:00")) for v in items]
        return to_datetime64(parsed)


def load_windows(path: str | Path) -> dict[str, list[Window]]:
    """NAB anomaly windows (``labels/combined_windows.json``) as UTC datetimes per file."""
    return corpora.read_windows(path)


def load_profiles(path: str | Path) -> dict[str, Profile]:
    """NAB profiles (``config/profiles.json``) by name."""
    raw = json.loads(Path(path).read_text())
    return {
        name: Profile(name, float(cm["tpWeight"]), float(cm["fpWeight"]), float(cm["fnWeight"]))
        for name, body in raw.items()
        for cm in [body["CostMatrix"]]
    }


def read_results_csv(path: str | Path, column: str = "anomaly_score") -> tuple[np.ndarray, np.ndarray]:
    """``(timestamps, column values)`` of one NAB results CSV (``timestamp,...,column``)."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or "timestamp" not in header or column not in header:
            raise ValueError(f"{path}: header {header!r} lacks 'timestamp' or {column!r}")
        it, ic = header.index("timestamp"), header.index(column)
        ts, vals = [], []
        for row in reader:
            ts.append(row[it])
            vals.append(row[ic])
    try:
        scores = np.array(vals, dtype=float)
    except ValueError:
        bad = next(i for i, v in enumerate(vals) if not _is_float(v))
        raise ValueError(f"{path}: row {bad + 2} {column}={vals[bad]!r} is not a number") from None
    return to_datetime64(ts), scores


def load_results_dir(
    path: str | Path, *, column: str = "anomaly_score", detector: str | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every ``DIR/<category>/<file>.csv`` as ``{"category/file.csv": (timestamps, scores)}``.

    With *detector*, a leading ``"<detector>_"`` is removed from file names, as NAB's results
    folders name them (``ARTime/realKnownCause/ARTime_nyc_taxi.csv``). Files whose name starts
    with ``_`` (an asset's alerts, ``_asset_alerts.csv``) are not results.
    """
    root = Path(path)
    out = {}
    for csv_path in sorted(root.glob("*/*.csv")):
        name = csv_path.name
        if name.startswith("_"):
            continue
        if detector and name.startswith(detector + "_"):
            name = name[len(detector) + 1 :]
        out[f"{csv_path.parent.name}/{name}"] = read_results_csv(csv_path, column)
    if not out:
        raise FileNotFoundError(f"no results CSV under {root}/<category>/<file>.csv")
    return out


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _prepare(results: Results, windows: Mapping[str, Sequence[Window]]) -> list[_File]:
    files = []
    for key in sorted(results):
        if key not in windows:
            raise ValueError(f"results file {key!r} has no entry in the windows (labels) file")
        ts_raw, sc_raw = results[key]
        ts = to_datetime64(ts_raw)
        scores = np.asarray(sc_raw, dtype=float)
        if len(ts) != len(scores):
            raise ValueError(f"{key}: {len(ts)} timestamps but {len(scores)} scores")
        if not np.all(np.isfinite(scores)):
            row = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise ValueError(f"{key}: row {row} score {float(scores[row])!r} is not finite")
        files.append(_prepare_file(key, ts, scores, windows[key]))
    return files


def _prepare_file(key: str, ts: np.ndarray, scores: np.ndarray, limits: Sequence[Window]) -> _File:
    n = len(ts)
    prob = probation_rows(n)
    label = np.full(n, OUTSIDE, dtype=np.int64)
    spans: list[tuple[int, int]] = []  # every window with rows (FP weighting uses them all)
    bounds: list[tuple[int, int]] = []  # those with a scored row
    starts: list[np.datetime64] = []
    for start, end in sorted(limits):
        s64, e64 = to_datetime64([start, end])
        lo, hi = _window_rows(ts, s64, e64)
        if hi < lo:
            continue  # no row in this window
        if spans and lo <= spans[-1][1]:
            raise ValueError(f"{key}: window {start}..{end} overlaps the window before it")
        spans.append((lo, hi))
        if hi >= prob:
            label[lo : hi + 1] = len(bounds)
            bounds.append((lo, hi))
            starts.append(s64)
    idx = np.arange(n)
    in_window = np.zeros(n)
    past_window = np.full(n, -1.0)
    max_tp = scaled_sigmoid(-1.0)
    for lo, hi in bounds:
        width = hi - lo + 1
        rows = idx[lo : hi + 1]
        in_window[lo : hi + 1] = scaled_sigmoid(-(hi - rows + 1) / width) / max_tp
    if spans:
        rights = np.array([hi for _, hi in spans])
        widths = np.array([hi - lo + 1 for lo, hi in spans], dtype=float)
        prev = np.searchsorted(rights, idx, "left") - 1
        after = (prev >= 0) & (label == OUTSIDE)
        w_prev = widths[prev[after]]
        with np.errstate(divide="ignore"):
            pos = np.where(w_prev > 1, np.abs(rights[prev[after]] - idx[after]) / (w_prev - 1), np.inf)
        past_window[after] = scaled_sigmoid(pos)
    label[:prob] = PROBATIONARY
    return _File(key, ts, scores, label, in_window, past_window, bounds, starts)


def _window_rows(ts: np.ndarray, start: np.datetime64, end: np.datetime64) -> tuple[int, int]:
    """Row indices of a window's limits: the first row stamped exactly so (NAB's
    ``timestamps.index``), else the first row at or after the start and the last row at or
    before the end. Row order is kept as is: NAB's files are not always sorted."""
    exact = np.flatnonzero(ts == start)
    later = np.flatnonzero(ts >= start)
    lo = int(exact[0]) if len(exact) else (int(later[0]) if len(later) else len(ts))
    exact = np.flatnonzero(ts == end)
    earlier = np.flatnonzero(ts <= end)
    hi = int(exact[0]) if len(exact) else (int(earlier[-1]) if len(earlier) else -1)
    return lo, hi


def _stack(
    files: list[_File], profile: Profile
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Scored rows of all files: scores, global window id (-1 outside), sweep score, file id."""
    scores, groups, sweep, file_ids = [], [], [], []
    offset = 0
    for fid, f in enumerate(files):
        keep = f.label != PROBATIONARY
        lab = f.label[keep]
        scores.append(f.scores[keep])
        groups.append(np.where(lab >= 0, lab + offset, OUTSIDE))
        sweep.append(
            np.where(lab >= 0, profile.tp_weight * f.in_window[keep], profile.fp_weight * f.past_window[keep])
        )
        file_ids.append(np.full(len(lab), fid))
        offset += len(f.bounds)
    if not scores:
        empty = np.zeros(0)
        return empty, empty.astype(np.int64), empty, empty.astype(np.int64), 0
    return (
        np.concatenate(scores),
        np.concatenate(groups),
        np.concatenate(sweep),
        np.concatenate(file_ids),
        offset,
    )


def _profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown NAB profile {profile!r}; known: {', '.join(PROFILES)}")
    return PROFILES[profile]


def _score_at(files: list[_File], profile: Profile, threshold: float) -> ProfileScore:
    scores, groups, sweep, fids, n_windows = _stack(files, profile)
    det = scores >= threshold
    fp_rows = det & (groups < 0)
    tp_rows = det & (groups >= 0)
    best = np.full(n_windows, -np.inf)
    np.maximum.at(best, groups[tp_rows], sweep[tp_rows])
    hit = np.isfinite(best)
    gain = np.where(hit, np.maximum(best, -profile.fn_weight) + profile.fn_weight, 0.0)
    window_file = np.repeat(np.arange(len(files)), [len(f.bounds) for f in files]).astype(np.int64)
    per_file_raw = (
        np.bincount(fids[fp_rows], weights=sweep[fp_rows], minlength=len(files))
        + np.bincount(window_file, weights=gain, minlength=len(files))
        - profile.fn_weight * np.array([len(f.bounds) for f in files], dtype=float)
    )
    raw = float(per_file_raw.sum())
    return _result(
        profile, threshold, raw, n_windows,
        tp=int(tp_rows.sum()), fp=int(fp_rows.sum()),
        fn=int(((groups >= 0) & ~det).sum()), tn=int(((groups < 0) & ~det).sum()),
        detected=int(hit.sum()),
        per_file={f.key: float(v) for f, v in zip(files, per_file_raw, strict=True)},
    )


def _result(
    profile: Profile, threshold: float, raw: float, n_windows: int, *, tp: int, fp: int, fn: int,
    tn: int, detected: int, per_file: dict[str, float],
) -> ProfileScore:
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    score = 100.0 * (raw - null) / (perfect - null) if n_windows else float("nan")
    return ProfileScore(
        profile.name, float(threshold), score, raw, null, perfect, tp, fp, fn, tn, n_windows,
        detected, per_file,
    )


def _sweep(files: list[_File], profile: Profile) -> ProfileScore:
    """NAB's ``calcScoreByThreshold`` over the whole corpus, then the best threshold."""
    scores, groups, sweep, _, n_windows = _stack(files, profile)
    if len(scores) == 0:
        return _score_at(files, profile, NO_DETECTION_THRESHOLD)
    order = np.argsort(-scores, kind="stable")
    s_o, g_o, w_o = scores[order], groups[order], sweep[order]
    delta = np.where(g_o < 0, w_o, 0.0)
    in_win = np.flatnonzero(g_o >= 0)
    in_win = in_win[np.argsort(g_o[in_win], kind="stable")]  # by window, then by score desc
    cuts = np.flatnonzero(np.diff(g_o[in_win])) + 1
    floor = -profile.fn_weight
    for seg in np.split(in_win, cuts):
        if len(seg) == 0:
            continue
        best = np.maximum(np.maximum.accumulate(w_o[seg]), floor)
        delta[seg] = best - np.concatenate(([floor], best[:-1]))
    running = floor * n_windows + np.cumsum(delta)
    ends = np.append(np.flatnonzero(s_o[1:] != s_o[:-1]), len(s_o) - 1)
    thresholds = s_o[ends]
    cand = running[ends]
    if s_o[0] != NO_DETECTION_THRESHOLD:  # NAB's first row: nothing detected
        none_t = max(NO_DETECTION_THRESHOLD, float(np.nextafter(s_o[0], np.inf)))
        thresholds = np.concatenate(([none_t], thresholds))
        cand = np.concatenate(([floor * n_windows], cand))
    best_i = int(np.argmax(cand))  # first maximum: the highest threshold among ties, as NAB
    return _score_at(files, profile, float(thresholds[best_i]))


def score_corpus(
    results: Results, windows: Mapping[str, Sequence[Window]], profile: str | Profile = "standard"
) -> ProfileScore:
    """NAB score with the oracle threshold: the one maximising the summed raw score.

    >>> from datetime import datetime, timedelta
    >>> ts = [datetime(2024, 1, 1) + timedelta(minutes=i) for i in range(100)]
    >>> scores = [0.9 if i == 40 else 0.1 for i in range(100)]
    >>> s = score_corpus({"a/x.csv": (ts, scores)}, {"a/x.csv": [(ts[40], ts[49])]})
    >>> s.threshold, round(s.score, 2), s.windows_detected
    (0.9, 100.0, 1)
    """
    return _sweep(_prepare(results, windows), _profile(profile))


def score_profiles(
    results: Results,
    windows: Mapping[str, Sequence[Window]],
    profiles: Mapping[str, Profile] | None = None,
) -> dict[str, ProfileScore]:
    """:func:`score_corpus` for several profiles (default: the three NAB ones), parsing once."""
    files = _prepare(results, windows)
    return {name: _sweep(files, p) for name, p in (profiles or PROFILES).items()}


def score_at(
    results: Results,
    windows: Mapping[str, Sequence[Window]],
    profile: str | Profile,
    threshold: float,
) -> ProfileScore:
    """NAB score at a fixed threshold (rows with ``score >= threshold`` are detections)."""
    return _score_at(_prepare(results, windows), _profile(profile), threshold)


def score_decisions(
    results: Results, windows: Mapping[str, Sequence[Window]], profile: str | Profile = "standard"
) -> ProfileScore:
    """NAB score of 0/1 alert decisions (threshold 0.5): the tool's own decisions, no labels.

    >>> from datetime import datetime, timedelta
    >>> ts = [datetime(2024, 1, 1) + timedelta(minutes=i) for i in range(100)]
    >>> flags = [1 if i in (30, 45) else 0 for i in range(100)]
    >>> s = score_decisions({"a/x.csv": (ts, flags)}, {"a/x.csv": [(ts[40], ts[49])]})
    >>> s.tp, s.fp, round(s.raw, 4)
    (1, 1, 0.7498)
    """
    for key, (_, flags) in results.items():
        arr = np.asarray(flags, dtype=float)
        bad = np.flatnonzero((arr != 0) & (arr != 1))
        if len(bad):
            raise ValueError(f"{key}: row {int(bad[0])} decision {float(arr[bad[0]])!r} is not 0 or 1")
    return score_at(results, windows, profile, 0.5)


def event_metrics(
    results: Results, windows: Mapping[str, Sequence[Window]], threshold: float = 0.5
) -> EventMetrics:
    """Event-level precision, recall, F1, detection delay and false alerts per day.

    Rows with ``value >= threshold`` are detections; probationary rows are ignored, as in NAB.

    >>> from datetime import datetime, timedelta
    >>> ts = [datetime(2024, 1, 1) + timedelta(hours=i) for i in range(96)]
    >>> flags = [1 if i in (30, 31, 45, 60) else 0 for i in range(96)]
    >>> m = event_metrics({"a/x.csv": (ts, flags)}, {"a/x.csv": [(ts[40], ts[49])]})
    >>> m.alerts, m.false_alerts, m.recall, m.mean_delay_s
    (3, 2, 1.0, 18000.0)
    """
    files = _prepare(results, windows)
    n_windows = detected = alerts = true_alerts = 0
    delays: list[float] = []
    seconds = 0.0
    for f in files:
        scored = f.label != PROBATIONARY
        det = (f.scores >= threshold) & scored
        onset = det & ~np.concatenate(([False], det[:-1]))
        run = np.cumsum(onset) - 1
        n_runs = int(onset.sum())
        hits = np.bincount(run[det], weights=(f.label[det] >= 0), minlength=n_runs)
        alerts += n_runs
        true_alerts += int((hits > 0).sum())
        for (lo, hi), start in zip(f.bounds, f.starts, strict=True):
            n_windows += 1
            rows = np.flatnonzero(det[lo : hi + 1])
            if len(rows):
                detected += 1
                delays.append(float((f.ts[lo + rows[0]] - start) / np.timedelta64(1, "s")))
        first = np.flatnonzero(scored)
        if len(first):
            seconds += float((f.ts[-1] - f.ts[first[0]]) / np.timedelta64(1, "s"))
    false_alerts = alerts - true_alerts
    precision = true_alerts / alerts if alerts else 0.0
    recall = detected / n_windows if n_windows else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    days = seconds / 86400.0
    return EventMetrics(
        n_windows, detected, alerts, true_alerts, false_alerts, precision, recall, f1,
        float(np.mean(delays)) if delays else None,
        false_alerts / days if days else 0.0, days,
    )
