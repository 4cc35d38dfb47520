"""``make bench``: every benchmark script in one run, and one table of oddwatch's figures beside
their anchors measured in the same run.

Usage::

    .venv/bin/python scripts/bench.py [--quick] [--data DIR] [--results out]

A benchmark is any ``scripts/bench_<name>.py`` (the naming convention is the registry): it
takes ``--out FILE``, writes the one result format there
(:func:`oddwatch.evaluation.benchtools.write_results`) and declares at module level how this
script runs it, e.g. ``BENCH = {"quick": ["--quick"], "full": [], "data": "hdfs"}``: the
arguments for ``--quick`` and for a full run, and ``"data": "hdfs"`` when it needs
``hdfs/HDFS_dev.log`` under ``--data`` (passed as ``--log``; skipped without it). Each runs as
its own process and writes ``<results>/bench-<name>.json`` (``_`` written ``-``); this script
then prints the anchor table with the machine, the load average and the command, and writes it
to ``<results>/bench-summary.json`` for ``scripts/make_benchmarks.py``. ``--only`` picks some
(``--only sensors,connectors``), ``--list`` shows them all.

Anchors: a figure of oddwatch is only as good as what bounds it on the same machine at the
same time; on a shared machine the load average moves both.
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oddwatch.evaluation import benchtools

ROOT = Path(__file__).resolve().parents[1]
HDFS_LOG = Path("hdfs") / "HDFS_dev.log"


def benchmarks() -> dict[str, dict[str, Any]]:
    """Every ``scripts/bench_<name>.py`` by name, with its ``BENCH`` declaration (read, not imported)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "scripts").glob("bench_*.py")):
        decl: dict[str, Any] = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "BENCH" for t in node.targets):
                decl = ast.literal_eval(node.value)
        if not decl:
            raise SystemExit(f"bench: {path.name} declares no BENCH = {{'quick': [...], 'full': [...]}}")
        found[path.stem.removeprefix("bench_")] = {"script": path.name, "quick": list(decl.get("quick", [])),
                                                   "full": list(decl.get("full", [])), "data": decl.get("data")}
    return found


def _run(script: str, args: list[str]) -> float:
    """Run ``scripts/<script>`` with *args*; its wall seconds (a failing script stops the run)."""
    argv = [sys.executable, str(ROOT / "scripts" / script), *args]
    print(f"bench: {shlex.join(argv[1:])}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: {script} failed with exit code {done.returncode}")
    return time.perf_counter() - start


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("results", {}) if isinstance(data, Mapping) else {}


def _get(results: Mapping[str, Any], section: str, key: str) -> float | None:
    values = results.get(section) or {}
    value = values.get(key, (values.get("details") or {}).get(key))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _shown(v: float | None) -> float | None:
    return None if v is None else (round(v, 3) if abs(v) < 10 else round(v, 1) if abs(v) < 100 else round(v))


def _row(figure: str, value: float | None, anchor: str, anchor_value: float | None, unit: str) -> dict[str, Any]:
    ratio = round(value / anchor_value, 3) if value is not None and anchor_value else None
    return {"figure": figure, "oddwatch": _shown(value), "anchor (same run)": anchor,
            "anchor value": _shown(anchor_value), "unit": unit, "oddwatch / anchor": ratio}


def anchor_rows(results: Path) -> list[dict[str, Any]]:
    """The anchor table from the ``bench-*.json`` files under *results*."""
    conn = _load(results / "bench-connectors.json")
    sens = _load(results / "bench-sensors.json")
    scale = _load(results / "bench-scaleout.json")
    logs = _load(results / "bench-logs.json")
    loge = _load(results / "bench-logs-e2e.json")
    bare = _get(conn, "mqtt", "bare_paho_drain_msgs_per_s")
    per_msg = _get(sens, "e2e_lineproto", "readings_per_message") or 100.0
    step_us = _get(sens, "step", "us_per_reading_1000_series_first_50") or _get(sens, "step", "us_per_reading_at_history_300")
    rows = [
        _row("sensors MQTT->InfluxDB, JSON 1 reading/message", _get(sens, "e2e_json", "readings_per_s"),
             "bare paho drain (msg/s)", bare, "readings/s"),
        _row(f"sensors MQTT->InfluxDB, line protocol {per_msg:g}/message", _get(sens, "e2e_lineproto", "readings_per_s"),
             f"bare paho drain x {per_msg:g} (small messages)", bare * per_msg if bare else None, "readings/s"),
        _row("sensor flow, null sinks", _get(sens, "flow_null_sink", "readings_per_s"),
             "series pipeline alone (SeriesState.step)", 1e6 / step_us if step_us else None, "readings/s"),
        _row("sensor flow cost outside the pipeline, JSON", _get(sens, "flow_outside_pipeline", "us_per_reading_json"),
             "series pipeline alone", step_us, "CPU µs/reading"),
        _row("sensor flow, null sinks, long-history series", _get(sens, "long_history", "flow_long_readings_per_cpu_s"),
             "series pipeline alone on the same states", _get(sens, "long_history", "pipeline_alone_long_readings_per_cpu_s"),
             "readings/CPU s"),
        _row("sensor flow, long-history vs fresh series", _get(sens, "long_history", "flow_long_vs_fresh"),
             "pipeline alone, long-history vs fresh", _get(sens, "long_history", "pipeline_alone_long_vs_fresh"), "ratio"),
        _row("sensor latency p99, publish -> queryable", _get(sens, "latency", "p99_ms"),
             "InfluxDB writer flush interval", (_get(sens, "latency", "flush_interval_s") or 0.0) * 1000 or None, "ms"),
    ]
    for k in (2, 4):
        if f"processes_{k}" in scale:
            rows.append(_row(f"sensors, {k} processes (one cluster)", _get(scale, f"processes_{k}", "readings_per_s"),
                             "1 process", _get(scale, "processes_1", "readings_per_s"), "readings/s"))
    if logs:
        rows.append(_row("log core (templates, windows, embeddings, novelty)", _get(logs, "core", "core lines/s"),
                         "Drain3 alone, same masking", _get(logs, "core", "drain3 alone lines/s"), "lines/s"))
        rows.append(_row("log core, template-cached embeddings", _get(logs, "core", "core lines/s"),
                         "embedding every line", _get(logs, "core", "embed-every-line lines/s"), "lines/s"))
    for k in (1, 100):
        section = f"e2e_per_message_{k}"
        if section in loge:
            rows.append(_row(f"logs MQTT->InfluxDB, {k} line(s)/message", _get(loge, section, "lines_per_s"),
                             "Drain3 alone" if logs else "log core alone",
                             _get(logs, "core", "drain3 alone lines/s"), "lines/s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole run in about 2 minutes")
    parser.add_argument("--data", type=Path, default=None, help="benchmark data folder (hdfs/HDFS_dev.log for logs)")
    parser.add_argument("--results", type=Path, default=ROOT / "out", help="folder of result files (default out/)")
    parser.add_argument("--table-only", action="store_true", help="only print the table of existing results")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and how each is run")
    args = parser.parse_args(argv)
    registry = benchmarks()
    if args.list:
        for name, b in registry.items():
            print(f"{name:12} {b['script']:22} quick {shlex.join(b['quick']) or '-'}; full {shlex.join(b['full']) or '-'}"
                  f"{'; needs --data with ' + str(HDFS_LOG) if b['data'] else ''}")
        return 0
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(registry)
    unknown = sorted(set(chosen) - set(registry))
    if unknown:
        raise SystemExit(f"bench: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(registry)}")
    command = shlex.join(["python", "scripts/bench.py", *(sys.argv[1:] if argv is None else argv)])
    machine = benchtools.machine()
    res = args.results
    seconds: dict[str, float] = {}
    if not args.table_only:
        log = args.data / HDFS_LOG if args.data else None
        for name in chosen:
            b = registry[name]
            extra: list[str] = []
            if b["data"] == "hdfs":
                if log is None or not log.is_file():
                    print(f"bench: no {HDFS_LOG} under --data ({args.data}); {b['script']} skipped", file=sys.stderr)
                    continue
                extra = ["--log", str(log)]
            out = res / f"bench-{name.replace('_', '-')}.json"
            seconds[name] = _run(b["script"], [*b["quick" if args.quick else "full"], *extra, "--out", str(out)])
    rows = anchor_rows(res)
    results = {row["figure"]: row for row in rows}
    if seconds:
        machine["bench_seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    benchtools.write_results(res / "bench-summary.json", "bench-summary", command, results, machine_info=machine,
                             show=False)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join("" if row[k] is None else f"{row[k]:,}" if isinstance(row[k], (int, float))
                                else str(row[k]) for k in keys) + " |")
    m = benchtools.machine()
    print(f"\nMachine: {m['platform']}, Python {m['python']}, {m['cpus']} CPUs ({m['cpu_model']}); "
          f"load average (1 min) {machine['load_avg_1m']} at start, {m['load_avg_1m']} at end.")
    print(f"Command: `{command}`; wrote {res / 'bench-summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
