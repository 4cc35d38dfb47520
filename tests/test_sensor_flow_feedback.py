"""The sensor flow with operator feedback, drift points and the alert budget (Bytewax testing)."""

from __future__ import annotations

import json

from bytewax.testing import TestingSink, TestingSource, run_main

from flows.sensors import build_flow
from oddwatch.records import Message, Outgoing, Point
from oddwatch.settings import Settings
from tests.test_sensor_flow import _messages


def _run(msgs: list[Message], settings: Settings) -> tuple[list[Point], list[Outgoing]]:
    points: list[Point] = []
    out: list[Outgoing] = []
    run_main(build_flow(settings, source=TestingSource(msgs), influx_sink=TestingSink(points),
                        mqtt_sink=TestingSink(out)))
    return points, out


def _settings() -> Settings:
    s = Settings()
    s.sensors.max_past_s = 1e12
    return s


def test_false_positive_feedback_closes_quietly_and_is_written() -> None:
    msgs = _messages()[:-2]
    _, out = _run(msgs, _settings())
    opens = [json.loads(m.payload) for m in out if m.topic.startswith("oddwatch/alerts/")]
    opens = [a for a in opens if a["kind"] == "open"]
    assert opens, "the fixture raises an alert on pump2"
    aid = opens[0]["alert_id"]
    at = next(i for i, m in enumerate(msgs) if m.received.isoformat() >= opens[0]["ts"])
    fb = Message(f"oddwatch/feedback/{aid}", b'{"verdict": "false_positive", "user": "ana"}', msgs[at].received)
    points, out = _run(msgs[: at + 4] + [fb] + msgs[at + 4:], _settings())
    fbp = [p for p in points if p.measurement == "feedback"]
    assert len(fbp) == 1 and fbp[0].tags == {"site": "s1", "source": "sensor", "label": "false_positive"}
    closes = [p for p in points if p.measurement == "alert" and p.tags["kind"] == "close"]
    assert closes and "false positive" in str(closes[0].fields["title"])
    published = [json.loads(m.payload) for m in out if m.topic.startswith("oddwatch/alerts/")]
    assert [a["kind"] for a in published if a["alert_id"] == aid] == ["open"]  # the close was quiet
    assert any(p.measurement == "pipeline" and p.tags["component"] == "budget" for p in points)


def test_budget_holds_warnings_as_summary() -> None:
    s = _settings()
    s.alerts.budget_per_source_per_hour = 0
    s.series.critical_score = 1.01  # every alert a warning
    points, out = _run(_messages()[:-2], s)
    kinds = [json.loads(m.payload)["kind"] for m in out if m.topic.startswith("oddwatch/alerts/")]
    assert kinds and set(kinds) == {"summary"}
    assert {p.tags["kind"] for p in points if p.measurement == "alert"} == {"summary"}


def test_bad_feedback_is_dead_lettered() -> None:
    points, out = _run([Message("oddwatch/feedback/nope", b"ack", _messages()[0].received)], _settings())
    assert [m.topic for m in out] == ["oddwatch/deadletter/sensor/unknown_topic"]
    assert [p.measurement for p in points] == ["ingest_error"]
