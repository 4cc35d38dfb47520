"""Throughput of the connectors against a local Mosquitto and InfluxDB (started on free ports).

Usage: ``.venv/bin/python scripts/bench_connectors.py [--messages 50000] [--lines 200000] [--quick]``

Measures:
- MqttPublisher QoS 1 publish rate (publish all, then wait for every PUBACK);
- the anchor: a bare paho-mqtt client (no oddwatch code) draining a QoS 1 backlog queued in its
  persistent session, counting messages in ``on_message``;
- MqttSource receive rate, draining a backlog queued in its persistent session (partition
  ``next_batch`` loop, acks included) and live through a Bytewax dataflow while a publisher
  runs in another thread;
- InfluxWriter lines/s into InfluxDB 1.6 (add all, then flush).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

from oddwatch.connectors.influx import InfluxWriter
from oddwatch.connectors.mqtt import MqttPublisher, MqttSource
from oddwatch.evaluation import benchtools
from oddwatch.records import Message
from oddwatch.services import LocalServices, free_port
from oddwatch.settings import InfluxSettings, MqttSettings

ROOT = Path(__file__).resolve().parents[1]
BENCH = {"quick": ["--quick"], "full": []}  # how scripts/bench.py runs it
PAYLOAD = b'{"ts": "2026-11-27T10:00:00Z", "value": 21.375, "unit": "C"}'


class _CountSink(DynamicSink[Message]):
    def __init__(self) -> None:
        self.count = 0

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition[Message]:
        sink = self

        class _Part(StatelessSinkPartition[Message]):
            def write_batch(self, items: list[Message]) -> None:
                sink.count += len(items)

        return _Part()


def bench_publish(mqtt: MqttSettings, n: int) -> float:
    with MqttPublisher(mqtt, "bench-pub") as pub:
        start = time.perf_counter()
        for i in range(n):
            pub.publish(f"bench/pub/{i % 10}", PAYLOAD, qos=1)
        pub.wait_all(120)
        return n / (time.perf_counter() - start)


def bench_bare_paho_drain(mqtt: MqttSettings, n: int) -> float:
    """The anchor: paho alone, QoS 1, persistent session, messages counted in ``on_message``."""
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    got = 0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        nonlocal got
        got += 1
        if got >= n:
            done.set()

    def client() -> Any:
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv5)
        c.on_message = on_message
        c.on_subscribe = lambda *a: subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        props.ReceiveMaximum = 1000
        c.connect(mqtt.host, mqtt.port, clean_start=False, properties=props)
        return c

    c = client()
    c.loop_start()
    c.subscribe("bench/bare/#", qos=1)
    subscribed.wait(10)
    c.disconnect()
    c.loop_stop()
    with MqttPublisher(mqtt, "bench-bare-fill") as pub:
        for i in range(n):
            pub.publish(f"bench/bare/{i % 10}", PAYLOAD, qos=1)
        pub.wait_all(120)
    start = time.perf_counter()
    c = client()
    c.loop_start()
    finished = done.wait(120)
    elapsed = time.perf_counter() - start
    c.disconnect()
    c.loop_stop()
    if not finished:
        raise SystemExit(f"bare paho drain: received {got} of {n}")
    return n / elapsed


def bench_drain(mqtt: MqttSettings, n: int) -> float:
    source = MqttSource(mqtt, ["bench/drain/#"], flow="drain")
    part = source.build("in", 0, 1)
    source.wait_subscribed(10)
    part.close()
    with MqttPublisher(mqtt, "bench-fill") as pub:
        for i in range(n):
            pub.publish(f"bench/drain/{i % 10}", PAYLOAD, qos=1)
        pub.wait_all(120)
    start = time.perf_counter()
    part = MqttSource(mqtt, ["bench/drain/#"], flow="drain").build("in", 0, 1)
    got = 0
    deadline = time.monotonic() + 120
    while got < n and time.monotonic() < deadline:
        batch = part.next_batch()
        got += len(batch)
        if not batch:
            time.sleep(0.001)
    elapsed = time.perf_counter() - start
    part.close()
    if got < n:
        raise SystemExit(f"drain: received {got} of {n}")
    return n / elapsed


def bench_live(mqtt: MqttSettings, n: int) -> float:
    stop = threading.Event()
    source = MqttSource(mqtt, ["bench/live/#"], flow="live", stop=stop)
    sink = _CountSink()
    flow = Dataflow("bench_live")
    op.output("out", op.input("in", flow, source), sink)
    runner = threading.Thread(target=run_main, args=(flow,), daemon=True)
    runner.start()
    source.wait_subscribed(10)
    start = time.perf_counter()
    with MqttPublisher(mqtt, "bench-live-pub") as pub:
        for i in range(n):
            pub.publish(f"bench/live/{i % 10}", PAYLOAD, qos=1)
        pub.wait_all(120)
    deadline = time.monotonic() + 120
    while sink.count < n and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    stop.set()
    runner.join(10)
    if sink.count < n:
        raise SystemExit(f"live: received {sink.count} of {n}")
    return n / elapsed


def bench_influx(influx: InfluxSettings, n: int) -> float:
    lines = [
        f"sensor_score,site=s{i % 5},asset=a{i % 50},sensor=t,detector=ens "
        f"value={i * 0.5},score=0.{i % 97:02d},threshold=0.9,is_anomaly=false {1_700_000_000_000_000_000 + i * 1_000_000}"
        for i in range(n)
    ]
    with InfluxWriter(influx) as writer:
        start = time.perf_counter()
        writer.add(lines)
        if not writer.flush(120):
            raise SystemExit(f"influx: flush timed out, written {writer.written} of {n}")
        elapsed = time.perf_counter() - start
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="10,000 messages, 50,000 lines")
    parser.add_argument("--out", default=str(ROOT / "out" / "bench-connectors.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.lines = min(args.messages, 10_000), min(args.lines, 50_000)
    command = shlex.join(["python", "scripts/bench_connectors.py", *(sys.argv[1:] if argv is None else argv)])
    machine = benchtools.machine()
    with tempfile.TemporaryDirectory() as tmp:
        local = LocalServices(Path(tmp) / "state", free_port(), free_port(), free_port())
        local.start()
        try:
            mqtt = MqttSettings(host=local.mqtt_host, port=local.mqtt_port, client_id="bench")
            influx = InfluxSettings(url=local.influx_url, database=local.database, spool_dir=f"{tmp}/spool")
            results = {"mqtt": {
                "publish_qos1_msgs_per_s": round(bench_publish(mqtt, args.messages)),
                "bare_paho_drain_msgs_per_s": round(bench_bare_paho_drain(mqtt, args.messages)),
                "source_drain_msgs_per_s": round(bench_drain(mqtt, args.messages)),
                "source_live_bytewax_msgs_per_s": round(bench_live(mqtt, args.messages)),
                "messages": args.messages,
            }, "influx": {"writer_lines_per_s": round(bench_influx(influx, args.lines)), "lines": args.lines}}
        finally:
            local.stop()
    benchtools.write_results(Path(args.out), "bench-connectors", command, results, machine_info=machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
