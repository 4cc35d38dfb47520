"""The log flow with operator feedback and the alert budget (Bytewax testing, hashing embedder)."""

from __future__ import annotations

import json
from datetime import timedelta

from bytewax.testing import TestingSink, TestingSource, run_main

from detectors.embedders import HashingEmbedder
from flows.logs import build_flow
from oddwatch.records import Message, Outgoing, Point
from oddwatch.settings import Settings
from tests.test_log_flow import NORMAL, T0

ERROR = "kernel: EXT4-fs error (device sda{d}): ext4_find_entry: reading directory lblock 0"


def _messages(feedback_for: str | None) -> list[Message]:
    msgs = []
    for w in range(240):
        base = T0 + timedelta(seconds=60 * w)
        lines = [t.format(u=(w * 7 + i) % 50) for i, t in enumerate(NORMAL)]
        if w in (200, 236):
            lines += [ERROR.format(d=1 if w == 200 else 2)] * 3
        for i, line in enumerate(lines):
            ts = base + timedelta(seconds=5 * i)
            msgs.append(Message("logs/s1/web1/sshd", json.dumps({"ts": ts.isoformat(), "msg": line}).encode(), ts))
        if w == 230 and feedback_for:
            msgs.append(Message(f"oddwatch/feedback/{feedback_for}", b"false-positive", base))
    return msgs


def _run(msgs: list[Message]) -> tuple[list[Point], list[Outgoing]]:
    points: list[Point] = []
    out: list[Outgoing] = []
    settings = Settings()
    settings.logs.max_past_s = 1e12
    p = settings.log_detector
    p.window_mode, p.window_by, p.window_size_s, p.model, p.warmup = "tumbling", "time", 60.0, "hashing", 50
    flow = build_flow(settings, source=TestingSource(msgs), influx_sink=TestingSink(points),
                      mqtt_sink=TestingSink(out), embedder=HashingEmbedder(dim=64))
    run_main(flow, epoch_interval=timedelta(milliseconds=50))
    return points, out


def _opens(out: list[Outgoing]) -> list[dict]:
    alerts = [json.loads(m.payload) for m in out if m.topic.startswith("oddwatch/alerts/")]
    return [a for a in alerts if a["kind"] == "open"]


def test_log_false_positive_stops_the_same_error_alerting() -> None:
    _, out = _run(_messages(None))
    opens = _opens(out)
    assert len(opens) == 2, opens  # the error alerts both times without feedback
    points, out = _run(_messages(opens[0]["alert_id"]))
    assert [a["alert_id"] for a in _opens(out)] == [opens[0]["alert_id"]]  # not again after feedback
    fb = [p for p in points if p.measurement == "feedback"]
    assert len(fb) == 1 and fb[0].tags == {"site": "s1", "source": "log", "label": "false_positive"}
    assert any(p.measurement == "pipeline" and p.tags["component"] == "budget" for p in points)
