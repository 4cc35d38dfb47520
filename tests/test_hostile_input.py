"""Hostile input through both dataflows (Bytewax testing source): one bad message never stops
a flow or costs the other messages, each becomes an ``ingest_error`` with its reason, and the
number of series or sources with state is bounded (``over_capacity`` beyond the cap)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bytewax.testing import TestingSink, TestingSource, run_main

from detectors.embedders import HashingEmbedder, TemplateEmbeddingCache
from flows import logs as log_flow
from flows import sensors as sensor_flow
from flows.runtime import DISCARD
from oddwatch.core.admission import Admission, AdmitStep, Evict
from oddwatch.core.logsource import Decided
from oddwatch.observe.metrics import METRICS
from oddwatch.records import UTC, IngestError, Message, Point, Reading
from oddwatch.settings import Settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DEEP = b"[" * 1000 + b"]" * 1000  # within orjson's depth limit (1024): valid JSON, not a reading
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000
DEEPER = b"[" * 5000 + b"]" * 5000  # beyond every parser's depth limit
BIG = b"9" * 400

#: (expected reason, topic, payload) for the sensor flow; every payload once killed the flow.
SENSOR_CASES = [
    ("bad_type", "plant/s1/p/c1", DEEP),
    ("bad_type", "plant/s1/p/c2", DEEP_OBJECT),
    ("bad_json", "plant/s1/p/c0", DEEPER),
    ("bad_value", "plant/s1/p/c3", b'{"value": ' + BIG + b"}"),
    ("bad_timestamp", "plant/s1/p/c4", b'{"value": 1, "ts": ' + BIG + b"}"),
    ("bad_timestamp", "plant/s1/p/c5", b'{"value": 1, "ts": "0001-01-01T00:00:00+01:00"}'),
    ("bad_timestamp", "plant/s1/p/c6", b'{"value": 1, "ts": "9999-12-31T23:59:59-01:00"}'),
    ("bad_timestamp", "plant/s1/p/c7", b"c7 value=1 99999999999999999999999"),
    ("empty", "plant/s1/p/c8", b"[]"),
    ("bad_tag", "plant/s1/p/c9\\", b"1.0"),
    ("bad_tag", "plant/s1/p\\ x/c10", b"1.0"),
    ("bad_tag", "plant/s1/p/" + "x" * 300, b"1.0"),
]

LOG_CASES = [
    ("bad_json", "logs/s1/h/a", DEEP),
    ("bad_timestamp", "logs/s1/h/a", b"<13>1 0001-01-01T00:00:00+01:00 h a - - - msg"),
    ("bad_timestamp", "logs/s1/h/a", b"<13>1 9999-12-31T23:59:59-01:00 h a - - - msg"),
    ("bad_timestamp", "logs/s1/h/a", b'{"msg": "x", "ts": ' + BIG + b"}"),
    ("empty", "logs/s1/h/a", b"[]"),
    ("bad_tag", "logs/s1/h\\/a", b"hello"),
]


def _readings(n: int, topic: str = "plant/s1/p/good") -> list[Message]:
    return [Message(topic, f"{20 + i % 3}".encode(), T0 + timedelta(seconds=i)) for i in range(n)]


def _run_sensors(msgs: list[Message], **sensors: object) -> list[Point]:
    points: list[Point] = []
    settings = Settings()
    settings.sensors.max_past_s = 1e12
    for key, value in sensors.items():
        setattr(settings.sensors, key, value)
    run_main(sensor_flow.build_flow(settings, source=TestingSource(msgs), influx_sink=TestingSink(points),
                                    mqtt_sink=TestingSink([])))
    return points


def test_sensor_flow_survives_every_hostile_message() -> None:
    good = _readings(20)
    hostile = [Message(topic, payload, T0 + timedelta(seconds=5)) for _, topic, payload in SENSOR_CASES]
    points = _run_sensors(good[:10] + hostile + good[10:])
    assert len([p for p in points if p.measurement == "sensor_score"]) == 20
    errors = {p.fields["topic"]: p.tags["reason"] for p in points if p.measurement == "ingest_error"}
    assert errors == {topic: reason for reason, topic, _ in SENSOR_CASES}


def test_log_flow_survives_every_hostile_message() -> None:
    points: list[Point] = []
    settings = Settings()
    settings.logs.max_past_s = 1e12
    msgs = [Message("logs/s1/h/a", f"line {i}".encode(), T0 + timedelta(seconds=i)) for i in range(10)]
    msgs[5:5] = [Message(topic, payload, T0 + timedelta(seconds=5)) for _, topic, payload in LOG_CASES]
    run_main(log_flow.build_flow(settings, source=TestingSource(msgs), influx_sink=TestingSink(points),
                                 mqtt_sink=TestingSink([]), embedder=HashingEmbedder(dim=16)))
    errors = sorted(p.tags["reason"] for p in points if p.measurement == "ingest_error")
    assert errors == sorted(reason for reason, _, _ in LOG_CASES)
    assert sum(p.fields["lines"] for p in points if p.measurement == "log_window") == 10


def test_series_beyond_the_cap_are_over_capacity_until_one_is_idle() -> None:
    msgs = [Message(f"plant/s1/p/x{i}", b"1", T0 + timedelta(seconds=i)) for i in range(5)]
    msgs.append(Message("plant/s1/p/late", b"1", T0 + timedelta(seconds=100)))  # x0 idle 100 s: evicted
    points = _run_sensors(msgs, max_series=3, idle_evict_s=50.0)
    scored = sorted(p.tags["sensor"] for p in points if p.measurement == "sensor_score")
    assert scored == ["late", "x0", "x1", "x2"]
    over = [p for p in points if p.measurement == "ingest_error"]
    assert [(p.tags["reason"], p.fields["topic"]) for p in over] == [
        ("over_capacity", "plant/s1/p/x3"), ("over_capacity", "plant/s1/p/x4")]
    assert "[sensors].max_series = 3" in str(over[0].fields["detail"])


def test_an_evicted_series_starts_again_from_nothing() -> None:
    """The state of an evicted series is dropped: it warms up again when it comes back."""
    msgs = _readings(5, "plant/s1/p/a") + [Message("plant/s1/p/b", b"1", T0 + timedelta(seconds=500)),
                                           Message("plant/s1/p/a", b"1", T0 + timedelta(seconds=1000))]
    step = sensor_flow.ScoreStep(Settings())
    state = step.new(Reading("s1", "p", "a", T0, 1.0))
    assert state is not None and step.new(Evict("s1/p/a", 100.0)) is None
    step(state, Reading("s1", "p", "a", T0, 1.0))
    assert step(state, Evict("s1/p/a", 100.0)) is DISCARD
    points = _run_sensors(msgs, max_series=1, idle_evict_s=100.0)
    assert [p.tags["sensor"] for p in points if p.measurement == "sensor_score"] == ["a"] * 5 + ["b", "a"]


def test_admit_step_passes_errors_and_keyless_items() -> None:
    err = IngestError("sensor", "parse_reading", "bad_json", "t", "{", "x", T0)
    step = AdmitStep(lambda m: [err, "keyless"], Admission(capacity=1, idle_s=0), stream="sensor",
                     step="parse_reading", setting="[sensors].max_series")
    assert step(Message("t", b"", T0)) == [err, "keyless"]


def test_admission_keeps_the_most_recently_seen() -> None:
    adm = Admission(capacity=3, idle_s=10)
    for i, key in enumerate("abc"):
        assert adm.admit(key, float(i)) == (True, None)
    assert adm.admit("a", 20.0) == (True, None)  # a is now the most recent
    assert adm.admit("d", 21.0) == (True, "b")
    assert adm.admit("e", 21.0) == (True, "c")
    assert adm.admit("f", 21.0) == (False, None)  # a was seen 1 s ago
    assert list(adm) == ["a", "d", "e"] and len(adm) == 3


def test_log_sources_beyond_the_cap_are_over_capacity_and_evicted_ones_drop_their_state() -> None:
    points: list[Point] = []
    settings = Settings()
    settings.logs.max_past_s = 1e12
    settings.logs.max_sources, settings.logs.idle_evict_s = 1, 100.0
    at = [0, 1, 2, 200, 201, 400]  # a, a, b (refused: a seen 1 s ago), b (a idle: evicted), c (refused), a
    topics = ["logs/s1/h/a", "logs/s1/h/a", "logs/s1/h/b", "logs/s1/h/b", "logs/s1/h/c", "logs/s1/h/a"]
    msgs = [Message(t, f"line {i}".encode(), T0 + timedelta(seconds=s)) for i, (t, s) in enumerate(zip(topics, at, strict=True))]
    run_main(log_flow.build_flow(settings, source=TestingSource(msgs), influx_sink=TestingSink(points),
                                 mqtt_sink=TestingSink([]), embedder=HashingEmbedder(dim=16)))
    refused = [(p.tags["reason"], p.fields["topic"]) for p in points if p.measurement == "ingest_error"]
    assert refused == [("over_capacity", "logs/s1/h/b"), ("over_capacity", "logs/s1/h/c")]
    assert "[logs].max_sources = 1" in str(next(p for p in points if p.measurement == "ingest_error").fields["detail"])
    lines = {}
    for p in points:
        if p.measurement == "log_window":
            lines[p.tags["app"]] = lines.get(p.tags["app"], 0) + int(p.fields["lines"])
    assert lines == {"a": 3, "b": 1}


def test_evict_drops_the_log_steps_state() -> None:
    settings = Settings()
    settings.log_detector.model = "hashing"
    embeddings = log_flow.SharedEmbeddings(TemplateEmbeddingCache(HashingEmbedder(dim=16)), METRICS)
    decide = log_flow.Decide(log_flow.SubscriptionParams(settings), settings.alerts, embeddings, METRICS, 5.0)
    logic = decide(None)
    line = log_flow.LogLine("s1", "h", "a", T0, "hello", topic="logs/s1/h/a")
    logic.on_batch([line])
    out, discard = logic.on_batch([Evict(line.key, 100.0)])
    assert discard is True and logic.state is None
    assert [d.result.lines for d in out if isinstance(d, Decided)] == [1]  # the open window was decided
    assert log_flow.source_key(Evict(line.key, 100.0)) == "s1/*/a"  # its fleet's state drops the source
