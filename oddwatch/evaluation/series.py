"""``oddwatch eval series``: run the live sensor pipeline over NAB-style CSVs and score it.

Every ``DIR/<category>/<file>.csv`` (``timestamp,value``) is replayed, one
:class:`oddwatch.records.Reading` per row (site ``nab``, asset = category, sensor = file stem,
timestamps taken as UTC), through :class:`oddwatch.core.series.SeriesState`, the very object the live
flow keeps per series. Each file's output goes to ``OUT/<category>/<file>.csv``
(``timestamp,value,anomaly_score,is_anomaly``, one row per input row, in order) and the
scores to ``OUT/summary.json``:

- the NAB score of ``anomaly_score`` for the three profiles with the oracle threshold (chosen
  with the labels, as NAB does), beside the NAB score of the pipeline's own ``is_anomaly``
  decisions (no labels used);
- event-level precision, recall and F1 of the decisions, mean detection delay, false alerts
  per day, and the alerts raised on ``artificialNoAnomaly`` (series with nothing to find);
- throughput in rows per second.
"""

from __future__ import annotations

import csv
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
from typing import Any

import numpy as np

from oddwatch.core.asset_sensors import AssetSensorsState
from oddwatch.core.series import SeriesParams, SeriesState
from oddwatch.evaluation import corpora, nab
from oddwatch.records import Reading
from oddwatch.settings import AlertSettings

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


def run_file(
    csv_path: Path,
    out_path: Path | None,
    params: SeriesParams | None = None,
    alerts: AlertSettings | None = None,
) -> dict[str, Any]:
    """Replay one series through :class:`SeriesState`, writing its output CSV to *out_path*.

    With ``out_path=None`` nothing is written (for parameter sweeps). Returns ``{"key",
    "rows", "seconds", "timestamps", "scores", "is_anomaly", "values", "thresholds"}`` (numpy arrays), ``key`` being
    ``"<category>/<file>.csv"``.
    """
    category, stem = csv_path.parent.name, csv_path.stem
    state = SeriesState(SITE, category, stem, params, alerts)
    stamps: list[datetime] = []
    scores: list[float] = []
    flags: list[int] = []
    values: list[float] = []
    thresholds: list[float] = []
    out_rows: list[list[str]] = []
    start = time.perf_counter()
    for ts, value, ts_text, value_text in corpora.iter_series(csv_path):
        out = state.step(Reading(SITE, category, stem, ts, value))
        flag = int(out.is_anomaly)
        if out_path is not None:
            out_rows.append([ts_text, value_text, repr(float(out.score)), str(flag)])
        stamps.append(ts)
        scores.append(out.score)
        flags.append(flag)
        values.append(value)
        thresholds.append(out.threshold)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(out_path, "w", newline="") as dst:
            writer = csv.writer(dst)
            writer.writerow(OUT_HEADER)
            writer.writerows(out_rows)
    return {
        "key": f"{category}/{csv_path.name}",
        "rows": len(scores),
        "seconds": time.perf_counter() - start,
        "timestamps": nab.to_datetime64(stamps),
        "scores": np.asarray(scores, dtype=float),
        "is_anomaly": np.asarray(flags, dtype=np.int8),
        "values": np.asarray(values, dtype=float),
        "thresholds": np.asarray(thresholds, dtype=float),
    }


ASSET_CSV = "_asset_alerts.csv"  # per category: the asset's alerts (not a NAB file: leading underscore)
ASSET_HEADER = ["timestamp", "kind", "alert_id", "sensors", "title"]


def run_asset(
    csv_paths: list[Path],
    out_dir: Path | None,
    params: SeriesParams | None = None,
    alerts: AlertSettings | None = None,
) -> list[dict[str, Any]]:
    """Replay the files of one category as one asset through :class:`AssetSensorsState`.

    The rows of all files are merged in time order (ties in file order), as a live flow
    would see them. ``is_anomaly`` is 1 on the row where an asset alert opens of each sensor
    the alert names (for a sensor other than the one read, its latest row). Returns one
    result per file as :func:`run_file` does, each with ``budget_per_week`` and
    ``alerts_per_week`` (the asset's alert opens per week of its readings); with *out_dir*
    the per-file CSVs and ``_asset_alerts.csv`` are written there.
    """
    category = csv_paths[0].parent.name
    state = AssetSensorsState(SITE, category, params, alerts)
    rows: list[list[tuple[datetime, float, str, str]]] = [list(corpora.iter_series(p)) for p in csv_paths]
    stems = [p.stem for p in csv_paths]
    index = {stem: i for i, stem in enumerate(stems)}
    order = sorted(((r[0], i, j) for i, rs in enumerate(rows) for j, r in enumerate(rs)), key=lambda x: (x[0], x[1]))
    scores = [np.zeros(len(rs)) for rs in rows]
    thresholds = [np.zeros(len(rs)) for rs in rows]
    flags = [np.zeros(len(rs), dtype=np.int8) for rs in rows]
    latest = [-1] * len(rows)
    asset_rows: list[list[str]] = []
    opens = 0
    start = time.perf_counter()
    for ts, i, j in order:
        value = rows[i][j][1]
        out = state.step(Reading(SITE, category, stems[i], ts, value))
        latest[i] = j
        scores[i][j] = out.series.score
        thresholds[i][j] = out.series.threshold
        if out.alert is not None:
            if out.alert.kind == "open":
                opens += 1
                for name in out.sensors:
                    k = index[name]
                    if latest[k] >= 0:
                        flags[k][latest[k]] = 1
            named = out.alert.details.get("sensors", ())
            asset_rows.append([ts.isoformat(), out.alert.kind, out.alert.alert_id,
                               " ".join(str(x) for x in named) if isinstance(named, list) else "", out.alert.title])
    seconds = time.perf_counter() - start
    span_s = (order[-1][0] - order[0][0]).total_seconds() if order else 0.0
    per_week = opens / (span_s / (7 * 86400.0)) if span_s > 0 else math.nan
    budget = (alerts or AlertSettings()).false_alerts_per_week
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(csv_paths):
            with open(out_dir / path.name, "w", newline="") as dst:
                writer = csv.writer(dst)
                writer.writerow(OUT_HEADER)
                writer.writerows([r[2], r[3], repr(float(scores[i][j])), str(int(flags[i][j]))]
                                 for j, r in enumerate(rows[i]))
        with open(out_dir / ASSET_CSV, "w", newline="") as dst:
            writer = csv.writer(dst)
            writer.writerow(ASSET_HEADER)
            writer.writerows(asset_rows)
    return [{
        "key": f"{category}/{path.name}",
        "rows": len(rows[i]),
        "seconds": seconds * len(rows[i]) / max(len(order), 1),
        "timestamps": nab.to_datetime64([r[0] for r in rows[i]]),
        "scores": scores[i],
        "is_anomaly": flags[i],
        "values": np.asarray([r[1] for r in rows[i]], dtype=float),
        "thresholds": thresholds[i],
        "budget_per_week": budget,
        "alerts_per_week": per_week,
    } for i, path in enumerate(csv_paths)]


def _run_asset_args(args: tuple[list[Path], Path | None, SeriesParams | None, AlertSettings | None]
                    ) -> list[dict[str, Any]]:
    return run_asset(*args)


def _run_file_args(args: tuple[Path, Path | None, SeriesParams | None, AlertSettings | None]) -> dict[str, Any]:
    return run_file(*args)


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
    start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    total_rows = 0
    if assets:
        by_cat: dict[str, list[Path]] = {}
        for p in files:
            by_cat.setdefault(p.parent.name, []).append(p)
        asset_jobs = [(paths, out / cat, params, alert_settings) for cat, paths in by_cat.items()]
        with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Serial() as pool:
            for asset_runs in pool.map(_run_asset_args, asset_jobs):
                runs += asset_runs
                total_rows += sum(r["rows"] for r in asset_runs)
                _progress(progress, len(runs), len(files), total_rows, start, asset_runs[-1]["key"])
    else:
        jobs = [(p, out / p.parent.name / p.name, params, alert_settings) for p in files]
        with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Serial() as pool:
            for run in pool.map(_run_file_args, jobs):
                runs.append(run)
                total_rows += run["rows"]
                _progress(progress, len(runs), len(jobs), total_rows, start, run["key"])
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


class _Serial:
    """``ProcessPoolExecutor``'s ``map`` in this process."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Any, jobs: list[Any]) -> Any:
        return map(fn, jobs)


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
