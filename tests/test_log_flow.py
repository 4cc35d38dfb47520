"""The log dataflow wired with Bytewax's testing source and sinks and the cheap hashing
embedder (the real model and connectors are exercised in the integration tests)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from bytewax.testing import TestingSink, TestingSource, run_main
from prometheus_client import CollectorRegistry

from detectors.embedders import HashingEmbedder
from flows.logs import build_flow
from oddwatch.observe.metrics import Metrics, snapshot
from oddwatch.records import UTC, Message, Outgoing, Point
from oddwatch.settings import Settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NORMAL = [
    "Accepted password for user{u} from 10.0.0.{u} port 22",
    "session opened for user user{u} by (uid=0)",
    "session closed for user user{u}",
]


def _messages() -> list[Message]:
    msgs = []
    for w in range(240):  # one tumbling window of 60 s per w
        base = T0 + timedelta(seconds=60 * w)
        lines = [t.format(u=(w * 7 + i) % 50) for i, t in enumerate(NORMAL)]
        if w == 200:
            lines += ["kernel: EXT4-fs error (device sda1): ext4_find_entry: reading directory lblock 0"] * 3
        for i, line in enumerate(lines):
            ts = base + timedelta(seconds=5 * i)
            msgs.append(Message("logs/s1/web1/sshd", json.dumps({"ts": ts.isoformat(), "msg": line}).encode(), ts))
    msgs.append(Message("logs/s1/web1/sshd", b"\xff\xfe", T0))
    return msgs


def test_log_flow_scores_windows_and_alerts_on_a_new_message() -> None:
    points: list[Point] = []
    out: list[Outgoing] = []
    settings = Settings()
    settings.logs.max_past_s = 1e12
    p = settings.log_detector
    p.window_mode, p.window_by, p.window_size_s, p.model, p.warmup = "tumbling", "time", 60.0, "hashing", 50
    meters = Metrics(CollectorRegistry())
    flow = build_flow(settings, source=TestingSource(_messages()), influx_sink=TestingSink(points),
                      mqtt_sink=TestingSink(out), embedder=HashingEmbedder(dim=64), meters=meters)
    run_main(flow, epoch_interval=timedelta(milliseconds=50))  # snapshots state often: it must pickle
    counted = snapshot(meters.registry)
    assert counted["windows_scored"] == 240 and counted["alerts{source=log,kind=open}"] >= 1
    assert counted["model_calls"] >= 1 and counted["template_cache_hits"] > 500
    assert counted["messages_in{stream=log}"] == len(_messages())
    assert counted["parse_errors{stream=log,reason=bad_encoding}"] == 1
    windows = [pt for pt in points if pt.measurement == "log_window"]
    assert len(windows) == 240
    anomalous = [pt for pt in windows if pt.fields["is_anomaly"]]
    assert len(anomalous) == 1
    assert T0 + timedelta(seconds=60 * 200) <= anomalous[0].ts < T0 + timedelta(seconds=60 * 201)
    assert "EXT4-fs error" in str(anomalous[0].fields["example"])
    opened = [pt for pt in points if pt.measurement == "alert" and pt.tags["kind"] == "open"]
    assert len(opened) >= 1 and "EXT4" in str(opened[0].fields["text"])
    assert any(m.topic == "oddwatch/alerts/s1/web1/sshd" for m in out)
    assert [pt.tags["reason"] for pt in points if pt.measurement == "ingest_error"] == ["bad_encoding"]
    assert any(m.topic == "oddwatch/deadletter/log/bad_encoding" for m in out)


def test_a_burst_of_a_known_message_alerts() -> None:
    msgs = []
    for w in range(200):
        base = T0 + timedelta(seconds=60 * w)
        lines = [t.format(u=(w * 7 + i) % 50) for i, t in enumerate(NORMAL)]
        lines += ["Failed password for invalid user admin from 10.0.0.9 port 4242"] * (40 if w == 180 else w % 2)
        for i, line in enumerate(lines):
            ts = base + timedelta(seconds=50 * i / len(lines))
            msgs.append(Message("logs/s1/web1/sshd", json.dumps({"ts": ts.isoformat(), "msg": line}).encode(), ts))
    points: list[Point] = []
    settings = Settings()
    settings.logs.max_past_s = 1e12
    p = settings.log_detector
    p.window_mode, p.window_by, p.window_size_s, p.model, p.warmup = "tumbling", "time", 60.0, "hashing", 50
    run_main(build_flow(settings, source=TestingSource(msgs), influx_sink=TestingSink(points),
                        mqtt_sink=TestingSink([]), embedder=HashingEmbedder(dim=64)))
    anomalous = [pt for pt in points if pt.measurement == "log_window" and pt.fields["is_anomaly"]]
    assert len(anomalous) == 1 and "Failed password" in str(anomalous[0].fields["example"])
    opened = [pt for pt in points if pt.measurement == "alert" and pt.tags["kind"] == "open"]
    assert opened and "Burst" in str(opened[0].fields["text"]) and "40 times" in str(opened[0].fields["text"])


def test_a_source_that_goes_silent_alerts_when_it_sends_again() -> None:
    msgs = []
    t = T0
    for i in range(400):
        t += timedelta(seconds=1200 if i == 300 else 5)  # silent for 20 minutes before line 300
        line = NORMAL[i % 3].format(u=i % 50)
        msgs.append(Message("logs/s1/web1/sshd", json.dumps({"ts": t.isoformat(), "msg": line}).encode(), t))
    points: list[Point] = []
    out: list[Outgoing] = []
    settings = Settings()
    settings.logs.max_past_s = 1e12
    p = settings.log_detector
    p.window_mode, p.window_by, p.window_size_s, p.model, p.warmup = "tumbling", "time", 60.0, "hashing", 10
    run_main(build_flow(settings, source=TestingSource(msgs), influx_sink=TestingSink(points),
                        mqtt_sink=TestingSink(out), embedder=HashingEmbedder(dim=64)))
    alerts = [pt for pt in points if pt.measurement == "alert"]
    opened = [pt for pt in alerts if pt.tags["kind"] == "open" and "no log lines" in str(pt.fields.get("title"))]
    assert len(opened) >= 1
    silence_start = T0 + timedelta(seconds=5 * 300)
    assert opened[0].ts == silence_start + timedelta(seconds=5)  # when the next line was due
    assert "usually sends one every 5.0 s" in str(opened[0].fields["text"])
    assert any(pt.tags["kind"] == "close" for pt in alerts)
    assert any(m.topic == "oddwatch/alerts/s1/web1/sshd" and b"no log lines" in m.payload for m in out)


def test_an_idle_source_has_its_window_decided_on_wall_clock_time() -> None:
    from detectors.embedders import TemplateEmbeddingCache
    from flows.logs import Decide, SharedEmbeddings, SubscriptionParams
    from oddwatch.core.logsource import Decided
    from oddwatch.records import LogLine, utcnow

    settings = Settings()
    p = settings.log_detector
    p.window_mode, p.window_by, p.window_size_s, p.model = "tumbling", "time", 60.0, "hashing"
    meters = Metrics(CollectorRegistry())
    decide = Decide(SubscriptionParams(settings), settings.alerts,
                    SharedEmbeddings(TemplateEmbeddingCache(HashingEmbedder(dim=64)), meters), meters, 5.0)
    logic = decide(None)
    line = LogLine("s1", "web1", "sshd", T0 + timedelta(seconds=10), "session closed for user u1", topic="logs/s1/web1/sshd")
    assert logic.on_batch([line]) == ([], False)
    assert logic.on_notify() == ([], False)  # not idle yet
    logic.last_wall = utcnow() - timedelta(seconds=65)  # silent for a minute beyond the idle period
    out, _ = logic.on_notify()
    (decided,) = [o for o in out if isinstance(o, Decided)]
    assert decided.result.window_id == "s1/web1/sshd:time:1772323200" and decided.result.lines == 1
