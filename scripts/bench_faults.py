"""Published, stored and lost messages when flows are killed, stopped and cut off from the broker.

Usage::

    .venv/bin/python scripts/bench_faults.py [--rate 1000] [--readings 20000] [--lines 10000]
        [--throughput 30000] [--only sensors-kill,...] [--no-recovery-too]

Mosquitto and InfluxDB 1.x are started on free loopback ports in a temp dir; each flow runs as
``oddwatch run sensors|logs`` (recovery on, the default) while a publisher sends at ``--rate``
messages per second. Scenarios:

- ``sensors-kill``: kill -9 of the sensor flow twice mid-stream, restarted at once;
- ``logs-kill``: the same for the log flow (hashing embedder, 60 s tumbling windows), lines
  counted through the ``lines`` field of its ``log_window`` points;
- ``logs-sigterm``: SIGTERM then restart of the log flow mid-stream;
- ``broker-restart``: Mosquitto stopped for 2 s and started again while the sensor flow runs;
  ``resume_s`` is the time from the broker's return to the first new reading stored;
- ``inproc``: CPU per reading of the sensor flow in this process with null sinks, fed
  directly (no WAL, no recovery) or through a WAL with recovery (``--throughput`` readings over
  each of ``--series`` series counts; see :func:`bench_inproc`);
- ``throughput``: ``--throughput`` readings queued in the flow's broker session while it is
  down, then drained; readings/s between 10 % and 90 % stored (start-up excluded), with the
  default snapshot interval (the fault scenarios snapshot every second).

``--no-recovery-too`` runs each scenario a second time with ``--no-recovery`` (MQTT read
directly and acknowledged as read, no snapshots) for comparison. Prints a
markdown table and writes ``out/bench-faults.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from oddwatch.connectors.influx import InfluxQuery
from oddwatch.connectors.mqtt import MqttPublisher
from oddwatch.evaluation import benchtools
from oddwatch.faults import (
    LOG_FLOW_ENV,
    FlowProcess,
    PacedPublisher,
    log_messages,
    sensor_messages,
    stored_lines,
    stored_readings,
    wait_count,
)
from oddwatch.services import LocalServices, free_port
from oddwatch.settings import Settings, build_settings

BENCH = {"quick": ["--readings", "4000", "--lines", "2000", "--kills", "1", "--throughput", "5000"], "full": []}

SCENARIOS = ("sensors-kill", "logs-kill", "logs-sigterm", "broker-restart", "throughput", "inproc")


class Bench:
    def __init__(self, local: LocalServices, root: Path, rate: float, recovery: bool) -> None:
        self.local = local
        self.root = root
        self.rate = rate
        self.recovery = recovery
        self.query = InfluxQuery(local.influx_settings())
        self.n = 0

    def settings(self, snapshot_s: float = 1.0) -> tuple[Settings, Path, str]:
        self.n += 1
        work = self.root / f"run{self.n}"
        site = f"b{self.n}{int(time.time()) % 100000}"
        settings = build_settings({
            "mqtt": {"host": self.local.mqtt_host, "port": self.local.mqtt_port, "client_id": f"bench-{site}"},
            "influx": {"url": self.local.influx_url, "database": self.local.database,
                       "spool_dir": str(work / "spool")},
            "state": {"dir": str(work / "state"), "snapshot_s": snapshot_s},
            "metrics": {"port": free_port()},
        })
        return settings, work, site

    def env(self, flow: str) -> dict[str, str]:
        env = dict(LOG_FLOW_ENV) if flow == "logs" else {}
        if not self.recovery:
            env["ODDWATCH_STATE__RECOVERY"] = "false"
        return env

    def faults(self, flow: str, n: int, action: Callable[[FlowProcess], None], kills: int) -> dict[str, Any]:
        settings, work, site = self.settings()
        messages = sensor_messages(site, n) if flow == "sensors" else log_messages(site, n)
        count = (lambda: stored_readings(self.query, site)) if flow == "sensors" else (
            lambda: stored_lines(self.query, site))
        with FlowProcess(settings, flow, work, env=self.env(flow)) as proc:
            proc.start()
            pub = PacedPublisher(settings, messages, self.rate, client_id=f"{site}-pub").start()
            for k in range(kills):
                pub.wait_published(n * (k + 1) // (kills + 1))
                action(proc)
                proc.start()
            published = pub.join()
            stored = wait_count(count, published, 60 if self.recovery else 25)
        return {"published": published, "stored": stored, "lost": published - stored,
                "lost_pct": round(100.0 * (published - stored) / published, 2)}

    def broker_restart(self) -> dict[str, Any]:
        settings, work, site = self.settings()
        messages = sensor_messages(site, 1010)
        with FlowProcess(settings, "sensors", work, env=self.env("sensors")) as proc:
            proc.start()
            PacedPublisher(settings, messages[:1000], self.rate, client_id=f"{site}-pub").start().join()
            wait_count(lambda: stored_readings(self.query, site), 1000, 30)
            self.local.stop(which=("mqtt",))
            time.sleep(2.0)
            self.local.start()
            back = time.monotonic()
            with MqttPublisher(settings.mqtt, f"{site}-pub2") as pub:
                for topic, payload in messages[1000:]:
                    pub.publish(topic, payload)
            stored = wait_count(lambda: stored_readings(self.query, site), 1010, 30)
            resume = time.monotonic() - back
        return {"published": 1010, "stored": stored, "lost": 1010 - stored, "resume_s": round(resume, 2)}

    def throughput(self, n: int) -> dict[str, Any]:
        settings, work, site = self.settings(snapshot_s=Settings().state.snapshot_s)  # the default
        messages = sensor_messages(site, n, series=100)
        with FlowProcess(settings, "sensors", work, env=self.env("sensors")) as proc:
            proc.start()
            proc.terminate()  # the broker keeps the session and queues what follows
            with MqttPublisher(settings.mqtt, f"{site}-pub") as pub:
                for topic, payload in messages:
                    pub.publish(topic, payload)
            proc.start(wait=False)
            assert proc.proc is not None
            marks: dict[float, tuple[float, float]] = {}
            deadline = time.monotonic() + 300
            while len(marks) < 2 and time.monotonic() < deadline:
                stored = stored_readings(self.query, site)
                for q in (0.1, 0.9):
                    if q not in marks and stored >= q * n:
                        marks[q] = (time.monotonic(), _cpu_s(proc.proc.pid))
                time.sleep(0.05)
            proc.terminate()
        if len(marks) < 2:
            return {"published": n, "readings_per_s": 0}
        (t10, c10), (t90, c90) = marks[0.1], marks[0.9]
        return {"published": n, "readings_per_s": round(0.8 * n / (t90 - t10)),
                "cpu_us_per_reading": round((c90 - c10) / (0.8 * n) * 1e6, 1)}


class _NullSink(DynamicSink[Any]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition[Any]:
        class _Partition(StatelessSinkPartition[Any]):
            def write_batch(self, items: list[Any]) -> None:
                pass

        return _Partition()


class _Feeder:
    """A receiver that appends *messages* to the WAL when the partition is built (as MQTT would)."""

    def __init__(self, wal: Any, messages: list[Any]) -> None:
        for m in messages:
            wal.append(m.topic, m.payload, time.time_ns(), 1)

    def close(self) -> None:
        pass


def bench_inproc(root: Path, n: int, series: int, snapshot_s: float) -> list[dict[str, Any]]:
    """CPU per reading of the sensor flow in this process, null sinks: messages from a
    ``TestingSource`` in batches of 500 without recovery (no source cost at all), against
    the same messages appended to a WAL as the MQTT receiver does and read by ``WalSource``
    (from memory, as when it keeps up), without and with recovery (the run is shorter than
    *snapshot_s*: one snapshot of every series, at the end; its cost is reported per series)."""
    from bytewax.recovery import RecoveryConfig, init_db_dir
    from bytewax.testing import TestingSource, run_main

    from flows.sensors import build_flow
    from oddwatch.connectors.wal import WalSource
    from oddwatch.records import Message, utcnow

    settings = Settings()
    now = utcnow()
    msgs = [Message(t, p, now, 1) for t, p in sensor_messages("inproc", n, series=series)]
    t0 = time.process_time()
    run_main(build_flow(settings, source=TestingSource(msgs, batch_size=500), influx_sink=_NullSink(),
                        mqtt_sink=_NullSink()))
    direct = time.process_time() - t0
    stop = threading.Event()
    stop.set()

    def through_wal(recovery: bool) -> float:
        d = Path(tempfile.mkdtemp(prefix=f"inproc-{series}-", dir=root))
        config = None
        if recovery:
            (d / "recovery").mkdir()
            init_db_dir(d / "recovery", 1)
            config = RecoveryConfig(str(d / "recovery"))
        source = WalSource(d / "wal", lambda w, part: _Feeder(w, msgs), stop=stop)
        t0 = time.process_time()
        run_main(build_flow(settings, source=source, influx_sink=_NullSink(), mqtt_sink=_NullSink()),
                 epoch_interval=timedelta(seconds=snapshot_s), recovery_config=config)
        return time.process_time() - t0

    wal = through_wal(False)
    recovered = through_wal(True)
    return [
        {"scenario": f"inproc-direct-{series}series", "published": n, "cpu_us_per_reading": round(direct / n * 1e6, 1)},
        {"scenario": f"inproc-wal-{series}series", "published": n, "cpu_us_per_reading": round(wal / n * 1e6, 1)},
        {"scenario": f"inproc-wal-recovery-{series}series", "published": n,
         "cpu_us_per_reading": round(recovered / n * 1e6, 1),
         "snapshot_ms_per_series": round((recovered - wal) / series * 1e3, 2)},
    ]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process *pid* (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sigterm(proc: FlowProcess) -> None:
    status = proc.terminate()
    if status != 0:
        raise RuntimeError(f"oddwatch run {proc.flow} exited with {status} on SIGTERM:\n{proc.stderr()[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--readings", type=int, default=20000)
    parser.add_argument("--lines", type=int, default=10000)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--throughput", type=int, default=30000, help="readings queued for the throughput run")
    parser.add_argument("--series", type=int, nargs="+", default=[100], help="series in the inproc run(s)")
    parser.add_argument("--repeat", type=int, default=1, help="inproc runs per series count (medians reported)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}")
    parser.add_argument("--no-recovery-too", action="store_true", help="also run each scenario with --no-recovery")
    parser.add_argument("--out", default="out/bench-faults.json")
    args = parser.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    root = Path(tempfile.mkdtemp(prefix="oddwatch-bench-faults-"))
    results: list[dict[str, Any]] = []
    if "inproc" in only:
        for series in args.series:
            runs_of: dict[str, list[dict[str, Any]]] = {}
            for _ in range(args.repeat):
                for row in bench_inproc(root, args.throughput, series, Settings().state.snapshot_s):
                    print(json.dumps(row), file=sys.stderr)
                    runs_of.setdefault(row["scenario"], []).append(row)
            for name, rows in runs_of.items():  # medians over the repeats
                results.append({"scenario": name, "repeats": len(rows), **{
                    k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "scenario"}})
        only.remove("inproc")
    local = LocalServices(root / "services", free_port(), free_port(), free_port())
    try:
        if only:
            local.start(timeout_s=60)
        for recovery in (True, False) if args.no_recovery_too else (True,):
            bench = Bench(local, root, args.rate, recovery)
            runs: dict[str, Callable[[], dict[str, Any]]] = {
                "sensors-kill": lambda b=bench: b.faults("sensors", args.readings, FlowProcess.kill, args.kills),
                "logs-kill": lambda b=bench: b.faults("logs", args.lines, FlowProcess.kill, args.kills),
                "logs-sigterm": lambda b=bench: b.faults("logs", args.lines, _sigterm, 1),
                "broker-restart": bench.broker_restart,
                "throughput": lambda b=bench: b.throughput(args.throughput),
            }
            for name in only:
                t0 = time.monotonic()
                row = {"scenario": name, "recovery": recovery, **runs[name](), "wall_s": round(time.monotonic() - t0, 1)}
                print(json.dumps(row), file=sys.stderr)
                results.append(row)
    finally:
        local.stop()
    columns = ["scenario", "recovery", "repeats", "published", "stored", "lost", "lost_pct", "resume_s", "readings_per_s",
               "cpu_us_per_reading", "snapshot_ms_per_series", "wall_s"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in results:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    command = "python scripts/bench_faults.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    sections = {"settings": {"rate": args.rate}}
    for row in results:
        sections[f"{row.get('scenario', '')} recovery={row.get('recovery', '')}"] = dict(row)
    benchtools.write_results(Path(args.out), "bench-faults", command, sections, show=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
