"""End to end: syslog over MQTT (real Mosquitto, published with ``mosquitto_pub``) -> the log
dataflow with the real default embedding model -> InfluxDB (real 1.x) and MQTT alerts."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from bytewax.dataflow import Dataflow

from oddwatch.connectors.mqtt import MqttSource
from oddwatch.flowrunner import FlowRunner, TopicCollector, count, mosquitto_pub, wait_for
from oddwatch.records import utcnow
from oddwatch.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NORMAL = [
    "sshd[{p}]: Accepted publickey for deploy from 10.1.0.{u} port 5{u}22 ssh2",
    "sshd[{p}]: pam_unix(sshd:session): session opened for user deploy by (uid=0)",
    "sshd[{p}]: pam_unix(sshd:session): session closed for user deploy",
]
NOVEL = "kernel: EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm sshd: reading directory lblock 0"


def _log_flow(settings: Settings, source: MqttSource) -> Dataflow:
    from flows.logs import build_flow

    return build_flow(settings, source=source, idle_check_s=30.0)


def test_novel_log_window_raises_an_explained_alert(services: Any, unique: str) -> None:
    settings = services.settings(
        logs={"max_past_s": 86400.0},
        log_detector={"window_mode": "tumbling", "window_by": "time", "window_size_s": 60.0, "warmup": 20},
    )
    site = unique
    topic = f"logs/{site}/web1/sshd"
    start = utcnow().replace(second=0, microsecond=0) - timedelta(hours=2)  # windows align to minutes
    lines = []
    for w in range(60):  # one 60 s window each, 3 to 5 normal lines, a novel line in window 50
        base = start + timedelta(seconds=60 * w)
        for i, tpl in enumerate(NORMAL * (1 + w % 2)):
            lines.append({"ts": (base + timedelta(seconds=5 * i)).isoformat(),
                          "msg": tpl.format(p=1000 + w, u=(w * 7 + i) % 50)})
        if w == 50:
            lines.append({"ts": (base + timedelta(seconds=40)).isoformat(), "msg": NOVEL})
    with TopicCollector(settings, [f"oddwatch/alerts/{site}/#", "oddwatch/deadletter/log/#"]) as out, \
            FlowRunner(settings, _log_flow, topics=[f"logs/{site}/+/+"], flow="logs") as runner:
        mosquitto_pub(settings, topic, lines=[json.dumps(x) for x in lines])
        mosquitto_pub(settings, topic, b"\xff\xfe not utf-8")
        windows = f"SELECT count(novelty) FROM log_window WHERE site = '{site}'"
        assert wait_for(lambda: count(services, windows) >= 59, 60), count(services, windows)
        assert out.wait(lambda ms: any("alerts" in m.topic for m in ms) and any("deadletter" in m.topic for m in ms), 20)
        runner.stop()
        messages = out.poll()
    rows = services.query(f"SELECT novelty, threshold, is_anomaly, novel_template, example FROM log_window "
                          f"WHERE site = '{site}' AND is_anomaly = true")
    assert len(rows) == 1 and "EXT4-fs error" in rows[0]["example"]
    window_start = start + timedelta(seconds=60 * 50)
    assert abs(rows[0]["time"] / 1e9 - (window_start + timedelta(seconds=40)).timestamp()) < 61
    alerts = services.query(f"SELECT title, text, state FROM alert WHERE site = '{site}' AND kind = 'open'")
    assert len(alerts) == 1 and "EXT4-fs error" in alerts[0]["text"] and "Nearest normal window" in alerts[0]["text"]
    alert_msgs = [json.loads(m.payload) for m in messages if m.topic == f"oddwatch/alerts/{site}/web1/sshd"]
    assert alert_msgs[0]["kind"] == "open" and alert_msgs[0]["source"] == "log"
    assert any(m.topic == "oddwatch/deadletter/log/bad_encoding" for m in messages)
    errors = services.query(f"SELECT count(\"count\") FROM ingest_error WHERE stream = 'log' AND topic = '{topic}'")
    assert errors and errors[0]["count"] >= 1
