"""Bytewax recovery of all model state: a flow aborted mid-stream resumes from its last
snapshot with its detectors, calibration, templates, embedding cache and novelty index.

If the state were lost on resume, the detectors would be back in their warm-up and the
anomalies placed after the abort would not alert.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from detectors.embedders import HashingEmbedder
from flows.logs import build_flow as build_log_flow
from flows.sensors import build_flow as build_sensor_flow
from oddwatch.records import Message, Point, utcnow
from oddwatch.settings import Settings

pytestmark = pytest.mark.slow


def _run_with_abort(build: Any, items: list[Message], tmp_path: Path) -> tuple[list[Point], list[Point]]:
    """Run *items* with an abort in the middle, then resume; points of each execution."""
    init_db_dir(tmp_path, 1)
    cut = len(items) * 3 // 4
    source = TestingSource([*items[:cut], TestingSource.ABORT(), *items[cut:]], batch_size=50)
    first: list[Point] = []
    second: list[Point] = []
    recovery = RecoveryConfig(str(tmp_path))
    for sink in (first, second):
        run_main(build(source, sink), epoch_interval=timedelta(milliseconds=5), recovery_config=recovery)
    return first, second


def _sensor_messages() -> list[Message]:
    start = utcnow() - timedelta(hours=2)
    msgs = []
    for i in range(800):
        ts = start + timedelta(seconds=5 * i)
        value = 20.0 + (i % 7) * 0.1 + (12.0 if i == 700 else 0.0)  # a spike after the abort
        msgs.append(Message("plant/s1/pump1/temp", json.dumps({"ts": ts.isoformat(), "value": value}).encode(), ts))
    return msgs


def test_sensor_state_survives_an_abort(tmp_path: Path) -> None:
    settings = Settings()

    def build(source: Any, sink: list[Point]) -> Any:
        return build_sensor_flow(settings, source=source, influx_sink=TestingSink(sink), mqtt_sink=TestingSink([]))

    first, second = _run_with_abort(build, _sensor_messages(), tmp_path)
    scored = {p.ts for p in first + second if p.measurement == "sensor_score"}
    assert len(scored) == 800  # at-least-once: every reading scored, some maybe twice
    assert 0 < sum(p.measurement == "sensor_score" for p in second) < 400, "resumed, not restarted"
    resumed_scores = [p for p in second if p.measurement == "sensor_score"]
    assert resumed_scores and all(p.fields["threshold"] > 0 for p in resumed_scores)
    opened = {p.fields["alert_id"] for p in second if p.measurement == "alert" and p.tags["kind"] == "open"}
    assert len(opened) == 1, "the spike after the abort alerts: the detector resumed warm"


def _log_messages() -> list[Message]:
    start = utcnow().replace(second=0, microsecond=0) - timedelta(hours=3)  # windows align to minutes
    msgs = []
    for w in range(120):
        base = start + timedelta(seconds=60 * w)
        lines = [f"session opened for user u{w % 9} by (uid=0)", f"session closed for user u{w % 9}"]
        if w == 110:
            lines.append("kernel: EXT4-fs error (device sda1): ext4_find_entry: reading directory lblock 0")
        for i, line in enumerate(lines):
            ts = base + timedelta(seconds=10 * i)
            msgs.append(Message("logs/s1/web1/sshd", json.dumps({"ts": ts.isoformat(), "msg": line}).encode(), ts))
    return msgs


def test_log_state_survives_an_abort(tmp_path: Path) -> None:
    settings = Settings()
    p = settings.log_detector
    p.window_mode, p.window_by, p.window_size_s, p.model, p.warmup = "tumbling", "time", 60.0, "hashing", 30

    def build(source: Any, sink: list[Point]) -> Any:
        return build_log_flow(settings, source=source, influx_sink=TestingSink(sink), mqtt_sink=TestingSink([]),
                              embedder=HashingEmbedder(dim=64))

    first, second = _run_with_abort(build, _log_messages(), tmp_path)
    windows = {pt.fields["window_id"] for pt in first + second if pt.measurement == "log_window"}
    assert len(windows) == 120
    assert 0 < sum(pt.measurement == "log_window" for pt in second) < 60, "resumed, not restarted"
    anomalous = [pt for pt in second if pt.measurement == "log_window" and pt.fields["is_anomaly"]]
    assert len(anomalous) == 1 and "EXT4" in str(anomalous[0].fields["example"]), [
        (a.fields["window_id"], a.fields["novelty"], a.fields["threshold"], a.fields.get("example")) for a in anomalous]
