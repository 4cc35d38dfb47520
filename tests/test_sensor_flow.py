"""The sensor dataflow wired with Bytewax's testing source and sinks (real connectors are
exercised in tests/test_e2e_sensors.py)."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta

from bytewax.testing import TestingSink, TestingSource, run_main

from flows.sensors import build_flow
from oddwatch.records import UTC, Message, Outgoing, Point
from oddwatch.settings import Settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _messages() -> list[Message]:
    rng = random.Random(3)
    msgs = []
    for i in range(1200):
        ts = T0 + timedelta(seconds=10 * i)
        for asset in ("pump1", "pump2"):
            value = 20 + math.sin(i / 40) + rng.gauss(0, 0.05)
            if asset == "pump2" and 1000 <= i < 1010:
                value += 8.0
            body = json.dumps({"ts": ts.isoformat(), "value": value, "unit": "C"}).encode()
            msgs.append(Message(f"plant/s1/{asset}/temp", body, ts))
    msgs.append(Message("plant/s1/pump1/temp", b"{oops", T0 + timedelta(seconds=12000)))
    msgs.append(Message("elsewhere/x", b"1", T0 + timedelta(seconds=12000)))
    return msgs


def test_flow_scores_alerts_and_dead_letters() -> None:
    points: list[Point] = []
    out: list[Outgoing] = []
    settings = Settings()
    settings.sensors.max_past_s = 1e12  # the fixture's timestamps are fixed in the past
    flow = build_flow(settings, source=TestingSource(_messages()), influx_sink=TestingSink(points),
                      mqtt_sink=TestingSink(out))
    run_main(flow, epoch_interval=timedelta(milliseconds=50))  # snapshots state often: it must pickle

    scores = [p for p in points if p.measurement == "sensor_score"]
    assert len(scores) == 2400
    assert all(0.0 <= p.fields["score"] <= 1.0 for p in scores)
    opened = [p for p in points if p.measurement == "alert" and p.tags["kind"] == "open"]
    assert {p.tags["subject"] for p in opened} == {"pump2"}
    assert all(T0 + timedelta(seconds=10000) <= p.ts <= T0 + timedelta(seconds=10100) for p in opened)

    errors = sorted(p.tags["reason"] for p in points if p.measurement == "ingest_error")
    assert errors == ["bad_json", "unknown_topic"]
    topics = sorted(m.topic for m in out)
    assert "oddwatch/deadletter/sensor/bad_json" in topics
    assert "oddwatch/deadletter/sensor/unknown_topic" in topics
    alert_msgs = [json.loads(m.payload) for m in out if m.topic == "oddwatch/alerts/s1/pump2"]
    assert alert_msgs and alert_msgs[0]["kind"] == "open" and "pump2" in alert_msgs[0]["title"]
