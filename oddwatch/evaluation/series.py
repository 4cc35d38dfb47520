"""``oddwatch eval series``: run the live sensor pipeline over NAB-style CSVs and score it.

Every ``DIR/<category>/<file>.csv`` (``timestamp,value``) is replayed, one
:class:`oddwatch.records.Reading` per row (site ``nab``, asset = category, sensor = file stem,
timestamps taken as UTC); each category is one asset, its files' rows merged in time order and
stepped through :func:`oddwatch.evaluation.assets.replay_asset`, the live decision objects.
Each file's output goes to ``OUT/<category>/<file>.csv``
(``timestamp,value,anomaly_score,is_anomaly``, one row per input row, in order;
``is_anomaly`` = 1 where a paging alert of the asset opened at that row) and the scores to
``OUT/summary.json``:

- the NAB score of ``anomaly_score`` for the three profiles with the oracle threshold (chosen
  with the labels, as NAB does), beside the NAB score of the pipeline's own ``is_anomaly``
  decisions (no labels used);
- event-level precision, recall and F1 of the decisions, mean detection delay, false alerts
  per day, and the alerts raised on ``artificialNoAnomaly`` (series with nothing to find);
- throughput in rows per second.
"""

from __future__ import annotations

import csv
import heapq
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from oddwatch.core.series import SeriesParams
from oddwatch.evaluation import corpora, nab
from oddwatch.evaluation.assets import replay_asset
from oddwatch.records import Reading
from oddwatch.settings import AlertSettings, Settings

SITE = "nab"
NO_ANOMALY_CATEGORY = "artificialNoAnomaly"
OUT_HEADER = ["timestamp", "value", "anomaly_score", "is_anomaly"]


find_series = corpora.find_series


def parse_ts(text: str, where: str) -> datetime:
    """A CSV timestamp as timezone-aware UTC (naive stamps are UTC).

    >>> parse_ts("2014-04-01 00:05:00", "f.csv row 2").isoformat()
    '2014-04-01T00:05:00+00:00'
    """
    try:
        return corpora.utc(text)
    except ValueError:
        raise ValueError(f"{where}: timestamp {text!r} is not ISO 8601") from None


ASSET_CSV = "_asset_alerts.csv"  # per category: the asset's alert opens (a leading underscore: not a series)
ASSET_HEADER = ["opened_at", "alert_id", "sensors", "title"]


def run_category(
    csv_paths: list[Path],
    out_dir: Path | None,
    params: SeriesParams | None = None,
    alerts: AlertSettings | None = None,
) -> list[dict[str, Any]]:
    """Replay the series of one ``<category>`` folder as one asset through :func:`replay_asset`.

    The files' rows are merged in time order (each file keeps its own order), so the category's
    sensors are stepped as an asset's would be live. Each file's output goes to
    ``out_dir/<category>/<file>.csv``, ``is_anomaly`` = 1 where a paging alert of the asset
    opened at that file's row (``out_dir=None`` writes nothing, for parameter sweeps). Returns,
    per file and in the order given, ``{"key", "rows", "seconds", "timestamps", "scores",
    "is_anomaly", "values", "thresholds"}`` (numpy arrays), ``key`` being
    ``"<category>/<file>.csv"``; ``seconds`` is the category's replay time shared by its rows.
    """
    category = csv_paths[0].parent.name
    rows = [list(corpora.iter_series(p)) for p in csv_paths]
    merged = heapq.merge(*[[(row.ts, k, i) for i, row in enumerate(rs)] for k, rs in enumerate(rows)])
    order = [(k, i) for _, k, i in merged]
    readings = (Reading(SITE, category, csv_paths[k].stem, rows[k][i].ts, rows[k][i].value) for k, i in order)
    start = time.perf_counter()
    run = replay_asset(SITE, category, readings, Settings(series=params or SeriesParams(),
                                                          alerts=alerts or AlertSettings()))
    seconds = time.perf_counter() - start
    flags = run.alert_rows()
    span_s = (rows_ts_max(rows) - rows_ts_min(rows)).total_seconds() if order else 0.0
    opens = len(run.alerts)
    per_week = opens / (span_s / (7 * 86400.0)) if span_s > 0 else math.nan
    budget = (alerts or AlertSettings()).false_alerts_per_week
    if out_dir is not None and len(csv_paths) > 1:
        dest_dir = out_dir / category
        dest_dir.mkdir(parents=True, exist_ok=True)
        with open(dest_dir / ASSET_CSV, "w", newline="") as dst:
            writer = csv.writer(dst)
            writer.writerow(ASSET_HEADER)
            writer.writerows([a.opened_at.isoformat(), a.alert_id, " ".join(str(x) for x in cast(list, a.details.get("sensors", []))),
                              a.title] for _, a in run.alerts)
    at = [np.empty(len(rs), dtype=np.int64) for rs in rows]
    for n, (k, i) in enumerate(order):
        at[k][i] = n
    total = max(len(order), 1)
    out: list[dict[str, Any]] = []
    for k, (path, rs) in enumerate(zip(csv_paths, rows, strict=True)):
        idx = at[k]
        scores, flag, thresholds = run.scores[idx], flags[idx], run.thresholds[idx]
        if out_dir is not None:
            dest = out_dir / category / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "w", newline="") as dst:
                writer = csv.writer(dst)
                writer.writerow(OUT_HEADER)
                writer.writerows([r.ts_text, r.value_text, repr(float(sc)), str(int(f))]
                                 for r, sc, f in zip(rs, scores, flag, strict=True))
        out.append({
            "key": f"{category}/{path.name}",
            "rows": len(rs),
            "seconds": seconds * len(rs) / total,
            "timestamps": nab.to_datetime64([r.ts for r in rs]),
            "scores": np.asarray(scores, dtype=float),
            "is_anomaly": np.asarray(flag, dtype=np.int8),
            "values": np.asarray([r.value for r in rs], dtype=float),
            "thresholds": np.asarray(thresholds, dtype=float),
            "budget_per_week": budget,
            "alerts_per_week": per_week,
        })
    return out


def rows_ts_min(rows: list[list[Any]]) -> datetime:
    return min(rs[0].ts for rs in rows if rs)


def rows_ts_max(rows: list[list[Any]]) -> datetime:
    return max(rs[-1].ts for rs in rows if rs)


def run_file(
    csv_path: Path,
    out_path: Path | None,
    params: SeriesParams | None = None,
    alerts: AlertSettings | None = None,
) -> dict[str, Any]:
    """One series replayed alone (an asset of one sensor), its output CSV written to *out_path*."""
    (run,) = run_category([csv_path], None, params, alerts)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(out_path, "w", newline="") as dst:
            writer = csv.writer(dst)
            writer.writerow(OUT_HEADER)
            writer.writerows([r.ts_text, r.value_text, repr(float(sc)), str(int(f))] for r, sc, f in
                             zip(corpora.iter_series(csv_path), run["scores"], run["is_anomaly"], strict=True))
    return run


def _run_category_args(
    args: tuple[list[Path], Path | None, SeriesParams | None, AlertSettings | None],
) -> list[dict[str, Any]]:
    return run_category(*args)


def _series_params(value: SeriesParams | Mapping[str, Any] | None) -> SeriesParams | None:
    if value is None or isinstance(value, SeriesParams):
        return value
    known = {f.name for f in fields(SeriesParams)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"eval series: unknown series parameter(s) {unknown}; known: {sorted(known)}")
    return SeriesParams(**value)


def evaluate_series(
    data_dir: str | Path,
    labels_path: str | Path | None,
    out_dir: str | Path,
    *,
    series_params: SeriesParams | Mapping[str, Any] | None = None,
    alert_settings: AlertSettings | None = None,
    workers: int = 1,
    progress: bool = True,
    quiet: bool = False,
    plots_dir: str | Path | None = None,
    assets: bool = True,
) -> dict[str, Any]:
    """Run the sensor pipeline over every series under *data_dir* and score it with NAB.

    Parameters
    ----------
    data_dir
        Folder of ``<category>/<file>.csv`` (a NAB checkout's root or its ``data/``).
    labels_path
        NAB ``combined_windows.json``; ``None`` looks for ``labels/combined_windows.json``
        beside or above the data.
    out_dir
        Where the per-file CSVs and ``summary.json`` go.
    series_params, alert_settings
        Pipeline settings (defaults: those of the live flow).
    workers
        Processes to use; 1 (default) runs in this process, which on 2 cores is as fast.
    progress, quiet
        A progress line on stderr; no printed summary on stdout.
    plots_dir
        When given, one PNG per series there (:func:`oddwatch.plots.write_eval_series_plots`).
    assets
        True (default): each ``<category>`` is one asset (:func:`run_asset`), as the live flow
        decides; False: each file decides alone (:func:`run_file`).

    Returns
    -------
    dict
        The summary written to ``OUT/summary.json``.
    """
    files = find_series(data_dir)
    if not files:
        raise FileNotFoundError(f"eval series: no <category>/<file>.csv under {data_dir}")
    labels = Path(labels_path) if labels_path else _default_labels(Path(data_dir))
    windows = nab.load_windows(labels)
    missing = [f"{p.parent.name}/{p.name}" for p in files if f"{p.parent.name}/{p.name}" not in windows]
    if missing:
        raise ValueError(f"eval series: {labels} has no windows for {missing[:5]} ({len(missing)} files)")
    params = _series_params(series_params)
    out = Path(out_dir)
    by_category: dict[str, list[Path]] = {}
    for p in files:
        by_category.setdefault(p.parent.name, []).append(p)
    groups = list(by_category.values()) if assets else [[p] for p in files]  # --per-series: each file alone
    jobs = [(paths, out, params, alert_settings) for paths in groups]
    start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    total_rows = 0
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        for category_runs in (pool.map(_run_category_args, jobs) if pool else map(_run_category_args, jobs)):
            runs.extend(category_runs)
            total_rows += sum(r["rows"] for r in category_runs)
            _progress(progress, len(runs), len(files), total_rows, start, runs[-1]["key"])
    finally:
        if pool is not None:
            pool.shutdown()
    elapsed = time.perf_counter() - start
    if progress:
        print(file=sys.stderr)
    summary = summarize(runs, windows, elapsed)
    summary.update(
        data_dir=str(data_dir),
        labels=str(labels),
        out_dir=str(out),
        workers=workers,
        series_params=asdict(params or SeriesParams()),
        alert_settings=asdict(alert_settings or AlertSettings()),
        command=_command(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={"platform": platform.platform(), "python": platform.python_version(),
                 "cpus": os.cpu_count()},
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if plots_dir is not None:
        from oddwatch.plots import write_eval_series_plots

        write_eval_series_plots(runs, windows, Path(plots_dir))
    if not quiet:
        print(format_summary(summary))
    return summary


def _command() -> str:
    """How this process was started, ``oddwatch ...`` when run from the console script."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "oddwatch":
        argv[0] = "oddwatch"
    return shlex.join(argv)


def _default_labels(data_dir: Path) -> Path:
    for cand in (data_dir / "labels", data_dir.parent / "labels"):
        if (cand / "combined_windows.json").is_file():
            return cand / "combined_windows.json"
    raise FileNotFoundError(
        f"eval series: no labels given and no labels/combined_windows.json beside {data_dir}; pass --labels"
    )


def _progress(on: bool, done: int, total: int, rows: int, start: float, key: str) -> None:
    if on:
        rate = rows / max(time.perf_counter() - start, 1e-9)
        print(f"\reval series: {done}/{total} files, {rows} rows, {rate:,.0f} rows/s  {key[:48]:<48}",
              end="", file=sys.stderr, flush=True)


def summarize(runs: list[dict[str, Any]], windows: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """NAB scores, event metrics and throughput of per-file runs (as from :func:`run_file`)."""
    scored = {r["key"]: (r["timestamps"], r["scores"]) for r in runs}
    decided = {r["key"]: (r["timestamps"], r["is_anomaly"]) for r in runs}
    oracle = nab.score_profiles(scored, windows)
    decisions = {name: nab.score_decisions(decided, windows, name) for name in nab.PROFILES}
    events = nab.event_metrics(decided, windows)
    rows = sum(r["rows"] for r in runs)
    quiet_files = {r["key"]: int(r["is_anomaly"].sum()) for r in runs
                   if r["key"].startswith(NO_ANOMALY_CATEGORY + "/")}
    per_file = {
        r["key"]: {
            "rows": r["rows"],
            "windows": len(windows[r["key"]]),
            "alerts": int(r["is_anomaly"].sum()),
            "raw_standard_oracle": oracle["standard"].per_file[r["key"]],
            "raw_standard_decisions": decisions["standard"].per_file[r["key"]],
        }
        for r in runs
    }
    return {
        "files": len(runs),
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds if seconds > 0 else None,
        "nab": {
            name: {
                "oracle": _without_per_file(oracle[name].to_dict()),
                "decisions": _without_per_file(decisions[name].to_dict()),
            }
            for name in nab.PROFILES
        },
        "events": events.to_dict(),
        "per_category": per_category(runs, windows),
        "budget": {cat: {"budget_per_week": rs[0].get("budget_per_week"), "alerts_per_week": rs[0].get("alerts_per_week")}
                   for cat, rs in _by_category(runs).items() if "alerts_per_week" in rs[0]},
        "no_anomaly": {"files": len(quiet_files), "alerts": sum(quiet_files.values()), "per_file": quiet_files},
        "per_file": per_file,
    }


def _by_category(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault(r["key"].split("/")[0], []).append(r)
    return out


def per_category(runs: list[dict[str, Any]], windows: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Standard-profile NAB scores per category: own decisions, and the score column with the
    oracle threshold chosen on that category alone (NaN for a category without windows)."""
    out: dict[str, dict[str, Any]] = {}
    for cat in sorted({r["key"].split("/")[0] for r in runs}):
        rs = [r for r in runs if r["key"].startswith(cat + "/")]
        wins = {r["key"]: windows[r["key"]] for r in rs}
        oracle = nab.score_corpus({r["key"]: (r["timestamps"], r["scores"]) for r in rs}, wins, "standard")
        own = nab.score_decisions({r["key"]: (r["timestamps"], r["is_anomaly"]) for r in rs}, wins, "standard")
        out[cat] = {"files": len(rs), "windows": sum(len(w) for w in wins.values()),
                    "alerts": int(sum(r["is_anomaly"].sum() for r in rs)),
                    "standard_oracle": oracle.score, "standard_decisions": own.score}
    return out


def _without_per_file(d: dict[str, Any]) -> dict[str, Any]:
    d.pop("per_file", None)
    return d


def format_summary(s: Mapping[str, Any]) -> str:
    """A readable summary of :func:`evaluate_series`'s result."""
    lines = [
        f"eval series: {s['files']} files, {s['rows']} rows in {s['seconds']:.1f} s "
        f"({(s['rows_per_s'] or 0):,.0f} rows/s)",
        "NAB score          oracle threshold     own decisions (is_anomaly)",
    ]
    for name, body in s["nab"].items():
        o, d = body["oracle"], body["decisions"]
        lines.append(f"  {name:<18} {o['score']:7.2f} (t={o['threshold']:.4g})   {d['score']:7.2f}")
    for cat, c in s.get("per_category", {}).items():
        lines.append(f"  {cat:<24} {c['files']:3d} files {c['windows']:3d} windows {c['alerts']:4d} alerts   "
                     f"standard oracle {c['standard_oracle']:7.2f}   own decisions {c['standard_decisions']:7.2f}")
    for cat, b in s.get("budget", {}).items():
        lines.append(f"  asset {cat:<18} alerts per week {b['alerts_per_week']:.2f} (budget for false alerts "
                     f"{b['budget_per_week']:g})")
    e = s["events"]
    delay = "n/a" if e["mean_delay_s"] is None else f"{e['mean_delay_s'] / 60:.1f} min"
    lines += [
        f"events: {e['detected']}/{e['windows']} windows detected, {e['alerts']} alerts "
        f"({e['false_alerts']} false): precision {e['precision']:.3f} recall {e['recall']:.3f} "
        f"F1 {e['f1']:.3f}",
        f"mean detection delay {delay}; {e['false_alerts_per_day']:.3f} false alerts/day "
        f"over {e['scored_days']:.1f} scored days",
        f"alerts on {NO_ANOMALY_CATEGORY}: {s['no_anomaly']['alerts']} "
        f"in {s['no_anomaly']['files']} files",
    ]
    return "\n".join(lines)
