"""Quick NAB harness: run :class:`oddwatch.core.series.SeriesState` over the NAB corpus and score it.

Usage::

    .venv/bin/python scripts/nab_quick.py [--data DIR] [--set key=value ...] [--bench]

Runs one configuration over every file (no per-file tuning; the detector never sees labels
or the future), then reports the NAB normalised score for the three profiles, both with the
oracle threshold on ``SeriesOutput.score`` and for the pipeline's own decisions
(``is_anomaly``, threshold fixed without labels). Uses ``oddwatch.evaluation.nab`` when it
provides ``score_corpus``; otherwise a built-in approximation of the NAB v1.1 rules.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from oddwatch import datasets
from oddwatch.core.series import SeriesParams, SeriesState
from oddwatch.evaluation import corpora
from oddwatch.records import Reading
from oddwatch.settings import AlertSettings

try:  # the exact NAB v1.1 scorer (engineer E); the approximation below is the fallback
    from oddwatch.evaluation import nab
except ImportError:  # pragma: no cover
    nab = None  # type: ignore[assignment]

_D = TypeVar("_D", SeriesParams, AlertSettings)
DEFAULT_DATA = datasets.path("nab")  # `oddwatch datasets fetch nab`
PROFILES = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}


def load_corpus(data: Path) -> dict[str, tuple[list[datetime], list[float], list[tuple[int, int]]]]:
    """``{relative name: (timestamps, values, windows as (first row, last row))}``."""
    windows = corpora.read_windows(data / "labels" / "combined_windows.json")
    corpus = {}
    for name in sorted(windows):
        rows = list(corpora.iter_series(data / "data" / name))
        ts, vals = [r.ts for r in rows], [r.value for r in rows]
        wins = []
        for start, end in windows[name]:
            idx = [i for i, t in enumerate(ts) if start <= t <= end]
            if idx:
                wins.append((idx[0], idx[-1]))
        corpus[name] = (ts, vals, wins)
    return corpus


def run_file(name: str, ts: list[datetime], vals: list[float], params: SeriesParams,
             alerts: AlertSettings) -> tuple[list[float], list[float]]:
    category, file = name.split("/")
    st = SeriesState("nab", category, file, params, alerts)
    scores, decisions = [], []
    for t, v in zip(ts, vals, strict=True):
        out = st.step(Reading("nab", category, file, t, v))
        scores.append(out.score)
        decisions.append(1.0 if out.is_anomaly else 0.0)
    return scores, decisions


class _Replay:
    """Stands in for the detector to replay stored scores through the real pipeline."""

    def __init__(self, scores: list[float]) -> None:
        self._scores = iter(scores)
        self._next = 0.0

    def score_one(self, x: dict[str, float]) -> float:
        self._next = next(self._scores)
        return self._next

    def learn_one(self, x: dict[str, float]) -> None:
        pass

    def expected_range(self) -> tuple[float, float]:
        return (math.nan, math.nan)


def replay_decisions(name: str, ts: list[datetime], vals: list[float], scores: list[float],
                     params: SeriesParams, alerts: AlertSettings) -> list[float]:
    """The pipeline's decisions for stored scores (detector replaced; everything else real)."""
    category, file = name.split("/")
    st = SeriesState("nab", category, file, params, alerts)
    st.detector = _Replay(scores)  # type: ignore[assignment]
    return [1.0 if st.step(Reading("nab", category, file, t, v)).is_anomaly else 0.0
            for t, v in zip(ts, vals, strict=True)]


def _sigma(x: float) -> float:
    return -1.0 if x > 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def row_weights(n: int, wins: list[tuple[int, int]], tp: float, fp: float):
    """Per scored row: (row, window id or -1, weight if it is the window's detection / FP cost)."""
    probation = min(int(math.floor(0.15 * n)), 750)
    out = []
    for i in range(probation, n):
        wid, weight, prev = -1, -fp, None
        for k, (lo, hi) in enumerate(wins):
            if lo <= i <= hi:
                width = hi - lo + 1
                wid, weight = k, _sigma(-(hi - i + 1) / width) * tp / _sigma(-1.0)
                break
            if hi < i:
                prev = (lo, hi)
        if wid < 0 and prev is not None:
            width = prev[1] - prev[0] + 1
            weight = fp * _sigma(abs(prev[1] - i) / (width - 1))
        out.append((i, wid, weight))
    return out


def approx_score(files: dict[str, tuple[list[float], list[tuple[int, int]]]], profile: str,
                 fixed: float | None = None) -> tuple[float, float]:
    """Normalised NAB score and the threshold used (oracle sweep unless ``fixed``)."""
    tp, fp, fn = PROFILES[profile]
    rows = []
    n_windows = 0
    for fi, (scores, wins) in enumerate(files.values()):
        for i, wid, w in row_weights(len(scores), wins, tp, fp):
            rows.append((scores[i], fi, wid, w))
        n_windows += len(wins)
    null, perfect = -n_windows * fn, n_windows * tp
    rows.sort(key=lambda r: -r[0])
    total = null
    best: dict[tuple[int, int], float] = {}
    best_total, best_thr = total, math.inf
    for j, (s, fi, wid, w) in enumerate(rows):
        if fixed is not None and s < fixed:
            break
        if wid < 0:
            total += w
        else:
            old = best.get((fi, wid))
            if old is None:
                total += fn + w
                best[(fi, wid)] = w
            elif w > old:
                total += w - old
                best[(fi, wid)] = w
        last = j + 1 == len(rows) or rows[j + 1][0] != s
        if last and (fixed is not None or total > best_total):
            best_total, best_thr = total, s
    if fixed is not None:
        best_total = total
        best_thr = fixed
    return 100.0 * (best_total - null) / (perfect - null), best_thr


def score_both(results, decided, oracle_in, own_in, args, profile: str) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(oracle score, oracle threshold, own-decision score) with E's exact scorer if present."""
    if nab is not None and not args.approx:
        windows = nab.load_windows(args.data / "labels" / "combined_windows.json")
        windows = {n: windows[n] for n in results}
        oracle = nab.score_corpus(results, windows, profile)
        own = nab.score_decisions(decided, windows, profile)
        return oracle.score, oracle.threshold, own.score
    oracle_score, thr = approx_score(oracle_in, profile)
    return oracle_score, thr, approx_score(own_in, profile, fixed=1.0)[0]


def _parse_sets(items: list[str], obj: _D) -> _D:
    """``obj`` with the ``key=value`` items that name one of its fields applied."""
    hints = {f.name: f.type for f in dataclasses.fields(obj)}
    changes = {}
    for item in items:
        key, _, raw = item.partition("=")
        if key not in hints:
            continue
        current = getattr(obj, key)
        changes[key] = type(current)(raw) if not isinstance(current, bool) else raw.lower() in ("1", "true")
    return dataclasses.replace(obj, **changes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--set", action="append", default=[], help="SeriesParams/AlertSettings key=value")
    ap.add_argument("--bench", action="store_true", help="also report microseconds per reading")
    ap.add_argument("--files", default="", help="substring filter on file names")
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--approx", action="store_true", help="use the built-in approximate scorer")
    ap.add_argument("--sweep", default="", help="comma-separated min_threshold values to replay "
                    "(oracle threshold of the alert decisions)")
    args = ap.parse_args(argv)
    if not (args.data / "labels" / "combined_windows.json").exists():
        print(f"NAB data not found under {args.data}", file=sys.stderr)
        return 2
    params = _parse_sets(args.set, SeriesParams())
    alerts = _parse_sets(args.set, AlertSettings())
    corpus = load_corpus(args.data)
    oracle_in, own_in = {}, {}
    n_rows, elapsed = 0, 0.0
    for name, (ts, vals, wins) in corpus.items():
        if args.files and args.files not in name:
            continue
        t0 = time.perf_counter()
        scores, decisions = run_file(name, ts, vals, params, alerts)
        elapsed += time.perf_counter() - t0
        n_rows += len(vals)
        oracle_in[name] = (scores, wins)
        own_in[name] = (decisions, wins)
        if args.verbose:
            probation = min(int(0.15 * len(vals)), 750)
            dets = [i for i, d in enumerate(decisions) if d and i >= probation]
            hits = sum(1 for lo, hi in wins if any(lo <= i <= hi for i in dets))
            print(f"{name:60s} windows {len(wins)} hit {hits} detections {len(dets)}")
    results = {n: (corpus[n][0], s) for n, (s, _) in oracle_in.items()}
    decided = {n: (corpus[n][0], d) for n, (d, _) in own_in.items()}
    for profile in PROFILES:
        oracle, thr, own = score_both(results, decided, oracle_in, own_in, args, profile)
        scorer = "approx" if args.approx or nab is None else "oddwatch.evaluation.nab"
        print(f"{profile:20s} oracle {oracle:6.2f} (threshold {thr:.4f})  own decisions {own:6.2f}  [{scorer}]")
    if args.sweep:  # oracle (label-chosen) min_threshold for the alert decisions
        table: dict[str, list[tuple[float, float]]] = {profile: [] for profile in PROFILES}
        for thr in (float(t) for t in args.sweep.split(",")):
            p2 = dataclasses.replace(params, min_threshold=thr)
            dec = {n: (replay_decisions(n, corpus[n][0], corpus[n][1], s, p2, alerts), w)
                   for n, (s, w) in oracle_in.items()}
            for profile in PROFILES:
                table[profile].append((approx_score(dec, profile, fixed=1.0)[0], thr))
        for profile, sweep in table.items():
            best = max(sweep)
            print(f"{profile:20s} alert decisions, oracle min_threshold {best[1]}: {best[0]:6.2f}  "
                  + " ".join(f"{t}:{v:.1f}" for v, t in sweep))
    no_anom = sum(sum(d) for n, (d, _) in own_in.items() if n.startswith("artificialNoAnomaly"))
    print(f"alerts on artificialNoAnomaly: {int(no_anom)}")
    if args.bench:
        print(f"{n_rows} readings in {elapsed:.2f} s: {1e6 * elapsed / max(n_rows, 1):.1f} us/reading")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
