"""End-to-end throughput of the log dataflow on HDFS: MQTT -> flow -> InfluxDB.

Usage::

    .venv/bin/python scripts/bench_logs_e2e.py [--lines 60000] [--per-message 1,100] [--quick]

Mosquitto and InfluxDB 1.x are started on free loopback ports in a temp dir
(:class:`oddwatch.services.LocalServices`); the log flow (``flows.logs.build_flow`` with the
default model, all-MiniLM-L6-v2, on CPU, and the default :class:`~oddwatch.core.log_pipeline.LogParams`
with session windows by block id) runs in this process in a background thread
(:class:`oddwatch.flowrunner.FlowRunner`). The model is loaded and warmed before the clock starts
(``model.load_s``).

Raw HDFS lines (``081109 203530 147 INFO ...``) carry no timestamp the log parser knows, so
they would be stamped with their arrival time; they are published as JSON lines
``{"ts", "msg"}`` instead, with the HDFS time shifted so that the last line is a few seconds
old (``[logs] max_past_s`` accepts them) and ``msg`` as ``scripts/bench_logs.py`` and
``oddwatch eval logs`` see it. HDFS stamps have one-second resolution; the k-th line of a
second gets k ms added (at most 129 lines share a second in HDFS_dev.log), because InfluxDB
keeps one point per measurement, tag set and timestamp: windows of one group ending in the
same second would overwrite each other's ``log_window`` point (``--second-stamps`` publishes
the original stamps and shows the loss).

For each ``--per-message`` K, a subprocess publishes the lines (K JSON lines per message,
newline-separated, QoS 1) to ``logs/<site>/hdfs1/hdfs`` while the flow runs. When the flow has
taken every message (``messages_in``), the runner stops it: the source's end of stream
flushes every open session (the 1 h session gap of event time would otherwise keep most of
them open). The clock runs from the first publish until ``COUNT(novelty)`` of ``log_window``
in InfluxDB reaches the number of windows the same lines give offline
(:class:`oddwatch.core.log_windows.WindowAssembler`). Reported per run: lines/s, the split of that
time (publish, consumed, stop and flush), CPU seconds of this process (the flow), the
publisher, ``influxd`` and ``mosquitto``, the model calls and template-cache hit rate from
:mod:`oddwatch.observe.metrics`, and RSS.

Prints a markdown table and writes ``out/bench-logs-e2e.json`` for
``scripts/make_benchmarks.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from oddwatch import datasets
from oddwatch.evaluation import benchtools

ROOT = Path(__file__).resolve().parents[1]
BENCH = {"quick": ["--quick", "--lines", "5000"], "full": [], "data": "hdfs"}  # how scripts/bench.py runs it

HDFS_LOG = Path("hdfs") / "HDFS_dev.log"  # under --data
DEFAULT_LOG = datasets.hdfs_files()[0]  # `oddwatch datasets fetch hdfs`
HOST, APP = "hdfs1", "hdfs"


# --------------------------------------------------------------------------- publisher (child)
def publish_child(path: Path, host: str, port: int, client_id: str) -> int:
    """Publish the pickled ``[(topic, payload), ...]`` at *path* with QoS 1; print timings as JSON.

    Runs in its own process so that its CPU time is apart from the flow's.
    """
    from oddwatch.connectors.mqtt import MqttPublisher
    from oddwatch.settings import MqttSettings

    messages: list[tuple[str, bytes]] = pickle.loads(path.read_bytes())
    with MqttPublisher(MqttSettings(host=host, port=port), client_id) as pub:
        first = time.time()
        for topic, payload in messages:
            pub.publish(topic, payload, qos=1)
        pub.wait_all(300)
        acked = time.time()
    own = os.times()
    print(json.dumps({"first_publish": first, "all_acked": acked, "cpu_s": own.user + own.system}))
    return 0


# --------------------------------------------------------------------------- helpers
def _settings(local: Any, tmp: Path, name: str) -> Any:
    from oddwatch.services import free_port
    from oddwatch.settings import build_settings

    return build_settings({
        "mqtt": {"host": local.mqtt_host, "port": local.mqtt_port, "client_id": f"bench-{name}"},
        "influx": {"url": local.influx_url, "database": local.database, "spool_dir": str(tmp / "spool" / name)},
        "services": {"state_dir": str(local.state_dir), "influx_rpc_port": local.influx_rpc_port},
        "metrics": {"port": free_port(), "logs_port": free_port()},
        "log_detector": {"window_mode": "session"},
    })


def _vm_rss_mb() -> float:
    """Current resident set of this process (MiB), 0 when /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def read_hdfs(path: Path, limit: int) -> list[tuple[float, str]]:
    """The first *limit* HDFS lines as (epoch seconds, ``LEVEL component: message``)."""
    from oddwatch.evaluation.corpora import read_log

    out: list[tuple[float, str]] = []
    for ts, _src, msg, _label in read_log(path, "hdfs"):
        out.append((ts, msg))
        if len(out) >= limit:
            break
    return out


def stamp(lines: list[tuple[float, str]], *, now: float, second_stamps: bool) -> list[tuple[datetime, str]]:
    """Shift the lines' times so the last is 5 s before *now*; spread lines of one second by 1 ms."""
    from oddwatch.records import UTC

    shift = float(int(now - 5.0 - lines[-1][0]))
    out: list[tuple[datetime, str]] = []
    prev, k = None, 0
    for ts, msg in lines:
        k = k + 1 if ts == prev else 0
        prev = ts
        extra = 0.0 if second_stamps else k / 1000.0
        out.append((datetime.fromtimestamp(ts + shift + extra, UTC), msg))
    return out


def payloads(stamped: list[tuple[datetime, str]], topic: str, per_message: int) -> list[tuple[str, bytes]]:
    """*per_message* JSON lines per MQTT message."""
    rows = [json.dumps({"ts": ts.isoformat(), "msg": msg}) for ts, msg in stamped]
    return [(topic, "\n".join(rows[i:i + per_message]).encode()) for i in range(0, len(rows), per_message)]


def expected_windows(stamped: list[tuple[datetime, str]], source: str) -> tuple[int, int]:
    """(windows, distinct window end times) the flow's window assembler gives these lines."""
    from oddwatch.core.log_pipeline import LogParams
    from oddwatch.core.log_windows import WindowAssembler

    asm = WindowAssembler(source, LogParams(window_mode="session").window_params())
    ends: list[float] = []
    for ts, msg in stamped:
        ends += [w.end for w in asm.add(ts.timestamp(), 0, msg)]
    ends += [w.end for w in asm.flush()]
    return len(ends), len(set(ends))


def _count(query: Any, site: str) -> int:
    rows = query.query(f"SELECT COUNT(novelty) FROM log_window WHERE site = '{site}'")
    return int(rows[0]["count"]) if rows else 0


def _delta(m1: dict[str, float], m0: dict[str, float], key: str) -> float:
    return m1.get(key, 0.0) - m0.get(key, 0.0)


# --------------------------------------------------------------------------- end to end
def bench_e2e(local: Any, tmp: Path, query: Any, embedder: Any, lines: list[tuple[float, str]], *,
              per_message: int, second_stamps: bool, timeout_s: float) -> dict[str, Any]:
    """Publish *lines* live with *per_message* lines per message; time until all windows are in InfluxDB."""
    from flows.logs import build_flow
    from oddwatch.connectors.mqtt import MqttSource
    from oddwatch.flowrunner import FlowRunner, wait_for
    from oddwatch.observe import metrics

    site = f"benchk{per_message}"
    settings = _settings(local, tmp, f"logs-e2e-k{per_message}")
    stamped = stamp(lines, now=time.time(), second_stamps=second_stamps)
    messages = payloads(stamped, f"logs/{site}/{HOST}/{APP}", per_message)
    biggest = max(len(p) for _, p in messages)
    if biggest > settings.logs.max_payload_bytes:
        raise SystemExit(f"bench_logs_e2e: --per-message {per_message} makes a {biggest}-byte message, over "
                         f"[logs].max_payload_bytes = {settings.logs.max_payload_bytes}; use fewer lines per message")
    windows, points = expected_windows(stamped, f"{site}/{HOST}/{APP}")
    batch = tmp / f"messages-k{per_message}.pickle"
    batch.write_bytes(pickle.dumps(messages))

    def factory(s: Any, source: MqttSource) -> Any:
        return build_flow(s, source=source, embedder=embedder)  # default idle_check_s

    runner = FlowRunner(settings, factory, topics=[f"logs/{site}/+/+"], flow="logs")
    runner.start()
    m0 = metrics.snapshot(metrics.REGISTRY)
    cpu0 = _cpu_all(local)
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--publish-from", str(batch), "--mqtt-host",
         local.mqtt_host, "--mqtt-port", str(local.mqtt_port), "--client-id", f"bench-pub-k{per_message}"],
        stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    key_in = "messages_in{stream=log}"

    def consumed() -> bool:
        runner.check()
        return _delta(metrics.snapshot(metrics.REGISTRY), m0, key_in) >= len(messages)

    ok_in = wait_for(consumed, timeout_s, interval=0.05)
    t_consumed = time.time()
    out, _ = child.communicate(timeout=60)
    pub = json.loads(out.strip().splitlines()[-1])
    at_stop = _count(query, site)
    runner.stop(timeout=timeout_s)
    t_stopped = time.time()
    done = wait_for(lambda: _count(query, site) >= points, 60, interval=0.1)
    t_done = time.time()
    cpu1 = _cpu_all(local)
    m1 = metrics.snapshot(metrics.REGISTRY)
    got = _count(query, site)
    if not ok_in:
        print(f"bench_logs_e2e k={per_message}: the flow took only {_delta(m1, m0, key_in):.0f} of "
              f"{len(messages)} messages in {timeout_s:g} s", file=sys.stderr)
    if not done or got < windows:
        print(f"bench_logs_e2e k={per_message}: {got} log_window points in InfluxDB for {windows} windows "
              f"({points} distinct end times)", file=sys.stderr)
    elapsed = t_done - pub["first_publish"]
    hits = _delta(m1, m0, "template_cache_hits")
    misses = _delta(m1, m0, "template_cache_misses")
    calls = _delta(m1, m0, "model_calls")
    cpu = {f"cpu_s_{k}": round(v - cpu0[k], 1) for k, v in cpu1.items()}
    errors = {k.split("{", 1)[1].rstrip("}"): int(_delta(m1, m0, k)) for k in m1
              if k.startswith("parse_errors{") and _delta(m1, m0, k)}
    return {
        "lines": len(lines), "messages": len(messages), "lines_per_message": per_message,
        "lines_per_s": round(len(lines) / elapsed), "seconds_to_influx": round(elapsed, 2),
        "windows_expected": windows, "log_window_points": got, "complete": got >= windows,
        "model_calls": int(calls), "template_cache_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        **cpu, "cpu_s_publisher": round(pub["cpu_s"], 1),
        "lines_per_flow_cpu_s": round(len(lines) / cpu["cpu_s_flow_process"]) if cpu["cpu_s_flow_process"] else 0,
        # the split of seconds_to_influx
        "publish_s": round(pub["all_acked"] - pub["first_publish"], 2),
        "consumed_s": round(t_consumed - pub["first_publish"], 2),
        "stop_flush_s": round(t_stopped - t_consumed, 2), "influx_visible_after_stop_s": round(t_done - t_stopped, 2),
        "publish_msgs_per_s": round(len(messages) / max(1e-9, pub["all_acked"] - pub["first_publish"])),
        "windows_in_influx_before_stop": at_stop, "windows_expected_distinct_ends": points,
        "windows_scored": int(_delta(m1, m0, "windows_scored")),
        # same measurement, tags and end time: InfluxDB keeps the last point only
        "points_overwritten_same_timestamp": max(0, int(_delta(m1, m0, "windows_scored")) - got),
        "influx_points_written": int(_delta(m1, m0, "influx_points_written")),
        "influx_write_errors": int(_delta(m1, m0, "influx_write_errors")),
        "template_cache_hits": int(hits), "template_cache_misses": int(misses),
        "mean_texts_per_model_call": round(_delta(m1, m0, "embed_batch_size_sum") / calls, 1) if calls else 0.0,
        "parse_errors": errors, "alerts_opened": int(_delta(m1, m0, "alerts{source=log,kind=open}")),
        "second_stamps": second_stamps, "rss_mb_now": round(_vm_rss_mb(), 1), "max_rss_mb_so_far": round(benchtools.rss_mb(), 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


#: Metrics shown in docs/benchmarks.md; the rest of each section goes under ``details``.
HEADLINE = {
    "model": ("name", "device", "load_s"),
    "e2e": ("lines", "lines_per_message", "lines_per_s", "seconds_to_influx", "windows_expected",
            "log_window_points", "complete", "model_calls", "template_cache_hit_rate", "cpu_s_flow_process",
            "cpu_s_publisher", "cpu_s_influxd", "cpu_s_mosquitto", "lines_per_flow_cpu_s"),
    "process": ("max_rss_mb",),
}


def _cpu_all(local: Any) -> dict[str, float]:
    status = local.status()
    return {"flow_process": benchtools.cpu_s(), "influxd": benchtools.cpu_s(status["influx"]["pid"]),
            "mosquitto": benchtools.cpu_s(status["mqtt"]["pid"])}


def _split_headline(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section, values in results.items():
        keep = HEADLINE.get(section.split("_per_message")[0], tuple(values))
        head = {k: values[k] for k in keep if k in values}
        rest = {k: v for k, v in values.items() if k not in head}
        out[section] = {**head, "details": rest} if rest else head
    return out


def _table(results: dict[str, dict[str, Any]]) -> str:
    """One row per metric, one column per section (runs side by side)."""
    sections = list(results)
    keys = list(dict.fromkeys(k for values in results.values() for k in values))
    lines = ["| metric | " + " | ".join(sections) + " |", "|---|" + "---|" * len(sections)]
    for key in keys:
        cells = []
        for section in sections:
            v = results[section].get(key, "")
            cells.append(f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="benchmark data folder (reads hdfs/HDFS_dev.log)")
    parser.add_argument("--log", type=Path, default=None, help="HDFS log file (default: --data/hdfs/HDFS_dev.log, else the `oddwatch datasets` cache)")
    parser.add_argument("--lines", type=int, default=60_000, help="HDFS lines per run (default 60000)")
    parser.add_argument("--per-message", default="1,100", help="lines per MQTT message, one run each (default 1,100)")
    parser.add_argument("--second-stamps", action="store_true",
                        help="publish HDFS's one-second stamps as they are (shows log_window points overwritten)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="limit for the flow to take all messages")
    parser.add_argument("--quick", action="store_true", help="20,000 lines")
    parser.add_argument("--out", default=str(ROOT / "out" / "bench-logs-e2e.json"))
    for hidden in ("--publish-from", "--mqtt-host", "--mqtt-port", "--client-id"):
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publish_from:
        return publish_child(Path(args.publish_from), args.mqtt_host, int(args.mqtt_port), args.client_id)
    args.log = args.log or (args.data / HDFS_LOG if args.data else DEFAULT_LOG)
    if not args.log.exists():
        print(f"bench_logs_e2e: {args.log} not found (pass --log); skipped", file=sys.stderr)
        return 0
    if args.quick:
        args.lines = min(args.lines, 20_000)
    ks = [int(k) for k in args.per_message.split(",") if k.strip()]
    if not ks or min(ks) < 1:
        parser.error(f"--per-message {args.per_message!r}: give positive integers, e.g. 1,100")
    command = shlex.join(["python", "scripts/bench_logs_e2e.py", *(sys.argv[1:] if argv is None else argv)])

    from oddwatch.connectors.influx import InfluxQuery
    from oddwatch.core.log_pipeline import LogParams, build_embedder
    from oddwatch.evaluation import benchtools
    from oddwatch.services import LocalServices, free_port

    machine = benchtools.machine()
    lines = read_hdfs(args.log, args.lines)
    print(f"bench_logs_e2e: {len(lines)} lines of {args.log}; loading the model", file=sys.stderr)
    params = LogParams(window_mode="session")
    start = time.perf_counter()
    embedder = build_embedder(params)
    embedder.encode([lines[0][1]])  # warm: the first call allocates
    results: dict[str, dict[str, Any]] = {"model": {
        "name": getattr(embedder, "model", params.model), "device": str(getattr(embedder, "device", "?")),
        "load_s": round(time.perf_counter() - start, 2)}}
    with tempfile.TemporaryDirectory(prefix="bench-logs-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        local = LocalServices(tmp / "state", free_port(), free_port(), free_port())
        local.start(timeout_s=60)
        query = InfluxQuery(local.influx_settings())
        try:
            for k in ks:
                print(f"bench_logs_e2e: end to end, {k} line(s) per message", file=sys.stderr)
                results[f"e2e_per_message_{k}"] = bench_e2e(local, tmp, query, embedder, lines, per_message=k,
                                                            second_stamps=args.second_stamps,
                                                            timeout_s=args.timeout_s)
        finally:
            query.close()
            local.stop()
    results["process"] = {"max_rss_mb": round(benchtools.rss_mb(), 1), "lines": len(lines), "log": str(args.log)}
    benchtools.write_results(Path(args.out), "bench-logs-e2e", command, _split_headline(results),
                             machine_info=machine, show=False)
    print(_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
