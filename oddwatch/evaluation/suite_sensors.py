"""The sensor rows of ``oddwatch eval suite``: NAB, Tennessee Eastman, the streaming bundle, the plant simulator.

Every replay goes through :func:`oddwatch.evaluation.assets.replay_asset` (the live decision
objects) and every count of alerts comes from the paging alerts it returns. Each function
takes the settings, ``quick`` (fewer runs, for tests) and the number of worker processes, and
returns ``(rows, details)`` for :mod:`oddwatch.evaluation.suite`.

Scoring:

- NAB, per category: the standard-profile NAB score of the own decisions (no labels) and of
  the score column (oracle threshold chosen on that category, as NAB does), windows detected,
  mean delay, false alerts per series-day (probation rows excluded).
- TEP, per fault: ``d00.dat`` then ``d00_te.dat`` then ``dNN_te.dat`` as one asset of 52
  series; detected when a paging alert opens at or after the fault's onset (row 161 of
  ``dNN_te.dat``), delay from the onset to it; alerts before the onset are false, counted per
  asset-day over the normal history and pre-fault rows. Faults 3, 9 and 15 are reported apart.
- Streaming, per series (one asset of its value columns): an event (a run of ``is_anomaly``
  rows) is found when a paging alert opens on one of its rows; other alerts are false, per
  series-day; ROC-AUC of the score column (a row's score: the highest of its sensors').
- Plant simulator, per seed (``scripts/plant_quick.py``'s scenario): a fault is detected when a
  paging alert of its asset opens between its start and 30 s after its end; other alerts are
  false, per asset-day.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from oddwatch import datasets
from oddwatch.evaluation import corpora, nab
from oddwatch.evaluation import corpora_assets as ca
from oddwatch.evaluation.assets import replay_asset
from oddwatch.evaluation.logs import auroc
from oddwatch.evaluation.series import per_category, run_category
from oddwatch.records import Reading
from oddwatch.settings import Settings

Row = dict[str, Any]
Result = tuple[list[Row], dict[str, Any]]
_T = TypeVar("_T")
_R = TypeVar("_R")

DAY_S = 86400.0
PLANT_SEEDS = tuple(range(1, 11))
PLANT_TICK_S = 3.0  # seconds between two readings of one plant series (the demo's rate)
PLANT_GRACE_S = 10 * PLANT_TICK_S
PLANT_START = datetime(2026, 1, 1, tzinfo=UTC)
QUICK_STREAMING = ("GutenTAG-poly-same-count-1", "KDD-TSAD-114_UCR_Anomaly_CIMIS44AirTemperature2")


def pool_map(fn: Callable[[_T], _R], jobs: Sequence[_T], workers: int) -> list[_R]:
    """``map`` over at most *workers* (<= 2) processes; in this process for one worker or one job."""
    workers = max(1, min(workers, 2, len(jobs)))
    if workers == 1:
        return [fn(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, jobs))


def median(values: Iterable[float]) -> float | None:
    vals = list(values)
    return float(statistics.median(vals)) if vals else None


# ---------------------------------------------------------------- NAB
def _nab_category(job: tuple[list[Path], Settings]) -> list[dict[str, Any]]:
    paths, settings = job
    return run_category(paths, None, settings.series, settings.alerts)


def nab_rows(settings: Settings, quick: bool, workers: int) -> Result:
    root = datasets.path("nab")
    files = corpora.find_series(root / "data")
    windows = nab.load_windows(root / "labels" / "combined_windows.json")
    by_cat: dict[str, list[Path]] = {}
    for p in files:
        by_cat.setdefault(p.parent.name, []).append(p)
    if quick:
        by_cat = {c: ps[:1] for c, ps in by_cat.items()}
    runs = [r for rs in pool_map(_nab_category, [(ps, settings) for ps in by_cat.values()], workers) for r in rs]
    cats = per_category(runs, windows)
    rows: list[Row] = []
    for cat, c in cats.items():
        rs = [r for r in runs if r["key"].startswith(cat + "/")]
        ev = nab.event_metrics({r["key"]: (r["timestamps"], r["is_anomaly"]) for r in rs},
                               {r["key"]: windows[r["key"]] for r in rs})
        rows.append({"name": f"NAB {cat} ({c['files']} files)", "detected": ev.detected, "total": ev.windows,
                     "delay_s": median(_nab_delays(rs, windows)), "false_per_series_day": ev.false_alerts_per_day,
                     "nab_own": _finite(c["standard_decisions"]), "nab_scores": _finite(c["standard_oracle"])})
    every = {r["key"]: windows[r["key"]] for r in runs}
    own = nab.score_decisions({r["key"]: (r["timestamps"], r["is_anomaly"]) for r in runs}, every, "standard")
    oracle = nab.score_corpus({r["key"]: (r["timestamps"], r["scores"]) for r in runs}, every, "standard")
    ev = nab.event_metrics({r["key"]: (r["timestamps"], r["is_anomaly"]) for r in runs}, every)
    rows.append({"name": f"NAB all ({len(runs)} files)", "detected": ev.detected, "total": ev.windows,
                 "delay_s": median(_nab_delays(runs, windows)), "false_per_series_day": ev.false_alerts_per_day,
                 "nab_own": own.score, "nab_scores": oracle.score})
    return rows, {"categories": cats, "rows": sum(r["rows"] for r in runs)}


def _nab_delays(runs: list[dict[str, Any]], windows: dict[str, Any]) -> list[float]:
    """Seconds from each detected window's start to the first alert in it (probation rows excluded)."""
    out: list[float] = []
    for r in runs:
        ts, flags = r["timestamps"], r["is_anomaly"].copy()
        flags[: nab.probation_rows(len(flags))] = 0
        for start, end in windows[r["key"]]:
            lo, hi = np.datetime64(start.replace(tzinfo=None), "ns"), np.datetime64(end.replace(tzinfo=None), "ns")
            hit = np.flatnonzero((ts >= lo) & (ts <= hi) & (flags == 1))
            if len(hit):
                out.append(float((ts[hit[0]] - lo) / np.timedelta64(1, "s")))
    return out


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


# ---------------------------------------------------------------- Tennessee Eastman
def _tep_fault(job: tuple[int, Settings]) -> dict[str, Any]:
    fault, settings = job
    run = ca.tep_run(datasets.path("tep"), fault)
    replay = replay_asset("tep", run.name, run.readings("tep"), settings)
    n = len(run.sensors)
    onset = run.start or 0
    rows = [i // n for i, _ in replay.alerts]
    after = [r for r in rows if r >= onset]
    return {"fault": fault, "detected": bool(after),
            "delay_s": float(run.ts[after[0]] - run.ts[onset]) if after else None,
            "false_alerts": sum(r < onset for r in rows), "normal_days": float(run.ts[onset] - run.ts[0]) / DAY_S,
            "alerts": len(rows), "readings": run.rows * n}


def tep_rows(settings: Settings, quick: bool, workers: int) -> Result:
    faults = (1,) if quick else ca.TEP_FAULTS
    per = pool_map(_tep_fault, [(f, settings) for f in faults], workers)
    false = sum(p["false_alerts"] for p in per)
    days = sum(p["normal_days"] for p in per)
    rows: list[Row] = []
    for label, group in (("detectable", [p for p in per if p["fault"] not in ca.TEP_HARD_FAULTS]),
                         ("3, 9, 15", [p for p in per if p["fault"] in ca.TEP_HARD_FAULTS])):
        if not group:
            continue
        g_false, g_days = sum(p["false_alerts"] for p in group), sum(p["normal_days"] for p in group)
        missed = [p["fault"] for p in group if not p["detected"]]
        rows.append({"name": f"TEP faults {label}", "detected": sum(p["detected"] for p in group),
                     "total": len(group), "delay_s": median(p["delay_s"] for p in group if p["detected"]),
                     "false_per_asset_day": g_false / g_days if g_days else None,
                     "note": "missed " + ", ".join(map(str, missed)) if missed else ""})
    return rows, {"faults": per, "false_alerts": false, "normal_asset_days": days}


# ---------------------------------------------------------------- streaming bundle
def _streaming_file(job: tuple[Path, Settings]) -> dict[str, Any]:
    path, settings = job
    run = ca.read_streaming(path)
    replay = replay_asset("streaming", run.name, run.readings("streaming"), settings)
    n = len(run.sensors)
    rows = np.array([i // n for i, _ in replay.alerts], dtype=np.int64)
    spans = ca.events(run.labels)
    hits = [rows[(rows >= a) & (rows <= b)] for a, b in spans]
    found = sum(len(h) > 0 for h in hits)
    delays = [float(run.ts[h[0]] - run.ts[a]) for h, (a, _) in zip(hits, spans, strict=True) if len(h)]
    inside = np.zeros(run.rows + 1, dtype=np.int64)
    for a, b in spans:
        inside[a] += 1
        inside[b + 1] -= 1
    in_event = np.cumsum(inside)[:-1] > 0
    false = int((~in_event[rows]).sum()) if len(rows) else 0
    row_score = replay.scores.reshape(run.rows, n).max(axis=1)
    days = max(float(run.ts[-1] - run.ts[0]), 1.0) / DAY_S
    return {"series": run.name, "sensors": n, "rows": run.rows, "events": len(spans), "found": found, "delays_s": delays,
            "alerts": int(len(rows)), "false_alerts": false, "days": days,
            "auroc": auroc(row_score.tolist(), run.labels.tolist()) if 0 < run.labels.sum() < run.rows else None}


def streaming_rows(settings: Settings, quick: bool, workers: int) -> Result:
    files = ca.find_streaming(datasets.path("streaming"))
    if quick:
        files = [f for f in files if f.stem in QUICK_STREAMING] or files[:2]
    files = sorted(files, key=lambda f: -f.stat().st_size)  # largest first: the pool ends together
    per = sorted(pool_map(_streaming_file, [(f, settings) for f in files], workers), key=lambda p: p["series"])
    aucs = [p["auroc"] for p in per if p["auroc"] is not None]
    days = sum(p["days"] for p in per)
    rows: list[Row] = [{
        "name": f"streaming ({len(per)} series)", "detected": sum(p["found"] for p in per),
        "total": sum(p["events"] for p in per), "delay_s": median(d for p in per for d in p["delays_s"]),
        "false_per_series_day": sum(p["false_alerts"] for p in per) / days if days else None,
        "note": f"ROC-AUC of the score column: mean {statistics.fmean(aucs):.3f} over {len(aucs)} series"
                if aucs else ""}]
    return rows, {"series": per}


# ---------------------------------------------------------------- plant simulator
def _plant_seed(job: tuple[int, Settings, int]) -> dict[str, Any]:
    from simulators.plant import PlantSimulation

    seed, settings, readings = job
    n_series = 32
    sim = PlantSimulation(seed=seed, rate=n_series / PLANT_TICK_S, duration_s=readings * PLANT_TICK_S,
                          start=PLANT_START, n_series=n_series, day_s=400 * PLANT_TICK_S, warmup_frac=0.33)
    by_asset: dict[tuple[str, str], list[Reading]] = {}
    for r in sim:
        site, asset, sensor = r.series.split("/")
        by_asset.setdefault((site, asset), []).append(Reading(site, asset, sensor, r.ts, r.value))
    opened: list[tuple[str, str, datetime]] = []
    for (site, asset), rs in by_asset.items():
        replay = replay_asset(site, asset, rs, settings)
        opened.extend((site, asset, alert.ts) for _, alert in replay.alerts)
    matched: set[int] = set()
    delays: list[float | None] = []
    grace = timedelta(seconds=PLANT_GRACE_S)
    for f in sim.plan.faults:
        site, asset, _ = f.series.split("/")
        hits = [k for k, (s, a, ts) in enumerate(opened) if (s, a) == (site, asset) and f.start <= ts <= f.end + grace]
        matched.update(hits)
        delays.append(min((opened[k][2] - f.start).total_seconds() for k in hits) if hits else None)
    span_s = readings * PLANT_TICK_S
    return {"seed": seed, "faults": len(sim.plan.faults), "detected": sum(d is not None for d in delays),
            "delays_s": [d for d in delays if d is not None], "alerts": len(opened),
            "false_alerts": len(opened) - len(matched), "assets": len(by_asset), "asset_days": len(by_asset) * span_s / DAY_S}


def plant_rows(settings: Settings, quick: bool, workers: int) -> Result:
    seeds = PLANT_SEEDS[:1] if quick else PLANT_SEEDS
    per = pool_map(_plant_seed, [(s, settings, 1200) for s in seeds], workers)
    asset_days = sum(p["asset_days"] for p in per)
    rows: list[Row] = [{
        "name": f"plant simulator (seeds {seeds[0]}-{seeds[-1]})", "detected": sum(p["detected"] for p in per),
        "total": sum(p["faults"] for p in per), "delay_s": median(d for p in per for d in p["delays_s"]),
        "false_per_asset_day": sum(p["false_alerts"] for p in per) / asset_days if asset_days else None}]
    return rows, {"seeds": per}
