"""Throughput and latency of the sensor dataflow against a local Mosquitto and InfluxDB.

Usage::

    .venv/bin/python scripts/bench_sensors.py [--series 1000] [--readings 60000] [--quick]

Mosquitto and InfluxDB 1.x are started on free loopback ports in a temp dir
(:class:`oddwatch.services.LocalServices`). Measures, in order:

1. ``step``: :meth:`oddwatch.core.series.SeriesState.step` in µs per reading, by history depth (the
   detector's nearest-neighbour search grows with its memory of past shapes up to
   ``memory`` = 4000), and over ``--series`` series round-robin; the pickled size of one
   series' state (what a Bytewax snapshot stores per series); one reading's points to line
   protocol;
2. ``parse``: :meth:`oddwatch.ingest.sensors.SensorParser.parse` of one JSON message;
3. ``flow_null_sink``: the whole Bytewax sensor flow (parse, score, points, metrics) fed by
   a ``TestingSource`` of JSON messages in batches of 1000 (as ``MqttSource`` hands over a
   backlog) with null sinks: the in-process ceiling; ``flow_null_sink_batch_1`` the same with
   one message per batch (a trickle), a fifth of the readings;
   ``flow_outside_pipeline``: CPU µs per reading of the flow with ``SeriesState.step`` replaced
   by a constant (JSON and line protocol); ``long_history``: the flow and the series pipeline alone on series that already hold
   ``--history`` readings, and on fresh ones, per CPU second (:func:`bench_long_history`);
4. ``e2e_json`` / ``e2e_lineproto``: MQTT -> flow -> InfluxDB. The readings are first queued
   in the flow's persistent MQTT session while it is down (one JSON message per reading, or
   line protocol with ``--per-message`` readings per message); then the flow starts and the
   clock runs until ``COUNT(score)`` in InfluxDB reaches the number published. The CPU
   seconds this process, ``influxd`` and ``mosquitto`` used meanwhile show what limits it;
5. ``latency``: readings published live by another process at each ``--latency-rate`` per
   second for ``--latency-s`` seconds (JSON, or line protocol with ``--latency-per-message``),
   each stamped with its publish time; a poller queries InfluxDB
   every ``--poll-s`` seconds for new ``sensor_score`` points, and a point's latency is the
   time it was first seen minus its timestamp (publish -> queryable, including the
   writer's flush interval; the poll period adds up to ``--poll-s`` to each value, see
   :func:`bench_latency`); ``mean_ms_to_scored_in_flow`` is the flow's own lag metric
   (timestamp to score emitted) over the same readings.

Prints a markdown table and writes ``out/bench-sensors.json`` for
``scripts/make_benchmarks.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main

from flows.sensors import Scored, build_flow, to_points
from oddwatch.connectors.influx import InfluxQuery
from oddwatch.connectors.mqtt import MqttPublisher
from oddwatch.core.series import SeriesState
from oddwatch.evaluation import benchtools
from oddwatch.evaluation.benchtools import cpu_s, percentile
from oddwatch.flowrunner import FlowRunner, wait_for
from oddwatch.ingest.sensors import SensorParser
from oddwatch.lineproto import to_line
from oddwatch.observe import metrics
from oddwatch.records import UTC, Message, Reading, utcnow
from oddwatch.services import LocalServices, free_port
from oddwatch.settings import Settings, build_settings
from oddwatch.simulate import reading_payload, rfc3339
from simulators.plant import PlantSimulation

ROOT = Path(__file__).resolve().parents[1]
BENCH = {"quick": ["--quick"], "full": []}  # how scripts/bench.py runs it

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers
class _NullSink(DynamicSink[Any]):
    """Counts what it is given and drops it."""

    def __init__(self) -> None:
        self.count = 0

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition[Any]:
        sink = self

        class _Part(StatelessSinkPartition[Any]):
            def write_batch(self, items: list[Any]) -> None:
                sink.count += len(items)

        return _Part()


def _cpu_all(local: LocalServices) -> dict[str, float]:
    status = local.status()
    return {"flow_process": cpu_s(), "influxd": cpu_s(status["influx"]["pid"]), "mosquitto": cpu_s(status["mqtt"]["pid"])}


SERIES_OVERRIDES: dict[str, str] = {}  # --set key=value: [series] settings for every run


def _settings(local: LocalServices, tmp: Path, name: str) -> Settings:
    return build_settings({
        "series": dict(SERIES_OVERRIDES),
        "mqtt": {"host": local.mqtt_host, "port": local.mqtt_port, "client_id": f"bench-{name}"},
        "influx": {"url": local.influx_url, "database": local.database, "spool_dir": str(tmp / "spool" / name)},
        "services": {"state_dir": str(local.state_dir), "influx_rpc_port": local.influx_rpc_port},
        "metrics": {"port": free_port()},
    })


def _sim(series: int, readings: int, *, end: datetime, site: str = "north") -> PlantSimulation:
    """The plant with *series* series on one site, *readings* readings in all, 10 per series per
    simulated second, the last one stamped at *end*."""
    rate = series * 10.0
    duration = readings / rate
    return PlantSimulation(seed=11, rate=rate, duration_s=duration, start=end - timedelta(seconds=duration),
                           n_series=series, sites=(site,), faults=True)


def _count(query: InfluxQuery, site: str) -> int:
    rows = query.query(f"SELECT COUNT(score) FROM sensor_score WHERE site = '{site}'")
    return int(rows[0]["count"]) if rows else 0


# --------------------------------------------------------------------------- in process
def bench_step(series: int, depth: int) -> dict[str, float]:
    """µs per SeriesState.step by history depth (one series), and over *series* series."""
    rng = random.Random(1)
    st = SeriesState("s", "a", "x")
    marks = sorted({d for d in (300, 1000, 2000, 4000, depth) if d <= depth})
    out: dict[str, float] = {}
    i = 0
    for mark in marks:
        chunk = min(500, mark - i)
        while i < mark - chunk:  # untimed: grow the history
            st.step(Reading("s", "a", "x", T0 + timedelta(seconds=i), 50 + math.sin(i / 30) + rng.gauss(0, 0.1)))
            i += 1
        start = time.perf_counter()
        for _ in range(chunk):
            st.step(Reading("s", "a", "x", T0 + timedelta(seconds=i), 50 + math.sin(i / 30) + rng.gauss(0, 0.1)))
            i += 1
        out[f"us_per_reading_at_history_{mark}"] = round((time.perf_counter() - start) / chunk * 1e6, 1)
    states = [SeriesState("s", f"a{k}", "x") for k in range(series)]
    per = 50
    start = time.perf_counter()
    for j in range(per):
        for k, state in enumerate(states):
            state.step(Reading("s", f"a{k}", "x", T0 + timedelta(seconds=j), 50 + rng.gauss(0, 1)))
    out[f"us_per_reading_{series}_series_first_{per}"] = round((time.perf_counter() - start) / (per * series) * 1e6, 1)
    out["state_pickle_kb_at_history_max"] = round(len(pickle.dumps(st)) / 1024, 1)
    # The output side of one reading: sensor_score point -> line protocol.
    r = Reading("s", "a", "x", T0, 1.0)
    scored = Scored(r, st.step(r))
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        for point in to_points(scored):
            to_line(point)
    out["us_per_point_to_line"] = round((time.perf_counter() - start) / n * 1e6, 2)
    return out


def _messages(series: int, readings: int) -> list[Message]:
    sim = _sim(series, readings, end=utcnow())
    now = utcnow()
    return [Message(r.topic, reading_payload(r), now) for r in sim]


def bench_parse(msgs: list[Message]) -> dict[str, float]:
    parser = SensorParser(Settings().sensors)
    n = min(len(msgs), 20_000)
    start = time.perf_counter()
    for m in msgs[:n]:
        parser.parse(m)
    return {"us_per_json_message": round((time.perf_counter() - start) / n * 1e6, 2)}


def _history_messages(series: int, per: int, *, start: datetime) -> list[Message]:
    """*per* JSON readings for each of *series* series (``plant/long/a<k>/x``), round robin."""
    rng = random.Random(3)
    now = utcnow()
    return [Message(f"plant/long/a{k}/x", json.dumps({"ts": (start + timedelta(seconds=j)).timestamp(),
                                                      "value": 50 + math.sin(j / 30) + rng.gauss(0, 0.1)}).encode(), now)
            for j in range(per) for k in range(series)]


def bench_long_history(series: int, depth: int, per: int) -> dict[str, float]:
    """The flow (null sinks) and the series pipeline alone, on *series* states that already hold
    *depth* readings and on fresh ones; CPU seconds of this process, so other load on the
    machine does not count.

    The long-history states are copies of one state grown once (untimed); the flow gets them
    through ``flows.sensors.SeriesState``, replaced for the run.
    """
    import flows.sensors as sensor_flow

    rng = random.Random(2)
    start = utcnow() - timedelta(seconds=depth + per + 60)
    template = SeriesState("long", "a", "x")
    for i in range(depth):
        template.step(Reading("long", "a", "x", start + timedelta(seconds=i),
                              50 + math.sin(i / 30) + rng.gauss(0, 0.1)))
    blob = pickle.dumps(template)

    def copies() -> dict[str, SeriesState]:
        out = {}
        for k in range(series):
            st = pickle.loads(blob)
            st.asset = f"a{k}"
            out[st.asset] = st
        return out

    msgs = _history_messages(series, per, start=start + timedelta(seconds=depth))
    parser = SensorParser(Settings().sensors)
    readings = [r for m in msgs for r in parser.parse(m) if isinstance(r, Reading)]
    out: dict[str, float] = {"series": series, "history": depth, "readings": len(msgs)}
    for label in ("fresh", "long"):
        states = copies() if label == "long" else {f"a{k}": SeriesState("long", f"a{k}", "x") for k in range(series)}
        t0 = time.process_time()
        for r in readings:
            states[r.asset].step(r)
        alone = time.process_time() - t0
        ready = copies() if label == "long" else {}

        def made(site: str, asset: str, sensor: str, *args: Any, _ready: dict[str, SeriesState] = ready) -> SeriesState:
            return _ready.pop(asset) if asset in _ready else SeriesState(site, asset, sensor, *args)

        sensor_flow.SeriesState = made  # type: ignore[assignment,misc]
        try:
            flow = build_flow(Settings(), source=TestingSource(msgs, batch_size=1000), influx_sink=_NullSink(),
                              mqtt_sink=_NullSink())
            t0 = time.process_time()
            run_main(flow, epoch_interval=timedelta(seconds=1))
            in_flow = time.process_time() - t0
        finally:
            sensor_flow.SeriesState = SeriesState  # type: ignore[misc]
        out[f"pipeline_alone_{label}_readings_per_cpu_s"] = round(len(readings) / alone)
        out[f"flow_{label}_readings_per_cpu_s"] = round(len(msgs) / in_flow)
        out[f"flow_{label}_vs_pipeline_alone"] = round(alone / in_flow, 3)
    out["flow_long_vs_fresh"] = round(out["flow_long_readings_per_cpu_s"] / out["flow_fresh_readings_per_cpu_s"], 3)
    out["pipeline_alone_long_vs_fresh"] = round(out["pipeline_alone_long_readings_per_cpu_s"]
                                                / out["pipeline_alone_fresh_readings_per_cpu_s"], 3)
    return out


def bench_flow_overhead(msgs: list[Message], per_message: int) -> dict[str, float]:
    """CPU µs per reading the flow spends outside the series pipeline (``SeriesState.step``
    replaced by a constant for the run): parse, keying, state handling, points, metrics; for
    *msgs* (JSON, one reading each) and for the same readings as line protocol."""
    from oddwatch.core.series import SeriesOutput

    fixed = SeriesOutput(0.1, 0.5, False, 1.0, 2.0)
    lp: list[Message] = []
    parser = SensorParser(Settings().sensors)
    readings = [r for m in msgs for r in parser.parse(m) if isinstance(r, Reading)]
    for i in range(0, len(readings), per_message):
        chunk = readings[i:i + per_message]
        body = "\n".join(f"r,asset={r.asset},sensor={r.sensor} value={r.value!r} {int(r.ts.timestamp() * 1e6) * 1000}"
                         for r in chunk)
        lp.append(Message(f"plant/{chunk[0].site}/batch/lp", body.encode(), msgs[0].received))
    step = SeriesState.step
    SeriesState.step = lambda self, reading: fixed  # type: ignore[assignment,method-assign,misc]
    out: dict[str, float] = {}
    try:
        for label, batch, size in (("json", msgs, 1000), (f"lineproto_{per_message}", lp, 10)):
            flow = build_flow(Settings(), source=TestingSource(batch, batch_size=size), influx_sink=_NullSink(),
                              mqtt_sink=_NullSink())
            cpu0 = time.process_time()
            run_main(flow)
            out[f"us_per_reading_{label}"] = round((time.process_time() - cpu0) / len(readings) * 1e6, 1)
    finally:
        SeriesState.step = step  # type: ignore[method-assign]
    return out


def bench_flow_null(msgs: list[Message], batch_size: int) -> dict[str, float]:
    """The sensor flow from a ``TestingSource`` (*batch_size* messages per batch) to null sinks."""
    points, out = _NullSink(), _NullSink()
    flow = build_flow(Settings(), source=TestingSource(msgs, batch_size=batch_size), influx_sink=points,
                      mqtt_sink=out)
    start, cpu0 = time.perf_counter(), time.process_time()
    run_main(flow)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"readings": len(msgs), "seconds": round(elapsed, 2), "readings_per_s": round(len(msgs) / elapsed),
            "readings_per_cpu_s": round(len(msgs) / cpu), "us_per_reading": round(elapsed / len(msgs) * 1e6, 1),
            "points_out": points.count, "alert_messages": out.count}


# --------------------------------------------------------------------------- end to end
def _lineproto_messages(sim: PlantSimulation, site: str, per_message: int) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    lines: list[str] = []
    for r in sim:
        _, _, asset, sensor = r.topic.split("/")
        lines.append(f"r,asset={asset},sensor={sensor} value={r.value!r} {int(r.ts.timestamp() * 1e6) * 1000}")
        if len(lines) == per_message:
            out.append((f"plant/{site}/batch/lp", "\n".join(lines).encode()))
            lines = []
    if lines:
        out.append((f"plant/{site}/batch/lp", "\n".join(lines).encode()))
    return out


def bench_e2e(local: LocalServices, tmp: Path, query: InfluxQuery, *, mode: str, series: int, readings: int,
              per_message: int) -> dict[str, Any]:
    """Queue *readings* in the stopped flow's session, then time the flow until all are in InfluxDB."""
    site = f"bench{mode}"
    settings = _settings(local, tmp, f"e2e-{mode}")
    sim = _sim(series, readings, end=utcnow(), site=site)
    if mode == "json":
        messages = [(r.topic, reading_payload(r)) for r in sim]
    else:
        messages = _lineproto_messages(sim, site, per_message)
    FlowRunner(settings).start().stop()  # subscribe once: the broker keeps the session and queues
    start = time.perf_counter()
    with MqttPublisher(settings.mqtt, f"bench-pub-{mode}") as pub:
        for topic, payload in messages:
            pub.publish(topic, payload, qos=1)
        pub.wait_all(300)
    publish_s = time.perf_counter() - start
    runner = FlowRunner(settings)
    cpu0 = _cpu_all(local)
    start = time.perf_counter()
    runner.start()
    done = wait_for(lambda: _count(query, site) >= readings, 600, interval=0.25)
    elapsed = time.perf_counter() - start
    cpu = {f"cpu_s_{k}": round(v - cpu0[k], 1) for k, v in _cpu_all(local).items()}
    runner.stop()
    got = _count(query, site)
    if not done:
        print(f"bench e2e {mode}: only {got} of {readings} readings reached InfluxDB", file=sys.stderr)
    return {"readings": readings, "messages": len(messages), "readings_per_message": round(readings / len(messages), 1),
            "publish_msgs_per_s": round(len(messages) / publish_s), "seconds_to_influx": round(elapsed, 2),
            "readings_per_s": round(readings / elapsed), "scored": got, **cpu,
            # robust to other load on the machine: readings per CPU second of this process
            "readings_per_flow_cpu_s": round(readings / cpu["cpu_s_flow_process"]) if cpu["cpu_s_flow_process"] else 0,
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def publish_latency_child(host: str, port: int, client_id: str, site: str, rate: float, total: int, series: int,
                          stamps_out: Path, per_message: int = 1) -> int:
    """The latency run's publisher, in its own process (so it does not take the flow's GIL):
    *total* readings at *rate* per second, each stamped with its publish time, as JSON (one per
    message) or as line protocol (*per_message* per message, one reading of each of that many
    series); the stamps (ns, in order) go to *stamps_out* at the end."""
    from oddwatch.settings import MqttSettings

    rng = random.Random(5)
    stamps: list[int] = []
    with MqttPublisher(MqttSettings(host=host, port=port), client_id) as pub:
        t0 = time.perf_counter()
        for i in range(0, total, per_message):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ts = utcnow()
            ns = int(ts.timestamp() * 1e6) * 1000
            if per_message > 1:
                lines = []
                for j in range(i, min(total, i + per_message)):
                    k = j % series
                    value = 50.0 + math.sin(j / series / 30) + rng.gauss(0, 0.1)
                    lines.append(f"r,asset=a{k // 4},sensor=s{k % 4} value={value!r} {ns}")
                    stamps.append(ns)
                pub.publish(f"plant/{site}/batch/lp", "\n".join(lines).encode(), qos=1)
                continue
            k = i % series
            stamps.append(ns)
            body = {"ts": rfc3339(ts), "value": 50.0 + math.sin(i / series / 30) + rng.gauss(0, 0.1)}
            pub.publish(f"plant/{site}/a{k // 4}/s{k % 4}", json.dumps(body).encode(), qos=1)
        pub.wait_all(60)
        elapsed = time.perf_counter() - t0
    stamps_out.write_text(json.dumps({"stamps": stamps, "seconds": elapsed}))
    return 0


def bench_latency(local: LocalServices, tmp: Path, query: InfluxQuery, *, series: int, rate: float,
                  seconds: float, poll_s: float, per_message: int = 1) -> dict[str, Any]:
    """Publish live at *rate* readings/s from another process, each reading stamped with its
    publish time; latency is when it is first queryable in InfluxDB minus that stamp.

    One worker and one writer thread keep the points in order, so the newest visible point
    (``LAST(score)``) is a frontier: every reading stamped at or before it is visible. Each
    poll records (its time, the frontier); afterwards each reading gets the time of the first
    poll whose frontier reached its stamp; the final ``COUNT`` checks that none is missing.
    """
    site = f"benchlat{int(rate)}k{per_message}"
    settings = _settings(local, tmp, f"latency{int(rate)}k{per_message}")
    total = int(rate * seconds)
    stamps_file = tmp / f"stamps-{int(rate)}.json"
    polls: list[tuple[float, int]] = []  # (time the query ran, frontier in ns)
    query_s: list[float] = []
    frontier = int(utcnow().timestamp() * 1e9)
    lag0 = metrics.snapshot(metrics.REGISTRY)
    with FlowRunner(settings):
        child = subprocess.Popen([sys.executable, str(Path(__file__)), "--publish-latency", json.dumps(
            [settings.mqtt.host, settings.mqtt.port, "bench-pub-latency", site, rate, total, series,
             str(stamps_file), per_message])], cwd=ROOT)
        deadline = None
        while True:
            asked = time.perf_counter()
            rows = query.query(f"SELECT LAST(score) FROM sensor_score WHERE site = '{site}' "
                               f"AND time > {frontier - int(2e9)}")  # a time bound keeps LAST cheap
            seen_at = time.time()  # upper bound: the frontier was visible when the query ran
            query_s.append(time.perf_counter() - asked)
            if rows:
                frontier = max(frontier, rows[0]["time"])
                polls.append((seen_at, frontier))
            if deadline is None and child.poll() is not None:
                deadline = time.monotonic() + 30
            if deadline is not None and (time.monotonic() > deadline or _count(query, site) >= total):
                if rows:
                    polls.append((time.time(), frontier))
                break
            time.sleep(poll_s)
        wait_for(lambda: _count(query, site) >= total, 10)
    published = json.loads(stamps_file.read_text()) if stamps_file.exists() else {"stamps": [], "seconds": 1.0}
    stamps: list[int] = published["stamps"]
    latencies: list[float] = []
    j = 0
    for ts in stamps:  # both in order: the first poll whose frontier reached ts
        while j < len(polls) and polls[j][1] < ts:
            j += 1
        if j == len(polls):
            break
        latencies.append(polls[j][0] - ts / 1e9)
    lag1 = metrics.snapshot(metrics.REGISTRY)
    n_lag = lag1.get("end_to_end_lag_seconds_count", 0.0) - lag0.get("end_to_end_lag_seconds_count", 0.0)
    sum_lag = lag1.get("end_to_end_lag_seconds_sum", 0.0) - lag0.get("end_to_end_lag_seconds_sum", 0.0)
    scored = _count(query, site)
    ms = [x * 1000 for x in latencies]
    return {"rate_target": rate, "readings_per_message": per_message, "seconds": seconds, "published": len(stamps),
            "publish_rate": round(len(stamps) / published["seconds"]), "scored": scored,
            "p50_ms": round(percentile(ms, 0.5), 1), "p90_ms": round(percentile(ms, 0.9), 1),
            "p99_ms": round(percentile(ms, 0.99), 1), "max_ms": round(max(ms), 1) if ms else math.nan,
            "mean_ms": round(statistics.fmean(ms), 1) if ms else math.nan,
            "mean_ms_to_scored_in_flow": round(sum_lag / n_lag * 1000, 1) if n_lag else math.nan,
            "poll_s": poll_s, "mean_query_ms": round(statistics.fmean(query_s) * 1000, 1) if query_s else math.nan,
            "flush_interval_s": settings.influx.flush_interval_s, "load_avg_1m": round(os.getloadavg()[0], 2)}


#: Metrics shown in docs/benchmarks.md (make_benchmarks lists at most 40 rows per file); the
#: rest of each section goes under its ``details`` key, which the table skips.
HEADLINE = {
    "step": ("us_per_reading_at_history_300", "us_per_reading_at_history_4000", "us_per_reading_1000_series_first_50",
             "state_pickle_kb_at_history_max", "us_per_point_to_line"),
    "parse": ("us_per_json_message",),
    "flow_null_sink": ("readings_per_s", "readings_per_cpu_s", "us_per_reading"),
    "flow_null_sink_batch_1": ("readings_per_s",),
    "e2e_json": ("readings", "readings_per_s", "readings_per_flow_cpu_s", "publish_msgs_per_s",
                 "cpu_s_flow_process", "cpu_s_influxd"),
    "e2e_lineproto": ("readings_per_message", "readings", "readings_per_s", "readings_per_flow_cpu_s",
                      "publish_msgs_per_s", "cpu_s_flow_process", "cpu_s_influxd"),
    "latency": ("rate_target", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms_to_scored_in_flow", "publish_rate"),
    "latency_5000": ("rate_target", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms_to_scored_in_flow",
                     "publish_rate"),
    "process": ("max_rss_mb",),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=1000, help="series (default 1000)")
    parser.add_argument("--readings", type=int, default=60_000, help="readings in the throughput runs")
    parser.add_argument("--per-message", type=int, default=100, help="readings per line-protocol message")
    parser.add_argument("--latency-rate", default="1000,5000", help="readings/s, one latency run each (default 1000,5000)")
    parser.add_argument("--latency-per-message", type=int, default=1,
                        help="readings per message in the latency runs: 1 = JSON, more = line protocol")
    parser.add_argument("--latency-s", type=float, default=20.0, help="seconds of the latency run")
    parser.add_argument("--poll-s", type=float, default=0.05, help="InfluxDB poll period of the latency run")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few seconds each")
    parser.add_argument("--out", default=str(ROOT / "out" / "bench-sensors.json"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a [series] setting for every run, e.g. --set hst_level=0")
    parser.add_argument("--history", type=int, default=4500, help="readings already held by each series in the "
                        "long-history run (default 4500)")
    parser.add_argument("--only", default="", help="comma-separated parts to run: step,flow,history,e2e,latency")
    parser.add_argument("--publish-latency", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publish_latency:
        host, port, client, site, rate, total, series, out, k = json.loads(args.publish_latency)
        return publish_latency_child(host, int(port), client, site, float(rate), int(total), int(series), Path(out),
                                     int(k))
    if args.quick:
        args.series, args.readings, args.latency_s = min(args.series, 200), min(args.readings, 10_000), 5.0
        args.latency_rate = args.latency_rate.split(",")[0]
    command = shlex.join(["python", "scripts/bench_sensors.py", *(sys.argv[1:] if argv is None else argv)])
    SERIES_OVERRIDES.update(kv.split("=", 1) for kv in args.set)
    only = set(args.only.split(",")) if args.only else {"step", "flow", "history", "e2e", "latency"}
    machine = benchtools.machine()
    results: dict[str, dict[str, Any]] = {}
    depth = 1000 if args.quick else 4500
    if "step" in only:
        print(f"bench_sensors: step cost (history up to {depth})", file=sys.stderr)
        results["step"] = bench_step(args.series, depth)
    if "flow" in only:
        msgs = _messages(args.series, args.readings)
        results["parse"] = bench_parse(msgs)
        print(f"bench_sensors: flow with null sinks, {len(msgs)} readings", file=sys.stderr)
        results["flow_null_sink"] = bench_flow_null(msgs, batch_size=1000)
        results["flow_null_sink_batch_1"] = bench_flow_null(msgs[: len(msgs) // 5], batch_size=1)
        results["flow_outside_pipeline"] = bench_flow_overhead(msgs, args.per_message)
        del msgs
    if "history" in only:
        n_long = min(args.series, 200) if args.quick else args.series
        print(f"bench_sensors: {n_long} series with {args.history} readings of history vs fresh", file=sys.stderr)
        results["long_history"] = bench_long_history(n_long, args.history, 25 if args.quick else 20)
    with tempfile.TemporaryDirectory(prefix="bench-sensors-") as tmp_name:
        tmp = Path(tmp_name)
        local = LocalServices(tmp / "state", free_port(), free_port(), free_port())
        local.start(timeout_s=60)
        query = InfluxQuery(local.influx_settings())
        try:
            for mode in ("json", "lineproto") if "e2e" in only else ():
                print(f"bench_sensors: end to end, {mode}", file=sys.stderr)
                results[f"e2e_{mode}"] = bench_e2e(local, tmp, query, mode=mode, series=args.series,
                                                   readings=args.readings, per_message=args.per_message)
            rates = [float(r) for r in args.latency_rate.split(",") if r.strip()] if "latency" in only else []
            for i, rate in enumerate(rates):
                print(f"bench_sensors: latency at {rate:g}/s for {args.latency_s:g} s", file=sys.stderr)
                results["latency" if i == 0 else f"latency_{rate:g}"] = bench_latency(
                    local, tmp, query, series=args.series, rate=rate, seconds=args.latency_s, poll_s=args.poll_s,
                    per_message=args.latency_per_message)
        finally:
            query.close()
            local.stop()
    results["process"] = {"max_rss_mb": round(benchtools.rss_mb(), 1), "series": args.series}
    benchtools.write_results(Path(args.out), "bench-sensors", command, results, machine_info=machine,
                             headline=HEADLINE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
