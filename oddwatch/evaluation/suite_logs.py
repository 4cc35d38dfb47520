"""The log rows of ``oddwatch eval suite``: HDFS, Thunderbird, the loghub 2k samples, the network simulator.

Every line goes through :func:`oddwatch.evaluation.logs.decide_lines` (one live
:class:`~oddwatch.core.logsource.LogSourceState` per source), by way of
:func:`~oddwatch.evaluation.logs.evaluate_logs` for the files. A false alert is a paging alert
(an alert that opens) where nothing was to be found.

- HDFS: session (block) windows, as ``oddwatch eval logs`` runs it by default; the one online
  run scored on the blocks first seen in each half of the file (F1, precision, recall, AUROC).
- Thunderbird 2k: every line of the sample is normal, so every alert is false (per source-day,
  a source being a node).
- loghub 2k samples of the other systems, read as raw lines (one source per file; raw lines
  carry no time, so the clock is one second per line and false alerts are counted per 1,000 lines).
- Network simulator (``scripts/network_quick.py``'s scenario: an hour of syslog from routers,
  switches and servers per seed, with the demo's log windows): incidents detected when an alert
  of their source opens between their start and three windows after their end; the other
  alerts are false, per source-day.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from oddwatch import datasets
from oddwatch.evaluation.logs import decide_lines, evaluate_logs
from oddwatch.evaluation.suite_sensors import DAY_S, Result, Row, median, pool_map
from oddwatch.records import Alert
from oddwatch.settings import Settings

HDFS_SESSION = r"blk_-?\d+"
QUICK_HDFS_LINES = 20000
NETWORK_SEEDS = tuple(range(1, 11))
NETWORK_START = datetime(2026, 1, 1, tzinfo=UTC)
LABELLED_SAMPLES = ("Thunderbird", "BGL", "HDFS")  # scored as their own rows, not as raw lines


def hdfs_rows(settings: Settings, quick: bool, workers: int) -> Result:
    log, labels = datasets.hdfs_files()
    with tempfile.TemporaryDirectory() as tmp:
        if quick:
            part = Path(tmp) / log.name
            with log.open(encoding="utf-8", errors="replace") as src:
                part.write_text("".join(islice(src, QUICK_HDFS_LINES)), encoding="utf-8")
            log = part
        s = evaluate_logs(log, fmt="hdfs", labels=labels, session_regex=HDFS_SESSION,
                          params=copy.deepcopy(settings.log_detector), alerts=settings.alerts)
    rows: list[Row] = []
    for half in ("first_half", "second_half"):
        m = s[half]
        rows.append({"name": f"HDFS blocks, {half.replace('_', ' ')}", "detected": round(m["recall"] * m["anomalous_sessions"]),
                     "total": m["anomalous_sessions"],
                     "note": f"F1 {m['f1']:.3f} P {m['precision']:.3f} R {m['recall']:.3f} AUROC {m['auroc']:.3f}"})
    keep = ("lines", "windows", "labelled_sessions", "anomalous_sessions", "f1", "precision", "recall", "auroc",
            "auprc", "first_half", "second_half", "alerts_opened", "seconds", "lines_per_s")
    return rows, {k: s[k] for k in keep if k in s}


def _normal_log(job: tuple[Path, str, Settings]) -> dict[str, Any]:
    path, fmt, settings = job
    states: dict[str, Any] = {}
    s = evaluate_logs(path, fmt=fmt, params=copy.deepcopy(settings.log_detector), alerts=settings.alerts,
                      states=states)
    return {"file": path.name, "lines": s["lines"], "sources": len(states), "alerts": s["alerts_opened"],
            "log_hours": s["log_hours"], "source_days": len(states) * s["log_hours"] / 24.0}


def thunderbird_rows(settings: Settings, quick: bool, workers: int) -> Result:
    (log,) = sorted(datasets.path("thunderbird").glob("*.log"))[:1]
    (r,) = pool_map(_normal_log, [(log, "thunderbird", settings)], 1)
    rows: list[Row] = [{"name": f"Thunderbird 2k (normal, {r['sources']} nodes)", "detected": None,
                        "false_per_source_day": r["alerts"] / r["source_days"] if r["source_days"] else None,
                        "note": f"{r['alerts']} alerts in {r['lines']} lines over {r['log_hours']:.1f} h"}]
    return rows, r


def loghub2k_rows(settings: Settings, quick: bool, workers: int) -> Result:
    files = sorted(p for p in datasets.path("loghub2k").glob("*/*_2k.log") if p.parent.name not in LABELLED_SAMPLES)
    if quick:
        files = files[:2]
    per = pool_map(_normal_log, [(p, "raw", settings) for p in files], workers)
    alerts, lines = sum(p["alerts"] for p in per), sum(p["lines"] for p in per)
    noisy = [f"{p['file'].removesuffix('_2k.log')} {p['alerts']}" for p in per if p["alerts"]]
    rows: list[Row] = [{"name": f"loghub 2k samples (normal, {len(per)} systems)",
                        "note": f"{alerts} alerts in {lines} raw lines ({1000 * alerts / max(lines, 1):.2f} per 1k lines)"
                                + (f": {', '.join(noisy)}" if noisy else "")}]
    return rows, {"files": per}


def _network_seed(job: tuple[int, Settings, float]) -> dict[str, Any]:
    from detectors.embedders import TemplateEmbeddingCache
    from oddwatch.core.log_pipeline import build_embedder
    from oddwatch.demo import LOG_LEAD_S, demo_settings, match_faults
    from simulators.network import NetworkSimulation

    seed, settings, hours = job
    settings = demo_settings(copy.deepcopy(settings))
    params = settings.log_detector
    duration_s = hours * 3600.0
    warmup_frac = min(0.6, max(0.25, 1.3 * params.warmup / (duration_s / params.window_size_s)))  # as the demo
    sim = NetworkSimulation(seed=seed, rate=20.0, duration_s=duration_s, start=NETWORK_START, warmup_frac=warmup_frac)
    items = [(line.ts.timestamp(), line.source, line.msg) for line in sim]
    cache = TemplateEmbeddingCache(build_embedder(params), capacity=params.cache_capacity)
    outputs = decide_lines(items, params, cache, alerts=settings.alerts)
    alerts = [{"key": o.alert_id.rsplit(":", 1)[0], "opened": o.opened_at, "raised": o.ts}
              for o in outputs if isinstance(o, Alert) and o.kind == "open"]
    r = match_faults(sim.plan.as_dict()["incidents"], alerts, "source", 3 * params.window_size_s, lead_s=LOG_LEAD_S)
    sources = len({k for _, k, _ in items})
    return {"seed": seed, "incidents": r["injected"], "detected": r["detected"], "false_alerts": r["false_alerts"],
            "delays_s": [f["delay_s"] for f in r["faults"] if f["delay_s"] is not None],
            "lines": len(items), "sources": sources, "source_days": sources * duration_s / DAY_S}


def network_rows(settings: Settings, quick: bool, workers: int) -> Result:
    seeds = NETWORK_SEEDS[:1] if quick else NETWORK_SEEDS
    per = pool_map(_network_seed, [(s, settings, 1.0) for s in seeds], workers)
    days = sum(p["source_days"] for p in per)
    false = [p["false_alerts"] for p in per]
    rows: list[Row] = [{
        "name": f"network simulator (seeds {seeds[0]}-{seeds[-1]})", "detected": sum(p["detected"] for p in per),
        "total": sum(p["incidents"] for p in per), "delay_s": median(d for p in per for d in p["delays_s"]),
        "false_per_source_day": sum(false) / days if days else None,
        "note": f"false alerts per run mean {statistics.fmean(false):.1f}; the demo's log windows"}]
    return rows, {"seeds": per}
