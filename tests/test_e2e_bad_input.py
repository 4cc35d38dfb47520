"""End to end: every kind of bad sensor input, sent through a real Mosquitto with
``mosquitto_pub``, becomes an ``ingest_error`` point in InfluxDB with its reason and a
dead-letter message on ``oddwatch/deadletter/sensor/<reason>``, and the flow keeps running."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oddwatch.flowrunner import FlowRunner, TopicCollector, count, mosquitto_pub, wait_for

pytestmark = pytest.mark.integration

#: (expected reason, topic suffix under ``plant/<site>/``, payload). Each case has its own
#: topic so its error can be told apart from the others.
CASES: list[tuple[str, str, bytes]] = [
    ("bad_json", "pump/c01", b'{"value": 1.5,'),
    ("bad_json", "pump/c02", b"[1, 2"),
    ("non_finite", "pump/c03", b"NaN"),
    ("non_finite", "pump/c04", b"-Infinity"),
    ("non_finite", "pump/c05", b'{"value": NaN}'),
    ("non_finite", "pump/c06", b'{"value": Infinity}'),
    ("bad_type", "pump/c07", b'{"value": "21.5"}'),
    ("bad_type", "pump/c08", b'{"value": true}'),
    ("bad_type", "pump/c09", b'{"value": null}'),
    ("bad_type", "pump/c10", b'{"temp": 21.5}'),
    ("bad_type", "pump/c11", b'{"ts": "yesterday", "value": 1}'),
    ("bad_type", "pump/c12", b"[21.5]"),  # a JSON list of non-objects
    ("bad_type", "pump/c13", b"c13 value=t"),  # line protocol boolean field
    ("ts_future", "pump/c14", b'{"ts": "2099-01-01T00:00:00Z", "value": 1}'),
    ("ts_past", "pump/c15", b'{"ts": "2001-01-01T00:00:00Z", "value": 1}'),
    ("ts_past", "pump/c16", b'{"ts": 1000000000, "value": 1}'),
    ("unknown_topic", "c17", b"1.0"),  # plant/<site>/c17: no sensor level
    ("unknown_topic", "pump//c18", b"1.0"),  # an empty level
    ("empty", "pump/c19", b""),
    ("empty", "pump/c20", b"  \n "),
    ("bad_encoding", "pump/c21", b"\xff\xfe\x80 21.5"),
    ("bad_encoding", "pump/c22", '{"value": 1, "unit": "°C"}'.encode("latin-1")),
    ("too_large", "pump/c23", b'{"value": 1, "pad": "' + b"x" * 70_000 + b'"}'),
    ("bad_line_protocol", "pump/c24", b"temperature is 21"),
    ("bad_line_protocol", "pump/c25", b"temp value=abc"),
]


def test_bad_input_goes_to_ingest_error_and_dead_letter(services: Any, unique: str) -> None:
    site = unique
    settings = services.settings(
        # plant/# lets topics with too few levels reach the parser (unknown_topic)
        sensors={"subscriptions": [{"topic": "plant/#", "tags": "_/site/asset/sensor"}]},
    )
    topics = {f"plant/{site}/{suffix}": reason for reason, suffix, _ in CASES}
    dead_prefix = f"{settings.mqtt.deadletter_prefix}/sensor"
    with TopicCollector(settings, [f"{dead_prefix}/#"]) as dead, FlowRunner(settings) as runner:
        for _, suffix, payload in CASES:
            mosquitto_pub(settings, f"plant/{site}/{suffix}", payload)
        mosquitto_pub(settings, f"plant/{site}/pump/good", b"21.5")

        q_errors = f"SELECT topic, reason, detail, payload, step, \"count\" FROM ingest_error WHERE topic =~ /^plant\\/{site}\\//"
        q_good = f"SELECT COUNT(value) FROM sensor_score WHERE site = '{site}'"
        assert wait_for(lambda: len(services.query(q_errors)) >= len(CASES) and count(services, q_good) >= 1, 15), (
            f"{len(services.query(q_errors))} of {len(CASES)} errors, {count(services, q_good)} good reading")

        def dead_letters() -> dict[str, tuple[str, dict[str, Any]]]:
            out = {}
            for m in dead.poll():
                body = json.loads(m.payload)
                if body["topic"] in topics:
                    out[body["topic"]] = (m.topic, body)
            return out

        assert dead.wait(lambda _: len(dead_letters()) >= len(CASES), 10), sorted(set(topics) - set(dead_letters()))
        assert runner.alive, "the flow stopped on bad input"
        runner.stop()

    rows = services.query(q_errors)
    got = {row["topic"]: row for row in rows}
    assert len(rows) == len(CASES)
    for topic, reason in topics.items():
        row = got[topic]
        assert row["reason"] == reason, f"{topic}: {row}"
        assert row["step"] == "parse_reading" and row["count"] == 1.0 and row["detail"]
        assert len(row["payload"]) <= 259  # an excerpt
    letters = dead_letters()
    for topic, reason in topics.items():
        mqtt_topic, body = letters[topic]
        assert mqtt_topic == f"{dead_prefix}/{reason}", (topic, mqtt_topic)
        assert body["reason"] == reason and body["detail"] and len(body["payload"]) <= 259
    assert count(services, q_good) == 1  # the good reading after the bad ones was scored
    assert count(services, f"SELECT COUNT(value) FROM sensor_score WHERE site = '{site}' AND sensor = 'good'") == 1


def test_topics_with_the_wrong_number_of_levels_are_dead_lettered(services: Any, unique: str) -> None:
    """With the default subscription (plant/+/+/+) the broker would not deliver plant/s/pump at
    all: the flow subscribes to plant/# so such topics reach the parser as bad_topic."""
    site = unique
    settings = services.settings()
    assert [s.topic for s in settings.sensors.subscriptions] == ["plant/+/+/+"]
    wrong = [f"plant/{site}/pump", f"plant/{site}/pump/temp/extra"]
    dead_prefix = f"{settings.mqtt.deadletter_prefix}/sensor"
    with TopicCollector(settings, [f"{dead_prefix}/#"]) as dead, FlowRunner(settings) as runner:
        for topic in wrong:
            mosquitto_pub(settings, topic, b"1.0")
        mosquitto_pub(settings, f"plant/{site}/pump/good", b"21.5")
        q_errors = f"SELECT topic, reason, detail FROM ingest_error WHERE topic =~ /^plant\\/{site}\\//"
        q_good = f"SELECT COUNT(value) FROM sensor_score WHERE site = '{site}'"
        assert wait_for(lambda: len(services.query(q_errors)) >= 2 and count(services, q_good) >= 1, 15)
        def letters() -> dict[str, str]:
            return {json.loads(m.payload)["topic"]: m.topic for m in dead.poll()}

        assert dead.wait(lambda _: all(t in letters() for t in wrong), 10), letters()
        runner.stop()
    rows = {r["topic"]: r for r in services.query(q_errors)}
    assert {t: rows[t]["reason"] for t in wrong} == dict.fromkeys(wrong, "bad_topic")
    assert "has 3 levels; subscription plant/+/+/+ (_/site/asset/sensor) expects 4" in rows[wrong[0]]["detail"]
    assert all(letters()[t] == f"{dead_prefix}/bad_topic" for t in wrong)
