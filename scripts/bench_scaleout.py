"""Sensor flow throughput with 1, 2, 4... processes forming one Bytewax cluster.

Usage::

    .venv/bin/python scripts/bench_scaleout.py [--processes 1,2,4] [--readings 50000] [--quick]

Mosquitto and InfluxDB 1.x start on free loopback ports in a temp dir. For each process count,
``oddwatch.cluster.start_local_cluster`` starts the sensor flow (the processes share the
subscription through a group named after the flow); once every process takes messages, one
publisher sends ``--readings`` readings as line protocol (``--per-message`` per message) over
``--series`` series, and the clock runs until the processes' ``oddwatch_readings_scored_total``
counters (scraped from each one's metrics endpoint) add up to the readings published. Each
reading must be scored exactly once: the run fails when the sum goes past it.

On a machine with fewer cores than processes plus Mosquitto and InfluxDB, the processes share
the cores: the speed-up says what the cores allow, not what the flow would do on more.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from oddwatch import cluster
from oddwatch.connectors.mqtt import MqttPublisher
from oddwatch.evaluation import benchtools
from oddwatch.lineproto import timestamp_ns
from oddwatch.observe.metrics import scrape
from oddwatch.records import utcnow
from oddwatch.services import LocalServices, free_port
from oddwatch.settings import Settings, as_dict, build_settings, to_toml

ROOT = Path(__file__).resolve().parents[1]
BENCH = {"quick": ["--quick", "--readings", "10000"], "full": []}  # how scripts/bench.py runs it




def _payloads(site: str, series: int, readings: int, per_message: int) -> list[tuple[str, bytes]]:
    per_series = max(1, readings // series)
    start = utcnow() - timedelta(seconds=per_series + 5)
    lines = [f"r,asset=a{k},sensor=x value={20.0 + (j % 11) * 0.1!r} {timestamp_ns(start + timedelta(seconds=j))}"
             for j in range(per_series) for k in range(series)]
    return [(f"plant/{site}/batch/lp", "\n".join(lines[i:i + per_message]).encode())
            for i in range(0, len(lines), per_message)]


def bench_processes(local: LocalServices, tmp: Path, processes: int, *, series: int, readings: int,
                    per_message: int) -> dict[str, Any]:
    name = f"scale{processes}"
    settings: Settings = build_settings({
        "mqtt": {"host": local.mqtt_host, "port": local.mqtt_port, "client_id": f"bench-{name}"},
        "influx": {"url": local.influx_url, "database": local.database, "spool_dir": str(tmp / "spool" / name)},
        "services": {"state_dir": str(local.state_dir), "influx_rpc_port": local.influx_rpc_port},
    })
    config = tmp / f"{name}.toml"
    config.write_text(to_toml(as_dict(settings, mask=False)))
    port = free_port()
    ports = [port + cluster.METRICS_PORT_STRIDE * k for k in range(processes)]
    env = {**os.environ, "ODDWATCH_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    procs = cluster.start_local_cluster("sensors", processes, metrics_port=port, env=env)
    try:
        deadline = time.monotonic() + 120
        while not all(scrape(p, "oddwatch_readings_scored_total") is not None for p in ports):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"bench_scaleout: {processes} process(es) did not start")
            time.sleep(0.2)
        with MqttPublisher(settings.mqtt, f"bench-{name}-pub") as pub:
            for _ in range(200):  # probes until every process takes messages (all have subscribed)
                for k in range(4):
                    pub.publish(f"plant/{name}probe/a{k}/x", b"1.0", qos=1)
                pub.wait_all(10)
                if all((scrape(p, "oddwatch_messages_in_total", {"stream": "sensor"}) or 0) > 0 for p in ports):
                    break
                time.sleep(0.25)
            else:
                raise SystemExit(f"bench_scaleout: not every one of {processes} process(es) took messages")

            def scored() -> float:
                return sum(scrape(p, "oddwatch_readings_scored_total") or 0.0 for p in ports)

            before, last = scored(), -1.0
            while before != last:  # the probes are scored
                time.sleep(0.5)
                before, last = scored(), before
            payloads = _payloads(name, series, readings, per_message)
            n = sum(p.count(b"\n") + 1 for _, p in payloads)
            cpu0 = {p.pid: benchtools.cpu_s(p.pid) for p in procs}
            start = time.perf_counter()
            for topic, payload in payloads:
                pub.publish(topic, payload, qos=1)
            pub.wait_all(120)
            publish_s = time.perf_counter() - start
            deadline = time.monotonic() + 600
            while (got := scored() - before) < n and time.monotonic() < deadline:
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            cpu = sum(benchtools.cpu_s(p.pid) - cpu0[p.pid] for p in procs)
        time.sleep(1.0)
        got = scored() - before
        if got != n:
            raise SystemExit(f"bench_scaleout: {processes} process(es) scored {got:.0f} readings of {n} published")
        return {"processes": processes, "readings": n, "seconds": round(elapsed, 2),
                "readings_per_s": round(n / elapsed), "publish_s": round(publish_s, 2),
                "flow_cpu_s": round(cpu, 1), "load_avg_1m": round(os.getloadavg()[0], 2)}
    finally:
        cluster.stop_cluster(procs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", default="1,2,4", help="process counts, one run each (default 1,2,4)")
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="20,000 readings, 1 and 2 processes")
    parser.add_argument("--out", default=str(ROOT / "out" / "bench-scaleout.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.readings, args.processes = min(args.readings, 20_000), "1,2"
    command = shlex.join(["python", "scripts/bench_scaleout.py", *(sys.argv[1:] if argv is None else argv)])
    machine = benchtools.machine()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp_name:
        tmp = Path(tmp_name)
        local = LocalServices(tmp / "state", free_port(), free_port(), free_port())
        local.start(timeout_s=60)
        try:
            for count in (int(c) for c in args.processes.split(",")):
                print(f"bench_scaleout: {count} process(es)", file=sys.stderr)
                results[f"processes_{count}"] = bench_processes(local, tmp, count, series=args.series,
                                                                readings=args.readings, per_message=args.per_message)
        finally:
            local.stop()
    one = results.get("processes_1", {}).get("readings_per_s")
    for row in results.values():
        row["speed_up"] = round(row["readings_per_s"] / one, 2) if one else None
    benchtools.write_results(Path(args.out), "bench-scaleout", command, results, machine_info=machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
