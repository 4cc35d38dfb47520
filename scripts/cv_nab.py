"""Leave-one-category-out cross-validation of the sensor pipeline's settings on NAB.

Usage::

    .venv/bin/python scripts/cv_nab.py --data DIR [--workers 2] [--profile standard]

``DIR`` is a NAB checkout (``DIR/data/<category>/<file>.csv``, ``DIR/labels/
combined_windows.json``; default ``~/.cache/oddwatch/datasets/nab``). The detector runs once
per file (its settings are not in the grid); every candidate setting of the decision stage
(alert level ``min_threshold`` x ``quiet_after_alert``) is then replayed through the real
:class:`oddwatch.core.series.SeriesState` with the detector's scores. For each category held out, the
setting with the best NAB score of the pipeline's own alert decisions on the other categories
is chosen and measured on the held-out one, both for its own decisions and for the
``SeriesOutput.score`` column with NAB's oracle (label-chosen) threshold. A category without
anomaly windows has no normalised score: its raw score and alert count are shown instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from oddwatch.core.series import SeriesParams, SeriesState
from oddwatch.evaluation import nab
from oddwatch.evaluation.series import find_series, parse_ts
from oddwatch.records import Reading

DEFAULT_DATA = Path("~/.cache/oddwatch/datasets/nab").expanduser()
GRID = {"min_threshold": (0.45, 0.5, 0.55, 0.6, 0.65, 0.7), "quiet_after_alert": (0, 12, 48, 144)}

Series = tuple[str, list[datetime], list[float]]


class _Replay:
    """Stands in for the detector: returns stored scores, so only the decision stage runs."""

    def __init__(self, scores: np.ndarray) -> None:
        self._scores = iter(scores.tolist())

    def score_one(self, x: dict[str, float]) -> float:
        return next(self._scores)

    def learn_one(self, x: dict[str, float]) -> None:
        pass

    def expected_range(self) -> tuple[float, float]:
        return (math.nan, math.nan)


def load(path: Path) -> Series:
    lines = path.read_text().splitlines()[1:]
    ts = [parse_ts(line.split(",")[0], f"{path} row {i + 2}") for i, line in enumerate(lines)]
    vals = [float(line.split(",")[1]) for line in lines]
    return f"{path.parent.name}/{path.name}", ts, vals


def detector_scores(args: tuple[Series, SeriesParams]) -> np.ndarray:
    (key, ts, vals), params = args
    category, stem = key.split("/")
    st = SeriesState("nab", category, stem, params)
    return np.array([st.step(Reading("nab", category, stem, t, v)).raw_score for t, v in zip(ts, vals, strict=True)])


def replay(args: tuple[Series, np.ndarray, list[SeriesParams]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(score column, decisions) of one file for each candidate setting."""
    (key, ts, vals), raw, candidates = args
    category, stem = key.split("/")
    out = []
    for params in candidates:
        st = SeriesState("nab", category, stem, params)
        st.detector = _Replay(raw)  # type: ignore[assignment]
        rows = [st.step(Reading("nab", category, stem, t, v)) for t, v in zip(ts, vals, strict=True)]
        out.append((np.array([r.score for r in rows]), np.array([int(r.is_anomaly) for r in rows], dtype=np.int8)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB checkout (data/ and labels/)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--profile", default="standard", choices=sorted(nab.PROFILES))
    args = ap.parse_args(argv)
    labels = args.data / "labels" / "combined_windows.json"
    files = find_series(args.data)
    if not files or not labels.is_file():
        print(f"cv_nab: no NAB data (data/<category>/<file>.csv and {labels}) under {args.data}", file=sys.stderr)
        return 2
    windows = nab.load_windows(labels)
    base = SeriesParams(onset_score=True)
    names = list(GRID)
    settings = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*GRID.values())]
    candidates = [dataclasses.replace(base, **s) for s in settings]
    with ProcessPoolExecutor(max_workers=max(1, min(args.workers, 2))) as pool:
        series = list(pool.map(load, files))
        raws = list(pool.map(detector_scores, [(s, base) for s in series]))
        per_file = list(pool.map(replay, [(s, r, candidates) for s, r in zip(series, raws, strict=True)]))
    keys = [s[0] for s in series]
    stamps = {s[0]: nab.to_datetime64(s[1]) for s in series}
    categories = sorted({k.split("/")[0] for k in keys})

    def own(c: int, subset: list[str]) -> Any:
        res = {k: (stamps[k], per_file[keys.index(k)][c][1]) for k in subset}
        return nab.score_decisions(res, {k: windows[k] for k in subset}, args.profile)

    def oracle(c: int, subset: list[str]) -> Any:
        res = {k: (stamps[k], per_file[keys.index(k)][c][0]) for k in subset}
        return nab.score_corpus(res, {k: windows[k] for k in subset}, args.profile)

    print(f"grid: {GRID} ({len(candidates)} settings), profile {args.profile}, {len(keys)} files")
    print(f"{'held out':<22} {'chosen setting':<40} {'train':>6} {'own':>7} {'score col':>9}")
    held_own, held_col = [], []
    for cat in categories:
        test = [k for k in keys if k.startswith(cat + "/")]
        train = [k for k in keys if k not in test]
        train_scores = [own(c, train).score for c in range(len(candidates))]
        best = int(np.argmax(train_scores))  # first maximum: the earliest setting among ties
        o, col = own(best, test), oracle(best, test)
        chosen = " ".join(f"{n}={settings[best][n]}" for n in names)
        if o.windows:
            held_own.append(o.score)
            held_col.append(col.score)
            print(f"{cat:<22} {chosen:<40} {train_scores[best]:6.2f} {o.score:7.2f} {col.score:9.2f}")
        else:
            print(f"{cat:<22} {chosen:<40} {train_scores[best]:6.2f} "
                  f"no windows: raw {o.raw:.2f}, {o.fp} false detections")
    print(f"{'mean of held-out folds':<63} {np.mean(held_own):7.2f} {np.mean(held_col):9.2f}")
    full = [own(c, keys).score for c in range(len(candidates))]
    d = settings.index({n: getattr(base, n) for n in names}) if {n: getattr(base, n) for n in names} in settings else None
    if d is not None:
        print(f"defaults ({' '.join(f'{n}={settings[d][n]}' for n in names)}) on all files: own "
              f"{full[d]:.2f}, score column {oracle(d, keys).score:.2f}")
    for s, v in sorted(zip(settings, full, strict=True), key=lambda t: -t[1])[:5]:
        print(f"  all files, own decisions {v:6.2f}  {s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
