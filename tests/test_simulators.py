"""Tests for the plant and network simulators and their publishing loop (fake publisher)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from oddwatch.ingest.logs import parse_log_message
from oddwatch.observe.progress import Pacer
from oddwatch.records import UTC, LogLine, Message
from oddwatch.settings import Settings
from oddwatch.simulate import reading_payload, run_network, run_plant
from simulators.network import NetworkSimulation, network_logs
from simulators.plant import FAULT_KINDS, SENSORS, PlantSimulation, plant_readings

START = datetime(2026, 1, 1, tzinfo=UTC)
SIGMA = {s.name: s.sigma for s in SENSORS}


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.sent.append((topic, payload if isinstance(payload, bytes) else payload.encode(), qos))

    def wait_all(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- plant

def test_plant_same_seed_same_output_other_seed_differs() -> None:
    a = list(plant_readings(seed=5, rate=200, duration_s=20, start=START))
    b = list(plant_readings(seed=5, rate=200, duration_s=20, start=START))
    c = list(plant_readings(seed=6, rate=200, duration_s=20, start=START))
    assert a == b
    assert [r.value for r in a] != [r.value for r in c]


def test_plant_rate_layout_and_order() -> None:
    rows = list(plant_readings(seed=1, rate=320, duration_s=30, start=START))
    assert len(rows) == 320 * 30
    assert len({r.topic for r in rows}) == 2 * 4 * 4
    assert all(rows[i].ts < rows[i + 1].ts for i in range(len(rows) - 1))
    assert rows[0].ts == START and rows[-1].ts < START + timedelta(seconds=30)
    for r in rows[:32]:
        parts = r.topic.split("/")
        assert parts[0] == "plant" and len(parts) == 4 and r.unit


def test_plant_scales_to_many_series() -> None:
    sim = PlantSimulation(seed=1, rate=5000, duration_s=3, start=START, n_series=1200)
    rows = list(sim)
    assert len({r.topic for r in rows}) == 1200 and len(rows) == 15000
    assert len(sim.plan.faults) == 50 and len({f.series for f in sim.plan.faults}) == 50
    assert {r.fault_id for r in rows if r.fault_id} == {f.fault_id for f in sim.plan.faults}


def _by_series(rows: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r.series, []).append(r)
    return out


def test_plant_faults_labelled_after_warmup_and_sized() -> None:
    sim = PlantSimulation(seed=3, rate=200, duration_s=120, start=START)
    rows = list(sim)
    plan = sim.plan
    assert sorted(f.kind for f in plan.faults) == sorted(FAULT_KINDS)
    assert plan.warmup_end == START + timedelta(seconds=30)
    labelled = [r for r in rows if r.label]
    assert {r.fault_id for r in labelled} == {f.fault_id for f in plan.faults}
    assert all(r.ts >= plan.warmup_end for r in labelled)
    clean = {(r.topic, r.ts): r.value for r in plant_readings(seed=3, rate=200, duration_s=120, start=START,
                                                              faults=False)}
    by = _by_series(rows)
    for f in plan.faults:
        assert f.start >= plan.warmup_end and f.end >= f.start
        inside = [r for r in by[f.series] if r.fault_id == f.fault_id]
        assert inside[0].ts == f.start and inside[-1].ts == f.end
        assert all(r.label == f.kind for r in inside)
        assert all(plan.fault_at(f.series, r.ts) == f for r in inside)
        sigma = SIGMA[f.series.rsplit("/", 1)[1]]
        # the same seed without faults is the fault-free twin: the difference is the fault
        delta = np.array([r.value - clean[(r.topic, r.ts)] for r in inside]) / sigma
        if f.kind == "spike":
            assert len(inside) == 1 and 6 <= abs(delta[0]) <= 10
        elif f.kind == "level_shift":
            assert np.allclose(delta, delta[0], atol=0.01) and 4 <= abs(delta[0]) <= 6
        elif f.kind == "drift":
            assert abs(delta[0]) < 0.5 and 5 <= abs(delta[-1]) <= 8 and np.all(np.diff(np.abs(delta)) > 0)
        elif f.kind == "stuck":
            assert len({r.value for r in inside}) == 1 and len(inside) > 5
        elif f.kind == "noise_burst":
            assert 2.5 < delta.std() < 5
    outside = [r for r in rows if r.label is None]
    assert all(r.value == clean[(r.topic, r.ts)] for r in outside)


def test_plant_without_faults_and_argument_errors() -> None:
    assert not any(r.label for r in plant_readings(seed=1, rate=100, duration_s=10, start=START, faults=False))
    with pytest.raises(ValueError, match="rate"):
        list(plant_readings(seed=1, rate=0, duration_s=1, start=START))
    with pytest.raises(ValueError, match="timezone"):
        list(plant_readings(seed=1, rate=1, duration_s=1, start=datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="unknown"):
        list(plant_readings(seed=1, rate=1, duration_s=1, start=START, sensors=("flux",)))


def test_plant_correlated_sensors_per_asset() -> None:
    by = _by_series(list(plant_readings(seed=2, rate=320, duration_s=60, start=START, faults=False)))
    temp = np.array([r.value for r in by["north/pump-1/temperature"]])
    flow = np.array([r.value for r in by["north/pump-1/flow"]])
    assert np.corrcoef(temp, flow)[0, 1] > 0.6


# --------------------------------------------------------------------------- network

def test_network_same_seed_same_output() -> None:
    def run(seed: int) -> list:
        return list(network_logs(seed=seed, rate=40, duration_s=30, start=START))

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_network_rate_order_and_payloads_parse() -> None:
    lines = list(network_logs(seed=4, rate=50, duration_s=60, start=START, incidents=False))
    assert 0.85 * 3000 < len(lines) < 1.15 * 3000
    assert all(lines[i].ts <= lines[i + 1].ts for i in range(len(lines) - 1))
    formats = Counter("5424" if ln.payload.split(">", 1)[1].startswith("1 ") else "3164" for ln in lines)
    assert formats["5424"] > 100 and formats["3164"] > 100
    now = START + timedelta(seconds=61)
    for ln in lines[:300]:
        _, site, host, app = ln.topic.split("/")
        (out,) = parse_log_message(Message(ln.topic, ln.payload.encode(), now), site=site, host="x", app="y")
        assert isinstance(out, LogLine), out
        assert (out.host, out.app, out.msg, out.level) == (host, app, ln.msg, ln.level)
        assert abs((out.ts - ln.ts).total_seconds()) < 1.0


def test_network_incidents() -> None:
    sim = NetworkSimulation(seed=9, rate=60, duration_s=120, start=START)
    lines = list(sim)
    plan = sim.plan
    assert [i.kind for i in plan.incidents] == ["new_message", "burst", "silence"] * 2
    assert plan.warmup_end == START + timedelta(seconds=30)
    normal_msgs = {ln.msg for ln in lines if ln.label is None}
    for inc in plan.incidents:
        assert inc.start >= plan.warmup_end and inc.end > inc.start
        mine = [ln for ln in lines if ln.incident_id == inc.incident_id]
        window = [ln for ln in lines if ln.source == inc.source and inc.start <= ln.ts <= inc.end]
        if inc.kind == "silence":
            assert not mine and not window
            before = [ln for ln in lines if ln.source == inc.source and ln.ts < inc.start]
            span = (inc.end - inc.start).total_seconds()
            assert len(before) / (inc.start - START).total_seconds() * span > 5  # normally busy
        else:
            assert len(mine) >= 3 and all(ln.source == inc.source and ln.label == inc.kind for ln in mine)
            assert all(inc.start <= ln.ts <= inc.end for ln in mine)
        if inc.kind == "new_message":
            assert not ({ln.msg for ln in mine} & normal_msgs)
            assert all(ln.level == "error" for ln in mine)
        if inc.kind == "burst":
            before = [ln for ln in lines if ln.source == inc.source and ln.ts < inc.start and
                      ln.msg.split(" ")[0] == mine[0].msg.split(" ")[0]]
            rate_before = len(before) / (inc.start - START).total_seconds()
            rate_during = len(mine) / (inc.end - inc.start).total_seconds()
            assert rate_during > 5 * rate_before


# --------------------------------------------------------------------------- publish

def test_run_plant_publishes_json_and_returns_plan() -> None:
    pub = FakePublisher()
    summary = run_plant(Settings(), rate=400, duration_s=4, seed=1, speed=None, publisher=pub)
    assert summary["published"] == len(pub.sent) == 1600 == summary["expected"]
    assert summary["series"] == 32 and summary["flushed"] is True
    topic, payload, qos = pub.sent[0]
    doc = json.loads(payload)
    assert topic.startswith("plant/") and set(doc) == {"ts", "value", "unit"} and qos == 1
    last = datetime.fromisoformat(json.loads(pub.sent[-1][1])["ts"])
    assert abs((last - datetime.now(UTC)).total_seconds()) < 5  # ends about now, never in the future
    assert len(summary["plan"]["faults"]) == 5 and summary["labelled"] > 0


def test_run_network_publishes_syslog_in_real_time() -> None:
    pub = FakePublisher()
    summary = run_network(Settings(), rate=100, duration_s=1.0, seed=1, speed=4.0, publisher=pub)
    assert summary["published"] == len(pub.sent) > 50
    assert all(t.startswith("logs/") and p.startswith(b"<") for t, p, _ in pub.sent)
    assert 0.15 < summary["elapsed_s"] < 1.0  # 1 simulated second at 4x
    assert len(summary["plan"]["incidents"]) == 6


def test_pacer_speed_and_rate_limit() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    p = Pacer(speed=2.0, clock=lambda: clock[0], sleep=sleep)
    for k in range(3):
        p.wait(START + timedelta(seconds=10 * k))
    assert clock[0] == pytest.approx(10.0)
    clock[0], slept[:] = 0.0, []
    p = Pacer(speed=None, rate_limit=4, clock=lambda: clock[0], sleep=sleep)
    for _ in range(9):
        p.wait(None)
    assert clock[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="speed"):
        Pacer(speed=0)


def test_run_plant_and_network_over_mqtt(services, unique: str) -> None:  # type: ignore[no-untyped-def]
    """The real MqttPublisher path: every message arrives, in order, with the right payload."""
    sub = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
    if not Path(sub).exists():
        pytest.skip("mosquitto_sub is not installed: sudo apt-get install -y mosquitto-clients")
    settings = services.settings()
    for kind, topic in (("plant", f"plant/{unique}/#"), ("network", f"logs/{unique}/#")):
        readings = list(plant_readings(seed=3, rate=160, duration_s=1, start=START, sites=(unique,)))
        lines = list(network_logs(seed=3, rate=100, duration_s=1, start=START, sites=(unique,)))
        expected: list = readings if kind == "plant" else lines
        proc = subprocess.Popen([sub, "-h", services.mqtt_host, "-p", str(services.mqtt_port), "-t", topic,
                                 "-q", "1", "-C", str(len(expected)), "-W", "20", "-F", "%t %p"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        if kind == "plant":
            summary = run_plant(settings, rate=160, duration_s=1, seed=3, speed=None, start=START, sites=(unique,))
            want = [(r.topic, reading_payload(r).decode()) for r in readings]
        else:
            summary = run_network(settings, rate=100, duration_s=1, seed=3, speed=None, start=START,
                                  sites=(unique,))
            want = [(ln.topic, ln.payload) for ln in lines]
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert summary["published"] == len(want) and summary["flushed"]
        assert [tuple(line.split(" ", 1)) for line in out.splitlines()] == want
